//! Routing of an agent's outbox: the directory names the sender, the file
//! names the recipient. A peer recipient gets a task in its spool; any
//! other address gets a file in `inbox/<address>/new/`. Routing is
//! idempotent by file name, so a crash between copy and move re-routes
//! without duplicating.

use crate::error::{Error, IoContext, Result};
use crate::format::{parse_outbox, InboxMsg, OutMsg, Task};
use crate::root::Root;
use crate::spool::{self, read_checked, Limits, Queue};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
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

/// A judged outbox file whose copy is written but not yet durable.
struct Staged {
    name: String,
    msg: OutMsg,
    to: Routed,
    id: String,
    /// The copy (open file, its staging path, its final path): `None` when
    /// an earlier pass already delivered it.
    copy: Option<(File, PathBuf, PathBuf)>,
}

/// Judges one file and writes its copy into the destination's `tmp/`.
fn stage(root: &Root, owner: &str, ob: &Queue, name: &str, lim: &Limits) -> Result<Result<Staged, Outcome>> {
    let path = ob.new.join(name);
    if !path.exists() && std::fs::symlink_metadata(&path).is_err() {
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
        let there = already_there(&[q.new.clone(), q.cur.clone(), q.done.clone()], name);
        let t = Task {
            v: 1,
            id: id.clone(),
            from: owner.into(),
            reply_to: msg.reply_to.clone().unwrap_or_else(|| owner.into()),
            topic: msg.topic.clone(),
            in_reply_to: msg.in_reply_to.clone(),
            text: msg.text.clone(),
        };
        (Routed::Peer(msg.to.clone()), q.tmp, q.new, (!there).then(|| serde_json::to_vec(&t).unwrap_or_default()))
    } else {
        let dir = root.inbox(&msg.to)?;
        let (tmp, new) = (dir.join("tmp"), dir.join("new"));
        crate::root::mkdir_private(&tmp)?;
        crate::root::mkdir_private(&new)?;
        let there = already_there(&[new.clone(), dir.join("cur")], name);
        let m = InboxMsg {
            v: 1,
            id: id.clone(),
            from: owner.into(),
            to: msg.to.clone(),
            topic: msg.topic.clone(),
            in_reply_to: msg.in_reply_to.clone(),
            text: msg.text.clone(),
        };
        (Routed::Inbox(msg.to.clone()), tmp, new, (!there).then(|| serde_json::to_vec(&m).unwrap_or_default()))
    };
    let copy = match bytes {
        None => None,
        Some(b) => {
            let t = tmp.join(name);
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&t).at(&t)?;
            if let Err(e) = f.write_all(&b) {
                let _ = std::fs::remove_file(&t);
                return Err(Error::io(&t, e));
            }
            Some((f, t, new.join(name)))
        }
    };
    Ok(Ok(Staged { name: name.to_string(), msg, to, id, copy }))
}

/// fsyncs many files at once: the filesystem commits concurrent syncs
/// together, so a batch costs about one journal commit, not one per file.
fn sync_parallel(files: &[&File]) -> Vec<std::io::Result<()>> {
    const THREADS: usize = 64;
    if files.len() < 2 {
        return files.iter().map(|f| f.sync_all()).collect();
    }
    let chunk = files.len().div_ceil(THREADS);
    std::thread::scope(|s| {
        let hs: Vec<_> = files.chunks(chunk).map(|c| (c.len(), s.spawn(move || c.iter().map(|f| f.sync_all()).collect::<Vec<_>>()))).collect();
        hs.into_iter()
            .flat_map(|(n, h)| h.join().unwrap_or_else(|_| (0..n).map(|_| Err(std::io::Error::other("fsync thread panicked"))).collect()))
            .collect()
    })
}

/// Routes `outbox/new/<name>` of `owner`.
pub fn route(root: &Root, owner: &str, name: &str, lim: &Limits) -> Result<Outcome> {
    route_batch(root, owner, &[name.to_string()], lim).pop().map(|(_, r)| r).unwrap_or(Ok(Outcome::Gone))
}

/// Routes several outbox files of `owner` with the durability of one-by-one
/// routing (each copy fsynced, then renamed, its directory fsynced, before
/// the original moves to `sent/`) but with the fsyncs done together.
pub fn route_batch(root: &Root, owner: &str, names: &[String], lim: &Limits) -> Vec<(String, Result<Outcome>)> {
    let ob = match root.peer(owner) {
        Ok(p) => Queue::outbox(&p),
        Err(e) => return names.iter().map(|n| (n.clone(), Err(Error::io(n.as_str(), std::io::Error::other(e.to_string()))))).collect(),
    };
    let mut done: Vec<(String, Result<Outcome>)> = vec![];
    let mut staged: Vec<Staged> = vec![];
    for n in names {
        match stage(root, owner, &ob, n, lim) {
            Ok(Ok(s)) => staged.push(s),
            Ok(Err(o)) => done.push((n.clone(), Ok(o))),
            Err(e) => done.push((n.clone(), Err(e))),
        }
    }
    let files: Vec<&File> = staged.iter().filter_map(|s| s.copy.as_ref().map(|c| &c.0)).collect();
    let mut synced = sync_parallel(&files).into_iter();
    let mut failed: Vec<Option<Error>> = vec![];
    let mut dirs: Vec<PathBuf> = vec![];
    for s in &staged {
        let err = s.copy.as_ref().and_then(|(_, tmp, dst)| {
            let r = synced.next().unwrap_or(Ok(())).at(tmp).and_then(|_| std::fs::rename(tmp, dst).at(dst));
            if r.is_err() {
                let _ = std::fs::remove_file(tmp);
            }
            if let Some(d) = dst.parent().filter(|d| !dirs.iter().any(|x| x == d)) {
                dirs.push(d.to_path_buf());
            }
            r.err()
        });
        failed.push(err);
    }
    let dir_err: Vec<(PathBuf, String)> = dirs.iter().filter_map(|d| spool::fsync_dir(d).err().map(|e| (d.clone(), e.to_string()))).collect();
    for (s, err) in staged.into_iter().zip(failed) {
        let dir_failed = s.copy.as_ref().and_then(|(_, _, dst)| dir_err.iter().find(|(d, _)| Some(d.as_path()) == dst.parent()));
        let r = match (err, dir_failed) {
            (Some(e), _) => Err(e),
            (None, Some((d, e))) => Err(Error::io(d, std::io::Error::other(e.clone()))),
            (None, None) => spool::move_to(&ob.new, &ob.done, &s.name).map(|_| Outcome::Routed { msg: s.msg, to: s.to, id: s.id }),
        };
        done.push((s.name, r));
    }
    done
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
