//! Turn boundaries and prompts in the runtimes' own records, and the
//! screen text a person sees as solid (not the dim placeholders a TUI
//! draws in an empty input).
//!
//! Claude Code's transcript: a user entry with text starts a turn, a
//! `system` entry with subtype `turn_duration` (or `stop_hook_summary`, or
//! an "[Request interrupted" user line) ends it. Codex's rollout:
//! `event_msg` `task_started` starts one, `task_complete` / `turn_aborted`
//! ends it; a prompt is a `response_item` user message.

use super::transcript::{line_time, Mark};
use crate::session::turn::Record;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// How much of a record's tail is read for its newest boundary.
const TAIL: u64 = 256 * 1024;
/// How much of a file after a mark is searched for a prompt.
const SCAN: u64 = 8 * 1024 * 1024;

/// The complete lines in the last `max` bytes of a file.
fn tail_lines(path: &Path, max: u64) -> Option<Vec<Vec<u8>>> {
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = len.saturating_sub(max);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    (&mut f).take(max).read_to_end(&mut buf).ok()?;
    let mut lines: Vec<Vec<u8>> = buf.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    Some(lines)
}

#[derive(Debug, PartialEq)]
enum Boundary {
    Start,
    End(Option<u64>),
}

fn ms_of(line: &[u8]) -> Option<u64> {
    line_time(line).map(crate::daemon::state::ms)
}

/// The newest boundary, scanning back from the end.
fn newest(path: &Path, judge: impl Fn(&[u8]) -> Option<Boundary>) -> Option<Record> {
    let lines = tail_lines(path, TAIL)?;
    let mut record: Option<Record> = None;
    for l in lines.iter().rev() {
        match judge(l) {
            Some(Boundary::Start) if record.is_none() => record = Some(Record { open: true, last_end_ms: None }),
            Some(Boundary::End(at)) => {
                let r = record.get_or_insert(Record { open: false, last_end_ms: None });
                r.last_end_ms = at;
                return record;
            }
            _ => {}
        }
    }
    record
}

fn has(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A Claude Code transcript line as a turn boundary.
fn claude_boundary(l: &[u8]) -> Option<Boundary> {
    if !(has(l, b"\"system\"") || has(l, b"\"user\"")) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(l).ok()?;
    match v["type"].as_str()? {
        "system" if matches!(v["subtype"].as_str(), Some("turn_duration" | "stop_hook_summary")) => Some(Boundary::End(ms_of(l))),
        "user" if v["isMeta"] != true => {
            let text = claude_prompt(&v)?;
            if text.starts_with("[Request interrupted") {
                Some(Boundary::End(ms_of(l)))
            } else {
                Some(Boundary::Start)
            }
        }
        _ => None,
    }
}

/// The prompt text of a user entry (not a tool result).
fn claude_prompt(v: &serde_json::Value) -> Option<String> {
    let t = match &v["message"]["content"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => parts.iter().filter(|p| p["type"] == "text").filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => return None,
    };
    (!t.trim().is_empty()).then_some(t)
}

pub fn claude_record(transcript: &Path) -> Option<Record> {
    newest(transcript, claude_boundary)
}

fn codex_boundary(l: &[u8]) -> Option<Boundary> {
    if !has(l, b"\"event_msg\"") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(l).ok()?;
    match v["payload"]["type"].as_str()? {
        "task_started" | "turn_started" => Some(Boundary::Start),
        "task_complete" | "turn_complete" | "turn_aborted" => Some(Boundary::End(ms_of(l))),
        _ => None,
    }
}

pub fn codex_record(rollout: &Path) -> Option<Record> {
    newest(rollout, codex_boundary)
}

/// The text of a Codex rollout line, if it is a user prompt.
fn codex_prompt(l: &[u8]) -> Option<String> {
    if !(has(l, b"\"response_item\"") && has(l, b"\"user\"")) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(l).ok()?;
    let p = &v["payload"];
    if p["type"] != "message" || p["role"] != "user" {
        return None;
    }
    Some(p["content"].as_array()?.iter().filter_map(|c| c["text"].as_str()).collect::<Vec<_>>().join("\n"))
}

/// Whether a Codex prompt containing `text` was recorded in `files` after
/// the mark (a file absent from the mark is read from its start).
pub fn codex_echo_since(mark: &Mark, files: &[PathBuf], text: &str) -> bool {
    let want = super::norm(text);
    !want.is_empty()
        && files.iter().any(|p| {
            let from = mark.sizes.get(p).copied().unwrap_or(0);
            let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            len > from
                && tail_lines(p, (len - from).min(SCAN))
                    .is_some_and(|lines| lines.iter().filter_map(|l| codex_prompt(l)).any(|t| super::norm(&t).contains(&want)))
        })
}

/// Screen text with faint (SGR 2) runs and every escape removed: a TUI's
/// placeholder in an empty input is drawn faint, a person's text is not.
pub fn solid(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut faint = false;
    let mut it = escaped.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\x1b' {
            if !faint || c == '\n' {
                out.push(c);
            }
            continue;
        }
        if it.peek() != Some(&'[') {
            it.next();
            continue;
        }
        it.next();
        let mut params = String::new();
        let mut end = ' ';
        for d in it.by_ref() {
            if ('\x40'..='\x7e').contains(&d) {
                end = d;
                break;
            }
            params.push(d);
        }
        if end == 'm' {
            let mut codes = params.split(';').peekable();
            if params.is_empty() {
                faint = false;
            }
            while let Some(code) = codes.next() {
                match code {
                    "2" => faint = true,
                    "0" | "22" | "" => faint = false,
                    // Colour arguments are not attributes.
                    "38" | "48" | "58" => {
                        let skip = if codes.peek() == Some(&"5") { 2 } else { 4 };
                        for _ in 0..skip {
                            codes.next();
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// Escapes removed, faint text kept.
pub fn plain(escaped: &str) -> String {
    solid(&escaped.replace("\x1b[2m", ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(d: &tempfile::TempDir, lines: &[serde_json::Value]) -> PathBuf {
        let p = d.path().join("t.jsonl");
        std::fs::write(&p, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
        p
    }

    #[test]
    fn claude_turns_from_a_real_transcript_shape() {
        use serde_json::json;
        let d = tempfile::tempdir().unwrap();
        let user = |t: &str, ts: &str| json!({"type": "user", "timestamp": ts, "message": {"role": "user", "content": [{"type": "text", "text": t}]}});
        let tool_result = json!({"type": "user", "timestamp": "2026-12-01T10:00:02Z", "message": {"content": [{"type": "tool_result", "content": "x"}]}});
        let end = json!({"type": "system", "subtype": "turn_duration", "timestamp": "2026-12-01T10:00:03Z"});
        let open = file(&d, &[user("[peerspool task a from b]\nhi", "2026-12-01T10:00:01Z"), tool_result.clone()]);
        assert_eq!(claude_record(&open), Some(Record { open: true, last_end_ms: None }), "a tool result does not end or start a turn");
        let closed = file(&d, &[user("hi", "2026-12-01T10:00:01Z"), tool_result, end.clone()]);
        let r = claude_record(&closed).unwrap();
        assert!(!r.open && r.last_end_ms.is_some());
        let reopened = file(&d, &[user("hi", "2026-12-01T10:00:01Z"), end, user("next", "2026-12-01T10:00:05Z")]);
        let r = claude_record(&reopened).unwrap();
        assert!(r.open && r.last_end_ms.is_some(), "open, with the previous end known: {r:?}");
        let interrupted = file(&d, &[user("hi", "2026-12-01T10:00:01Z"), user("[Request interrupted by user]", "2026-12-01T10:00:09Z")]);
        assert!(!claude_record(&interrupted).unwrap().open);
    }

    #[test]
    fn codex_turns_and_prompts_from_a_rollout_shape() {
        use serde_json::json;
        let d = tempfile::tempdir().unwrap();
        let ev = |t: &str| json!({"timestamp": "2026-12-01T10:26:35.192Z", "type": "event_msg", "payload": {"type": t}});
        let prompt = json!({"timestamp": "2026-12-01T10:26:35.327Z", "type": "response_item", "payload": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "[peerspool task b from t]\nsecond"}]}});
        let p = file(&d, &[json!({"type": "session_meta", "payload": {}}), ev("task_started"), ev("task_complete"), ev("task_started"), prompt]);
        let r = codex_record(&p).unwrap();
        assert!(r.open && r.last_end_ms.is_some());
        assert!(codex_echo_since(&Mark::default(), std::slice::from_ref(&p), "[peerspool task b from t]\nsecond"));
        assert!(!codex_echo_since(&Mark::take(std::slice::from_ref(&p)), std::slice::from_ref(&p), "second"), "nothing after the mark");
        assert!(!codex_echo_since(&Mark::default(), &[p], "third"));
    }

    #[test]
    fn faint_placeholders_are_not_solid_text() {
        // Codex 0.171's empty input and a typed draft, as capture-pane -e shows them.
        let empty = "\x1b[1m›\x1b[0m\x1b[39m\x1b[49m \x1b[2mAsk Codex to do anything\n\x1b[0m\x1b[39m\x1b[49m ";
        assert_eq!(solid(empty).trim(), "›");
        assert_eq!(plain(empty).trim(), "› Ask Codex to do anything");
        let draft = "\x1b[1m›\x1b[0m\x1b[39m\x1b[49m half typed draft";
        assert_eq!(solid(draft), "› half typed draft");
        // A colour argument of 2 is not faint.
        assert_eq!(solid("\x1b[38;2;2;2;2mred\x1b[0m"), "red");
    }
}
