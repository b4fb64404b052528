//! A message this host's bridge refuses after it knows where it came from
//! (the subject names the source host, which NATS permissions vouch for):
//! its sender is told, as for a task this host's daemon fails
//! (`daemon::verdict`), so a `send --wait` there ends at once with the
//! reason instead of sitting out its timeout. Refusals before that point
//! (a forged or unknown source) tell nobody: the source is not trusted.

use super::address;
use super::envelope::Envelope;
use super::subject::Refusal;
use crate::root::Root;

/// Who to tell about `env`, refused here, that came from host `src`: its
/// `reply_to` when that is on `src` (a reply address elsewhere is not
/// vouched for by the subject), else its sender there. Never a notice
/// about a notice: two refusing hosts would bounce them forever.
pub fn bounce_to(env: &Envelope, src: &str) -> Option<String> {
    if env.notice.is_some() {
        return None;
    }
    let on_src = |a: &str| address::parse(a).filter(|a| a.host.as_deref() == Some(src)).map(|a| a.to_string());
    on_src(&env.reply_to).or_else(|| crate::queue::names::is_valid(&env.sender).then(|| format!("{}@{src}", env.sender)))
}

/// Queues the notice for `env` (refused for `why`); returns the address
/// told, for the log. Best effort: the refusal is recorded either way.
pub fn tell(root: &Root, me: &str, env: &Envelope, src: &str, why: &Refusal) -> Option<String> {
    let to = bounce_to(env, src)?;
    if !crate::queue::format::valid_id(&env.id) {
        return None;
    }
    let recipient = env.recipient().filter(|n| crate::queue::names::is_valid(n)).unwrap_or_else(|| "bridge".into());
    let text = format!("peerspool: message {} to {} was refused by {me}'s bridge: {why}; it is kept in bridge/refused/ on {me}", env.id, env.to);
    super::outbound::queue_failure(root, me, to, &recipient, &env.id, env.id.clone(), "refused", text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::envelope::{Notice, TASK_FAILED};

    fn env(sender: &str, reply_to: &str) -> Envelope {
        serde_json::from_value(serde_json::json!({
            "v": 1, "id": "t1", "sender": sender, "to": "b@h2", "reply_to": reply_to, "text": "x"
        }))
        .unwrap()
    }

    #[test]
    fn the_reply_address_is_used_only_on_the_source_host() {
        assert_eq!(bounce_to(&env("a", "tester@h1"), "h1").as_deref(), Some("tester@h1"));
        // h1 cannot make h2 write into h3's inboxes.
        assert_eq!(bounce_to(&env("a", "tester@h3"), "h1").as_deref(), Some("a@h1"));
        assert_eq!(bounce_to(&env("a", "tester"), "h1").as_deref(), Some("a@h1"));
    }

    #[test]
    fn a_notice_is_never_bounced() {
        let mut e = env("a", "tester@h1");
        e.notice = Some(Notice { kind: TASK_FAILED.into(), chain: "t0".into(), message: None, max_hops: None });
        assert_eq!(bounce_to(&e, "h1"), None);
    }
}
