//! Verdicts for messages that came from another host: when this daemon
//! fails such a task, or the loop guard cuts a conversation whose
//! originator is elsewhere, the originator would otherwise learn nothing
//! (its `send --wait` sat out its timeout). The notice goes back through
//! the bridge to its inbox on its host (spool-spec/MULTIHOST.md, verdicts
//! across hosts). Best effort beyond the queue: the local `.error` file and
//! log stay the record.

use crate::bridge::envelope::{Notice, TASK_FAILED};
use crate::daemon::hops::{self, Chain, LOOP_LIMIT};
use crate::root::Root;

/// `addr` when it names another host than this daemon's bridge: the host.
fn remote<'a>(addr: &'a str, me: &str) -> Option<&'a str> {
    let (_, host) = addr.split_once('@')?;
    (host != me).then_some(host)
}

/// Where a failed task's verdict goes: its `reply_to` (where the waiter
/// listens) when the file still parses, else the conversation's origin
/// from the loop guard's record (a task too large or malformed to read).
fn verdict_address(root: &Root, peer: &str, failed: &std::path::Path, id: &str, me: &str) -> Option<(String, String)> {
    let chain = hops::lookup(root, peer, id);
    let lim = crate::queue::spool::Limits::default();
    let parsed = crate::queue::spool::read_checked(failed, &lim).ok().and_then(|b| crate::queue::format::parse_task(&b, id).ok());
    let root_id = chain.as_ref().map_or_else(|| id.to_string(), |c| c.root.clone());
    let to = parsed.map(|t| t.reply_to).filter(|r| remote(r, me).is_some()).or_else(|| chain.map(|c| c.origin).filter(|o| remote(o, me).is_some()))?;
    Some((to, root_id))
}

/// Task `name` of `peer` was moved to `failed/` with `reason`: tells its
/// sender on another host. Returns the address told, for the log.
pub fn task_failed(root: &Root, peer: &str, name: &str, reason: &str) -> Option<String> {
    let me = crate::bridge::active_host()?;
    let id = name.strip_suffix(".json").unwrap_or(name);
    let failed = root.peer(peer).ok()?.spool_sub("failed").join(name);
    let (to, chain) = verdict_address(root, peer, &failed, id, me)?;
    let text = format!("peerspool: task {id} failed on {me} ({peer}): {reason}; see peers/{peer}/spool/failed/ on {me}");
    crate::bridge::outbound::queue_failure(root, me, to, peer, id, chain, TASK_FAILED, text)
}

/// The loop guard cut message `id` of `owner` in a conversation started on
/// another host: the notice goes there. `Ok(None)` when there is no bridge
/// (the cut stays in this host's `outbox/failed/` and log).
pub fn loop_limit(root: &Root, owner: &str, id: &str, to: &str, chain: &Chain, max_hops: u32) -> crate::Result<Option<String>> {
    let Some(me) = crate::bridge::active_host() else { return Ok(None) };
    if remote(&chain.origin, me).is_none() {
        return Ok(None);
    }
    let nid = format!("{id}~{LOOP_LIMIT}");
    let text = format!(
        "peerspool: the conversation {} you started was stopped at hop {} (max_hops {max_hops}) on {me}: {owner} wrote to {to} (message {id}); \
         the message is in peers/{owner}/outbox/failed/ on {me}. Raise PEERSPOOL_MAX_HOPS or max_hops in peers/{owner}/peer.json there if the conversation was meant to go on.",
        chain.root, chain.hops
    );
    let notice = Notice { kind: LOOP_LIMIT.into(), chain: chain.root.clone(), message: Some(id.to_string()), max_hops: Some(max_hops) };
    match crate::bridge::outbound::queue_notice(root, me, &chain.origin, owner, nid.clone(), None, notice, text) {
        Ok(()) => Ok(Some(nid)),
        Err(crate::bridge::BridgeError::Refused(r)) => {
            tracing::warn!(owner, message = id, origin = %chain.origin, reason = %r, "cannot queue the loop-limit notice for another host");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
