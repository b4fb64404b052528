//! The fake OpenAI Responses API Codex talks to through a custom model
//! provider (`base_url = "http://127.0.0.1:PORT/v1"`, `wire_api =
//! "responses"`): `POST /v1/responses` (SSE), `GET /v1/models`.
//! The shell tool is whichever Codex offers (`shell_command`,
//! `exec_command` or `shell`), so the script follows the CLI's version.

use super::{answered_in, decide, json, sse, tasks_in, Request, Server, Turn};
use serde_json::{json, Value};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The shell command of an earlier function call, whatever its tool.
fn call_command(item: &Value) -> String {
    let args: Value = item["arguments"].as_str().and_then(|a| serde_json::from_str(a).ok()).unwrap_or(Value::Null);
    let v = if args.is_null() { &item["action"] } else { &args };
    match (&v["command"], &v["cmd"]) {
        (Value::String(s), _) | (_, Value::String(s)) => s.clone(),
        (Value::Array(a), _) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// What the script decides for one request body; `None` when no shell
/// tool is offered (a side request).
pub fn turn_for(body: &Value) -> Option<(Turn, &'static str)> {
    let names: Vec<&str> = body["tools"].as_array()?.iter().filter_map(|t| t["name"].as_str().or(t["type"].as_str())).collect();
    let tool = ["shell_command", "exec_command", "shell", "local_shell"].into_iter().find(|t| names.contains(t))?;
    let (mut tasks, mut answered) = (vec![], vec![]);
    for item in body["input"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("message") if item["role"] == "user" => {
                for c in item["content"].as_array().into_iter().flatten() {
                    tasks.extend(tasks_in(c["text"].as_str().unwrap_or_default()));
                }
            }
            Some("function_call") | Some("local_shell_call") => answered.extend(answered_in(&call_command(item))),
            _ => {}
        }
    }
    Some((decide(&tasks, &answered), tool))
}

pub fn start() -> Server {
    let n = Arc::new(AtomicU64::new(0));
    Server::start(Arc::new(move |req: &Request, conn: &mut TcpStream| {
        let path = req.path.split('?').next().unwrap_or_default();
        match (req.method.as_str(), path) {
            ("GET", "/v1/models") => json(conn, 200, &json!({"object": "list", "data": [{"id": "gpt-fake", "object": "model"}], "models": []})),
            ("POST", "/v1/responses") => {
                let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
                respond(conn, &body, n.fetch_add(1, Ordering::SeqCst));
            }
            _ => json(conn, 404, &json!({"error": {"message": "not scripted", "type": "invalid_request_error"}})),
        }
    }))
}

fn respond(conn: &mut TcpStream, body: &Value, n: u64) {
    let item = match turn_for(body) {
        Some((Turn::Tool { command, delay }, tool)) => {
            std::thread::sleep(delay);
            let call_id = format!("call_{n:08}");
            match tool {
                "local_shell" => json!({"type": "local_shell_call", "id": format!("lsh_{n}"), "call_id": call_id, "status": "completed",
                    "action": {"type": "exec", "command": ["bash", "-lc", command]}}),
                _ => {
                    let args = match tool {
                        "shell_command" => json!({"command": command}),
                        "exec_command" => json!({"cmd": command}),
                        _ => json!({"command": ["bash", "-lc", command]}),
                    };
                    json!({"type": "function_call", "id": format!("fc_{n}"), "call_id": call_id, "name": tool, "arguments": args.to_string(), "status": "completed"})
                }
            }
        }
        Some((Turn::Done(text), _)) => message(n, &text),
        None => message(n, "peerspool task"),
    };
    let id = format!("resp_{n:08}");
    let usage = json!({"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 120});
    let mut added = item.clone();
    added["status"] = json!("in_progress");
    sse(conn, &[
        ("response.created", json!({"type": "response.created", "response": {"id": id, "status": "in_progress"}})),
        ("response.output_item.added", json!({"type": "response.output_item.added", "output_index": 0, "item": added})),
        ("response.output_item.done", json!({"type": "response.output_item.done", "output_index": 0, "item": item})),
        ("response.completed", json!({"type": "response.completed", "response": {"id": id, "status": "completed", "usage": usage}})),
    ]);
}

fn message(n: u64, text: &str) -> Value {
    json!({"type": "message", "id": format!("msg_{n}"), "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}]})
}
