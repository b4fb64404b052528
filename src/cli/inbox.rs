use clap::{Args, Subcommand};
use peerspool::queue::inbox::{self, Entry};
use peerspool::root::Root;
use peerspool::{logfmt, queue::names, Error};
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum InboxCmd {
    /// List the replies waiting in an inbox (oldest first)
    List(Sel),
    /// Print replies and consume them (move to cur/), as `send --wait` does
    Read(Sel),
    /// Delete replies without reading them
    Rm(Sel),
}

#[derive(Args, Debug)]
pub struct Sel {
    /// The inbox address (default: your user name, as for `send --from`)
    #[arg(long, value_name = "ADDR")]
    pub addr: Option<String>,
    /// Messages by file name, message id, or the task id they answer
    /// (what `send` printed); default: all (`rm` needs --all)
    pub ids: Vec<String>,
    /// With `rm`: every message in the inbox
    #[arg(long)]
    pub all: bool,
    /// Machine-readable output (one JSON array)
    #[arg(long)]
    pub json: bool,
}

fn to_json(e: &Entry) -> serde_json::Value {
    json!({
        "file": e.file, "id": e.msg.id, "from": e.msg.from, "to": e.msg.to, "topic": e.msg.topic,
        "in_reply_to": e.msg.in_reply_to, "received": logfmt::iso8601(e.received), "text": e.msg.text,
    })
}

fn first_line(s: &str) -> String {
    let l = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut t: String = l.chars().take(60).collect();
    if l.chars().count() > 60 {
        t.push('…');
    }
    t
}

pub fn run(root: &Root, c: InboxCmd) -> anyhow::Result<i32> {
    let (verb, s) = match c {
        InboxCmd::List(s) => ("list", s),
        InboxCmd::Read(s) => ("read", s),
        InboxCmd::Rm(s) => ("rm", s),
    };
    let addr = s.addr.clone().unwrap_or_else(names::local_user);
    names::check("address", &addr)?;
    if verb == "rm" && s.ids.is_empty() && !s.all {
        return Err(Error::Usage("inbox rm: name the messages, or pass --all".into()).into());
    }
    let all = inbox::list(root, &addr)?;
    let picked: Vec<&Entry> = all.iter().filter(|e| s.ids.is_empty() || s.ids.iter().any(|i| e.matches(i))).collect();
    if let Some(missing) = s.ids.iter().find(|i| !all.iter().any(|e| e.matches(i))) {
        let others = inbox::addresses(root).into_iter().filter(|a| *a != addr).collect::<Vec<_>>();
        let hint = if others.is_empty() { String::new() } else { format!(" (other inboxes: {}; pick one with --addr)", others.join(", ")) };
        anyhow::bail!("no message {missing:?} in inbox {addr}{hint}");
    }
    if s.json {
        println!("{}", serde_json::to_string_pretty(&picked.iter().map(|e| to_json(e)).collect::<Vec<_>>())?);
    }
    match verb {
        "list" if !s.json => {
            if picked.is_empty() {
                println!("inbox {addr}: empty");
            }
            for e in &picked {
                println!("{}\t{}\t{}\t{}", e.file.trim_end_matches(".json"), e.msg.from, e.msg.in_reply_to.as_deref().unwrap_or("-"), first_line(&e.msg.text));
            }
        }
        "read" => {
            for e in &picked {
                if !s.json {
                    print!("{}", e.msg.text);
                    if !e.msg.text.ends_with('\n') {
                        println!();
                    }
                }
                inbox::consume(root, &addr, e)?;
            }
        }
        "rm" => {
            for e in &picked {
                inbox::remove(root, &addr, e)?;
            }
            if !s.json {
                println!("removed {} message(s) from inbox {addr}", picked.len());
            }
        }
        _ => {}
    }
    Ok(0)
}
