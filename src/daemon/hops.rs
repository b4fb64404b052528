//! The loop guard. Agents that answer every message talk forever; the
//! guard bounds a conversation by its hop count and slows two peers that
//! exchange messages faster than a person could follow.
//!
//! The hop count is the daemon's own record of the task a reply answers
//! (kept under `state/peers/<name>/chains/` when the task was routed),
//! never a number found in a file: an agent cannot reset or raise its
//! conversation's count by writing one.

use crate::daemon::outbox::Outcome;
use crate::error::Result;
use crate::queue::format::OutMsg;
use crate::queue::spool::{self, Queue};
use crate::root::Root;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

pub const DEFAULT_MAX_HOPS: u32 = 16;
pub const DEFAULT_PAIR_RATE: u32 = 60;
pub const DEFAULT_PAIR_WINDOW_SECS: f64 = 60.0;
/// The stable reason code of a message cut by the hop limit.
pub const LOOP_LIMIT: &str = "loop-limit";

/// The guard's settings for one routing pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guard {
    /// A message with more hops than this is not delivered.
    pub max_hops: u32,
    /// Messages between one pair of peers per window before the next is held.
    pub pair_rate: u32,
    pub pair_window_ms: u64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard { max_hops: DEFAULT_MAX_HOPS, pair_rate: DEFAULT_PAIR_RATE, pair_window_ms: (DEFAULT_PAIR_WINDOW_SECS * 1000.0) as u64 }
    }
}

/// Where a message stands in its conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub hops: u32,
    /// The address that started the conversation: it is told when the
    /// conversation is cut.
    pub origin: String,
    /// The id of the conversation's first message.
    pub root: String,
}

/// The chain of message `id` from `sender`: one hop more than the task it
/// answers, or a fresh conversation of `sender` when it answers none the
/// daemon knows.
pub fn next(answered: Option<&Chain>, sender: &str, id: &str) -> Chain {
    match answered {
        Some(c) => Chain { hops: c.hops.saturating_add(1), origin: c.origin.clone(), root: c.root.clone() },
        None => Chain { hops: 0, origin: sender.to_string(), root: id.to_string() },
    }
}

pub fn over_limit(hops: u32, max_hops: u32) -> bool {
    hops > max_hops
}

/// Messages per unordered pair of peers in a sliding window.
#[derive(Debug, Default)]
pub struct Rates {
    pairs: HashMap<(String, String), VecDeque<u64>>,
}

impl Rates {
    /// Counts one message between `a` and `b` at `now`, or returns when the
    /// window will have room again (the message is then not counted).
    pub fn admit(&mut self, a: &str, b: &str, now: u64, limit: u32, window_ms: u64) -> std::result::Result<(), u64> {
        let key = if a <= b { (a.to_string(), b.to_string()) } else { (b.to_string(), a.to_string()) };
        let q = self.pairs.entry(key).or_default();
        while q.front().is_some_and(|&t| t + window_ms <= now) {
            q.pop_front();
        }
        if q.len() >= limit.max(1) as usize {
            return Err(q.front().map_or(now, |&t| t + window_ms));
        }
        q.push_back(now);
        Ok(())
    }
}

/// One process routes for one root; keyed by root all the same, so that
/// library users with several roots do not share counts.
static RATES: LazyLock<Mutex<HashMap<PathBuf, Rates>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn admit(root: &Root, a: &str, b: &str, g: &Guard) -> std::result::Result<(), u64> {
    let mut all = RATES.lock().unwrap_or_else(|p| p.into_inner());
    all.entry(root.path.clone()).or_default().admit(a, b, crate::daemon::state::now_ms(), g.pair_rate, g.pair_window_ms)
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    id: String,
    #[serde(flatten)]
    chain: Chain,
}

fn chains_dir(root: &Root, peer: &str) -> PathBuf {
    root.peer_state(peer).join("chains")
}

fn record_path(root: &Root, peer: &str, id: &str) -> PathBuf {
    chains_dir(root, peer).join(format!("{:016x}.json", crate::root::fnv1a(id.as_bytes())))
}

/// Remembers the chain of task `id` routed to `peer`, for its replies.
pub fn record(root: &Root, peer: &str, id: &str, chain: &Chain) -> Result<()> {
    let dir = chains_dir(root, peer);
    if !dir.is_dir() {
        crate::root::mkdir_private(&dir)?;
    }
    crate::daemon::state::write_json(&record_path(root, peer, id), &Record { id: id.to_string(), chain: chain.clone() })
}

/// The chain of task `id` that `peer` received: the daemon's record of a
/// routed task, or, for a task written into the spool by a script or
/// `send` (hop 0), a conversation that the task's sender started.
pub fn lookup(root: &Root, peer: &str, id: &str) -> Option<Chain> {
    let rec: Option<Record> = std::fs::read(record_path(root, peer, id)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(r) = rec.filter(|r| r.id == id) {
        return Some(r.chain);
    }
    let p = root.peer(peer).ok()?;
    let name = format!("{id}.json");
    if !crate::queue::format::safe_file_name(&name) {
        return None;
    }
    ["cur", "done", "new"].iter().find_map(|sub| {
        let b = std::fs::read(p.spool_sub(sub).join(&name)).ok()?;
        let t = crate::queue::format::parse_task(&b, id).ok()?;
        (t.id == id).then(|| Chain { hops: 0, origin: t.from, root: id.to_string() })
    })
}

/// Keeps the records bounded like `done/` (age, then count).
pub fn prune(root: &Root, peer: &str, max_age: std::time::Duration, keep: usize, now: std::time::SystemTime) -> usize {
    let dir = chains_dir(root, peer);
    if !dir.is_dir() {
        return 0;
    }
    spool::prune(&dir, max_age, keep, now).unwrap_or(0)
}

/// Judges one accepted outbox message against the guard. `Ok(Ok(chain))`:
/// route it with this chain (recorded for a peer recipient); `Ok(Err(o))`:
/// finished here, cut by the hop limit or held by the pair rate.
#[allow(clippy::too_many_arguments)]
pub fn check(root: &Root, owner: &str, ob: &Queue, name: &str, msg: &OutMsg, id: &str, to_peer: bool, g: &Guard) -> Result<std::result::Result<Chain, Outcome>> {
    let answered = msg.in_reply_to.as_deref().and_then(|x| lookup(root, owner, x));
    let chain = next(answered.as_ref(), owner, id);
    if over_limit(chain.hops, g.max_hops) {
        let told = match chain.origin.split_once('@') {
            Some((name, host)) => format!("in inbox/{name}/new/ on {host} (through the bridge)"),
            None => format!("in inbox/{}/new/", chain.origin),
        };
        let reason = format!(
            "{LOOP_LIMIT}: hop {} of the conversation {} started by {} is past max_hops {}; {} was told {told}",
            chain.hops, chain.root, chain.origin, g.max_hops, chain.origin
        );
        let notice = notify(root, owner, name, id, msg, &chain, g.max_hops)?;
        spool::fail(&ob.new, &ob.failed, name, &reason)?;
        return Ok(Err(Outcome::LoopLimit { id: id.to_string(), in_reply_to: msg.in_reply_to.clone(), chain, notice }));
    }
    if to_peer {
        if let Err(until_ms) = admit(root, owner, &msg.to, g) {
            let why = format!(
                "pair-rate: {} messages between {owner} and {} within {} s; held until the rate falls",
                g.pair_rate,
                msg.to,
                g.pair_window_ms as f64 / 1000.0
            );
            return Ok(Err(Outcome::Held { until_ms, why }));
        }
        record(root, &msg.to, id, &chain)?;
    }
    Ok(Ok(chain))
}

/// Tells the conversation's originator, once, in its inbox: also when the
/// originator is a peer, since a notice in a spool would be a task, and
/// an agent answering it would start the conversation again.
fn notify(root: &Root, owner: &str, name: &str, id: &str, msg: &OutMsg, chain: &Chain, max_hops: u32) -> Result<String> {
    // An originator on another host is told there, through the bridge
    // (without one, the cut is in this host's outbox/failed/ and log).
    if chain.origin.contains('@') {
        return Ok(crate::daemon::verdict::loop_limit(root, owner, id, &msg.to, chain, max_hops)?.unwrap_or_default());
    }
    let dir = root.inbox(&chain.origin)?;
    let (tmp, new) = (dir.join("tmp"), dir.join("new"));
    if !new.is_dir() || !tmp.is_dir() {
        crate::root::mkdir_private(&tmp)?;
        crate::root::mkdir_private(&new)?;
    }
    let stem = name.strip_suffix(".json").unwrap_or(name);
    let file = format!("{stem}~{owner}~{LOOP_LIMIT}.json");
    let nid = format!("{id}~{LOOP_LIMIT}");
    // Once: a re-route after a crash between the notice and the move finds it.
    if [&new, &dir.join("cur")].iter().any(|d| exists(&d.join(&file))) {
        return Ok(nid);
    }
    let text = format!(
        "peerspool: the conversation {} you started was stopped at hop {} (max_hops {}): {owner} wrote to {} (message {id}); \
         the message is in peers/{owner}/outbox/failed/. Raise PEERSPOOL_MAX_HOPS or max_hops in peers/{owner}/peer.json if the conversation was meant to go on.",
        chain.root, chain.hops, max_hops, msg.to
    );
    let body = serde_json::json!({
        "v": 1, "id": nid, "from": owner, "to": chain.origin, "notice": LOOP_LIMIT,
        "hops": chain.hops, "max_hops": max_hops, "origin": chain.origin, "chain": chain.root,
        "message": id, "text": text,
    });
    spool::write_atomic(&tmp, &new, &file, body.to_string().as_bytes())?;
    Ok(nid)
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_one_hop_more_and_keeps_the_origin() {
        let fresh = next(None, "alice", "m0");
        assert_eq!(fresh, Chain { hops: 0, origin: "alice".into(), root: "m0".into() });
        let r = next(Some(&fresh), "bob", "m1");
        assert_eq!(r, Chain { hops: 1, origin: "alice".into(), root: "m0".into() });
        let top = Chain { hops: u32::MAX, origin: "a".into(), root: "r".into() };
        assert_eq!(next(Some(&top), "b", "x").hops, u32::MAX);
    }

    #[test]
    fn the_limit_lets_max_hops_through() {
        assert!(!over_limit(16, 16));
        assert!(over_limit(17, 16));
        assert!(!over_limit(0, 0));
        assert!(over_limit(1, 0));
    }

    #[test]
    fn pair_rate_holds_then_releases_both_directions() {
        let mut r = Rates::default();
        assert_eq!(r.admit("a", "b", 1000, 2, 10_000), Ok(()));
        assert_eq!(r.admit("b", "a", 2000, 2, 10_000), Ok(()));
        // Third within the window, either direction: held until the first ages out.
        assert_eq!(r.admit("a", "b", 3000, 2, 10_000), Err(11_000));
        assert_eq!(r.admit("b", "a", 3000, 2, 10_000), Err(11_000));
        // Another pair is not affected.
        assert_eq!(r.admit("a", "c", 3000, 2, 10_000), Ok(()));
        // A held message was not counted: the window frees at 11 s.
        assert_eq!(r.admit("a", "b", 11_000, 2, 10_000), Ok(()));
        assert_eq!(r.admit("a", "b", 11_500, 2, 10_000), Err(12_000));
    }

    #[test]
    fn records_are_found_by_id_and_spool_tasks_start_a_chain() {
        let d = tempfile::tempdir().unwrap();
        let r = Root::new(d.path().join("r"));
        r.ensure().unwrap();
        let p = r.peer("bob").unwrap();
        r.ensure_peer_dirs(&p).unwrap();
        std::fs::create_dir_all(r.peer_state("bob")).unwrap();
        let c = Chain { hops: 3, origin: "ops".into(), root: "t0".into() };
        record(&r, "bob", "t3", &c).unwrap();
        assert_eq!(lookup(&r, "bob", "t3"), Some(c));
        assert_eq!(lookup(&r, "bob", "nope"), None);
        assert_eq!(lookup(&r, "bob", ".."), None);
        std::fs::write(p.spool_sub("done").join("s1.json"), br#"{"text":"x","from":"cron","hops":99}"#).unwrap();
        // The file's own count is not trusted: a task nobody routed is hop 0.
        assert_eq!(lookup(&r, "bob", "s1"), Some(Chain { hops: 0, origin: "cron".into(), root: "s1".into() }));
    }
}
