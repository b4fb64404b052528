//! Enqueueing from outside the daemon: `peerspool send` and `reply`.
//! Outside a session a task goes straight into the target's spool; inside
//! one (PEERSPOOL_PEER set) it goes through the sender's own outbox, so
//! the daemon, not the writer, stamps the sender.

use crate::error::{Error, Result};
use crate::queue::format::{OutMsg, MAX_TOPIC_CHARS};
use crate::queue::names;
use crate::queue::spool::{unique_name, Queue};
use crate::root::Root;
use serde_json::json;

#[derive(Debug, Clone, Default)]
pub struct Opts {
    pub topic: Option<String>,
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub in_reply_to: Option<String>,
}

fn check_text(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::Usage("empty text: nothing to send".into()));
    }
    Ok(())
}

fn check_topic(topic: &Option<String>) -> Result<()> {
    match topic {
        Some(t) if t.chars().count() > MAX_TOPIC_CHARS => {
            Err(Error::Usage(format!("topic is longer than {MAX_TOPIC_CHARS} characters")))
        }
        _ => Ok(()),
    }
}

/// The peer this process runs as, when it runs inside a daemon session.
pub fn session_peer() -> Option<String> {
    std::env::var("PEERSPOOL_PEER").ok().filter(|p| names::is_valid(p))
}

/// Writes a task into `peer`'s spool; returns the task id.
pub fn task(root: &Root, peer: &str, text: &str, o: &Opts) -> Result<String> {
    names::check("peer name", peer)?;
    check_text(text)?;
    check_topic(&o.topic)?;
    let from = o.from.clone().unwrap_or_else(names::local_user);
    names::check("--from", &from)?;
    if let Some(r) = &o.reply_to {
        names::check_address("--reply-to", r)?;
    }
    if !root.is_peer(peer) {
        return Err(Error::UnknownPeer(peer.into()));
    }
    let p = root.peer(peer)?;
    let name = unique_name();
    let id = name.trim_end_matches(".json").to_string();
    let mut v = json!({"v": 1, "id": id, "from": from, "text": text});
    if let Some(t) = &o.topic {
        v["topic"] = json!(t);
    }
    if let Some(r) = &o.reply_to {
        v["reply_to"] = json!(r);
    }
    if let Some(r) = &o.in_reply_to {
        v["in_reply_to"] = json!(r);
    }
    Queue::spool(&p).enqueue(&name, v.to_string().as_bytes())?;
    Ok(id)
}

/// Writes a message into `owner`'s outbox; returns its id (the file stem,
/// which the routed task keeps).
pub fn outbox(root: &Root, owner: &str, m: &OutMsg) -> Result<String> {
    names::check("peer name", owner)?;
    names::check_address("recipient", &m.to)?;
    check_text(&m.text)?;
    check_topic(&m.topic)?;
    // `owner@<this host>` is the owner too (MULTIHOST.md: the same as the
    // bare name); the host is this machine's, whether a bridge runs or not.
    let on_this_host = |h: &str| crate::bridge::address::this_host().is_ok_and(|me| me == h);
    if m.to == owner || m.to.split_once('@').is_some_and(|(n, h)| n == owner && on_this_host(h)) {
        return Err(Error::Usage(format!("peer {owner:?} cannot send to itself ({:?} is this peer)", m.to)));
    }
    let p = root.peer(owner)?;
    let name = unique_name();
    let bytes = serde_json::to_vec(m).unwrap_or_default();
    Queue::outbox(&p).enqueue(&name, &bytes)?;
    Ok(name.trim_end_matches(".json").to_string())
}

/// Reads message text from an argument or `-` (stdin), insisting on UTF-8.
pub fn read_text(arg: Option<&str>, stdin: &mut dyn std::io::Read) -> Result<String> {
    match arg {
        Some("-") | None => {
            let mut buf = Vec::new();
            stdin.read_to_end(&mut buf).map_err(|e| Error::io("<stdin>", e))?;
            String::from_utf8(buf).map_err(|e| {
                Error::Usage(format!("text from stdin is not valid UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to()))
            })
        }
        Some(t) => Ok(t.to_string()),
    }
}

/// Why a queued task will not be delivered soon. The same facts
/// `peerspool status` shows, from the same files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    NoDaemon,
    Stopped,
    /// The daemon's reason: a crash-loop, a failed wake, a bad profile.
    Blocked(String),
}

/// Whatever would keep a task for `peer` waiting right now.
pub fn holds(root: &Root, peer: &str) -> Vec<Hold> {
    let st = crate::daemon::state::PeerState::new(root, peer);
    let mut h = vec![];
    if crate::daemon::lock::running(root).is_none() {
        h.push(Hold::NoDaemon);
    }
    if st.stopped() {
        h.push(Hold::Stopped);
    }
    if let Some(b) = st.blocked() {
        h.push(Hold::Blocked(b));
    }
    h
}

impl Hold {
    /// One line: why the task waits and the next step.
    pub fn explain(&self, root: &Root, peer: &str) -> String {
        match self {
            Hold::NoDaemon => format!(
                "no daemon is running on {}: the task waits in the spool until one starts (`peerspool daemon`, or `peerspool service install`)",
                root.path.display()
            ),
            Hold::Stopped => format!("peer {peer} is stopped: the task waits until `peerspool start {peer}`"),
            Hold::Blocked(why) => format!(
                "peer {peer} is blocked ({why}): the task waits; see `peerspool log --peer {peer}`, then `peerspool start {peer}` to retry at once"
            ),
        }
    }
}
