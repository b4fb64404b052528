//! The built-in test agent (`peerspool agent`): a tiny interactive program
//! that behaves like an agent TUI — raw terminal, bracketed paste, a
//! composer submitted by Enter — so the demo and the tests exercise the
//! real delivery path without Claude or Codex. It appends every message
//! it receives to a log and can answer through its outbox.

use crate::queue::format::OutMsg;
use crate::root::Root;
use std::io::{Read, Write};
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub log: PathBuf,
    pub reply: bool,
    pub turn_end: bool,
    pub exit_after: Option<u64>,
    pub resumed: bool,
    /// Answer by running `peerspool reply` (the documented in-session path)
    /// instead of writing the outbox directly.
    pub reply_cli: bool,
    /// Milliseconds to wait before answering (simulated work).
    pub work_ms: u64,
    /// Add CLOCK_REALTIME nanosecond stamps to each record (and a start
    /// record), so a benchmark can compare them with its writer's clock.
    pub stamp: bool,
    /// Answer every message to this peer instead of its reply address
    /// (still as a reply to it): an agent that hands each answer on, which
    /// is how two agents end up in a loop the loop guard must stop.
    pub forward_to: Option<String>,
}

/// When the parts of one message arrived (ns since the epoch).
#[derive(Debug, Clone, Copy, Default)]
struct Stamps {
    first_ns: u64,
    paste_end_ns: u64,
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// A parsed envelope header: `[peerspool task ID from FROM reply-to R ...]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub id: String,
    pub from: String,
    pub reply_to: String,
}

pub fn parse_header(msg: &str) -> Option<(Header, String)> {
    let start = msg.find("[peerspool task ")?;
    let rest = &msg[start + 1..];
    let end = rest.find("]\n").or_else(|| rest.find(']'))?;
    let words: Vec<&str> = rest[..end].split_whitespace().collect();
    let mut h = Header { id: words.get(2)?.to_string(), ..Default::default() };
    for pair in words.windows(2) {
        match pair[0] {
            "from" => h.from = pair[1].into(),
            "reply-to" => h.reply_to = pair[1].into(),
            _ => {}
        }
    }
    if h.reply_to.is_empty() {
        h.reply_to = h.from.clone();
    }
    let body = rest[end + 1..].strip_prefix('\n').unwrap_or(&rest[end + 1..]).to_string();
    Some((h, body))
}

/// The answer the agent gives: `bounce N` goes back as `bounce N-1` until
/// 0 (a ping-pong driver); anything else is echoed.
pub fn answer(body: &str) -> Option<String> {
    let t = body.trim();
    if let Some(n) = t.strip_prefix("bounce ").and_then(|n| n.trim().parse::<u64>().ok()) {
        return (n > 0).then(|| format!("bounce {}", n - 1));
    }
    Some(format!("echo: {t}"))
}

struct RawTty {
    saved: Option<libc::termios>,
}

impl RawTty {
    fn enter() -> Self {
        // SAFETY: plain termios calls on fd 0 with a zeroed, then filled struct.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return RawTty { saved: None };
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            t.c_oflag |= libc::OPOST | libc::ONLCR;
            libc::tcsetattr(0, libc::TCSANOW, &t);
            RawTty { saved: Some(saved) }
        }
    }
}

impl Drop for RawTty {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            // SAFETY: restores the attributes read in enter().
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

const PROMPT: &str = "agent> ";

fn draw(out: &mut impl Write, composer: &str) {
    let shown: String = composer.chars().map(|c| if c == '\n' { '\u{23ce}' } else if c == '\t' { ' ' } else { c }).collect();
    let n = shown.chars().count();
    let tail: String = shown.chars().skip(n.saturating_sub(60)).collect();
    let _ = write!(out, "\r\x1b[K{PROMPT}{tail}");
    let _ = out.flush();
}

fn record(o: &Options, msg: &str, st: Stamps) -> std::io::Result<()> {
    let mut line = serde_json::json!({"ts_ms": crate::daemon::state::now_ms(), "bytes": msg.len(), "text": msg, "pid": std::process::id()});
    if o.stamp {
        line["ns"] = now_ns().into();
        line["first_ns"] = st.first_ns.into();
        line["paste_end_ns"] = st.paste_end_ns.into();
    }
    append(o, &line)
}

/// One line per write(2), visible to readers at once; not fsynced: the
/// log is read on this machine by tests and benches, which kill processes
/// but not the power, and an fsync here was the stand-in agent's own cost
/// in every measured round trip.
fn append(o: &Options, line: &serde_json::Value) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&o.log)?;
    f.write_all(format!("{line}\n").as_bytes())
}

fn respond(o: &Options, msg: &str) -> Result<(), String> {
    let (h, body) = parse_header(msg).ok_or("no peerspool header")?;
    let Some(text) = answer(&body) else { return Ok(()) };
    let me = crate::queue::send::session_peer().ok_or("PEERSPOOL_PEER not set")?;
    let root = Root::from_env().map_err(|e| e.to_string())?;
    if o.work_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(o.work_ms));
    }
    if o.reply_cli {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = std::process::Command::new(exe).args(["reply", &text]).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
    } else {
        let to = o.forward_to.clone().unwrap_or_else(|| h.reply_to.clone());
        let m = OutMsg { to, text, reply_to: None, topic: None, in_reply_to: Some(h.id) };
        crate::queue::send::outbox(&root, &me, &m).map_err(|e| e.to_string())?;
    }
    if o.turn_end {
        crate::session::hook::turn_end(&root, &me).map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub fn run(o: &Options) -> i32 {
    if o.stamp {
        let _ = append(o, &serde_json::json!({"event": "start", "ns": now_ns(), "pid": std::process::id()}));
    }
    let _raw = RawTty::enter();
    let mut out = std::io::stdout();
    let _ = write!(out, "\x1b[?2004hpeerspool test agent ({})\r\n", if o.resumed { "resumed" } else { "fresh" });
    draw(&mut out, "");
    let mut composer: Vec<u8> = Vec::new();
    let mut in_paste = false;
    let mut esc: Vec<u8> = Vec::new();
    let mut received = 0u64;
    let mut st = Stamps::default();
    let mut buf = [0u8; 65536];
    let mut stdin = std::io::stdin();
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => return 0,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if o.stamp && st.first_ns == 0 {
                st.first_ns = now_ns();
            }
            if !esc.is_empty() || b == 0x1b {
                esc.push(b);
                if esc == b"\x1b[200~" {
                    in_paste = true;
                } else if esc == b"\x1b[201~" {
                    in_paste = false;
                    if o.stamp {
                        st.paste_end_ns = now_ns();
                    }
                } else if esc.len() < 6 && (esc.len() < 2 || esc[1] == b'[') {
                    continue;
                } else if in_paste {
                    composer.extend_from_slice(&esc);
                }
                esc.clear();
                continue;
            }
            match b {
                b'\r' | b'\n' if in_paste => composer.push(b'\n'),
                b'\r' | b'\n' => {
                    if composer.is_empty() {
                        st = Stamps::default();
                        continue;
                    }
                    let msg = String::from_utf8_lossy(&composer).into_owned();
                    composer.clear();
                    received += 1;
                    let status = match record(o, &msg, std::mem::take(&mut st)) {
                        Ok(()) => "ok".to_string(),
                        Err(e) => format!("log error: {e}"),
                    };
                    let first: String = msg.lines().next().unwrap_or("").chars().take(60).collect();
                    let _ = write!(out, "\r\x1b[Kreceived #{received} ({} bytes, {status}): {first}\r\n", msg.len());
                    if o.reply {
                        if let Err(e) = respond(o, &msg) {
                            let _ = write!(out, "reply failed: {e}\r\n");
                        }
                    }
                    if o.exit_after.is_some_and(|n| received >= n) {
                        let _ = write!(out, "exiting after {received} message(s)\r\n");
                        let _ = out.flush();
                        return 0;
                    }
                }
                0x03 | 0x04 if !in_paste => return 0,
                0x7f if !in_paste => {
                    composer.pop();
                }
                _ => composer.push(b),
            }
            if !in_paste {
                draw(&mut out, &String::from_utf8_lossy(&composer));
            }
        }
        draw(&mut out, &String::from_utf8_lossy(&composer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envelope_header() {
        let (h, body) = parse_header("intro\n\n[peerspool task 0042-x from bob reply-to ops topic \"t\"]\nline1\nline2").unwrap();
        assert_eq!(h, Header { id: "0042-x".into(), from: "bob".into(), reply_to: "ops".into() });
        assert_eq!(body, "line1\nline2");
    }

    #[test]
    fn bounce_counts_down_and_stops() {
        assert_eq!(answer("bounce 3").as_deref(), Some("bounce 2"));
        assert_eq!(answer("bounce 0"), None);
        assert_eq!(answer(" hi ").as_deref(), Some("echo: hi"));
    }
}
