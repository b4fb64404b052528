//! Routing of an agent's outbox: the directory names the sender, the file
//! names the recipient. A peer recipient gets a task in its spool; any
//! other address gets a file in `inbox/<address>/new/`. Routing is
//! idempotent by file name, so a crash between copy and move re-routes
//! without duplicating.

use crate::error::Result;
use crate::queue::format::{parse_outbox, InboxMsg, OutMsg, Reject, Task};
use crate::queue::spool::{self, read_checked, Limits, Queue};
use crate::root::Root;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    Peer(String),
    Inbox(String),
    /// `name@host` on another host: queued for the NATS bridge.
    Remote(String),
}

#[derive(Debug)]
pub enum Outcome {
    Routed { msg: OutMsg, to: Routed, id: String, chain: crate::daemon::hops::Chain },
    Rejected(String),
    /// Past the hop limit: in `outbox/failed/`, the originator told by
    /// the inbox message `notice`.
    LoopLimit { id: String, in_reply_to: Option<String>, chain: crate::daemon::hops::Chain, notice: String },
    /// Left in `outbox/new/` by the pair-rate guard until `until_ms`.
    Held { until_ms: u64, why: String },
    /// The file vanished (another pass took it).
    Gone,
}

/// A message accepted and (unless a copy already existed) staged in the
/// destination's `tmp/`, waiting for the batch's sync.
struct Staged {
    msg: OutMsg,
    to: Routed,
    id: String,
    chain: crate::daemon::hops::Chain,
    /// The staged copy, or None when already routed.
    file: Option<StagedFile>,
}

struct StagedFile {
    tmp: PathBuf,
    dest: Dest,
    bytes: Vec<u8>,
    /// The name found free when staging, tried first.
    name: String,
}

/// A recipient's directories, looked up once per batch.
#[derive(Clone)]
struct Dest {
    tmp: PathBuf,
    new: PathBuf,
    /// Where an earlier copy may be found: `new/` and what readers move it to.
    seen: Vec<PathBuf>,
}

/// Where the copy goes: the message's own name, or, when a different file
/// holds it there (another sender's message, or an earlier one of this
/// sender with the same name), `<stem>~<owner>~<hash of the copy>.json`,
/// which sorts after it. The second name follows from the bytes, so a
/// re-route after a crash finds its copy under either. `Ok(None)`: a
/// byte-identical copy is already in place.
fn placement(dest: &Dest, name: &str, owner: &str, bytes: &[u8]) -> Result<Option<String>> {
    let stem = name.strip_suffix(".json").unwrap_or(name);
    let cands = [name.to_string(), format!("{stem}~{owner}~{:016x}.json", crate::root::fnv1a(bytes))];
    let mut free = None;
    for cand in cands {
        let mut taken = false;
        for d in &dest.seen {
            let p = d.join(&cand);
            if std::fs::symlink_metadata(&p).is_ok() {
                if same_bytes(&p, bytes) {
                    return Ok(None);
                }
                taken = true;
            }
        }
        if !taken && free.is_none() {
            free = Some(cand);
        }
    }
    // Both taken by other bytes: a 64-bit hash collision on a reused name.
    free.map(Some).ok_or_else(|| crate::Error::io(&dest.new, std::io::Error::other(format!("no free name for {name}"))))
}

/// Whatever holds the name may be a FIFO, a symlink or a huge file put
/// there by any same-user process: a non-blocking, non-following open of a
/// regular file, read no further than the copy's length.
fn same_bytes(p: &std::path::Path, bytes: &[u8]) -> bool {
    crate::fsx::read_bounded(p, bytes.len() as u64).is_ok_and(|b| b == bytes)
}

/// Puts a synced copy in place under a free name without replacing
/// anything: the rename fails if the name was taken meanwhile (another peer
/// routing a same-named file to the same place), then placement runs again.
fn place(sf: &StagedFile, name: &str, owner: &str) -> Result<bool> {
    let mut cand = sf.name.clone();
    for _ in 0..4 {
        let target = sf.dest.new.join(&cand);
        match spool::rename_noreplace(&sf.tmp, &target) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match placement(&sf.dest, name, owner, &sf.bytes)? {
                Some(c) => cand = c,
                None => {
                    let _ = std::fs::remove_file(&sf.tmp);
                    return Ok(false);
                }
            },
            Err(e) => {
                let _ = std::fs::remove_file(&sf.tmp);
                return Err(crate::Error::io(target, e));
            }
        }
    }
    let _ = std::fs::remove_file(&sf.tmp);
    Err(crate::Error::io(&sf.dest.new, std::io::Error::other(format!("no free name for {name}"))))
}

/// Routes `outbox/new/<name>` of `owner`.
pub fn route(root: &Root, owner: &str, name: &str, lim: &Limits) -> Result<Outcome> {
    route_batch(root, owner, &[name.to_string()], lim).pop().map(|(_, r)| r).unwrap_or(Ok(Outcome::Gone))
}

/// Routes several outbox files with one sync for the batch. Order of
/// durability: every copy is fsynced (`sync_staged`), then renamed into its `new/`
/// and that directory synced, and only then does the original leave
/// `outbox/new/` — a crash at any point re-routes, never loses.
pub fn route_batch(root: &Root, owner: &str, names: &[String], lim: &Limits) -> Vec<(String, Result<Outcome>)> {
    route_guarded(root, owner, names, lim, &crate::daemon::hops::Guard::default())
}

/// `route_batch` with the loop guard's settings.
pub fn route_guarded(root: &Root, owner: &str, names: &[String], lim: &Limits, guard: &crate::daemon::hops::Guard) -> Vec<(String, Result<Outcome>)> {
    let ob = match root.peer(owner) {
        Ok(p) => Queue::outbox(&p),
        Err(e) => return names.iter().map(|n| (n.clone(), Err(crate::Error::io(root.peers_dir(), std::io::Error::other(e.to_string()))))).collect(),
    };
    let mut results: Vec<Option<Result<Outcome>>> = names.iter().map(|_| None).collect();
    let mut staged: Vec<(usize, Staged)> = vec![];
    let mut dests: HashMap<String, (Routed, Dest)> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        match stage_one(root, owner, &ob, name, lim, &mut dests, guard) {
            Ok(Ok(s)) => staged.push((i, s)),
            Ok(Err(o)) => results[i] = Some(Ok(o)),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let files: Vec<PathBuf> = staged.iter().filter_map(|(_, s)| s.file.as_ref().map(|f| f.tmp.clone())).collect();
    if let Err(e) = spool::sync_staged(&files) {
        for f in &files {
            let _ = std::fs::remove_file(f);
        }
        for (i, _) in staged.drain(..) {
            results[i] = Some(Err(crate::Error::io(&ob.new, std::io::Error::other(e.to_string()))));
        }
    }
    let mut dirs = std::collections::BTreeSet::new();
    let mut placed = vec![];
    for (i, s) in staged {
        if let Some(sf) = &s.file {
            match place(sf, &names[i], owner) {
                Ok(true) => {
                    dirs.insert(sf.dest.new.clone());
                }
                Ok(false) => {}
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            }
        }
        placed.push((i, s));
    }
    let synced: Vec<(PathBuf, bool)> = dirs.into_iter().map(|d| {
        let ok = spool::fsync_dir(&d).is_ok();
        (d, ok)
    }).collect();
    for (i, s) in placed {
        let name = &names[i];
        let dir_ok = s.file.as_ref().is_none_or(|sf| synced.iter().all(|(d, ok)| d != &sf.dest.new || *ok));
        results[i] = Some(if !dir_ok {
            Err(crate::Error::io(&ob.new, std::io::Error::other("destination directory sync failed")))
        } else {
            spool::finish(&ob.new, &ob.done, name).map(|_| Outcome::Routed { msg: s.msg, to: s.to, id: s.id, chain: s.chain })
        });
    }
    names.iter().cloned().zip(results.into_iter().map(|r| r.unwrap_or(Ok(Outcome::Gone)))).collect()
}

/// The longest outbox file name that can be routed: its staging name
/// (`.route.<owner>.<name>`) and its clash name (`<stem>~<owner>~<hash>.json`)
/// must fit in a 255-byte file name whatever the owner's name.
pub const ROUTE_NAME_MAX: usize = 170;

/// Every directory a copy is written into, or compared against, must be a
/// real directory of ours that nobody else can write: a symlinked
/// `inbox/<address>` or `spool/new` would carry the copy outside the root.
fn check_dirs(dirs: &[&std::path::Path]) -> std::result::Result<(), Reject> {
    for d in dirs {
        match crate::root::check_private(d) {
            Ok(()) => {}
            // Readers create `cur/` when they first consume; absent is fine.
            Err(crate::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && d.ends_with("cur") => {}
            Err(e) => return Err(Reject::BadDestination(format!("recipient directory refused: {e}"))),
        }
    }
    Ok(())
}

/// The recipient's directories (created for a new inbox address).
/// `Ok(Err(_))`: the destination exists but is unsafe to write into.
fn dest_for(root: &Root, to: &str) -> Result<std::result::Result<(Routed, Dest), Reject>> {
    if root.is_peer(to) {
        let p = root.peer(to)?;
        let q = Queue::spool(&p);
        if let Err(r) = check_dirs(&[&p.dir, &p.spool(), &q.tmp, &q.new, &q.cur, &q.done]) {
            return Ok(Err(r));
        }
        return Ok(Ok((Routed::Peer(to.into()), Dest { tmp: q.tmp, seen: vec![q.new.clone(), q.cur, q.done], new: q.new })));
    }
    let dir = root.inbox(to)?;
    let (tmp, new) = (dir.join("tmp"), dir.join("new"));
    if std::fs::symlink_metadata(&new).is_err() || std::fs::symlink_metadata(&tmp).is_err() {
        // Checked first: creating children would follow a symlinked address.
        if std::fs::symlink_metadata(&dir).is_ok() {
            if let Err(r) = check_dirs(&[&dir]) {
                return Ok(Err(r));
            }
        }
        crate::root::mkdir_private(&tmp)?;
        crate::root::mkdir_private(&new)?;
        // A new address's directories must survive a power failure with
        // the copies renamed into them (routing syncs files, not the
        // whole filesystem): their entries are synced here.
        spool::fsync_dir(&dir)?;
        spool::fsync_dir(&root.inbox_dir())?;
    }
    if let Err(r) = check_dirs(&[&root.inbox_dir(), &dir, &tmp, &new, &dir.join("cur")]) {
        return Ok(Err(r));
    }
    Ok(Ok((Routed::Inbox(to.into()), Dest { tmp, seen: vec![new.clone(), dir.join("cur")], new })))
}

/// Judges one file and stages its copy. `Ok(Err(outcome))`: finished here
/// (rejected or gone).
fn stage_one(
    root: &Root,
    owner: &str,
    ob: &Queue,
    name: &str,
    lim: &Limits,
    dests: &mut HashMap<String, (Routed, Dest)>,
    guard: &crate::daemon::hops::Guard,
) -> Result<std::result::Result<Staged, Outcome>> {
    let path = ob.new.join(name);
    let reject = |r: Reject| -> Result<std::result::Result<Staged, Outcome>> {
        spool::fail(&ob.new, &ob.failed, name, &r.to_string())?;
        Ok(Err(Outcome::Rejected(r.to_string())))
    };
    // A name that cannot be staged or stored at the recipient would fail
    // there on every pass: refused here, once.
    if name.len() > ROUTE_NAME_MAX {
        return reject(Reject::NameTooLong { len: name.len(), limit: ROUTE_NAME_MAX });
    }
    let id = name.trim_end_matches(".json").to_string();
    let mut msg = match read_checked(&path, lim).and_then(|b| parse_outbox(&b, owner)) {
        Ok(_) if !crate::queue::format::valid_id(&id) => return reject(Reject::BadId),
        Ok(m) => m,
        Err(_) if std::fs::symlink_metadata(&path).is_err() => return Ok(Err(Outcome::Gone)),
        Err(r) => return reject(r),
    };
    if msg.to.contains('@') {
        match crate::bridge::active_host() {
            None => {
                return reject(Reject::BadDestination(format!(
                    "{} is on another host and this daemon has no NATS bridge (PEERSPOOL_NATS_URL)",
                    msg.to
                )))
            }
            Some(me) => match crate::bridge::address::parse(&msg.to) {
                // `owner@<this host>` is the owner: refused like the bare name.
                Some(a) if a.host.as_deref() == Some(me) && a.name == owner => return reject(Reject::SelfSend),
                Some(a) if a.host.as_deref() == Some(me) => msg.to = a.name,
                _ => return stage_remote(root, owner, ob, name, msg, id, me, guard),
            },
        }
    }
    let (to, dest) = match dests.get(&msg.to) {
        Some(d) => d.clone(),
        None => {
            let d = match dest_for(root, &msg.to)? {
                Ok(d) => d,
                Err(r) => return reject(r),
            };
            dests.insert(msg.to.clone(), d.clone());
            d
        }
    };
    let chain = match crate::daemon::hops::check(root, owner, ob, name, &msg, &id, matches!(to, Routed::Peer(_)), guard)? {
        Ok(c) => c,
        Err(o) => return Ok(Err(o)),
    };
    let bytes = match &to {
        Routed::Peer(_) => serde_json::to_vec(&Task {
            v: 1,
            id: id.clone(),
            from: owner.into(),
            reply_to: msg.reply_to.clone().unwrap_or_else(|| owner.into()),
            topic: msg.topic.clone(),
            in_reply_to: msg.in_reply_to.clone(),
            hops: Some(chain.hops),
            origin: Some(chain.origin.clone()),
            text: msg.text.clone(),
        }),
        Routed::Inbox(_) | Routed::Remote(_) => serde_json::to_vec(&InboxMsg {
            v: 1,
            id: id.clone(),
            from: owner.into(),
            to: msg.to.clone(),
            topic: msg.topic.clone(),
            in_reply_to: msg.in_reply_to.clone(),
            hops: Some(chain.hops),
            origin: Some(chain.origin.clone()),
            notice: None,
            chain: None,
            text: msg.text.clone(),
        }),
    }
    .map_err(|e| crate::Error::io(&path, std::io::Error::other(e)))?;
    let Some(free) = placement(&dest, name, owner, &bytes)? else {
        return Ok(Ok(Staged { msg, to, id, chain, file: None }));
    };
    // Staged under the owner's name too: two peers routing same-named
    // files to one place at once must not share a staging file; the dot
    // keeps it clear of any writer's message name.
    let tmp = spool::stage(&dest.tmp, &format!(".route.{owner}.{name}"), &bytes)?;
    Ok(Ok(Staged { msg, to, id, chain, file: Some(StagedFile { tmp, dest, bytes, name: free }) }))
}

/// A message for another host: queued durably in `bridge/out/new/` (the
/// bridge publishes it), so the original may move to `sent/` like any
/// routed file. Queueing is idempotent by bytes: a re-route after a crash
/// finds the queued copy.
#[allow(clippy::too_many_arguments)]
fn stage_remote(root: &Root, owner: &str, ob: &Queue, name: &str, msg: OutMsg, id: String, me: &str, guard: &crate::daemon::hops::Guard) -> Result<std::result::Result<Staged, Outcome>> {
    let chain = match crate::daemon::hops::check(root, owner, ob, name, &msg, &id, false, guard)? {
        Ok(c) => c,
        Err(o) => return Ok(Err(o)),
    };
    let qualify = |a: &str| crate::bridge::address::parse(a).map(|a| a.qualified(me)).unwrap_or_else(|| a.to_string());
    let env = crate::bridge::envelope::Envelope {
        v: 1,
        id: id.clone(),
        sender: owner.into(),
        to: msg.to.clone(),
        src: None,
        reply_to: qualify(msg.reply_to.as_deref().unwrap_or(owner)),
        topic: msg.topic.clone(),
        in_reply_to: msg.in_reply_to.clone(),
        hops: chain.hops,
        origin: Some(qualify(&chain.origin)),
        notice: None,
        text: msg.text.clone(),
    };
    match crate::bridge::outbound::OutQueue::of(root).enqueue(root, &env) {
        Ok(_) => crate::bridge::kick_active(),
        Err(crate::bridge::BridgeError::Refused(r)) => {
            spool::fail(&ob.new, &ob.failed, name, &Reject::BadDestination(r.clone()).to_string())?;
            return Ok(Err(Outcome::Rejected(r)));
        }
        Err(e) => return Err(e.into()),
    }
    let to = Routed::Remote(msg.to.clone());
    Ok(Ok(Staged { msg, to, id, chain, file: None }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::profile::{Profile, RuntimeKind};

    fn setup() -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        let r = Root::new(d.path().join("r"));
        r.ensure().unwrap();
        for n in ["alice", "bob"] {
            let p = r.peer(n).unwrap();
            r.ensure_peer_dirs(&p).unwrap();
            let mut pr = Profile::new(RuntimeKind::Command, "/tmp".into());
            pr.command = Some(vec!["cat".into()]);
            std::fs::write(p.profile(), pr.to_json()).unwrap();
        }
        (d, r)
    }

    fn drop_out(r: &Root, owner: &str, name: &str, body: &str) {
        let q = Queue::outbox(&r.peer(owner).unwrap());
        q.enqueue(name, body.as_bytes()).unwrap();
    }

    #[test]
    fn routes_to_peer_with_owner_as_sender() {
        let (_d, r) = setup();
        drop_out(&r, "alice", "1.json", r#"{"to":"bob","text":"hi","from":"mallory","in_reply_to":"t0"}"#);
        let o = route(&r, "alice", "1.json", &Limits::default()).unwrap();
        assert!(matches!(o, Outcome::Routed { to: Routed::Peer(ref p), .. } if p == "bob"));
        let b = std::fs::read(r.peer("bob").unwrap().spool_sub("new").join("1.json")).unwrap();
        let t = crate::queue::format::parse_task(&b, "1").unwrap();
        assert_eq!((t.from.as_str(), t.reply_to.as_str(), t.in_reply_to.as_deref()), ("alice", "alice", Some("t0")));
        assert!(r.peer("alice").unwrap().outbox_sub("sent").join("1.json").exists());
        // Routing again (crash before the move) does not duplicate.
        drop_out(&r, "alice", "1.json", r#"{"to":"bob","text":"hi","from":"mallory","in_reply_to":"t0"}"#);
        route(&r, "alice", "1.json", &Limits::default()).unwrap();
        assert_eq!(spool::depth(&r.peer("bob").unwrap().spool_sub("new")), 1);
    }

    #[test]
    fn same_named_messages_from_two_senders_both_arrive() {
        let (_d, r) = setup();
        let new = r.inbox("script").unwrap().join("new");
        let names = || spool::list(&new).unwrap();
        drop_out(&r, "alice", "reply.json", r#"{"to":"script","text":"from alice"}"#);
        drop_out(&r, "bob", "reply.json", r#"{"to":"script","text":"from bob"}"#);
        route(&r, "alice", "reply.json", &Limits::default()).unwrap();
        route(&r, "bob", "reply.json", &Limits::default()).unwrap();
        let got = names();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], "reply.json");
        assert!(got[1].starts_with("reply~bob~"), "{got:?}");
        let m = crate::queue::format::parse_inbox(&std::fs::read(new.join(&got[1])).unwrap()).unwrap();
        assert_eq!((m.from.as_str(), m.id.as_str(), m.text.as_str()), ("bob", "reply", "from bob"));
        // A crash before the move: routing bob's file again finds its copy,
        // even once the first name is free again.
        std::fs::remove_file(new.join("reply.json")).unwrap();
        drop_out(&r, "bob", "reply.json", r#"{"to":"script","text":"from bob"}"#);
        route(&r, "bob", "reply.json", &Limits::default()).unwrap();
        assert_eq!(names(), got[1..].to_vec());
        // Many same-named messages of one sender: each gets its own name.
        for i in 0..100 {
            drop_out(&r, "alice", "reply.json", &format!(r#"{{"to":"script","text":"again {i}"}}"#));
            assert!(matches!(route(&r, "alice", "reply.json", &Limits::default()).unwrap(), Outcome::Routed { .. }));
        }
        assert_eq!(names().len(), 101);
    }

    fn error_of(r: &Root, owner: &str, name: &str) -> String {
        std::fs::read_to_string(r.peer(owner).unwrap().outbox_sub("failed").join(format!("{}.error", spool::stored_name(name)))).unwrap()
    }

    #[test]
    fn a_fifo_holding_the_name_neither_blocks_nor_counts_as_routed() {
        let (_d, r) = setup();
        let bob_done = r.peer("bob").unwrap().spool_sub("done");
        let c = std::ffi::CString::new(bob_done.join("f.json").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a path this test owns.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        drop_out(&r, "alice", "f.json", r#"{"to":"bob","text":"hi"}"#);
        let (tx, rx) = std::sync::mpsc::channel();
        let r2 = r.clone();
        std::thread::spawn(move || {
            let _ = tx.send(route(&r2, "alice", "f.json", &Limits::default()).map(|o| matches!(o, Outcome::Routed { .. })));
        });
        let routed = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("routing blocked on a FIFO");
        assert!(routed.unwrap());
        let got = spool::list(&r.peer("bob").unwrap().spool_sub("new")).unwrap();
        assert!(got.len() == 1 && got[0].starts_with("f~alice~"), "{got:?}");
    }

    #[test]
    fn names_that_cannot_be_routed_are_failed_once_with_a_reason() {
        let (_d, r) = setup();
        let long = format!("{}.json", "l".repeat(245));
        // A stem that is no id would be refused by the recipient as bad-id.
        let over_id = "a b.json".to_string();
        drop_out(&r, "alice", &long, r#"{"to":"bob","text":"hi"}"#);
        drop_out(&r, "alice", &over_id, r#"{"to":"bob","text":"hi"}"#);
        for n in [&long, &over_id] {
            assert!(matches!(route(&r, "alice", n, &Limits::default()).unwrap(), Outcome::Rejected(_)), "{n}");
        }
        assert!(error_of(&r, "alice", &long).starts_with("bad-file-name: "));
        assert!(error_of(&r, "alice", &over_id).starts_with("bad-id: "));
        let id201 = format!("{}.json", "i".repeat(201));
        drop_out(&r, "alice", &id201, r#"{"to":"bob","text":"hi"}"#);
        assert!(matches!(route(&r, "alice", &id201, &Limits::default()).unwrap(), Outcome::Rejected(_)));
        assert!(error_of(&r, "alice", &id201).starts_with("bad-file-name: "));
        let id170 = format!("{}.json", "i".repeat(165));
        drop_out(&r, "alice", &id170, r#"{"to":"bob","text":"hi"}"#);
        assert!(matches!(route(&r, "alice", &id170, &Limits::default()).unwrap(), Outcome::Routed { .. }));
        assert_eq!(spool::depth(&r.peer("alice").unwrap().outbox_sub("new")), 0, "nothing left to retry");
    }

    #[test]
    fn unsafe_destinations_are_refused_once() {
        let (d, r) = setup();
        // A symlinked inbox address: the reply would land outside the root.
        let outside = d.path().join("outside");
        std::fs::create_dir_all(outside.join("new")).unwrap();
        std::os::unix::fs::symlink(&outside, r.inbox_dir().join("evil")).unwrap();
        drop_out(&r, "alice", "1.json", r#"{"to":"evil","text":"hi"}"#);
        assert!(matches!(route(&r, "alice", "1.json", &Limits::default()).unwrap(), Outcome::Rejected(_)));
        assert!(error_of(&r, "alice", "1.json").starts_with("bad-destination: "), "{}", error_of(&r, "alice", "1.json"));
        assert_eq!(std::fs::read_dir(outside.join("new")).unwrap().count(), 0);
        // A peer whose spool/new is a symlink to a directory elsewhere.
        let bob_new = r.peer("bob").unwrap().spool_sub("new");
        std::fs::remove_dir(&bob_new).unwrap();
        std::os::unix::fs::symlink(outside.join("new"), &bob_new).unwrap();
        drop_out(&r, "alice", "2.json", r#"{"to":"bob","text":"hi"}"#);
        assert!(matches!(route(&r, "alice", "2.json", &Limits::default()).unwrap(), Outcome::Rejected(_)));
        assert!(error_of(&r, "alice", "2.json").starts_with("bad-destination: "));
        assert_eq!(std::fs::read_dir(outside.join("new")).unwrap().count(), 0);
    }

    #[test]
    fn routes_to_inbox_and_fails_garbage() {
        let (_d, r) = setup();
        drop_out(&r, "alice", "2.json", r#"{"to":"script","text":"done","in_reply_to":"x"}"#);
        route(&r, "alice", "2.json", &Limits::default()).unwrap();
        let inbox = r.inbox("script").unwrap().join("new").join("2.json");
        let m = crate::queue::format::parse_inbox(&std::fs::read(inbox).unwrap()).unwrap();
        assert_eq!((m.from.as_str(), m.in_reply_to.as_deref()), ("alice", Some("x")));
        drop_out(&r, "alice", "3.json", "garbage");
        assert!(matches!(route(&r, "alice", "3.json", &Limits::default()).unwrap(), Outcome::Rejected(_)));
        let err = std::fs::read_to_string(r.peer("alice").unwrap().outbox_sub("failed").join("3.json.error")).unwrap();
        assert!(err.starts_with("invalid-json: "), "{err}");
    }
}
