//! Scripted model servers for the real-CLI tests: a fake Anthropic Messages
//! API (for Claude Code) and a fake OpenAI Responses API (for Codex) on a
//! random loopback port, std only. No account, no network.
//!
//! The script is the same for both: every `[peerspool task ID …]` in the
//! conversation that no earlier tool call answered gets one shell tool
//! call running `"$PEERSPOOL_BIN" reply 'ack id=ID len=N fnv=H seen=S'`
//! (N and H: length and FNV-1a hash of the text the model received after
//! the header; S: how many tasks the conversation holds, so a resumed
//! session proves it saw the earlier turn); once every task is answered
//! the turn ends with a short text. Markers in a task's text shape the
//! turn: `[[slow:N]]` delays the model's answer N seconds, `[[tool:N]]`
//! makes the tool run sleep N seconds first.
//!
//! Side requests (titles, topic checks, quota probes: no shell tool
//! offered) get a plain short text. Every request is logged so a failing
//! test can print what the CLI sent.

pub mod anthropic;
pub mod openai;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One HTTP request as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: String,
}

/// What the scripted model decides for one conversation.
#[derive(Clone, Debug, PartialEq)]
pub enum Turn {
    /// Run this shell command (after `delay`).
    Tool { command: String, delay: Duration },
    /// End the turn with this text.
    Done(String),
}

/// A task as the model received it.
#[derive(Clone, Debug, PartialEq)]
pub struct SeenTask {
    pub id: String,
    pub text: String,
}

/// FNV-1a 64: the fingerprint the model reports, so a test can check that
/// a text arrived intact without the model echoing it.
pub fn fnv(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// The tasks in a user text, in order: each header line and the text up
/// to the next header or the end of the block.
pub fn tasks_in(text: &str) -> Vec<SeenTask> {
    let mut out = vec![];
    let mut rest = text;
    while let Some(i) = rest.find("[peerspool task ") {
        let after = &rest[i + "[peerspool task ".len()..];
        let id: String = after.chars().take_while(|c| !c.is_whitespace() && *c != ']').collect();
        let Some(nl) = after.find("]\n").or_else(|| after.find(']')) else { break };
        let body_start = &after[nl + 1..];
        let body_start = body_start.strip_prefix('\n').unwrap_or(body_start);
        let end = body_start.find("[peerspool task ").unwrap_or(body_start.len());
        let body = body_start[..end].trim_end();
        // Claude wraps queued input in tags of its own; keep the text only.
        let body = body.split("</").next().unwrap_or(body).trim_end();
        out.push(SeenTask { id, text: body.to_string() });
        rest = &body_start[end..];
    }
    out
}

/// The ids an earlier tool call already answered.
pub fn answered_in(command: &str) -> Vec<String> {
    command.match_indices("ack id=").map(|(i, _)| command[i + 7..].chars().take_while(|c| !c.is_whitespace()).collect()).collect()
}

/// The script: `tasks` seen in user turns, `answered` by tool calls.
pub fn decide(tasks: &[SeenTask], answered: &[String]) -> Turn {
    let mut unique: Vec<&SeenTask> = vec![];
    for t in tasks {
        if !unique.iter().any(|u| u.id == t.id) {
            unique.push(t);
        }
    }
    let Some(t) = unique.iter().find(|t| !answered.contains(&t.id)) else {
        return Turn::Done("All peerspool tasks answered.".into());
    };
    let num = |tag: &str| t.text.split(tag).nth(1).and_then(|r| r.split("]]").next()).and_then(|n| n.trim().parse::<u64>().ok());
    let delay = Duration::from_secs(num("[[slow:").unwrap_or(0));
    let sleep = num("[[tool:").map(|n| format!("sleep {n}; ")).unwrap_or_default();
    let ack = format!("ack id={} len={} fnv={} seen={}", t.id, t.text.len(), fnv(&t.text), unique.len());
    Turn::Tool { command: format!("{sleep}\"$PEERSPOOL_BIN\" reply '{ack}'"), delay }
}

type Handler = Arc<dyn Fn(&Request, &mut TcpStream) + Send + Sync>;

/// A loopback HTTP server on a random port; stopped on drop.
pub struct Server {
    pub port: u16,
    pub log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let log = Arc::new(Mutex::new(vec![]));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let (h, log) = (handler.clone(), log2.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                    while let Some(req) = read_request(&mut conn) {
                        log.lock().unwrap().push(req.clone());
                        h(&req, &mut conn);
                    }
                });
            }
        });
        Server { port, log, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The model requests so far (method, path and body), for a failure
    /// message.
    pub fn dump(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter().map(|r| format!("{} {} {}", r.method, r.path, r.body.chars().take(600).collect::<String>())).collect::<Vec<_>>().join("\n")
    }

    /// Bodies of requests to `path` (prefix), in order.
    pub fn bodies(&self, path: &str) -> Vec<serde_json::Value> {
        self.log.lock().unwrap().iter().filter(|r| r.path.starts_with(path)).filter_map(|r| serde_json::from_str(&r.body).ok()).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let (mut len, mut chunked) = (0usize, false);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().ok()?,
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let mut body = vec![];
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(len, 0);
        r.read_exact(&mut body).ok()?;
    }
    Some(Request { method, path, body: String::from_utf8_lossy(&body).into_owned() })
}

/// A complete JSON response (keep-alive).
pub fn json(conn: &mut TcpStream, status: u16, body: &serde_json::Value) {
    let b = body.to_string();
    let head = format!("HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", b.len());
    let _ = conn.write_all(head.as_bytes()).and_then(|_| conn.write_all(b.as_bytes()));
}

/// An SSE stream of `(event, data)` pairs, then the connection closes.
pub fn sse(conn: &mut TcpStream, events: &[(&str, serde_json::Value)]) {
    let mut out = String::from("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n");
    for (ev, data) in events {
        out.push_str(&format!("event: {ev}\ndata: {data}\n\n"));
    }
    let _ = conn.write_all(out.as_bytes());
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_answers_each_task_once_in_order() {
        let t = tasks_in("[peerspool task a1 from user]\nfirst [[slow:2]]\n\n[peerspool task b2 from user reply-to x]\nsecond\n");
        assert_eq!(t, vec![SeenTask { id: "a1".into(), text: "first [[slow:2]]".into() }, SeenTask { id: "b2".into(), text: "second".into() }]);
        let Turn::Tool { command, delay } = decide(&t, &[]) else { panic!() };
        assert_eq!(delay, Duration::from_secs(2));
        assert!(command.contains(&format!("ack id=a1 len=16 fnv={} seen=2", fnv("first [[slow:2]]"))), "{command}");
        assert_eq!(answered_in(&command), vec!["a1".to_string()]);
        let Turn::Tool { command, .. } = decide(&t, &["a1".into()]) else { panic!() };
        assert!(command.contains("ack id=b2 "));
        assert!(matches!(decide(&t, &["a1".into(), "b2".into()]), Turn::Done(_)));
    }
}
