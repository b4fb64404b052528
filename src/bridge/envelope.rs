//! A message crossing hosts, as it waits in `bridge/out/new/` and as it
//! travels. It names the sender only by its bare name: the receiving host
//! qualifies it with the host taken from the subject, so a payload can
//! never say who sent it.

use super::address::{self, Address};
use crate::queue::format::{InboxMsg, Task, MAX_TOPIC_CHARS};
use crate::queue::names;
use serde::{Deserialize, Serialize};

/// Format version of the wire payload; another value is refused.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    /// The message id on both hosts: the task id `send` printed.
    pub id: String,
    /// The sending peer or address, bare, on the source host.
    pub sender: String,
    /// `name@host`: the recipient on the destination host.
    pub to: String,
    /// The source host, stamped at publish; the receiver compares it with
    /// the subject (it can only ever refuse, never choose, the sender).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    /// Qualified (`name@host`): where the recipient's replies go.
    pub reply_to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// The conversation's hop count and origin (qualified), so the loop
    /// guard holds across hosts.
    #[serde(default)]
    pub hops: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Set on a daemon's verdict for a message that came from another host
    /// (the task failed there, or the loop guard cut its conversation): it
    /// lands in the recipient's inbox, never a spool, so that no agent
    /// answers it and the originator's `send --wait` ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Notice>,
    pub text: String,
}

/// A verdict travelling back to its originator (spool-spec/MULTIHOST.md,
/// verdicts across hosts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// `task-failed` or `loop-limit`.
    pub kind: String,
    /// The id of the conversation's first message: the task the waiter sent.
    pub chain: String,
    /// The message that failed or was not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hops: Option<u32>,
}

/// The notice kinds a bridge accepts.
pub const NOTICE_KINDS: [&str; 2] = [crate::daemon::hops::LOOP_LIMIT, TASK_FAILED];
/// The notice that a task from another host failed on its host.
pub const TASK_FAILED: &str = "task-failed";

impl Envelope {
    /// Every rule the local formats enforce, so whatever lands in a spool
    /// from another host would also have been accepted from a local writer.
    pub fn validate(&self) -> Result<Address, String> {
        if self.v != VERSION {
            return Err(format!("format version {} is not supported (only {VERSION})", self.v));
        }
        if !crate::queue::format::valid_id(&self.id) {
            return Err("field \"id\" is not a valid id".into());
        }
        if !names::is_valid(&self.sender) {
            return Err(format!("field \"sender\" value {:?} is not a name", self.sender));
        }
        let to = address::parse(&self.to).filter(|a| a.host.is_some()).ok_or_else(|| format!("field \"to\" value {:?} is not NAME@HOST", self.to))?;
        if let Some(s) = &self.src {
            if !names::is_valid(s) {
                return Err(format!("field \"src\" value {s:?} is not a host name"));
            }
        }
        if address::parse(&self.reply_to).is_none_or(|a| a.host.is_none()) {
            return Err(format!("field \"reply_to\" value {:?} is not NAME@HOST", self.reply_to));
        }
        if let Some(o) = &self.origin {
            if !address::is_valid(o) {
                return Err(format!("field \"origin\" value {o:?} is not an address"));
            }
        }
        if self.topic.as_ref().is_some_and(|t| t.chars().count() > MAX_TOPIC_CHARS) {
            return Err(format!("topic is longer than {MAX_TOPIC_CHARS} characters"));
        }
        if self.in_reply_to.as_ref().is_some_and(|r| !crate::queue::format::valid_id(r)) {
            return Err("field \"in_reply_to\" is not a valid id".into());
        }
        if self.text.trim().is_empty() {
            return Err("field \"text\" is empty".into());
        }
        if let Some(n) = &self.notice {
            if !NOTICE_KINDS.contains(&n.kind.as_str()) {
                return Err(format!("notice kind {:?} is not one of {NOTICE_KINDS:?}", n.kind.chars().take(40).collect::<String>()));
            }
            if !crate::queue::format::valid_id(&n.chain) || n.message.as_ref().is_some_and(|m| !crate::queue::format::valid_id(m)) {
                return Err("notice chain or message is not a valid id".into());
            }
        }
        Ok(to)
    }

    /// The file it becomes on host `me`, sent by host `src` (from the
    /// subject): a task when the recipient is a peer here, else an inbox
    /// message. `from` is `sender@src`; addresses naming `me` become bare.
    pub fn to_local(&self, src: &str, me: &str, to_peer: bool) -> Result<Vec<u8>, String> {
        let to = self.validate()?;
        let from = format!("{}@{src}", self.sender);
        let local = |s: &str| address::parse(s).map(|a| a.normalized(me).to_string()).unwrap_or_else(|| s.to_string());
        let reply_to = local(&self.reply_to);
        let origin = Some(self.origin.as_deref().map(local).unwrap_or_else(|| from.clone()));
        if let Some(n) = &self.notice {
            // The shape of the local loop-limit notice (daemon/hops.rs).
            let mut m = serde_json::json!({
                "v": 1, "id": self.id, "from": from, "to": to.name, "notice": n.kind, "chain": n.chain,
                "hops": self.hops, "origin": origin, "text": self.text,
            });
            for (k, v) in [("in_reply_to", self.in_reply_to.clone().map(serde_json::Value::from)), ("message", n.message.clone().map(Into::into)), ("max_hops", n.max_hops.map(Into::into))] {
                if let Some(v) = v {
                    m[k] = v;
                }
            }
            return serde_json::to_vec(&m).map_err(|e| e.to_string());
        }
        let r = if to_peer {
            serde_json::to_vec(&Task {
                v: 1,
                id: self.id.clone(),
                from,
                reply_to,
                topic: self.topic.clone(),
                in_reply_to: self.in_reply_to.clone(),
                hops: Some(self.hops),
                origin,
                text: self.text.clone(),
            })
        } else {
            serde_json::to_vec(&InboxMsg {
                v: 1,
                id: self.id.clone(),
                from,
                to: to.name,
                topic: self.topic.clone(),
                in_reply_to: self.in_reply_to.clone(),
                hops: Some(self.hops),
                origin,
                notice: None,
                chain: None,
                text: self.text.clone(),
            })
        };
        r.map_err(|e| e.to_string())
    }

    /// The recipient's bare name on its host.
    pub fn recipient(&self) -> Option<String> {
        address::parse(&self.to).map(|a| a.name)
    }

    pub fn dest_host(&self) -> Option<String> {
        address::parse(&self.to).and_then(|a| a.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> Envelope {
        Envelope {
            v: 1,
            id: "01764213600123456789-1-0001abcd0123".into(),
            sender: "script".into(),
            to: "b@h2".into(),
            src: Some("h1".into()),
            reply_to: "script@h1".into(),
            topic: Some("t".into()),
            in_reply_to: None,
            hops: 0,
            origin: None,
            notice: None,
            text: "hello".into(),
        }
    }

    #[test]
    fn the_sender_is_qualified_by_the_subjects_host() {
        let b = sample().to_local("h1", "h2", true).unwrap();
        let t = crate::queue::format::parse_task(&b, "x").unwrap_or_else(|_| serde_json::from_slice(&b).unwrap());
        assert_eq!((t.from.as_str(), t.reply_to.as_str()), ("script@h1", "script@h1"));
        // A reply address on the receiving host becomes local there.
        let mut e = sample();
        e.reply_to = "c@h2".into();
        let t: Task = serde_json::from_slice(&e.to_local("h1", "h2", true).unwrap()).unwrap();
        assert_eq!(t.reply_to, "c");
        let m: InboxMsg = serde_json::from_slice(&sample().to_local("h1", "h2", false).unwrap()).unwrap();
        assert_eq!((m.from.as_str(), m.to.as_str()), ("script@h1", "b"));
    }

    #[test]
    fn payloads_that_a_local_writer_could_not_write_are_refused() {
        type Case = (fn(&mut Envelope), &'static str);
        let cases: Vec<Case> = vec![
            (|e| e.v = 2, "version"),
            (|e| e.sender = "mallory@h3".into(), "sender"),
            (|e| e.sender = "../x".into(), "sender"),
            (|e| e.to = "b".into(), "\"to\""),
            (|e| e.reply_to = "script".into(), "reply_to"),
            (|e| e.id = "a b".into(), "id"),
            (|e| e.text = "  ".into(), "text"),
            (|e| e.topic = Some("x".repeat(201)), "topic"),
            (|e| e.src = Some("H1".into()), "src"),
        ];
        for (f, what) in cases {
            let mut e = sample();
            f(&mut e);
            let err = e.validate().unwrap_err();
            assert!(err.contains(what), "{what}: {err}");
        }
        assert!(sample().validate().is_ok());
        let mut n = sample();
        n.notice = Some(Notice { kind: "rm -rf".into(), chain: "c".into(), message: None, max_hops: None });
        assert!(n.validate().unwrap_err().contains("notice kind"));
    }

    #[test]
    fn a_notice_becomes_an_inbox_notice_also_for_a_peer() {
        let mut e = sample();
        e.in_reply_to = Some("t1".into());
        e.notice = Some(Notice { kind: TASK_FAILED.into(), chain: "t1".into(), message: Some("t1".into()), max_hops: None });
        let m = crate::queue::format::parse_inbox(&e.to_local("h1", "h2", true).unwrap()).unwrap();
        assert_eq!((m.notice.as_deref(), m.chain.as_deref(), m.in_reply_to.as_deref(), m.from.as_str()), (Some(TASK_FAILED), Some("t1"), Some("t1"), "script@h1"));
    }
}
