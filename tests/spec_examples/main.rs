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

mod file_level;
mod schemas;
mod spec_md;

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
