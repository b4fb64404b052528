//! Subjects and identity. A message for host `dst` from host `src` is
//! published on `<prefix>.msg.<dst>.<src>`: the destination selects the
//! consumer, and the source is what NATS permissions pin to a connection
//! (host `h1` may publish only `<prefix>.msg.*.h1`). The receiving bridge
//! therefore takes the sender's host from the subject, never the payload.

use crate::queue::names;

pub const DEFAULT_PREFIX: &str = "peerspool";

/// The subject a message from `src` to `dst` is published on.
pub fn for_message(prefix: &str, dst: &str, src: &str) -> String {
    format!("{prefix}.msg.{dst}.{src}")
}

/// Every message subject: what the stream captures.
pub fn stream_wildcard(prefix: &str) -> String {
    format!("{prefix}.msg.>")
}

/// What host `me`'s consumer reads: messages for it from any host.
pub fn inbound_filter(prefix: &str, me: &str) -> String {
    format!("{prefix}.msg.{me}.*")
}

/// The durable consumer name of host `me`; the NATS permissions of the
/// deployment name it too, so one host cannot read another's consumer.
pub fn consumer_name(me: &str) -> String {
    format!("in-{me}")
}

/// Why an inbound message is refused. Each is final: the message is
/// recorded in `bridge/refused/` and terminated, never retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not `<prefix>.msg.<dst>.<src>` with two valid host names.
    BadSubject(String),
    /// For another host (a consumer filter misconfigured by hand).
    NotForUs { dst: String },
    /// Claims to come from this host: nothing here publishes to itself.
    FromSelf,
    /// The source is not in `allow_hosts`.
    NotAllowed { src: String },
    /// The payload names a source host other than the subject's.
    SourceMismatch { subject: String, payload: String },
    /// The payload is not a valid message (reason).
    BadPayload(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::BadSubject(s) => write!(f, "bad-subject: {:?} is not <prefix>.msg.<host>.<host>", s),
            Refusal::NotForUs { dst } => write!(f, "not-for-us: addressed to host {dst:?}"),
            Refusal::FromSelf => write!(f, "from-self: a message from this host's own name"),
            Refusal::NotAllowed { src } => write!(f, "host-not-allowed: source host {src:?} is not in allow_hosts"),
            Refusal::SourceMismatch { subject, payload } => {
                write!(f, "source-mismatch: published as host {subject:?} but the message claims host {payload:?}")
            }
            Refusal::BadPayload(r) => write!(f, "bad-payload: {r}"),
        }
    }
}

impl Refusal {
    /// The stable code (the text before the colon).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::BadSubject(_) => "bad-subject",
            Refusal::NotForUs { .. } => "not-for-us",
            Refusal::FromSelf => "from-self",
            Refusal::NotAllowed { .. } => "host-not-allowed",
            Refusal::SourceMismatch { .. } => "source-mismatch",
            Refusal::BadPayload(_) => "bad-payload",
        }
    }
}

/// Splits `<prefix>.msg.<dst>.<src>`.
pub fn parse<'a>(prefix: &str, subject: &'a str) -> Result<(&'a str, &'a str), Refusal> {
    let bad = || Refusal::BadSubject(subject.chars().take(200).collect());
    let rest = subject.strip_prefix(prefix).and_then(|r| r.strip_prefix(".msg.")).ok_or_else(bad)?;
    let (dst, src) = rest.split_once('.').ok_or_else(bad)?;
    if !names::is_valid(dst) || !names::is_valid(src) {
        return Err(bad());
    }
    Ok((dst, src))
}

/// The source host of an inbound message on `subject`, if `me` accepts it:
/// addressed to `me`, from another host, allowed (when a list is set), and
/// the payload's own claim (`src` field), when present, agrees.
pub fn identify<'a>(prefix: &str, subject: &'a str, me: &str, allow: Option<&[String]>, claimed: Option<&str>) -> Result<&'a str, Refusal> {
    let (dst, src) = parse(prefix, subject)?;
    if dst != me {
        return Err(Refusal::NotForUs { dst: dst.into() });
    }
    if src == me {
        return Err(Refusal::FromSelf);
    }
    if let Some(list) = allow {
        if !list.iter().any(|h| h == src) {
            return Err(Refusal::NotAllowed { src: src.into() });
        }
    }
    if let Some(c) = claimed {
        if c != src {
            return Err(Refusal::SourceMismatch { subject: src.into(), payload: c.chars().take(100).collect() });
        }
    }
    Ok(src)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        let s = for_message("peerspool", "h2", "h1");
        assert_eq!(s, "peerspool.msg.h2.h1");
        assert_eq!(parse("peerspool", &s), Ok(("h2", "h1")));
        assert_eq!(inbound_filter("peerspool", "h2"), "peerspool.msg.h2.*");
        assert_eq!(stream_wildcard("x"), "x.msg.>");
    }

    #[test]
    fn malformed_subjects_are_refused() {
        for s in ["peerspool.msg.h2", "peerspool.msg.h2.h1.x", "other.msg.h2.h1", "peerspool.msg..h1", "peerspool.msg.H2.h1", "peerspool.msgs.h2.h1", "peerspool"] {
            assert!(matches!(parse("peerspool", s), Err(Refusal::BadSubject(_))), "{s}");
        }
    }

    #[test]
    fn identity_comes_from_the_subject() {
        let p = "peerspool";
        assert_eq!(identify(p, "peerspool.msg.h2.h1", "h2", None, None), Ok("h1"));
        assert_eq!(identify(p, "peerspool.msg.h2.h1", "h2", None, Some("h1")), Ok("h1"));
        assert_eq!(
            identify(p, "peerspool.msg.h2.h1", "h2", None, Some("h3")),
            Err(Refusal::SourceMismatch { subject: "h1".into(), payload: "h3".into() })
        );
        assert_eq!(identify(p, "peerspool.msg.h3.h1", "h2", None, None), Err(Refusal::NotForUs { dst: "h3".into() }));
        assert_eq!(identify(p, "peerspool.msg.h2.h2", "h2", None, None), Err(Refusal::FromSelf));
        let allow = vec!["h1".to_string()];
        assert_eq!(identify(p, "peerspool.msg.h2.h1", "h2", Some(&allow), None), Ok("h1"));
        assert_eq!(identify(p, "peerspool.msg.h2.h3", "h2", Some(&allow), None), Err(Refusal::NotAllowed { src: "h3".into() }));
        assert!(identify(p, "peerspool.msg.h2.h3", "h2", Some(&allow), None).unwrap_err().to_string().starts_with("host-not-allowed: "));
    }
}
