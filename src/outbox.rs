//! Routing of an agent's outbox: the directory names the sender, the file
//! names the recipient. A peer recipient gets a task in its spool; any
//! other address gets a file in `inbox/<address>/new/`. Routing is
//! idempotent by file name, so a crash between copy and move re-routes
//! without duplicating.

use crate::error::Result;
use crate::format::{parse_outbox, InboxMsg, OutMsg, Task};
use crate::root::Root;
use crate::spool::{self, read_checked, Limits, Queue};

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

/// Routes `outbox/new/<name>` of `owner`.
pub fn route(root: &Root, owner: &str, name: &str, lim: &Limits) -> Result<Outcome> {
    let ob = Queue::outbox(&root.peer(owner)?);
    let path = ob.new.join(name);
    if !path.exists() && std::fs::symlink_metadata(&path).is_err() {
        return Ok(Outcome::Gone);
    }
    let msg = match read_checked(&path, lim).and_then(|b| parse_outbox(&b, owner)) {
        Ok(m) => m,
        Err(r) => {
            spool::fail(&ob.new, &ob.failed, name, &r.to_string())?;
            return Ok(Outcome::Rejected(r.to_string()));
        }
    };
    let id = name.trim_end_matches(".json").to_string();
    let to = if root.is_peer(&msg.to) {
        let q = Queue::spool(&root.peer(&msg.to)?);
        if !already_there(&[q.new.clone(), q.cur.clone(), q.done.clone()], name) {
            let t = Task {
                v: 1,
                id: id.clone(),
                from: owner.into(),
                reply_to: msg.reply_to.clone().unwrap_or_else(|| owner.into()),
                topic: msg.topic.clone(),
                in_reply_to: msg.in_reply_to.clone(),
                text: msg.text.clone(),
            };
            q.enqueue(name, &serde_json::to_vec(&t).unwrap_or_default())?;
        }
        Routed::Peer(msg.to.clone())
    } else {
        let dir = root.inbox(&msg.to)?;
        let (tmp, new) = (dir.join("tmp"), dir.join("new"));
        crate::root::mkdir_private(&tmp)?;
        crate::root::mkdir_private(&new)?;
        if !already_there(&[new.clone(), dir.join("cur")], name) {
            let m = InboxMsg {
                v: 1,
                id: id.clone(),
                from: owner.into(),
                to: msg.to.clone(),
                topic: msg.topic.clone(),
                in_reply_to: msg.in_reply_to.clone(),
                text: msg.text.clone(),
            };
            spool::write_atomic(&tmp, &new, name, &serde_json::to_vec(&m).unwrap_or_default())?;
        }
        Routed::Inbox(msg.to.clone())
    };
    spool::move_to(&ob.new, &ob.done, name)?;
    Ok(Outcome::Routed { msg, to, id })
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
