//! The foundation: the spool library and the CLI verbs that write and
//! inspect it, without a daemon.

mod common;
use common::*;
use peerspool::queue::spool;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

fn env_with_peer(name: &str) -> Env {
    let mut e = Env::new();
    e.add_peer(name, &PeerOpts::default());
    e
}

#[test]
fn concurrent_senders_produce_unique_ordered_files() {
    let e = env_with_peer("sink");
    let senders: Vec<_> = (0..8)
        .map(|k| {
            let root = e.root.clone();
            std::thread::spawn(move || {
                for i in 0..250 {
                    let out = std::process::Command::new(BIN)
                        .args(["send", "sink", &format!("s{k} {i:03}"), "--from", &format!("sender{k}")])
                        .env("PEERSPOOL_HOME", &root)
                        .env_remove("PEERSPOOL_PEER")
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let new = e.peer_dir("sink").join("spool/new");
    let names = spool::list(&new).unwrap();
    assert_eq!(names.len(), 2000);
    let unique: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(unique.len(), 2000, "names are unique");
    assert_eq!(std::fs::read_dir(e.peer_dir("sink").join("spool/tmp")).unwrap().count(), 0, "no staging leftovers");
    let mut last = [-1i32; 8];
    for n in &names {
        let t = peerspool::queue::format::parse_task(&std::fs::read(new.join(n)).unwrap(), n.trim_end_matches(".json")).unwrap();
        let (k, i) = t.text.split_once(' ').unwrap();
        let k: usize = k[1..].parse().unwrap();
        let i: i32 = i.parse().unwrap();
        assert!(i > last[k], "sender {k}: {i} after {} — name order must be arrival order", last[k]);
        last[k] = i;
        assert_eq!(t.from, format!("sender{k}"));
        assert_eq!(t.id, n.trim_end_matches(".json"));
    }
    assert!(last.iter().all(|&l| l == 249));
}

#[test]
fn queue_moves_and_prune() {
    let d = tempfile::tempdir().unwrap();
    let q = spool::Queue {
        tmp: d.path().join("tmp"),
        new: d.path().join("new"),
        cur: d.path().join("cur"),
        done: d.path().join("done"),
        failed: d.path().join("failed"),
    };
    for p in [&q.tmp, &q.new, &q.cur, &q.done, &q.failed] {
        std::fs::create_dir(p).unwrap();
    }
    for n in ["b.json", "a.json", "c.json", ".hidden.json", "x.tmp"] {
        q.enqueue(n, b"{}").unwrap();
    }
    assert_eq!(spool::list(&q.new).unwrap(), vec!["a.json", "b.json", "c.json"], "only messages, sorted");
    assert!(spool::move_to(&q.new, &q.cur, "a.json").unwrap());
    assert!(!spool::move_to(&q.new, &q.cur, "a.json").unwrap(), "second claim sees it gone");
    assert!(spool::move_to(&q.cur, &q.done, "a.json").unwrap());
    spool::fail(&q.new, &q.failed, "b.json", "invalid-json: x\ny").unwrap();
    assert_eq!(read(&q.failed.join("b.json.error")), "invalid-json: x y\n", "one line");
    for i in 0..10 {
        std::fs::write(q.done.join(format!("{i:02}.json")), "{}").unwrap();
    }
    let removed = spool::prune(&q.done, Duration::from_secs(3600), 4, SystemTime::now()).unwrap();
    assert_eq!(removed, 7);
    assert_eq!(spool::list(&q.done).unwrap(), vec!["07.json", "08.json", "09.json", "a.json"], "last by name kept");
    let removed = spool::prune(&q.done, Duration::from_secs(0), 100, SystemTime::now() + Duration::from_secs(5)).unwrap();
    assert_eq!(removed, 4, "age limit");
}

fn check(e: &Env, path: &std::path::Path) -> (Option<i32>, String) {
    let mut child = e.cmd(&["spool", "check", path.to_str().unwrap()]).stdout(Stdio::piped()).spawn().unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut out = String::new();
            std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
            return (st.code(), out);
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("spool check hung on {}", path.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn special_files_are_refused_without_blocking_or_following() {
    let e = env_with_peer("p");
    let new = e.peer_dir("p").join("spool/new");
    let fifo = new.join("fifo.json");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (code, out) = check(&e, &fifo);
    assert_eq!(code, Some(1));
    assert!(out.contains("rejected not-regular-file: entry is a FIFO"), "{out}");

    let secret = e.dir.path().join("secret.json");
    std::fs::write(&secret, r#"{"text":"secret"}"#).unwrap();
    let link = new.join("link.json");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let (code, out) = check(&e, &link);
    assert_eq!(code, Some(1));
    assert!(out.contains("not-regular-file: entry is a symlink") && !out.contains("secret\""), "{out}");

    let hard = new.join("hard.json");
    std::fs::hard_link(&secret, &hard).unwrap();
    assert!(check(&e, &hard).1.contains("rejected multiple-links"));

    let dir = new.join("dir.json");
    std::fs::create_dir(&dir).unwrap();
    assert!(check(&e, &dir).1.contains("entry is a directory"));

    let open = new.join("open.json");
    std::fs::write(&open, r#"{"text":"x"}"#).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    assert!(check(&e, &open).1.contains("rejected writable-by-others"));
}

#[test]
fn oversized_files_are_refused_before_reading() {
    let e = env_with_peer("p");
    let new = e.peer_dir("p").join("spool/new");
    let big = new.join("big.json");
    let mut f = std::fs::File::create(&big).unwrap();
    f.write_all(&vec![b' '; 10 * 1024 * 1024]).unwrap();
    drop(f);
    let (code, out) = check(&e, &big);
    assert_eq!(code, Some(1));
    assert!(out.contains("rejected too-large: 10485760 bytes exceeds the 1048576-byte limit"), "{out}");
    // A 64 GiB sparse file: reading it whole would take minutes; the size
    // check answers from metadata alone.
    let huge = new.join("huge.json");
    std::fs::File::create(&huge).unwrap().set_len(64 << 30).unwrap();
    let (code, out) = check(&e, &huge);
    assert_eq!(code, Some(1));
    assert!(out.contains("too-large: 68719476736 bytes"), "{out}");
}

fn err_line(out: &std::process::Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(s.trim().lines().count(), 1, "one line: {s:?}");
    s
}

#[test]
fn clear_one_line_errors() {
    let e = env_with_peer("p");
    let out = e.run(&["peer", "add", "Bad/Name", "--runtime", "command", "--cwd", "/tmp", "--", "cat"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(err_line(&out).contains("invalid peer name \"Bad/Name\""));

    let out = e.run(&["send", "nobody", "hi"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(err_line(&out).contains("unknown peer \"nobody\""));

    let out = e.run(&["send", "p", ""]);
    assert_eq!(out.status.code(), Some(2));
    assert!(err_line(&out).contains("empty text"));

    let mut child = e.cmd(&["send", "p", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"ok \xff\xfe").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(err_line(&out).contains("not valid UTF-8"));

    std::fs::set_permissions(&e.root, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let out = e.run(&["send", "p", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    let l = err_line(&out);
    assert!(l.contains(e.root.to_str().unwrap()) && l.contains("world-writable") && l.contains("chmod go-w"), "{l}");
    let out = e.run(&["daemon"]);
    assert_eq!(out.status.code(), Some(1), "the daemon refuses an unsafe root");
    std::fs::set_permissions(&e.root, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
}

#[test]
fn stdin_text_and_status_json() {
    let e = env_with_peer("p");
    let mut child = e.cmd(&["send", "p", "--topic", "t1"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all("from stdin ✓\n".as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let t = peerspool::queue::format::parse_task(&std::fs::read(e.peer_dir("p").join(format!("spool/new/{id}.json"))).unwrap(), &id).unwrap();
    assert_eq!((t.text.as_str(), t.topic.as_deref(), t.from.as_str()), ("from stdin ✓\n", Some("t1"), "tester"));
    let st: serde_json::Value = serde_json::from_str(&e.ok(&["status", "--json"])).unwrap();
    assert_eq!(st["daemon"]["running"], false);
    assert_eq!(st["peers"][0]["queued"], 1);
    assert_eq!(st["peers"][0]["session"], "asleep");
    let list = e.ok(&["peer", "list"]);
    assert!(list.starts_with("p\tcommand\twarm\t"), "{list}");
    let out = e.run(&["peer", "rm", "p"]);
    assert_eq!(out.status.code(), Some(1), "refused while a task is queued");
    e.ok(&["peer", "rm", "p", "--force"]);
    assert!(!e.peer_dir("p").exists());
}
