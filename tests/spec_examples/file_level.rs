//! File-level judgement: type, owner, mode, size, links and names, each
//! refused with its code by `spool check` and the daemon alike.

use super::*;

// ---------------------------------------------------------------- file level

const VALID_TASK: &[u8] = b"{\"text\":\"hello\"}\n";

fn private_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A task of exactly `n` bytes that is valid apart from its size.
fn task_of_size(n: usize) -> Vec<u8> {
    let frame = b"{\"text\":\"\"}".len();
    let mut v = b"{\"text\":\"".to_vec();
    v.extend(std::iter::repeat_n(b'x', n - frame));
    v.extend(b"\"}");
    assert_eq!(v.len(), n);
    v
}

/// (what, kind, path, extra environment, expected code or None for ok)
type Case = (
    String,
    &'static str,
    PathBuf,
    Vec<(&'static str, &'static str)>,
    Option<&'static str>,
);

#[test]
fn file_level_rejections() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::set_permissions(d, fs::Permissions::from_mode(0o700)).unwrap();
    let target = private_file(d, "target.json", VALID_TASK);
    let mut cases: Vec<Case> = vec![];
    let mut add = |what: &str,
                   kind: &'static str,
                   p: PathBuf,
                   env: Vec<(&'static str, &'static str)>,
                   want: Option<&'static str>| {
        cases.push((what.to_string(), kind, p, env, want));
    };

    add(
        "the plain file itself",
        "task",
        target.clone(),
        vec![],
        None,
    );

    add(
        "name with ..",
        "task",
        private_file(d, "a..b.json", VALID_TASK),
        vec![],
        Some("bad-file-name"),
    );
    add(
        "name with a tab",
        "task",
        private_file(d, "tab\there.json", VALID_TASK),
        vec![],
        Some("bad-file-name"),
    );
    add(
        "name with ESC",
        "task",
        private_file(d, "esc\x1b[31m.json", VALID_TASK),
        vec![],
        Some("bad-file-name"),
    );

    let link = d.join("symlink.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    add(
        "symlink to a valid task",
        "task",
        link.clone(),
        vec![],
        Some("not-regular-file"),
    );
    add(
        "symlink in an outbox",
        "outbox",
        link.clone(),
        vec![],
        Some("not-regular-file"),
    );
    let dangling = d.join("dangling.json");
    std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
    add(
        "dangling symlink",
        "task",
        dangling,
        vec![],
        Some("not-regular-file"),
    );

    let fifo = d.join("fifo.json");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    add(
        "FIFO (must not block)",
        "task",
        fifo,
        vec![],
        Some("not-regular-file"),
    );

    let dir = d.join("dir.json");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    add("directory", "task", dir, vec![], Some("not-regular-file"));

    let a = private_file(d, "hardlink-a.json", VALID_TASK);
    let b = d.join("hardlink-b.json");
    fs::hard_link(&a, &b).unwrap();
    add(
        "file with 2 hard links",
        "task",
        b,
        vec![],
        Some("multiple-links"),
    );

    for (name, mode) in [
        ("mode-0666.json", 0o666),
        ("mode-0602.json", 0o602),
    ] {
        let p = private_file(d, name, VALID_TASK);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        add(name, "task", p, vec![], Some("writable-by-others"));
    }
    let p = private_file(d, "mode-0644.json", VALID_TASK);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    add("group/world-readable is fine", "task", p, vec![], None);
    let p = private_file(d, "mode-0664.json", VALID_TASK);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o664)).unwrap();
    add("group-writable (umask 002) is fine", "task", p, vec![], None);

    let limit = peerspool::queue::format::DEFAULT_MAX_BYTES as usize;
    add(
        "exactly the 1 MiB limit",
        "task",
        private_file(d, "at-limit.json", &task_of_size(limit)),
        vec![],
        None,
    );
    add(
        "1 MiB + 1 byte",
        "task",
        private_file(d, "over-limit.json", &task_of_size(limit + 1)),
        vec![],
        Some("too-large"),
    );
    let small = private_file(d, "small.json", &task_of_size(65));
    add(
        "65 bytes, PEERSPOOL_MAX_BYTES=64",
        "task",
        small.clone(),
        vec![("PEERSPOOL_MAX_BYTES", "64")],
        Some("too-large"),
    );
    add(
        "65 bytes, PEERSPOOL_MAX_BYTES=65",
        "task",
        small,
        vec![("PEERSPOOL_MAX_BYTES", "65")],
        None,
    );
    add(
        "too large in an outbox",
        "outbox",
        private_file(d, "big-outbox.json", &task_of_size(limit + 1)),
        vec![],
        Some("too-large"),
    );

    if is_root() {
        let p = private_file(d, "foreign.json", VALID_TASK);
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path; 65534 is nobody.
        assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0, "chown");
        add("owned by nobody", "task", p, vec![], Some("foreign-owner"));
    } else {
        let p = private_file(d, "write-only.json", VALID_TASK);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o200)).unwrap();
        add(
            "mode 0200: cannot be opened for reading",
            "task",
            p,
            vec![],
            Some("unreadable"),
        );
    }

    let mut failures = vec![];
    for (what, kind, path, env, want) in &cases {
        let v = if what.contains("name with") {
            // The path is printed as the binary sees fit; judge by the rest.
            let r = check(kind, &[path.as_path()], env);
            let lines: Vec<&str> = r.stdout.lines().collect();
            match lines.as_slice() {
                [l] => l.split_once(": rejected ").map_or_else(
                    || Err(format!("not rejected: {l:?}")),
                    |(_, rest)| {
                        verdict_of(&format!("rejected {rest}"))
                            .ok_or_else(|| format!("bad line {l:?}"))
                    },
                ),
                _ => Err(format!("expected one line, got {lines:?}")),
            }
        } else {
            judge_one(kind, path, env)
        };
        match (v, want) {
            (Ok(Verdict::Ok), None) => {}
            (Ok(Verdict::Rejected { code, .. }), Some(w)) if code == *w => {}
            (v, w) => failures.push(format!(
                "{what} ({kind}): got {v:?}, want {}",
                w.unwrap_or("ok")
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "file-level cases misjudged:\n{}",
        failures.join("\n")
    );

    // Whatever happened, the target of the symlink was not touched.
    assert_eq!(fs::read(&target).unwrap(), VALID_TASK);
}

#[test]
fn peer_profile_must_be_a_regular_file() {
    let tmp = tempfile::tempdir().unwrap();
    let target = private_file(
        tmp.path(),
        "real.json",
        br#"{"runtime":"claude","cwd":"/"}"#,
    );
    let link = tmp.path().join("peer.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_eq!(judge_one("peer", &target, &[]), Ok(Verdict::Ok));
    match judge_one("peer", &link, &[]) {
        Ok(Verdict::Rejected { code, .. }) if code == INVALID_PROFILE => {}
        v => panic!("symlinked peer.json: {v:?}"),
    }
}

/// A newline in a file name must not split a verdict over two lines: scripts
/// read `spool check` output line by line.
#[test]
fn output_stays_one_line_per_file_for_a_name_with_a_newline() {
    let tmp = tempfile::tempdir().unwrap();
    let p = private_file(tmp.path(), "new\nline.json", VALID_TASK);
    let r = check("task", &[&p], &[]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "one line per file, even for a name with a newline: {:?}",
        r.stdout
    );
    assert!(
        r.stdout.contains(": rejected bad-file-name: "),
        "{:?}",
        r.stdout
    );
}
