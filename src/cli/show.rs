//! `peerspool show ID`: one message's story, from the files and the logs.

use clap::Args;
use peerspool::queue::receipt::{self, Story};
use peerspool::root::Root;

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A task id, an outbox message id or an inbox reply id
    pub id: String,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

/// The reply chain followed at most this far (messages in all).
const MAX_MESSAGES: usize = 64;

pub fn load(root: &Root, id: &str) -> anyhow::Result<Story> {
    if !peerspool::queue::format::valid_id(id) {
        return Err(peerspool::Error::Usage(format!("{id:?} is not a message id (1-200 printable characters without / or whitespace)")).into());
    }
    let keep = peerspool::config::from_env().0.log_keep;
    let mut lines = vec![];
    for log in ["delivery.log", "lifecycle.log"] {
        lines.extend(receipt::log_lines(&root.log_dir().join(log), keep).iter().map(|l| receipt::parse_line(l)));
    }
    let story = receipt::story(root, id, &lines, &mut MAX_MESSAGES.clone(), &mut Default::default());
    if story.is_empty() {
        anyhow::bail!(
            "no task, outbox message or inbox reply {id} in the files or logs of {}: check the id (`peerspool log` shows recent ones)",
            root.path.display()
        );
    }
    Ok(story)
}

/// The story as text lines, replies indented under the message they answer.
pub fn render(s: &Story, depth: usize, out: &mut Vec<String>) {
    let pad = "  ".repeat(depth);
    let now: Vec<String> = s
        .places
        .iter()
        .map(|p| {
            let mut t = p.state.to_string();
            if let Some(e) = &p.error {
                t.push_str(&format!(" ({e})"));
            }
            t
        })
        .collect();
    let now = if now.is_empty() { "file pruned".to_string() } else { now.join(", ") };
    let day = s.events.first().and_then(|e| e.ts.get(..10)).unwrap_or("");
    out.push(format!("{pad}{}  {day}  now: {now}", s.id));
    let t0 = s.events.first().map(|e| e.at_ms).unwrap_or(0);
    for e in &s.events {
        let mut d = e.detail.clone();
        if let Some(ms) = e.for_ms {
            d.push_str(&format!(" (for {:.1} s)", ms as f64 / 1000.0));
        }
        let rel = e.at_ms.saturating_sub(t0) as f64 / 1000.0;
        let time = e.ts.get(11..23).unwrap_or(&e.ts);
        out.push(format!("{pad}  {time} +{rel:.3}s  {:<11} {d}", e.stage.as_str()));
    }
    for r in &s.replies {
        render(r, depth + 1, out);
    }
}

pub fn run(root: &Root, a: ShowArgs) -> anyhow::Result<i32> {
    super::check_root(root)?;
    let story = load(root, &a.id)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&story)?);
    } else {
        let mut out = vec![];
        render(&story, 0, &mut out);
        println!("{}", out.join("\n"));
    }
    Ok(0)
}
