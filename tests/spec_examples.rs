//! Conformance of the real binary with `spool-spec/`: every stored example
//! gets the verdict its directory and file name promise, the file-level
//! rejections (which git cannot store) are built here, every rejection code
//! is documented in SPEC.md, and the JSON Schemas agree with the code.
//!
//! Checked with `peerspool spool check --kind K [--owner alice] FILE...`,
//! whose output is one line per file: `<path>: ok[ details]` or
//! `<path>: rejected <code>: <detail>`; exit 0 all ok, 1 any rejected,
//! 2 usage error.

use peerspool::queue::format::Reject;
use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_peerspool");
const KINDS: [&str; 3] = ["task", "outbox", "peer"];
/// Outbox examples are judged as if they sat in alice's outbox.
const OWNER: &str = "alice";
/// The code `spool check --kind peer` gives an unusable profile.
const INVALID_PROFILE: &str = "invalid-profile";
/// Codes whose examples are built by `file_level_rejections`, not stored.
const FILE_LEVEL_CODES: [&str; 7] = [
    "bad-file-name",
    "not-regular-file",
    "foreign-owner",
    "multiple-links",
    "writable-by-others",
    "too-large",
    "unreadable",
];
/// Codes only routing can give (the recipient's directory, not the file):
/// built by `outbox::tests::unsafe_destinations_are_refused_once`.
const ROUTING_CODES: [&str; 1] = ["bad-destination"];
/// Invalid examples that are schema-valid JSON on purpose: the rule that
/// rejects them cannot be written in JSON Schema (SPEC.md says which).
const SCHEMA_CANNOT_EXPRESS: [&str; 5] = [
    "bad-id stem.json",                     // default id comes from the file name
    "bad-version-float.json",               // 1.0 == 1 in JSON Schema
    "invalid-profile-bad-glob.json",        // glob syntax
    "invalid-profile-bad-regex.json",       // regex syntax
    "invalid-profile-duplicate-field.json", // duplicate keys
];

fn spec_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("spool-spec")
}

// ---------------------------------------------------------------- running

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with a private root and a clean limit environment; kills
/// it after 30 s (a FIFO opened for reading would block forever).
fn run(args: &[OsString], env: &[(&str, &str)]) -> Run {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("PEERSPOOL_HOME", home.path())
        .env_remove("PEERSPOOL_MAX_BYTES")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn peerspool");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("peerspool {args:?} hung for 30 s (did it open a FIFO or follow a link?)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&t_out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
    }
}

fn check_args(kind: &str, files: &[&Path]) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["spool", "check", "--kind", kind]
        .iter()
        .map(OsString::from)
        .collect();
    if kind == "outbox" {
        a.push("--owner".into());
        a.push(OWNER.into());
    }
    a.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    a
}

fn check(kind: &str, files: &[&Path], env: &[(&str, &str)]) -> Run {
    run(&check_args(kind, files), env)
}

#[derive(Debug, PartialEq)]
enum Verdict {
    Ok,
    Rejected { code: String, detail: String },
}

/// Parses the verdict from `<path>: ok...` / `<path>: rejected <code>: <detail>`.
fn parse_verdict(line: &str, path: &Path) -> Result<Verdict, String> {
    let prefix = format!("{}: ", path.display());
    let rest = line
        .strip_prefix(&prefix)
        .ok_or_else(|| format!("line does not start with {prefix:?}: {line:?}"))?;
    verdict_of(rest).ok_or_else(|| format!("not `ok` or `rejected CODE: DETAIL`: {line:?}"))
}

fn verdict_of(rest: &str) -> Option<Verdict> {
    if rest == "ok" || rest.starts_with("ok ") {
        return Some(Verdict::Ok);
    }
    let (code, detail) = rest.strip_prefix("rejected ")?.split_once(": ")?;
    if code.is_empty() || code.contains(char::is_whitespace) {
        return None;
    }
    Some(Verdict::Rejected {
        code: code.into(),
        detail: detail.into(),
    })
}

/// Runs one file alone and returns its verdict, checking the output shape
/// (exactly one line) and that the exit code agrees with the verdict.
fn judge_one(kind: &str, path: &Path, env: &[(&str, &str)]) -> Result<Verdict, String> {
    let r = check(kind, &[path], env);
    let lines: Vec<&str> = r.stdout.lines().collect();
    if lines.len() != 1 {
        return Err(format!(
            "expected exactly one output line, got {lines:?} (exit {}, stderr {:?})",
            r.code, r.stderr
        ));
    }
    let v = parse_verdict(lines[0], path)?;
    let want_exit = if v == Verdict::Ok { 0 } else { 1 };
    if r.code != want_exit {
        return Err(format!(
            "verdict {v:?} but exit code {} (want {want_exit}); stderr {:?}",
            r.code, r.stderr
        ));
    }
    Ok(v)
}

// ---------------------------------------------------------------- examples

/// All codes an invalid example's name may start with, for one kind.
fn codes_for(kind: &str) -> Vec<&'static str> {
    if kind == "peer" {
        vec![INVALID_PROFILE]
    } else {
        Reject::ALL_CODES.to_vec()
    }
}

/// `bad-name-from.json` -> `bad-name`: the longest code the stem starts
/// with, followed by nothing, `-` or a space.
fn expected_code(kind: &str, file_name: &str) -> Option<&'static str> {
    let stem = file_name.strip_suffix(".json")?;
    codes_for(kind)
        .into_iter()
        .filter(|c| {
            stem.strip_prefix(*c).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('-') || rest.starts_with(' ')
            })
        })
        .max_by_key(|c| c.len())
}

fn example_files(kind: &str, verdict: &str) -> Vec<PathBuf> {
    let dir = spec_dir().join("examples").join(kind).join(verdict);
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no examples in {}", dir.display());
    v
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Copies examples into a private directory with mode 0600 and the same
/// file name (the stem is the default id): a checkout under `umask 002`
/// would make them group-writable, which is a file-level rejection.
fn private_copies(dir: &Path, files: &[PathBuf]) -> Vec<PathBuf> {
    fs::create_dir_all(dir).unwrap();
    files
        .iter()
        .map(|f| {
            let dst = dir.join(f.file_name().unwrap());
            fs::copy(f, &dst).unwrap();
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o600)).unwrap();
            dst
        })
        .collect()
}

#[test]
fn examples_get_the_verdict_their_name_promises() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = vec![];
    let mut judged = 0;
    for kind in KINDS {
        for verdict in ["valid", "invalid"] {
            let files = example_files(kind, verdict);
            let copies = private_copies(&tmp.path().join(kind).join(verdict), &files);
            for (orig, f) in files.iter().zip(&copies) {
                let name = file_name(orig);
                let want = if verdict == "valid" {
                    None
                } else {
                    match expected_code(kind, &name) {
                        Some(c) => Some(c),
                        None => {
                            failures.push(format!(
                                "{kind}/invalid/{name}: name does not start with a known code"
                            ));
                            continue;
                        }
                    }
                };
                judged += 1;
                match (judge_one(kind, f, &[]), want) {
                    (Err(e), _) => failures.push(format!("{kind}/{verdict}/{name}: {e}")),
                    (Ok(Verdict::Ok), None) => {}
                    (Ok(Verdict::Rejected { code, detail }), Some(w)) if code == w => {
                        if detail.trim().is_empty() {
                            failures.push(format!(
                                "{kind}/{verdict}/{name}: rejected {code} without a detail"
                            ));
                        }
                    }
                    (Ok(v), want) => failures.push(format!(
                        "{kind}/{verdict}/{name}: got {v:?}, want {}",
                        want.map_or("ok".to_string(), |w| format!("rejected {w}"))
                    )),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {judged} examples misjudged:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn invalid_example_names_use_known_codes_and_every_code_has_an_example() {
    let mut covered: BTreeSet<&str> = FILE_LEVEL_CODES.into_iter().chain(ROUTING_CODES).collect();
    for kind in KINDS {
        for f in example_files(kind, "invalid") {
            let name = file_name(&f);
            let code = expected_code(kind, &name).unwrap_or_else(|| {
                panic!(
                    "{kind}/invalid/{name}: name must start with one of {:?}",
                    codes_for(kind)
                )
            });
            covered.insert(code);
        }
    }
    for code in Reject::ALL_CODES {
        assert!(
            covered.contains(code),
            "rejection code {code} has no example (stored or built by the tests)"
        );
    }
    for code in FILE_LEVEL_CODES {
        assert!(
            Reject::ALL_CODES.contains(&code),
            "{code} is not in Reject::ALL_CODES"
        );
    }
}

#[test]
fn batch_output_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in KINDS {
        let valid = private_copies(
            &tmp.path().join(kind).join("valid"),
            &example_files(kind, "valid"),
        );
        let invalid = private_copies(
            &tmp.path().join(kind).join("invalid"),
            &example_files(kind, "invalid"),
        );

        let refs: Vec<&Path> = valid.iter().map(PathBuf::as_path).collect();
        let r = check(kind, &refs, &[]);
        assert_eq!(
            r.code, 0,
            "{kind}: all valid must exit 0\n{}{}",
            r.stdout, r.stderr
        );
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            valid.len(),
            "{kind}: one line per file\n{}",
            r.stdout
        );
        for (l, f) in lines.iter().zip(&valid) {
            assert_eq!(
                parse_verdict(l, f),
                Ok(Verdict::Ok),
                "{kind}: lines in argument order"
            );
        }

        let mut mixed: Vec<&Path> =
            vec![valid[0].as_path(), invalid[0].as_path(), valid[1].as_path()];
        let r = check(kind, &mixed, &[]);
        assert_eq!(
            r.code, 1,
            "{kind}: any rejected must exit 1\n{}{}",
            r.stdout, r.stderr
        );
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{kind}: one line per file\n{}", r.stdout);
        assert_eq!(parse_verdict(lines[0], mixed[0]), Ok(Verdict::Ok));
        assert!(
            matches!(
                parse_verdict(lines[1], mixed[1]),
                Ok(Verdict::Rejected { .. })
            ),
            "{}",
            lines[1]
        );
        assert_eq!(parse_verdict(lines[2], mixed[2]), Ok(Verdict::Ok));

        mixed.retain(|p| *p == invalid[0].as_path());
        assert_eq!(check(kind, &mixed, &[]).code, 1);
    }
}

#[test]
fn usage_errors_exit_2() {
    let f = spec_dir().join("examples/task/valid/minimal.json");
    let r = run(
        &[
            "spool".into(),
            "check".into(),
            "--kind".into(),
            "bogus".into(),
            f.into_os_string(),
        ],
        &[],
    );
    assert_eq!(r.code, 2, "unknown kind\n{}{}", r.stdout, r.stderr);
    let r = run(
        &[
            "spool".into(),
            "check".into(),
            "--kind".into(),
            "task".into(),
        ],
        &[],
    );
    assert_eq!(r.code, 2, "no files\n{}{}", r.stdout, r.stderr);
}

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

// ---------------------------------------------------------------- SPEC.md

/// The rows of SPEC.md's rejection-code table: (code, example .error line).
fn spec_table() -> Vec<(String, String)> {
    let spec = fs::read_to_string(spec_dir().join("SPEC.md")).unwrap();
    let mut rows = vec![];
    let mut in_table = false;
    for line in spec.lines() {
        if line.starts_with("| code |") {
            in_table = true;
            continue;
        }
        if in_table {
            if !line.starts_with('|') {
                break;
            }
            if line.starts_with("|---") {
                continue;
            }
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            let code = cells[0].trim_matches('`').to_string();
            let example = cells.last().unwrap().trim_matches('`').to_string();
            rows.push((code, example));
        }
    }
    rows
}

#[test]
fn every_rejection_code_is_in_the_spec_table() {
    let rows = spec_table();
    assert!(!rows.is_empty(), "SPEC.md has no `| code |` table");
    let documented: BTreeSet<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
    let all: BTreeSet<&str> = Reject::ALL_CODES.iter().copied().collect();
    let missing: Vec<_> = all.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&all).collect();
    assert!(
        missing.is_empty(),
        "codes missing from SPEC.md's table: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "SPEC.md's table documents codes the code does not have: {stale:?}"
    );
    for (code, example) in &rows {
        assert!(
            example.starts_with(&format!("{code}: ")),
            "example for {code} must read `{code}: <detail>`: {example:?}"
        );
        assert!(!example.contains('\n'));
    }
}

#[test]
fn spec_daemon_section_names_what_the_code_uses() {
    let spec = fs::read_to_string(spec_dir().join("SPEC.md")).unwrap();
    let start = spec.find("## 10. Daemon behaviour").expect("SPEC.md lost its daemon section");
    let daemon = &spec[start..];
    for h in ["Delivery envelope", "Outbox routing", "Inbox", "Turn-end marker", "fsync", "Trust model"] {
        assert!(daemon.contains(h), "daemon section lacks {h:?}");
    }
    let marker = format!("outbox/new/{}", peerspool::session::hook::TURN_END);
    assert!(daemon.contains(&marker), "SPEC must name the turn-end marker {marker}");
    // The envelope header the spec shows is the one the daemon pastes.
    let t = peerspool::queue::format::parse_task(br#"{"text":"hi","from":"bob","topic":"t"}"#, "x1").unwrap();
    let head = peerspool::session::deliver::envelope(&t, None);
    assert!(head.starts_with("[peerspool task x1 from bob topic \"t\"]\n"), "{head:?}");
    assert!(daemon.contains("[peerspool task <id> from <from>"), "SPEC must show the envelope header");
}

// ---------------------------------------------------------------- schemas

fn schema(kind: &str) -> Value {
    let p = spec_dir()
        .join("schemas")
        .join(format!("{kind}.schema.json"));
    let s = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

#[test]
fn every_schema_parses_and_declares_draft_2020_12() {
    let dir = spec_dir().join("schemas");
    let mut n = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let s = fs::read_to_string(&p).unwrap();
        let v: Value =
            serde_json::from_str(&s).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
        assert_eq!(
            v["$schema"],
            "https://json-schema.org/draft/2020-12/schema",
            "{}",
            p.display()
        );
        n += 1;
    }
    assert!(n >= 4, "expected the four schemas, found {n}");
    for k in ["task", "outbox", "inbox", "peer"] {
        schema(k);
    }
}

/// A validator for the subset of draft 2020-12 the schemas use. An unknown
/// keyword fails loudly, so the subset cannot silently fall behind.
fn validate(root: &Value, s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let Some(obj) = s.as_object() else {
        if s == &Value::Bool(false) {
            errs.push(format!("{at}: not allowed"));
        }
        return;
    };
    for (k, kw) in obj {
        match k.as_str() {
            "$schema" | "$id" | "$comment" | "$defs" | "title" | "description" | "default"
            | "format" | "examples" => {}
            "then" => {}
            "$ref" => {
                let r = kw.as_str().unwrap();
                let ptr = r
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("only local $ref supported: {r}"));
                let target = root
                    .pointer(ptr)
                    .unwrap_or_else(|| panic!("dangling $ref {r}"));
                validate(root, target, v, at, errs);
            }
            "type" => {
                let types: Vec<&str> = match kw {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
                    _ => panic!("bad type keyword"),
                };
                let ok = types.iter().any(|t| match *t {
                    "null" => v.is_null(),
                    "boolean" => v.is_boolean(),
                    "object" => v.is_object(),
                    "array" => v.is_array(),
                    "string" => v.is_string(),
                    "number" => v.is_number(),
                    "integer" => {
                        v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
                    }
                    t => panic!("unknown type {t}"),
                });
                if !ok {
                    errs.push(format!("{at}: not of type {types:?}"));
                }
            }
            "enum" => {
                if !kw.as_array().unwrap().contains(v) {
                    errs.push(format!("{at}: not one of {kw}"));
                }
            }
            "const" => {
                if kw != v {
                    errs.push(format!("{at}: not {kw}"));
                }
            }
            "anyOf" => {
                let any = kw.as_array().unwrap().iter().any(|sub| {
                    let mut e = vec![];
                    validate(root, sub, v, at, &mut e);
                    e.is_empty()
                });
                if !any {
                    errs.push(format!("{at}: matches no anyOf branch"));
                }
            }
            "if" => {
                let mut e = vec![];
                validate(root, kw, v, at, &mut e);
                if e.is_empty() {
                    if let Some(then) = obj.get("then") {
                        validate(root, then, v, at, errs);
                    }
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for r in kw.as_array().unwrap() {
                        if !o.contains_key(r.as_str().unwrap()) {
                            errs.push(format!("{at}: missing {r}"));
                        }
                    }
                }
            }
            "properties" | "additionalProperties" | "propertyNames" => {
                let Some(o) = v.as_object() else { continue };
                let props = obj.get("properties").and_then(Value::as_object);
                for (name, val) in o {
                    let here = format!("{at}/{name}");
                    match k.as_str() {
                        "properties" => {
                            if let Some(sub) = props.and_then(|p| p.get(name)) {
                                validate(root, sub, val, &here, errs);
                            }
                        }
                        "additionalProperties" => {
                            if !props.is_some_and(|p| p.contains_key(name)) {
                                validate(root, kw, val, &here, errs);
                            }
                        }
                        _ => validate(
                            root,
                            kw,
                            &Value::String(name.clone()),
                            &format!("{here} (name)"),
                            errs,
                        ),
                    }
                }
            }
            "pattern" => {
                if let Some(s) = v.as_str() {
                    if !pattern_matches(kw.as_str().unwrap(), s) {
                        errs.push(format!("{at}: does not match {kw}"));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let Some(s) = v.as_str() {
                    let n = s.chars().count() as u64;
                    let lim = kw.as_u64().unwrap();
                    if (k == "minLength" && n < lim) || (k == "maxLength" && n > lim) {
                        errs.push(format!("{at}: length {n} violates {k} {lim}"));
                    }
                }
            }
            "minItems" => {
                if v.as_array()
                    .is_some_and(|a| (a.len() as u64) < kw.as_u64().unwrap())
                {
                    errs.push(format!("{at}: too few items"));
                }
            }
            "prefixItems" | "items" => {
                if let Some(a) = v.as_array() {
                    let pre = obj
                        .get("prefixItems")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    for (i, item) in a.iter().enumerate() {
                        let here = format!("{at}/{i}");
                        if k == "prefixItems" && i < pre {
                            validate(root, &kw[i], item, &here, errs);
                        } else if k == "items" && i >= pre {
                            validate(root, kw, item, &here, errs);
                        }
                    }
                }
            }
            "minimum" => {
                if let (Some(x), Some(m)) = (v.as_f64(), kw.as_f64()) {
                    if x < m {
                        errs.push(format!("{at}: {x} < {m}"));
                    }
                }
            }
            "exclusiveMinimum" => {
                if let (Some(x), Some(m)) = (v.as_f64(), kw.as_f64()) {
                    if x <= m {
                        errs.push(format!("{at}: {x} <= {m}"));
                    }
                }
            }
            other => panic!("schema keyword {other:?} is not supported by this test's validator"),
        }
    }
}

/// JSON Schema patterns are unanchored searches, like `Regex::is_match`.
fn pattern_matches(pattern: &str, s: &str) -> bool {
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, regex::Regex>>,
    > = std::sync::OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).expect("schema pattern compiles"))
        .is_match(s)
}

fn schema_errors(schema: &Value, v: &Value) -> Vec<String> {
    let mut e = vec![];
    validate(schema, schema, v, "", &mut e);
    e
}

#[test]
fn examples_agree_with_the_schemas() {
    let mut failures = vec![];
    for kind in KINDS {
        let s = schema(kind);
        for f in example_files(kind, "valid") {
            let v: Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
            let e = schema_errors(&s, &v);
            if !e.is_empty() {
                failures.push(format!(
                    "{kind}/valid/{}: schema rejects it: {e:?}",
                    file_name(&f)
                ));
            }
        }
        for f in example_files(kind, "invalid") {
            let name = file_name(&f);
            let exempt =
                SCHEMA_CANNOT_EXPRESS.contains(&name.as_str()) || name.starts_with("self-send");
            // Not JSON (or too deep for serde_json): nothing to validate.
            let Ok(v) = serde_json::from_slice::<Value>(&fs::read(&f).unwrap()) else {
                continue;
            };
            if !exempt && schema_errors(&s, &v).is_empty() {
                failures.push(format!("{kind}/invalid/{name}: the schema accepts it"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn inbox_example_roundtrips_through_the_code_and_the_schema() {
    let s = schema("inbox");
    for f in example_files("inbox", "valid") {
        let bytes = fs::read(&f).unwrap();
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            schema_errors(&s, &raw),
            Vec::<String>::new(),
            "{}",
            f.display()
        );
        let msg = peerspool::queue::format::parse_inbox(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let back = serde_json::to_value(&msg).unwrap();
        assert_eq!(
            schema_errors(&s, &back),
            Vec::<String>::new(),
            "what the daemon writes must match the schema"
        );
    }
}

/// The schemas' patterns and limits are exactly the code's rules.
#[test]
fn schema_rules_match_the_code() {
    let task = schema("task");
    let defs = &task["$defs"];
    assert_eq!(defs["name"]["pattern"], "^[a-z0-9][a-z0-9_-]{0,62}$");
    assert_eq!(
        defs["address"]["pattern"],
        "^[a-z0-9][a-z0-9_-]{0,62}(@[a-z0-9][a-z0-9_-]{0,62})?$"
    );
    assert_eq!(
        defs["topic"]["maxLength"],
        peerspool::queue::format::MAX_TOPIC_CHARS as u64
    );
    assert_eq!(
        defs["id"]["maxLength"],
        peerspool::queue::format::MAX_ID_CHARS as u64
    );
    for k in ["outbox", "inbox"] {
        assert_eq!(
            &schema(k)["$defs"],
            defs,
            "{k} must share the task schema's $defs"
        );
    }
    assert_eq!(task["additionalProperties"], true);
    assert_eq!(schema("outbox")["additionalProperties"], true);
    assert_eq!(schema("peer")["additionalProperties"], false);

    let name = |s: &str| schema_errors(&defs["name"], &Value::String(s.into())).is_empty();
    let address = |s: &str| schema_errors(&defs["address"], &Value::String(s.into())).is_empty();
    let id = |s: &str| schema_errors(&defs["id"], &Value::String(s.into())).is_empty();
    let text = |s: &str| schema_errors(&defs["text"], &Value::String(s.into())).is_empty();

    let mut samples: Vec<String> = vec![
        "".into(),
        "a".into(),
        "0".into(),
        "alice".into(),
        "a-b_c".into(),
        "-a".into(),
        "_a".into(),
        "A".into(),
        "a\n".into(),
        "\na".into(),
        "a b".into(),
        "../x".into(),
        "é".into(),
        "x".repeat(63),
        "x".repeat(64),
        "i".repeat(200),
        "i".repeat(201),
        "é".repeat(200),
        "é".repeat(201),
        " x ".into(),
        "a/b".into(),
        "a@h1".into(),
        "a@".into(),
        "@h1".into(),
        "a@b@c".into(),
        "a@H1".into(),
        "a@-h".into(),
        format!("{}@{}", "x".repeat(63), "y".repeat(63)),
        format!("a@{}", "y".repeat(64)),
    ];
    // Every character up to U+3100 covers all of Unicode White_Space and Cc.
    samples.extend(
        (0u32..0x3100)
            .chain([0xfeff, 0xffff, 0x1_0000, 0x10_ffff])
            .filter_map(char::from_u32)
            .map(String::from),
    );
    for s in &samples {
        assert_eq!(
            name(s),
            peerspool::queue::names::is_valid(s),
            "name pattern vs names::is_valid on {s:?}"
        );
        assert_eq!(
            address(s),
            peerspool::queue::names::is_address(s),
            "address pattern vs names::is_address on {s:?}"
        );
        assert_eq!(
            id(s),
            peerspool::queue::format::valid_id(s),
            "id rule vs format::valid_id on {s:?}"
        );
        assert_eq!(
            text(s),
            !s.trim().is_empty(),
            "text rule vs empty-text on {s:?}"
        );
    }
}
