//! Routing of an agent's outbox: the directory names the sender, the file
//! names the recipient. A peer recipient gets a task in its spool; any
//! other address gets a file in `inbox/<address>/new/`. Routing is
//! idempotent by file name, so a crash between copy and move re-routes
//! without duplicating.

use crate::error::Result;
use crate::format::{parse_outbox, InboxMsg, OutMsg, Task};
use crate::root::Root;
use crate::spool::{self, read_checked, Limits, Queue};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    Peer(String),
    Inbox(String),
}

#[derive(Debug)]
pub enum Outcome {
    Routed { msg: OutMsg, to: Routed, id: String },
    Rejected(String),
    /// The file vanished (another pass took it).
    Gone,
}

fn already_there(dirs: &[std::path::PathBuf], name: &str) -> bool {
    dirs.iter().any(|d| d.join(name).exists())
}

/// A message accepted and (unless a copy already existed) staged in the
/// destination's `tmp/`, waiting for the batch's sync.
struct Staged {
    msg: OutMsg,
    to: Routed,
    id: String,
    /// (staged file, destination `new/`), or None when already routed.
    file: Option<(PathBuf, PathBuf)>,
}

/// Routes `outbox/new/<name>` of `owner`.
pub fn route(root: &Root, owner: &str, name: &str, lim: &Limits) -> Result<Outcome> {
    route_batch(root, owner, &[name.to_string()], lim).pop().map(|(_, r)| r).unwrap_or(Ok(Outcome::Gone))
}

/// Routes several outbox files with one sync for the batch. Order of
/// durability: every copy's data is synced, then renamed into its `new/`
/// and that directory synced, and only then does the original leave
/// `outbox/new/` — a crash at any point re-routes, never loses.
pub fn route_batch(root: &Root, owner: &str, names: &[String], lim: &Limits) -> Vec<(String, Result<Outcome>)> {
    let ob = match root.peer(owner) {
        Ok(p) => Queue::outbox(&p),
        Err(e) => return names.iter().map(|n| (n.clone(), Err(crate::Error::io(root.peers_dir(), std::io::Error::other(e.to_string()))))).collect(),
    };
    let mut results: Vec<Option<Result<Outcome>>> = names.iter().map(|_| None).collect();
    let mut staged: Vec<(usize, Staged)> = vec![];
    for (i, name) in names.iter().enumerate() {
        match stage_one(root, owner, &ob, name, lim) {
            Ok(Ok(s)) => staged.push((i, s)),
            Ok(Err(o)) => results[i] = Some(Ok(o)),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let files: Vec<PathBuf> = staged.iter().filter_map(|(_, s)| s.file.as_ref().map(|f| f.0.clone())).collect();
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
        if let Some((tmp, new)) = &s.file {
            let name = &names[i];
            if let Err(e) = std::fs::rename(tmp, new.join(name)) {
                let _ = std::fs::remove_file(tmp);
                results[i] = Some(Err(crate::Error::io(new.join(name), e)));
                continue;
            }
            dirs.insert(new.clone());
        }
        placed.push((i, s));
    }
    let synced: Vec<(PathBuf, bool)> = dirs.into_iter().map(|d| {
        let ok = spool::fsync_dir(&d).is_ok();
        (d, ok)
    }).collect();
    for (i, s) in placed {
        let name = &names[i];
        let dir_ok = s.file.as_ref().is_none_or(|(_, new)| synced.iter().any(|(d, ok)| d == new && *ok));
        results[i] = Some(if !dir_ok {
            Err(crate::Error::io(&ob.new, std::io::Error::other("destination directory sync failed")))
        } else {
            spool::move_to(&ob.new, &ob.done, name).map(|_| Outcome::Routed { msg: s.msg, to: s.to, id: s.id })
        });
    }
    names.iter().cloned().zip(results.into_iter().map(|r| r.unwrap_or(Ok(Outcome::Gone)))).collect()
}

/// Judges one file and stages its copy. `Ok(Err(outcome))`: finished here
/// (rejected or gone).
fn stage_one(root: &Root, owner: &str, ob: &Queue, name: &str, lim: &Limits) -> Result<std::result::Result<Staged, Outcome>> {
    let path = ob.new.join(name);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(Err(Outcome::Gone));
    }
    let msg = match read_checked(&path, lim).and_then(|b| parse_outbox(&b, owner)) {
        Ok(m) => m,
        Err(r) => {
            spool::fail(&ob.new, &ob.failed, name, &r.to_string())?;
            return Ok(Err(Outcome::Rejected(r.to_string())));
        }
    };
    let id = name.trim_end_matches(".json").to_string();
    let (to, tmp, new, bytes) = if root.is_peer(&msg.to) {
        let q = Queue::spool(&root.peer(&msg.to)?);
        let dup = already_there(&[q.new.clone(), q.cur.clone(), q.done.clone()], name);
        let t = Task {
            v: 1,
            id: id.clone(),
            from: owner.into(),
            reply_to: msg.reply_to.clone().unwrap_or_else(|| owner.into()),
            topic: msg.topic.clone(),
            in_reply_to: msg.in_reply_to.clone(),
            text: msg.text.clone(),
        };
        (Routed::Peer(msg.to.clone()), q.tmp, q.new, (!dup).then(|| serde_json::to_vec(&t).unwrap_or_default()))
    } else {
        let dir = root.inbox(&msg.to)?;
        let (tmp, new) = (dir.join("tmp"), dir.join("new"));
        if !new.is_dir() || !tmp.is_dir() {
            crate::root::mkdir_private(&tmp)?;
            crate::root::mkdir_private(&new)?;
        }
        let dup = already_there(&[new.clone(), dir.join("cur")], name);
        let m = InboxMsg {
            v: 1,
            id: id.clone(),
            from: owner.into(),
            to: msg.to.clone(),
            topic: msg.topic.clone(),
            in_reply_to: msg.in_reply_to.clone(),
            text: msg.text.clone(),
        };
        (Routed::Inbox(msg.to.clone()), tmp, new, (!dup).then(|| serde_json::to_vec(&m).unwrap_or_default()))
    };
    let file = match bytes {
        Some(b) => Some((spool::stage(&tmp, name, &b)?, new)),
        None => None,
    };
    Ok(Ok(Staged { msg, to, id, file }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Profile, RuntimeKind};

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
        let t = crate::format::parse_task(&b, "1").unwrap();
        assert_eq!((t.from.as_str(), t.reply_to.as_str(), t.in_reply_to.as_deref()), ("alice", "alice", Some("t0")));
        assert!(r.peer("alice").unwrap().outbox_sub("sent").join("1.json").exists());
        // Routing again (crash before the move) does not duplicate.
        drop_out(&r, "alice", "1.json", r#"{"to":"bob","text":"hi"}"#);
        route(&r, "alice", "1.json", &Limits::default()).unwrap();
        assert_eq!(spool::depth(&r.peer("bob").unwrap().spool_sub("new")), 1);
    }

    #[test]
    fn routes_to_inbox_and_fails_garbage() {
        let (_d, r) = setup();
        drop_out(&r, "alice", "2.json", r#"{"to":"script","text":"done","in_reply_to":"x"}"#);
        route(&r, "alice", "2.json", &Limits::default()).unwrap();
        let inbox = r.inbox("script").unwrap().join("new").join("2.json");
        let m = crate::format::parse_inbox(&std::fs::read(inbox).unwrap()).unwrap();
        assert_eq!((m.from.as_str(), m.in_reply_to.as_deref()), ("alice", Some("x")));
        drop_out(&r, "alice", "3.json", "garbage");
        assert!(matches!(route(&r, "alice", "3.json", &Limits::default()).unwrap(), Outcome::Rejected(_)));
        let err = std::fs::read_to_string(r.peer("alice").unwrap().outbox_sub("failed").join("3.json.error")).unwrap();
        assert!(err.starts_with("invalid-json: "), "{err}");
    }
}
