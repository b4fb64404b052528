//! Inbound: the durable consumer of this host's subjects, and the landing
//! of each message in the local spool or inbox by the writer protocol
//! (stage, fsync, rename, fsync the directory). A message is acknowledged
//! only once its file is durable; a redelivered one is recognised by its
//! name and bytes and written once.

use super::envelope::Envelope;
use super::status::Status;
use super::subject::{self, Refusal};
use super::BridgeError;
use crate::root::Root;
use crate::queue::spool::{self, Queue};
use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures_util::StreamExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What happened to one inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landed {
    /// Written under this name (in `new/` of the spool or inbox).
    Written { name: String, peer: bool },
    /// Already there: a redelivery (the publish or our ack was lost).
    Duplicate { name: String },
    /// Never acceptable here: recorded in `bridge/refused/`, not retried.
    Refused(Refusal),
}

/// A recipient's directories: where the copy goes and where an earlier
/// copy of it may already be (readers move files on).
struct Dest {
    tmp: PathBuf,
    new: PathBuf,
    seen: Vec<PathBuf>,
    peer: bool,
}

/// `inbox_only`: a notice goes to the inbox even of a peer (in its spool
/// it would be a task, and an answer to it would restart the conversation).
fn dest_for(root: &Root, name: &str, inbox_only: bool) -> Result<Result<Dest, Refusal>, BridgeError> {
    let refuse = |e: crate::Error| Ok(Err(Refusal::BadPayload(format!("recipient directory refused: {e}"))));
    if !inbox_only && root.is_peer(name) {
        let p = root.peer(name)?;
        if let Err(e) = root.check_peer_dirs(&p) {
            return refuse(e);
        }
        let q = Queue::spool(&p);
        return Ok(Ok(Dest { tmp: q.tmp, new: q.new.clone(), seen: vec![q.new, q.cur, q.done, q.failed], peer: true }));
    }
    let dir = root.inbox(name)?;
    let (tmp, new, cur) = (dir.join("tmp"), dir.join("new"), dir.join("cur"));
    if std::fs::symlink_metadata(&dir).is_ok() {
        if let Err(e) = crate::root::check_private(&dir) {
            return refuse(e);
        }
    }
    if std::fs::symlink_metadata(&new).is_err() || std::fs::symlink_metadata(&tmp).is_err() {
        crate::root::mkdir_private(&tmp)?;
        crate::root::mkdir_private(&new)?;
        spool::fsync_dir(&dir)?;
        spool::fsync_dir(&root.inbox_dir())?;
    }
    for d in [&tmp, &new] {
        if let Err(e) = crate::root::check_private(d) {
            return refuse(e);
        }
    }
    Ok(Ok(Dest { tmp, new: new.clone(), seen: vec![new, cur], peer: false }))
}

/// The copy's name: `<id>.json`, or, when a different file holds that
/// name, `<id>~<sender>@<src>~<hash>.json` (sorts after it, follows from
/// the bytes). `None`: a byte-identical copy is already there.
fn placement(d: &Dest, env: &Envelope, src: &str, bytes: &[u8]) -> Result<Option<String>, Refusal> {
    let first = format!("{}.json", env.id);
    let second = format!("{}~{}@{src}~{:016x}.json", env.id, env.sender, crate::root::fnv1a(bytes));
    if second.len() > 240 || !crate::queue::format::safe_file_name(&first) {
        return Err(Refusal::BadPayload(format!("id {:?} cannot name a file", env.id)));
    }
    let mut free = None;
    for cand in [first, second] {
        let mut taken = false;
        for s in &d.seen {
            let p = s.join(&cand);
            if std::fs::symlink_metadata(&p).is_ok() {
                if crate::fsx::read_bounded(&p, bytes.len() as u64).is_ok_and(|b| b == bytes) {
                    return Ok(None);
                }
                taken = true;
            }
        }
        if !taken && free.is_none() {
            free = Some(cand);
        }
    }
    free.map(Some).ok_or_else(|| Refusal::BadPayload("no free name (hash collision)".into()))
}

/// One message to land: its envelope and the source host from its subject.
pub struct Arrival {
    pub env: Envelope,
    pub src: String,
}

/// Lands several messages with one sync for the batch, in order: each copy
/// is staged and fsynced, then renamed into `new/` (never replacing), then
/// each `new/` that received one is fsynced. Only then are they `Written`.
pub fn land_batch(root: &Root, me: &str, items: &[Arrival]) -> Vec<Result<Landed, BridgeError>> {
    let mut out: Vec<Option<Result<Landed, BridgeError>>> = items.iter().map(|_| None).collect();
    let mut staged: Vec<(usize, PathBuf, PathBuf, String, bool)> = vec![];
    for (i, a) in items.iter().enumerate() {
        match stage_one(root, me, a, i) {
            Ok(Ok((tmp, new, name, peer))) => staged.push((i, tmp, new, name, peer)),
            Ok(Err(l)) => out[i] = Some(Ok(l)),
            Err(e) => out[i] = Some(Err(e)),
        }
    }
    let files: Vec<PathBuf> = staged.iter().map(|s| s.1.clone()).collect();
    if let Err(e) = spool::sync_staged(&files) {
        for (i, tmp, ..) in staged.drain(..) {
            let _ = std::fs::remove_file(&tmp);
            out[i] = Some(Err(BridgeError::Local(e.to_string())));
        }
    }
    let mut dirs = std::collections::BTreeSet::new();
    let mut placed = vec![];
    for (i, tmp, new, name, peer) in staged {
        match spool::rename_noreplace(&tmp, &new.join(&name)) {
            Ok(()) => {
                dirs.insert(new);
                placed.push((i, name, peer));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                // Taken meanwhile (a local writer chose the same name): the
                // redelivery lands it under its second name.
                out[i] = Some(Err(BridgeError::Local(format!("{}: {e}", new.join(&name).display()))));
            }
        }
    }
    let mut dir_err = None;
    for d in &dirs {
        if let Err(e) = spool::fsync_dir(d) {
            dir_err = Some(e.to_string());
        }
    }
    for (i, name, peer) in placed {
        if peer && dir_err.is_none() {
            // The loop guard's record for the recipient's replies: the
            // conversation's hops and origin, carried across hosts.
            let a = &items[i];
            let origin = a.env.origin.clone().unwrap_or_else(|| format!("{}@{}", a.env.sender, a.src));
            let origin = super::address::parse(&origin).map(|o| o.normalized(me).to_string()).unwrap_or(origin);
            let chain = crate::daemon::hops::Chain { hops: a.env.hops, origin, root: a.env.id.clone() };
            if let Some(to) = a.env.recipient() {
                let _ = crate::daemon::hops::record(root, &to, &a.env.id, &chain);
            }
        }
        out[i] = Some(match &dir_err {
            Some(e) => Err(BridgeError::Local(e.clone())),
            None => Ok(Landed::Written { name, peer }),
        });
    }
    out.into_iter().map(|r| r.unwrap_or_else(|| Err(BridgeError::Local("not processed".into())))).collect()
}

type StagedOne = (PathBuf, PathBuf, String, bool);

fn stage_one(root: &Root, me: &str, a: &Arrival, i: usize) -> Result<Result<StagedOne, Landed>, BridgeError> {
    let refuse = |r: Refusal| Ok(Err(Landed::Refused(r)));
    let to = match a.env.validate() {
        Ok(t) => t,
        Err(r) => return refuse(Refusal::BadPayload(r)),
    };
    if to.host.as_deref() != Some(me) {
        return refuse(Refusal::NotForUs { dst: to.host.unwrap_or_default() });
    }
    let d = match dest_for(root, &to.name, a.env.notice.is_some())? {
        Ok(d) => d,
        Err(r) => return refuse(r),
    };
    let bytes = a.env.to_local(&a.src, me, d.peer).map_err(BridgeError::Refused)?;
    let name = match placement(&d, &a.env, &a.src, &bytes) {
        Ok(Some(n)) => n,
        Ok(None) => return Ok(Err(Landed::Duplicate { name: format!("{}.json", a.env.id) })),
        Err(r) => return refuse(r),
    };
    let tmp = spool::stage(&d.tmp, &format!(".bridge.{}.{i}.{name}", std::process::id()), &bytes)?;
    Ok(Ok((tmp, d.new, name, d.peer)))
}

/// Records a refused message (its payload and the reason) in
/// `bridge/refused/`, so nothing vanishes without a trace.
pub fn record_refusal(root: &Root, seq: u64, subject: &str, payload: &[u8], why: &Refusal) -> Result<(), BridgeError> {
    let dir = root.path.join("bridge").join("refused");
    if std::fs::symlink_metadata(&dir).is_err() {
        crate::root::mkdir_private(&root.path.join("bridge"))?;
        crate::root::mkdir_private(&dir)?;
    }
    let name = format!("{seq:020}.json");
    let err = format!("{why}; subject {subject}\n");
    let _ = std::fs::remove_file(dir.join(format!("{name}.error")));
    crate::root::write_private(&dir.join(format!("{name}.error")), err.as_bytes()).map_err(|e| BridgeError::Local(e.to_string()))?;
    let _ = std::fs::remove_file(dir.join(&name));
    crate::root::write_private(&dir.join(&name), payload).map_err(|e| BridgeError::Local(e.to_string()))?;
    Ok(())
}

/// Most messages landed per batch (one fsync round for all of them).
pub const LAND_BATCH: usize = 256;

/// Settings of the inbound loop.
pub struct InboundCfg {
    pub me: String,
    pub prefix: String,
    pub stream: String,
    pub allow: Option<Vec<String>>,
}

/// Consumes until `stop`; reconnects (re-creating the pull) after errors.
pub async fn run(js: jetstream::Context, root: Root, cfg: InboundCfg, status: Arc<Status>, log: Arc<crate::logfmt::Log>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let reason = match consume(&js, &root, &cfg, &status, &log, &mut stop).await {
            Ok(()) => return,
            Err(e) => e.to_string(),
        };
        status.set_in_waiting(&reason);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn consume(
    js: &jetstream::Context,
    root: &Root,
    cfg: &InboundCfg,
    status: &Status,
    log: &crate::logfmt::Log,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), BridgeError> {
    let consumer = super::stream_setup::consumer(js, &cfg.stream, &cfg.prefix, &cfg.me).await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(LAND_BATCH)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| BridgeError::Nats(e.to_string()))?
        .ready_chunks(LAND_BATCH);
    status.set_in_ok();
    loop {
        let chunk = tokio::select! {
            c = messages.next() => c,
            _ = stop.changed() => return Ok(()),
        };
        let Some(chunk) = chunk else {
            return Err(BridgeError::Nats("consumer stream ended".into()));
        };
        let mut msgs = vec![];
        let mut err = None;
        for m in chunk {
            match m {
                Ok(m) => msgs.push(m),
                Err(e) => err = Some(e.to_string()),
            }
        }
        handle(root, cfg, log, msgs).await?;
        status.set_in_ok();
        if let Some(e) = err {
            return Err(BridgeError::Nats(e));
        }
    }
}

/// Identifies, lands and acknowledges one chunk, in stream order.
async fn handle(root: &Root, cfg: &InboundCfg, log: &crate::logfmt::Log, msgs: Vec<jetstream::Message>) -> Result<(), BridgeError> {
    let mut arrivals = vec![];
    let mut slots = vec![];
    let mut meta = vec![];
    for m in &msgs {
        let id = serde_json::from_slice::<serde_json::Value>(&m.payload).ok().and_then(|v| v["id"].as_str().map(|s| s.chars().take(200).collect::<String>()));
        let src = subject::parse(&cfg.prefix, &m.subject).map(|(_, s)| s.to_string()).unwrap_or_default();
        meta.push((id.unwrap_or_default(), src));
        let parsed: Result<Envelope, Refusal> = serde_json::from_slice(&m.payload).map_err(|e| Refusal::BadPayload(e.to_string()));
        let claimed = parsed.as_ref().ok().and_then(|e| e.src.clone());
        match parsed.and_then(|env| subject::identify(&cfg.prefix, &m.subject, &cfg.me, cfg.allow.as_deref(), claimed.as_deref()).map(|s| (env, s.to_string()))) {
            Ok((env, src)) => {
                slots.push(Ok(arrivals.len()));
                arrivals.push(Arrival { env, src });
            }
            Err(r) => slots.push(Err(r)),
        }
    }
    let root2 = root.clone();
    let me = cfg.me.clone();
    let landed = tokio::task::spawn_blocking(move || {
        let r = land_batch(&root2, &me, &arrivals);
        (arrivals, r)
    })
    .await
    .map_err(|e| BridgeError::Local(e.to_string()))?;
    let (arrivals, mut results) = landed;
    let mut results: Vec<Option<Result<Landed, BridgeError>>> = results.drain(..).map(Some).collect();
    let mut lines: Vec<Vec<(String, String)>> = vec![];
    let mut failure = None;
    for ((m, slot), (env, src)) in msgs.iter().zip(slots).zip(meta) {
        let info = m.info().ok();
        let seq = info.as_ref().map(|i| i.stream_sequence).unwrap_or(0);
        let delivered = info.as_ref().map(|i| i.delivered).unwrap_or(1);
        // Identified arrivals only: a refusal's sender is told (bounce).
        let arrival = slot.as_ref().ok().map(|&k| &arrivals[k]);
        let outcome = match slot {
            Err(r) => Ok(Landed::Refused(r)),
            Ok(k) => results[k].take().unwrap_or_else(|| Err(BridgeError::Local("lost result".into()))),
        };
        match outcome {
            Ok(Landed::Written { name, .. }) => {
                m.ack().await.map_err(|e| BridgeError::Nats(e.to_string()))?;
                lines.push(row("written", &name, &env, &src, seq, delivered, ""));
            }
            Ok(Landed::Duplicate { name }) => {
                m.ack().await.map_err(|e| BridgeError::Nats(e.to_string()))?;
                lines.push(row("duplicate", &name, &env, &src, seq, delivered, ""));
            }
            Ok(Landed::Refused(r)) => {
                record_refusal(root, seq, &m.subject, &m.payload, &r)?;
                m.ack_with(AckKind::Term).await.map_err(|e| BridgeError::Nats(e.to_string()))?;
                let mut l = row("refused", "", &env, &src, seq, delivered, &r.to_string());
                // Rare (h1 checks what it publishes): queued inline.
                if let Some(told) = arrival.and_then(|a| super::bounce::tell(root, &cfg.me, &a.env, &a.src, &r)) {
                    l.push(("told".into(), told));
                }
                lines.push(l);
            }
            Err(e) => {
                // Not durable here: not acknowledged. The rest of the chunk
                // must not overtake it, so it is all redelivered later.
                let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                failure.get_or_insert(e);
            }
        }
    }
    let rows: Vec<Vec<(&str, &str)>> = lines.iter().map(|l| l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()).collect();
    log.write_lines(&rows);
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn row(outcome: &str, name: &str, id: &str, src: &str, seq: u64, delivered: i64, reason: &str) -> Vec<(String, String)> {
    let mut v = vec![
        ("event".to_string(), "bridge-in".to_string()),
        ("id".into(), id.to_string()),
        ("src".into(), src.to_string()),
        ("seq".into(), seq.to_string()),
        ("outcome".into(), outcome.to_string()),
    ];
    if !name.is_empty() {
        v.push(("file".into(), name.to_string()));
    }
    if delivered > 1 {
        v.push(("redelivered".into(), delivered.to_string()));
    }
    if !reason.is_empty() {
        v.push(("reason".into(), reason.to_string()));
    }
    v
}

/// `pull::Config` for host `me` (also used by `doctor` to compare).
pub fn consumer_config(prefix: &str, me: &str) -> pull::Config {
    pull::Config {
        durable_name: Some(subject::consumer_name(me)),
        filter_subject: subject::inbound_filter(prefix, me),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ack_wait: Duration::from_secs(30),
        max_deliver: -1,
        max_ack_pending: 1024,
        ..Default::default()
    }
}
