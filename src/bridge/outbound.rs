//! Outbound: the queue of messages for other hosts (`bridge/out/`) and the
//! publisher that drains it. A file leaves `new/` for `sent/` only after
//! JetStream acknowledged it; until then it waits on disk, whatever NATS
//! does, and is published again (the same de-duplication id) after a failure.

use super::envelope::Envelope;
use super::status::Status;
use super::subject;
use super::BridgeError;
use crate::root::Root;
use crate::queue::spool::{self, Limits};
use async_nats::jetstream::{self, context::PublishErrorKind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Most messages published before their acks are awaited: enough to keep
/// the connection busy, few enough that a failure re-sends little.
pub const PUBLISH_WINDOW: usize = 256;

/// How often an idle publisher re-lists `bridge/out/new/` although nothing
/// woke it: only a safety net for a lost watch event (the router kicks and
/// the directory is watched), so slow enough that an idle daemon stays idle.
pub const SAFETY_RELIST: Duration = Duration::from_secs(5);

/// `bridge/out/{tmp,new,sent,failed}`: the same Maildir discipline as a
/// peer's outbox, so an operator reads it the same way.
#[derive(Debug, Clone)]
pub struct OutQueue {
    pub tmp: PathBuf,
    pub new: PathBuf,
    pub sent: PathBuf,
    pub failed: PathBuf,
}

impl OutQueue {
    pub fn of(root: &Root) -> OutQueue {
        let d = root.path.join("bridge").join("out");
        OutQueue { tmp: d.join("tmp"), new: d.join("new"), sent: d.join("sent"), failed: d.join("failed") }
    }

    /// Creates the directories (0700), each checked before use.
    pub fn ensure(&self, root: &Root) -> Result<(), BridgeError> {
        let base = root.path.join("bridge");
        for d in [base.clone(), base.join("out"), self.tmp.clone(), self.new.clone(), self.sent.clone(), self.failed.clone()] {
            if std::fs::symlink_metadata(&d).is_err() {
                crate::root::mkdir_private(&d)?;
            }
            crate::root::check_private(&d)?;
        }
        Ok(())
    }

    /// Queues `env` durably (writer protocol) under a name that sorts by
    /// its id and follows from its bytes: queueing the same message again
    /// (a router that crashed before moving the original) finds it there.
    pub fn enqueue(&self, root: &Root, env: &Envelope) -> Result<String, BridgeError> {
        env.validate().map_err(BridgeError::Refused)?;
        self.ensure(root)?;
        let bytes = serde_json::to_vec(env).map_err(|e| BridgeError::Refused(e.to_string()))?;
        let name = format!("{}~{}~{:016x}.json", env.id, env.sender, crate::root::fnv1a(&bytes));
        if name.len() > 255 || !crate::queue::format::safe_file_name(&name) {
            return Err(BridgeError::Refused(format!("message id {:?} cannot name a file", env.id)));
        }
        for d in [&self.new, &self.sent] {
            if crate::fsx::read_bounded(&d.join(&name), bytes.len() as u64).is_ok_and(|b| b == bytes) {
                return Ok(name);
            }
        }
        spool::write_atomic(&self.tmp, &self.new, &name, &bytes)?;
        Ok(name)
    }

    /// Messages waiting to be published.
    pub fn pending(&self) -> usize {
        spool::depth(&self.new)
    }
}

/// `peerspool send name@host` outside a session: checks everything, then
/// queues the message for the bridge; returns its id (the task id on the
/// other host). `from` is the local sender, `reply_to` a local or
/// qualified address (default `from`), qualified here with `me`.
pub fn send(root: &Root, me: &str, to: &super::address::Address, text: &str, topic: Option<String>, from: &str, reply_to: Option<&str>) -> Result<String, BridgeError> {
    use super::address;
    if !crate::queue::names::is_valid(from) {
        return Err(BridgeError::BadAddress { what: "--from", name: from.escape_debug().to_string() });
    }
    let reply_to = match reply_to {
        Some(r) => address::check("--reply-to", r)?.qualified(me),
        None => format!("{from}@{me}"),
    };
    let name = spool::unique_name();
    let id = name.trim_end_matches(".json").to_string();
    let env = Envelope {
        v: 1,
        id: id.clone(),
        sender: from.into(),
        to: to.to_string(),
        src: None,
        reply_to,
        topic,
        in_reply_to: None,
        hops: 0,
        origin: Some(format!("{from}@{me}")),
        notice: None,
        text: text.into(),
    };
    OutQueue::of(root).enqueue(root, &env)?;
    Ok(id)
}

/// Queues a daemon's verdict for `to` on another host (its inbox there),
/// from `sender` on this host `me`, and wakes the publisher. Idempotent:
/// the same verdict queued again finds its file (also in `sent/`).
#[allow(clippy::too_many_arguments)]
pub fn queue_notice(root: &Root, me: &str, to: &str, sender: &str, id: String, in_reply_to: Option<String>, notice: super::envelope::Notice, text: String) -> Result<(), BridgeError> {
    let env = Envelope {
        v: 1,
        id,
        sender: sender.into(),
        to: to.into(),
        src: None,
        reply_to: format!("{sender}@{me}"),
        topic: None,
        in_reply_to,
        hops: 0,
        origin: None,
        notice: Some(notice),
        text,
    };
    OutQueue::of(root).enqueue(root, &env)?;
    super::kick_active();
    Ok(())
}

/// Queues a `task-failed` notice about message `id` for `to` on another
/// host, where its waiter matches it by `in_reply_to` (`send --wait` ends
/// with exit 3). `tag` names the notice's own id (`<id>~<tag>`). Best
/// effort: returns `to` for the log, or None (warned) when it cannot be
/// queued; the local record of the failure stands either way.
#[allow(clippy::too_many_arguments)]
pub fn queue_failure(root: &Root, me: &str, to: String, sender: &str, id: &str, chain: String, tag: &str, text: String) -> Option<String> {
    let notice = super::envelope::Notice { kind: super::envelope::TASK_FAILED.into(), chain, message: Some(id.to_string()), max_hops: None };
    match queue_notice(root, me, &to, sender, format!("{id}~{tag}"), Some(id.to_string()), notice, text) {
        Ok(()) => Some(to),
        Err(e) => {
            tracing::warn!(sender, message = id, to = %to, error = %e, "cannot queue the failure notice for another host");
            None
        }
    }
}

/// The de-duplication id: the source host and the queue file's stem
/// (id, sender and a hash of the bytes), so a re-publish of one message is
/// dropped by the stream while two messages sharing an id are not.
pub fn msg_id(me: &str, name: &str) -> String {
    format!("{me}:{}", name.trim_end_matches(".json"))
}

/// One queued file, ready to publish, or refused for good.
enum Prepared {
    Ready { name: String, subject: String, payload: Vec<u8> },
    Refuse { name: String, reason: String },
}

fn prepare(q: &OutQueue, name: &str, me: &str, prefix: &str, lim: &Limits) -> Option<Prepared> {
    let path = q.new.join(name);
    let refuse = |reason: String| Some(Prepared::Refuse { name: name.to_string(), reason });
    let bytes = match spool::read_checked(&path, lim) {
        Ok(b) => b,
        Err(_) if std::fs::symlink_metadata(&path).is_err() => return None,
        Err(r) => return refuse(r.to_string()),
    };
    let mut env: Envelope = match serde_json::from_slice(&bytes) {
        Ok(e) => e,
        Err(e) => return refuse(format!("invalid-json: {e}")),
    };
    env.src = Some(me.to_string());
    let to = match env.validate() {
        Ok(a) => a,
        Err(r) => return refuse(format!("bad-payload: {r}")),
    };
    let Some(dst) = to.remote_host(me).map(str::to_string) else {
        return refuse(format!("bad-destination: {} is on this host", env.to));
    };
    let payload = match serde_json::to_vec(&env) {
        Ok(p) => p,
        Err(e) => return refuse(e.to_string()),
    };
    Some(Prepared::Ready { name: name.to_string(), subject: subject::for_message(prefix, &dst, me), payload })
}

/// Outcome of one pass over the queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// Everything that was queued went out (n messages acknowledged).
    Drained(usize),
    /// NATS did not take a message: the reason; the rest waits.
    Waiting(String),
}

/// Publishes what is queued, in name order, `PUBLISH_WINDOW` at a time.
pub async fn pass(js: &jetstream::Context, root: &Root, me: &str, prefix: &str, log: &crate::logfmt::Log) -> Result<Pass, BridgeError> {
    let q = OutQueue::of(root);
    let lim = Limits::default();
    let mut total = 0;
    loop {
        let names = spool::list(&q.new)?;
        if names.is_empty() {
            return Ok(Pass::Drained(total));
        }
        let mut inflight = Vec::with_capacity(PUBLISH_WINDOW);
        for name in names.iter().take(PUBLISH_WINDOW) {
            match prepare(&q, name, me, prefix, &lim) {
                None => {}
                Some(Prepared::Refuse { name, reason }) => {
                    spool::fail(&q.new, &q.failed, &name, &reason)?;
                    log.write(&[("event", "bridge-out"), ("file", &name), ("outcome", "failed"), ("reason", &reason)]);
                }
                Some(Prepared::Ready { name, subject, payload }) => {
                    let publish = jetstream::message::PublishMessage::build().payload(payload.into()).message_id(msg_id(me, &name));
                    match js.send_publish(subject.clone(), publish).await {
                        Ok(f) => inflight.push((name, subject, f)),
                        Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                            let reason = format!("too-large: {e} (raise the server's max_payload)");
                            spool::fail(&q.new, &q.failed, &name, &reason)?;
                        }
                        Err(e) => {
                            // Later messages must not overtake this one.
                            return settle(inflight, &q, log, &mut total).await.map(|_| Pass::Waiting(e.to_string()));
                        }
                    }
                }
            }
        }
        if let Some(reason) = settle(inflight, &q, log, &mut total).await? {
            return Ok(Pass::Waiting(reason));
        }
    }
}

/// Awaits the acks in publish order; each acknowledged file moves to
/// `sent/`. Stops at the first failure (returned), leaving the rest queued.
async fn settle(
    inflight: Vec<(String, String, jetstream::context::PublishAckFuture)>,
    q: &OutQueue,
    log: &crate::logfmt::Log,
    total: &mut usize,
) -> Result<Option<String>, BridgeError> {
    let mut lines: Vec<(String, String, String)> = vec![];
    let mut failure = None;
    for (name, subject, f) in inflight {
        match f.await {
            Ok(ack) => {
                spool::finish(&q.new, &q.sent, &name)?;
                *total += 1;
                let dup = if ack.duplicate { "yes" } else { "no" };
                lines.push((name, subject, format!("{}:{dup}", ack.sequence)));
            }
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    let rows: Vec<Vec<(&str, &str)>> = lines
        .iter()
        .map(|(n, s, a)| {
            let (seq, dup) = a.split_once(':').unwrap_or((a, "no"));
            vec![("event", "bridge-out"), ("file", n.as_str()), ("subject", s.as_str()), ("seq", seq), ("duplicate", dup), ("outcome", "published")]
        })
        .collect();
    log.write_lines(&rows);
    Ok(failure)
}

/// Drains the queue until `stop`. Wakes at once when `kick` is notified
/// (the router queued a message, or the watch on `new/` saw a file
/// arrive); otherwise re-lists `new/` every `relist` as a safety net.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    js: jetstream::Context,
    root: Root,
    me: String,
    prefix: String,
    status: Arc<Status>,
    kick: Arc<tokio::sync::Notify>,
    relist: Duration,
    log: Arc<crate::logfmt::Log>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let wait = match pass(&js, &root, &me, &prefix, &log).await {
            Ok(Pass::Drained(_)) => {
                status.set_out_ok();
                backoff = Duration::from_millis(100);
                relist
            }
            Ok(Pass::Waiting(reason)) => {
                status.set_out_waiting(&reason);
                backoff = (backoff * 2).min(Duration::from_secs(2));
                backoff
            }
            Err(e) => {
                status.set_out_waiting(&format!("local: {e}"));
                backoff = (backoff * 2).min(Duration::from_secs(2));
                backoff
            }
        };
        status.set_pending_out(OutQueue::of(&root).pending());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = kick.notified() => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(id: &str) -> Envelope {
        Envelope {
            v: 1,
            id: id.into(),
            sender: "script".into(),
            to: "b@h2".into(),
            src: None,
            reply_to: "script@h1".into(),
            topic: None,
            in_reply_to: None,
            hops: 0,
            origin: None,
            notice: None,
            text: "hi".into(),
        }
    }

    #[test]
    fn queueing_is_durable_ordered_and_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let r = Root::new(d.path().join("r"));
        r.ensure().unwrap();
        let q = OutQueue::of(&r);
        let a = q.enqueue(&r, &env("0002")).unwrap();
        let b = q.enqueue(&r, &env("0001")).unwrap();
        assert_eq!(q.enqueue(&r, &env("0002")).unwrap(), a, "same message, same file");
        assert_eq!(spool::list(&q.new).unwrap(), vec![b.clone(), a.clone()]);
        let mut other = env("0002");
        other.text = "different".into();
        assert_ne!(q.enqueue(&r, &other).unwrap(), a, "same id, other bytes: both kept");
        assert_eq!(q.pending(), 3);
        assert!(msg_id("h1", &a).starts_with("h1:0002~script~"));
        assert!(q.enqueue(&r, &Envelope { to: "b".into(), ..env("x") }).is_err());
    }

    #[test]
    fn a_file_for_this_host_or_garbage_is_failed_not_published() {
        let d = tempfile::tempdir().unwrap();
        let r = Root::new(d.path().join("r"));
        r.ensure().unwrap();
        let q = OutQueue::of(&r);
        q.ensure(&r).unwrap();
        let n = q.enqueue(&r, &Envelope { to: "b@h1".into(), ..env("1") }).unwrap();
        assert!(matches!(prepare(&q, &n, "h1", "peerspool", &Limits::default()), Some(Prepared::Refuse { .. })));
        match prepare(&q, &n, "h3", "peerspool", &Limits::default()) {
            Some(Prepared::Ready { subject, payload, .. }) => {
                assert_eq!(subject, "peerspool.msg.h1.h3");
                let e: Envelope = serde_json::from_slice(&payload).unwrap();
                assert_eq!(e.src.as_deref(), Some("h3"), "the source is stamped at publish");
            }
            _ => panic!("should publish"),
        }
        spool::write_atomic(&q.tmp, &q.new, "junk.json", b"{").unwrap();
        assert!(matches!(prepare(&q, "junk.json", "h1", "peerspool", &Limits::default()), Some(Prepared::Refuse { .. })));
    }
}
