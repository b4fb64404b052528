//! The fake Anthropic Messages API Claude Code talks to through
//! `ANTHROPIC_BASE_URL`: `POST /v1/messages` (SSE or plain JSON),
//! `POST /v1/messages/count_tokens`, `HEAD /api/hello`; anything else 404.

use super::{answered_in, decide, json, sse, tasks_in, Request, Server, Turn};
use serde_json::{json, Value};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The text of a content field: a string, or the text of its blocks
/// (tool results included, since a queued prompt can ride in one).
fn texts(content: &Value, out: &mut Vec<String>) {
    match content {
        Value::String(s) => out.push(s.clone()),
        Value::Array(blocks) => {
            for b in blocks {
                match b["type"].as_str() {
                    Some("text") => out.push(b["text"].as_str().unwrap_or_default().to_string()),
                    Some("tool_result") => texts(&b["content"], out),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// What the script decides for one request body; `None` for a side
/// request (no Bash tool offered).
pub fn turn_for(body: &Value) -> Option<Turn> {
    let tools = body["tools"].as_array()?;
    if !tools.iter().any(|t| t["name"] == "Bash") {
        return None;
    }
    let (mut tasks, mut answered) = (vec![], vec![]);
    for m in body["messages"].as_array().into_iter().flatten() {
        if m["role"] == "user" {
            let mut t = vec![];
            texts(&m["content"], &mut t);
            tasks.extend(t.iter().flat_map(|t| tasks_in(t)));
        } else if let Some(blocks) = m["content"].as_array() {
            for b in blocks.iter().filter(|b| b["type"] == "tool_use") {
                answered.extend(answered_in(b["input"]["command"].as_str().unwrap_or_default()));
            }
        }
    }
    Some(decide(&tasks, &answered))
}

pub fn start() -> Server {
    let n = Arc::new(AtomicU64::new(0));
    Server::start(Arc::new(move |req: &Request, conn: &mut TcpStream| {
        let path = req.path.split('?').next().unwrap_or_default();
        match (req.method.as_str(), path) {
            ("HEAD", _) | ("GET", "/api/hello") => json(conn, 200, &json!({})),
            ("POST", "/v1/messages/count_tokens") => json(conn, 200, &json!({"input_tokens": 100})),
            ("POST", "/v1/messages") => {
                let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
                let id = n.fetch_add(1, Ordering::SeqCst);
                respond(conn, &body, id);
            }
            _ => json(conn, 404, &json!({"type": "error", "error": {"type": "not_found_error", "message": "not scripted"}})),
        }
    }))
}

fn respond(conn: &mut TcpStream, body: &Value, n: u64) {
    let model = body["model"].as_str().unwrap_or("claude-fake").to_string();
    let (block, stop) = match turn_for(body) {
        Some(Turn::Tool { command, delay }) => {
            std::thread::sleep(delay);
            (json!({"type": "tool_use", "id": format!("toolu_{n:08}"), "name": "Bash", "input": {"command": command, "description": "Reply to the peerspool task"}}), "tool_use")
        }
        Some(Turn::Done(text)) => (json!({"type": "text", "text": text}), "end_turn"),
        None => {
            let wants_topic = body.to_string().contains("isNewTopic");
            let text = if wants_topic { r#"{"isNewTopic": false, "title": null}"# } else { "peerspool task" };
            (json!({"type": "text", "text": text}), "end_turn")
        }
    };
    let usage = json!({"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
    let message = json!({"id": format!("msg_{n:08}"), "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage});
    if body["stream"] != true {
        let mut full = message;
        full["content"] = json!([block]);
        full["stop_reason"] = json!(stop);
        return json(conn, 200, &full);
    }
    let (start, delta) = if block["type"] == "tool_use" {
        let mut s = block.clone();
        s["input"] = json!({});
        (s, json!({"type": "input_json_delta", "partial_json": block["input"].to_string()}))
    } else {
        (json!({"type": "text", "text": ""}), json!({"type": "text_delta", "text": block["text"]}))
    };
    sse(conn, &[
        ("message_start", json!({"type": "message_start", "message": message})),
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": start})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": delta})),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 20}})),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
}
