//! The on-disk message formats (task, outbox, inbox) and the judgement of
//! their contents. File-level checks (type, owner, size) live in `spool`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Default per-file size limit (contract: 1 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;
pub const MAX_TOPIC_CHARS: usize = 200;
pub const MAX_ID_CHARS: usize = 200;

/// Why a file was refused. `code()` is the stable machine-readable part of
/// the `.error` file; the detail is for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    BadFileName,
    NotRegularFile(&'static str),
    ForeignOwner(u32),
    MultipleLinks(u64),
    WritableByOthers(u32),
    TooLarge { size: u64, limit: u64 },
    NotUtf8,
    InvalidJson(String),
    TooDeep,
    NotAnObject,
    MissingField(&'static str),
    WrongType { field: &'static str, want: &'static str },
    EmptyText,
    TopicTooLong(usize),
    BadVersion(String),
    BadName { field: &'static str, value: String },
    BadId,
    SelfSend,
    Unreadable(String),
    /// The name is too long to route (its staging and clash names must fit).
    NameTooLong { len: usize, limit: usize },
    /// The recipient's directory is not a private real directory.
    BadDestination(String),
}

impl Reject {
    pub fn code(&self) -> &'static str {
        use Reject::*;
        match self {
            BadFileName => "bad-file-name",
            NotRegularFile(_) => "not-regular-file",
            ForeignOwner(_) => "foreign-owner",
            MultipleLinks(_) => "multiple-links",
            WritableByOthers(_) => "writable-by-others",
            TooLarge { .. } => "too-large",
            NotUtf8 => "not-utf8",
            InvalidJson(_) => "invalid-json",
            TooDeep => "too-deep",
            NotAnObject => "not-an-object",
            MissingField(_) => "missing-field",
            WrongType { .. } => "wrong-type",
            EmptyText => "empty-text",
            TopicTooLong(_) => "topic-too-long",
            BadVersion(_) => "bad-version",
            BadName { .. } => "bad-name",
            BadId => "bad-id",
            SelfSend => "self-send",
            Unreadable(_) => "unreadable",
            NameTooLong { .. } => "bad-file-name",
            BadDestination(_) => "bad-destination",
        }
    }

    /// Every code, for the spec test that each one is documented.
    pub const ALL_CODES: &'static [&'static str] = &[
        "bad-file-name", "not-regular-file", "foreign-owner", "multiple-links",
        "writable-by-others", "too-large", "not-utf8", "invalid-json", "too-deep",
        "not-an-object", "missing-field", "wrong-type", "empty-text", "topic-too-long",
        "bad-version", "bad-name", "bad-id", "self-send", "unreadable", "bad-destination",
    ];
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Reject::*;
        write!(f, "{}: ", self.code())?;
        match self {
            BadFileName => write!(f, "file name has control characters or is not NAME.json"),
            NotRegularFile(kind) => write!(f, "entry is a {kind}, not a regular file"),
            ForeignOwner(uid) => write!(f, "owned by uid {uid}, not the daemon's user"),
            MultipleLinks(n) => write!(f, "file has {n} hard links; it may alias a file outside the root"),
            WritableByOthers(mode) => write!(f, "mode {mode:04o} lets any user write it"),
            TooLarge { size, limit } => write!(f, "{size} bytes exceeds the {limit}-byte limit"),
            NotUtf8 => write!(f, "content is not valid UTF-8"),
            InvalidJson(e) => write!(f, "{e}"),
            TooDeep => write!(f, "JSON nesting is too deep"),
            NotAnObject => write!(f, "top-level JSON value is not an object"),
            MissingField(k) => write!(f, "required field {k:?} is missing"),
            WrongType { field, want } => write!(f, "field {field:?} must be {want}"),
            EmptyText => write!(f, "field \"text\" is empty"),
            TopicTooLong(n) => write!(f, "topic has {n} characters, limit {MAX_TOPIC_CHARS}"),
            BadVersion(v) => write!(f, "format version {v} is not supported (only 1)"),
            BadName { field, value } => {
                write!(f, "field {field:?} value {value:?} is not NAME or NAME@HOST, each matching ^[a-z0-9][a-z0-9_-]{{0,62}}$")
            }
            BadId => write!(f, "field \"id\" must be 1-{MAX_ID_CHARS} printable characters without / or whitespace"),
            SelfSend => write!(f, "a peer may not send to itself"),
            Unreadable(e) => write!(f, "{e}"),
            NameTooLong { len, limit } => write!(f, "file name is {len} bytes; a routed message's name may have at most {limit}"),
            BadDestination(e) => write!(f, "{e}"),
        }
    }
}

/// A task as queued in `spool/new/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub v: u32,
    pub id: String,
    pub from: String,
    pub reply_to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// Routing hops that led to this task and who started the
    /// conversation: written by the router only, never read from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hops: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    pub text: String,
}

/// A message an agent left in its `outbox/new/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutMsg {
    pub to: String,
    pub text: String,
    /// Where the recipient's replies go (default: the outbox owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
}

/// A routed reply as it lands in `inbox/<address>/new/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMsg {
    pub v: u32,
    pub id: String,
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// As in `Task`: the router's count, never read from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hops: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Set on the daemon's notices (`loop-limit`); `chain` names the task
    /// that started the conversation it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    pub text: String,
}

/// Only `NAME.json` with no leading dot is a message file; everything else
/// in `new/` (editor swap files, staging names) is ignored, not rejected.
pub fn is_message_name(name: &str) -> bool {
    name.ends_with(".json") && !name.starts_with('.') && name.len() > 5
}

/// A message name that could corrupt logs or paths is refused.
pub fn safe_file_name(name: &str) -> bool {
    !name.chars().any(|c| c.is_control() || c == '/') && !name.contains("..")
}

pub fn valid_id(id: &str) -> bool {
    let n = id.chars().count();
    (1..=MAX_ID_CHARS).contains(&n)
        && !id.chars().any(|c| c.is_control() || c.is_whitespace() || c == '/')
}

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, Reject> {
    let s = std::str::from_utf8(bytes).map_err(|_| Reject::NotUtf8)?;
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Reject::NotAnObject),
        Err(e) if e.to_string().contains("recursion limit") => Err(Reject::TooDeep),
        Err(e) => Err(Reject::InvalidJson(e.to_string())),
    }
}

fn opt_str<'a>(m: &'a Map<String, Value>, k: &'static str) -> Result<Option<&'a str>, Reject> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Reject::WrongType { field: k, want: "a string" }),
    }
}

fn req_text(m: &Map<String, Value>) -> Result<String, Reject> {
    match opt_str(m, "text")? {
        None => Err(Reject::MissingField("text")),
        Some(t) if t.trim().is_empty() => Err(Reject::EmptyText),
        Some(t) => Ok(t.to_string()),
    }
}

fn name_field(m: &Map<String, Value>, k: &'static str) -> Result<Option<String>, Reject> {
    match opt_str(m, k)? {
        None => Ok(None),
        // Addresses: `name` or `name@host` (a sender or recipient on another host).
        Some(v) if crate::queue::names::is_address(v) => Ok(Some(v.to_string())),
        Some(v) => Err(Reject::BadName { field: k, value: v.chars().take(80).collect() }),
    }
}

fn topic_field(m: &Map<String, Value>) -> Result<Option<String>, Reject> {
    match opt_str(m, "topic")? {
        Some(t) if t.chars().count() > MAX_TOPIC_CHARS => Err(Reject::TopicTooLong(t.chars().count())),
        t => Ok(t.map(str::to_string)),
    }
}

fn id_field(m: &Map<String, Value>, k: &'static str) -> Result<Option<String>, Reject> {
    match opt_str(m, k)? {
        Some(id) if !valid_id(id) => Err(Reject::BadId),
        id => Ok(id.map(str::to_string)),
    }
}

fn version(m: &Map<String, Value>) -> Result<(), Reject> {
    match m.get("v") {
        None => Ok(()),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(()),
        Some(Value::Number(n)) => Err(Reject::BadVersion(n.to_string())),
        Some(_) => Err(Reject::WrongType { field: "v", want: "an integer" }),
    }
}

/// Judges task bytes; `stem` is the file name without `.json` (default id).
pub fn parse_task(bytes: &[u8], stem: &str) -> Result<Task, Reject> {
    let m = parse_object(bytes)?;
    version(&m)?;
    let text = req_text(&m)?;
    let from = name_field(&m, "from")?.unwrap_or_else(|| "anonymous".into());
    let reply_to = name_field(&m, "reply_to")?.unwrap_or_else(|| from.clone());
    let topic = topic_field(&m)?;
    let in_reply_to = id_field(&m, "in_reply_to")?;
    let id = match id_field(&m, "id")? {
        Some(id) => id,
        None if valid_id(stem) => stem.to_string(),
        None => return Err(Reject::BadId),
    };
    Ok(Task { v: 1, id, from, reply_to, topic, in_reply_to, hops: None, origin: None, text })
}

/// Judges outbox bytes. A `from` field is ignored: the directory is the sender.
pub fn parse_outbox(bytes: &[u8], owner: &str) -> Result<OutMsg, Reject> {
    let m = parse_object(bytes)?;
    version(&m)?;
    let to = name_field(&m, "to")?.ok_or(Reject::MissingField("to"))?;
    let text = req_text(&m)?;
    if to == owner {
        return Err(Reject::SelfSend);
    }
    Ok(OutMsg {
        to,
        text,
        reply_to: name_field(&m, "reply_to")?,
        topic: topic_field(&m)?,
        in_reply_to: id_field(&m, "in_reply_to")?,
    })
}

/// Inbox files are written by the daemon, but a script may read foreign ones.
pub fn parse_inbox(bytes: &[u8]) -> Result<InboxMsg, Reject> {
    let m = parse_object(bytes)?;
    let text = req_text(&m)?;
    Ok(InboxMsg {
        v: 1,
        id: id_field(&m, "id")?.unwrap_or_default(),
        from: name_field(&m, "from")?.unwrap_or_else(|| "anonymous".into()),
        to: name_field(&m, "to")?.unwrap_or_default(),
        topic: topic_field(&m)?,
        in_reply_to: id_field(&m, "in_reply_to")?,
        hops: None,
        origin: None,
        notice: name_field(&m, "notice")?,
        chain: id_field(&m, "chain")?,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<Task, Reject>) -> &'static str {
        r.unwrap_err().code()
    }

    #[test]
    fn minimal_task_gets_defaults() {
        let t = parse_task(br#"{"text":"hi"}"#, "0001-a").unwrap();
        assert_eq!((t.id.as_str(), t.from.as_str(), t.reply_to.as_str()), ("0001-a", "anonymous", "anonymous"));
        let t = parse_task(br#"{"text":"hi","from":"bob","future":[1]}"#, "x").unwrap();
        assert_eq!(t.reply_to, "bob");
    }

    #[test]
    fn each_content_rejection_has_its_code() {
        let cases: &[(&[u8], &str)] = &[
            (b"\xff\xfe", "not-utf8"),
            (b"{\"text\":", "invalid-json"),
            (b"[1]", "not-an-object"),
            (b"{}", "missing-field"),
            (br#"{"text":5}"#, "wrong-type"),
            (br#"{"text":"  "}"#, "empty-text"),
            (br#"{"text":"a","v":2}"#, "bad-version"),
            (br#"{"text":"a","v":"1"}"#, "wrong-type"),
            (br#"{"text":"a","from":"../etc"}"#, "bad-name"),
            (br#"{"text":"a","reply_to":"X"}"#, "bad-name"),
            (br#"{"text":"a","id":"a b"}"#, "bad-id"),
            (br#"{"text":"a","topic":7}"#, "wrong-type"),
        ];
        for (bytes, want) in cases {
            assert_eq!(code(parse_task(bytes, "s")), *want, "{}", String::from_utf8_lossy(bytes));
        }
        let long = format!(r#"{{"text":"a","topic":"{}"}}"#, "t".repeat(201));
        assert_eq!(code(parse_task(long.as_bytes(), "s")), "topic-too-long");
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(code(parse_task(deep.as_bytes(), "s")), "too-deep");
    }

    #[test]
    fn outbox_ignores_forged_from_and_refuses_self_send() {
        let m = parse_outbox(br#"{"to":"bob","text":"x","from":"mallory"}"#, "alice").unwrap();
        assert_eq!(m.to, "bob");
        assert_eq!(parse_outbox(br#"{"to":"alice","text":"x"}"#, "alice").unwrap_err(), Reject::SelfSend);
        assert_eq!(parse_outbox(br#"{"text":"x"}"#, "alice").unwrap_err().code(), "missing-field");
    }

    #[test]
    fn display_starts_with_code() {
        let r = Reject::TooLarge { size: 10, limit: 5 };
        assert!(r.to_string().starts_with("too-large: "));
    }
}
