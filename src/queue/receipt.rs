//! A message's whole story (`peerspool show`): where its file is now and
//! every stage the logs recorded, in order, with times. Built from the
//! same files and logs a person would grep, so it also works for a task
//! pruned from `done/` as long as a log (rotated ones included) has it.

use crate::root::Root;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// One logfmt line as key → value (quoted values unescaped).
pub fn parse_line(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = line.trim_end().chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => val.push('\n'),
                        Some('r') => val.push('\r'),
                        Some('t') => val.push('\t'),
                        Some(o) => val.push(o),
                        None => break,
                    },
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.insert(key, val);
    }
    out
}

/// Milliseconds since the epoch of an `iso8601` stamp (`2026-12-01T10:51:02.123Z`).
pub fn parse_iso_ms(ts: &str) -> Option<u64> {
    let b = ts.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let milli = if b.get(19) == Some(&b'.') { num(20..23).unwrap_or(0) } else { 0 };
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 86400 + hh * 3600 + mm * 60 + ss) * 1000) + milli).ok()
}

/// The stages a message goes through, as the logs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Written,
    Routed,
    Held,
    Waited,
    Claimed,
    Woke,
    Delivered,
    TurnEnded,
    Unconfirmed,
    WakeFailed,
    Done,
    Replied,
    Failed,
    LoopLimit,
    Other,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Written => "written",
            Stage::Routed => "routed",
            Stage::Held => "held",
            Stage::Waited => "waited",
            Stage::Claimed => "claimed",
            Stage::Woke => "woke",
            Stage::Delivered => "delivered",
            Stage::TurnEnded => "turn-ended",
            Stage::Unconfirmed => "unconfirmed",
            Stage::WakeFailed => "wake-failed",
            Stage::Done => "done",
            Stage::Replied => "replied",
            Stage::Failed => "failed",
            Stage::LoopLimit => "loop-limit",
            Stage::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub ts: String,
    #[serde(skip)]
    pub at_ms: u64,
    pub stage: Stage,
    pub peer: String,
    pub detail: String,
    /// For `replied`: the reply's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// For `waited`: how long, when the logs tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_ms: Option<u64>,
}

/// Where a message's file is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    pub path: PathBuf,
    /// `queued`, `in-flight`, `done`, `failed`, `outbox`, `sent`, `unread`, `read`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Story {
    pub id: String,
    pub places: Vec<Place>,
    pub events: Vec<Event>,
    pub replies: Vec<Story>,
}

impl Story {
    pub fn is_empty(&self) -> bool {
        self.places.is_empty() && self.events.is_empty()
    }
}

/// A log and its rotations, oldest first.
pub fn log_lines(path: &Path, keep: usize) -> Vec<String> {
    let mut out = vec![];
    for i in (1..=keep.max(1)).rev() {
        if let Ok(t) = std::fs::read_to_string(format!("{}.{i}", path.display())) {
            out.extend(t.lines().map(str::to_string));
        }
    }
    if let Ok(t) = std::fs::read_to_string(path) {
        out.extend(t.lines().map(str::to_string));
    }
    out
}

fn get<'a>(f: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    f.get(k).map(String::as_str).unwrap_or("")
}

/// The events one log line says about message `id`, if any. Pure.
pub fn events_of(id: &str, f: &BTreeMap<String, String>) -> Vec<Event> {
    let file = format!("{id}.json");
    let mine = get(f, "task") == id || get(f, "id") == id || get(f, "file") == file;
    let peer = get(f, "peer").to_string();
    let ev = |stage: Stage, detail: String| Event {
        ts: get(f, "ts").to_string(),
        at_ms: parse_iso_ms(get(f, "ts")).unwrap_or(0),
        stage,
        peer: peer.clone(),
        detail,
        reply: None,
        for_ms: None,
    };
    let outcome = get(f, "outcome");
    let mut out = vec![];
    match get(f, "event") {
        "route" if get(f, "in_reply_to") == id && get(f, "id") != id => {
            let how = if outcome == "routed" { format!("to {} ({}), hop {}", get(f, "to"), get(f, "kind"), get(f, "hops")) } else { format!("{outcome} at hop {}", get(f, "hops")) };
            let mut e = ev(Stage::Replied, format!("{peer} answered with {}: {how}", get(f, "id")));
            e.reply = Some(get(f, "id").to_string());
            out.push(e);
        }
        "route" if mine => out.push(match outcome {
            "routed" => ev(Stage::Routed, format!("from {peer}'s outbox to {} ({}), hop {}, conversation of {}", get(f, "to"), get(f, "kind"), get(f, "hops"), get(f, "origin"))),
            "held" => ev(Stage::Held, format!("in {peer}'s outbox: {}", get(f, "reason"))),
            "loop-limit" => ev(Stage::LoopLimit, format!("hop {} is past the limit: not delivered; {} told ({})", get(f, "hops"), get(f, "origin"), get(f, "notice"))),
            _ => ev(Stage::Failed, format!("route {outcome}: {}", get(f, "error"))),
        }),
        "claim" if mine => out.push(ev(Stage::Claimed, format!("claimed by {peer}"))),
        "wait" if mine => out.push(ev(Stage::Waited, format!("{peer} is {}: {}", get(f, "state"), get(f, "reason")))),
        "deliver" if mine => out.push(match outcome {
            "delivered" if get(f, "confirm") == "already-recorded" => ev(Stage::Delivered, format!("already in {peer}'s record (not pasted again)")),
            "delivered" => {
                let mut d = format!("pasted into {peer}'s session (attempt {}, woke {}), confirmed after {} ms", get(f, "attempt"), get(f, "woke"), get(f, "confirm_ms"));
                if let Some(w) = f.get("waited_ms") {
                    d.push_str(&format!(", after waiting {w} ms for the turn"));
                }
                ev(Stage::Delivered, d)
            }
            "unconfirmed" => ev(Stage::Unconfirmed, format!("attempt {} not confirmed: {}", get(f, "attempt"), get(f, "error"))),
            "wake-failed" => ev(Stage::WakeFailed, format!("{peer} could not be woken: {}", get(f, "error"))),
            _ => ev(Stage::Failed, format!("{outcome}: {}", get(f, "error"))),
        }),
        "done" if mine => out.push(ev(Stage::Done, format!("done ({outcome})"))),
        // The daemon logs the end of a turn it saw working (peer::turns);
        // the turn started with the confirmed paste.
        "turn-end" if mine => out.push(ev(Stage::TurnEnded, format!("{peer}'s turn ended after {} ms", get(f, "turn_ms")))),
        "wake" if mine => out.push(ev(Stage::Woke, format!("{peer} woke for it ({}, {}) in {} ms", get(f, "mode"), get(f, "cause"), get(f, "boot_ms")))),
        e if mine && get(f, "task") == id && !e.is_empty() => {
            let why = [get(f, "reason"), get(f, "error")].into_iter().find(|s| !s.is_empty()).unwrap_or("");
            out.push(ev(Stage::Other, format!("{e} {why}").trim().to_string()));
        }
        _ => {}
    }
    out
}

/// Orders the events and says how long each wait lasted: the delivery's
/// `waited_ms`, else until the next stage. The outbox stages come first:
/// a batch's route lines are written once the whole batch is routed, so
/// the recipient's claim can be logged a few ms before its route line.
pub fn finish(mut events: Vec<Event>) -> Vec<Event> {
    let outbox = |s: Stage| matches!(s, Stage::Written | Stage::Held | Stage::Routed | Stage::LoopLimit);
    events.sort_by_key(|e| (!outbox(e.stage), e.at_ms));
    for i in 0..events.len() {
        if events[i].stage != Stage::Waited {
            continue;
        }
        let next = events[i + 1..].iter().find(|e| e.stage != Stage::Waited);
        events[i].for_ms = next.map(|n| n.at_ms.saturating_sub(events[i].at_ms));
    }
    events
}

/// `<20-digit ns>-...`: the time peerspool named the file.
pub fn name_time_ms(stem: &str) -> Option<u64> {
    let digits = stem.get(..20)?;
    digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse::<u64>().ok().map(|ns| ns / 1_000_000))?
}

fn places(root: &Root, id: &str) -> Vec<Place> {
    let mut out = vec![];
    let name = format!("{id}.json");
    if !crate::queue::format::safe_file_name(&name) {
        return out;
    }
    let mut look = |dir: PathBuf, state: &'static str| {
        let Ok(rd) = std::fs::read_dir(&dir) else { return };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n == name || (n.starts_with(&format!("{id}~")) && n.ends_with(".json") && !n.ends_with("~loop-limit.json")) {
                let error = std::fs::read_to_string(dir.join(format!("{n}.error"))).ok().map(|s| s.trim().to_string());
                out.push(Place { path: dir.join(&n), state, error });
            }
        }
    };
    for peer in root.peer_names().unwrap_or_default() {
        let Ok(p) = root.peer(&peer) else { continue };
        for (sub, st) in [("new", "queued"), ("cur", "in-flight"), ("done", "done"), ("failed", "failed")] {
            look(p.spool_sub(sub), st);
        }
        for (sub, st) in [("new", "outbox"), ("sent", "sent"), ("failed", "failed")] {
            look(p.outbox_sub(sub), st);
        }
    }
    if let Ok(rd) = std::fs::read_dir(root.inbox_dir()) {
        for e in rd.flatten() {
            look(e.path().join("new"), "unread");
            look(e.path().join("cur"), "read");
        }
    }
    out
}

/// Message `id`'s story from the files and the given log lines, with the
/// stories of the replies it produced (at most `budget` messages in all).
pub fn story(root: &Root, id: &str, lines: &[BTreeMap<String, String>], budget: &mut usize, seen: &mut HashSet<String>) -> Story {
    seen.insert(id.to_string());
    *budget = budget.saturating_sub(1);
    let places = places(root, id);
    let mut events: Vec<Event> = lines.iter().flat_map(|f| events_of(id, f)).collect();
    let written = name_time_ms(id).or_else(|| places.first().and_then(|p| std::fs::metadata(&p.path).ok()?.modified().ok()).map(crate::daemon::state::ms));
    if let Some(at) = written {
        let ts = crate::logfmt::iso8601(crate::daemon::state::from_ms(at));
        // A routed message was written in its sender's outbox.
        let first = places.iter().find(|p| p.path.components().any(|c| c.as_os_str() == "outbox")).or(places.first());
        let detail = match first {
            Some(p) => format!("file {}", p.path.strip_prefix(&root.path).unwrap_or(&p.path).display()),
            None => "file since pruned".to_string(),
        };
        events.push(Event { ts, at_ms: at, stage: Stage::Written, peer: String::new(), detail, reply: None, for_ms: None });
    }
    let events = finish(events);
    let mut replies = vec![];
    for r in events.iter().filter_map(|e| e.reply.clone()) {
        if *budget == 0 || seen.contains(&r) {
            continue;
        }
        replies.push(story(root, &r, lines, budget, seen));
    }
    Story { id: id.to_string(), places, events, replies }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_logfmt_with_quotes() {
        let f = parse_line(r#"ts=2026-12-01T10:51:02.123Z peer=a event=wait task=t1 reason="the agent is mid-turn" x="a \"q\" b""#);
        assert_eq!(get(&f, "reason"), "the agent is mid-turn");
        assert_eq!(get(&f, "x"), "a \"q\" b");
        assert_eq!(get(&f, "task"), "t1");
        assert_eq!(parse_iso_ms("1970-01-01T00:00:01.500Z"), Some(1500));
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_123);
        assert_eq!(parse_iso_ms(&crate::logfmt::iso8601(t)), Some(1_795_000_000_123));
        assert_eq!(name_time_ms("01764213600123456789-41337-00031f9a6c02"), Some(1_764_213_600_123));
        assert_eq!(name_time_ms("hello"), None);
    }

    #[test]
    fn a_wait_lasts_until_the_next_stage() {
        let l = |s: &str| parse_line(s);
        let lines = [
            l("ts=1970-01-01T00:00:01.000Z peer=a event=wait task=t state=working reason=busy"),
            l("ts=1970-01-01T00:00:03.500Z peer=a event=claim task=t"),
            l("ts=1970-01-01T00:00:03.600Z peer=a event=deliver task=t outcome=delivered attempt=1 woke=no confirm_ms=40 waited_ms=2500"),
            l("ts=1970-01-01T00:00:03.700Z peer=a event=done task=t outcome=delivered"),
            l("ts=1970-01-01T00:00:04.000Z peer=a event=route id=r to=b kind=peer in_reply_to=t hops=1 origin=x outcome=routed"),
            l("ts=1970-01-01T00:00:04.000Z peer=a event=deliver task=other outcome=delivered"),
        ];
        let ev = finish(lines.iter().flat_map(|f| events_of("t", f)).collect());
        let stages: Vec<Stage> = ev.iter().map(|e| e.stage).collect();
        assert_eq!(stages, [Stage::Waited, Stage::Claimed, Stage::Delivered, Stage::Done, Stage::Replied]);
        assert_eq!(ev[0].for_ms, Some(2500));
        assert_eq!(ev[4].reply.as_deref(), Some("r"));
        assert!(ev[2].detail.contains("after waiting 2500 ms"), "{}", ev[2].detail);
    }
}
