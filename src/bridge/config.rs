//! The bridge's settings: where NATS is, how this host proves who it is,
//! and the stream's limits. `PEERSPOOL_NATS_URL` alone turns the bridge on;
//! credentials live in a private file (`PEERSPOOL_NATS_CONFIG`, default
//! `<root>/nats.toml`), not in the environment, where every child process
//! of the daemon (every agent session) would inherit them.

use super::subject::DEFAULT_PREFIX;
use super::BridgeError;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the connection authenticates. One at a time: NATS accepts one.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Token(String),
    UserPassword { user: String, password: String },
    /// An nkey seed, read from a file.
    NKey(PathBuf),
    /// A `.creds` file (JWT and seed).
    Creds(PathBuf),
}

impl std::fmt::Debug for Auth {
    // Secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("none"),
            Auth::Token(_) => f.write_str("token"),
            Auth::UserPassword { user, .. } => write!(f, "user {user}"),
            Auth::NKey(p) => write!(f, "nkey {}", p.display()),
            Auth::Creds(p) => write!(f, "creds {}", p.display()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub required: bool,
    /// A CA bundle (PEM) to trust besides the system roots.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM), for servers that verify clients.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// TLS before the NATS INFO line (servers with `handshake_first`).
    pub first: bool,
}

/// The stream every host publishes into. Its limits are a deployment
/// decision; these defaults hold messages for an offline host without an
/// age limit, and make a full stream refuse new messages (senders keep
/// them in `bridge/out/new/`) instead of dropping old ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    pub name: String,
    pub prefix: String,
    pub max_bytes: i64,
    /// 0: no age limit.
    pub max_age: Duration,
    pub duplicate_window: Duration,
    pub max_msg_size: i32,
    pub replicas: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            name: "PEERSPOOL".into(),
            prefix: DEFAULT_PREFIX.into(),
            max_bytes: 1 << 30,
            max_age: Duration::ZERO,
            duplicate_window: Duration::from_secs(600),
            // A task file is at most 1 MiB; JSON escaping may add to it.
            max_msg_size: 4 << 20,
            replicas: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub url: String,
    pub host: String,
    pub auth: Auth,
    pub tls: Tls,
    pub stream: StreamSettings,
    /// Hosts accepted as senders; None: any host the NATS permissions let
    /// publish (the permissions are the real boundary, this a second one).
    pub allow_hosts: Option<Vec<String>>,
}

impl Config {
    /// The bridge's configuration, or None when no NATS URL is set (the
    /// bridge is off and nothing changes). `root` holds the default file.
    pub fn from_env(root: &Path, host: &str) -> Result<Option<Config>, BridgeError> {
        let explicit = std::env::var_os("PEERSPOOL_NATS_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from);
        let path = explicit.clone().unwrap_or_else(|| root.join("nats.toml"));
        let file = match std::fs::symlink_metadata(&path) {
            Ok(_) => Some(path.clone()),
            Err(_) if explicit.is_none() => None,
            Err(e) => return Err(BridgeError::Config { path, reason: e.to_string() }),
        };
        let env_url = std::env::var("PEERSPOOL_NATS_URL").ok().filter(|u| !u.is_empty());
        if env_url.is_none() && file.is_none() {
            return Ok(None);
        }
        let mut c = match &file {
            Some(p) => parse_file(p, host)?,
            None => Config::new(String::new(), host),
        };
        if let Some(u) = env_url {
            c.url = u;
        }
        if c.url.is_empty() {
            return Ok(None);
        }
        Ok(Some(c))
    }

    pub fn new(url: String, host: &str) -> Config {
        Config { url, host: host.into(), auth: Auth::None, tls: Tls::default(), stream: StreamSettings::default(), allow_hosts: None }
    }

    /// The URL without a password in it, for status and logs.
    pub fn url_redacted(&self) -> String {
        match (self.url.find("://"), self.url.rfind('@')) {
            (Some(s), Some(a)) if a > s => format!("{}://***@{}", &self.url[..s], &self.url[a + 1..]),
            _ => self.url.clone(),
        }
    }
}

/// The file holds secrets: it must be ours, a regular file, and readable
/// by nobody else.
fn check_private_file(p: &Path) -> Result<(), BridgeError> {
    let bad = |reason: String| BridgeError::Config { path: p.to_path_buf(), reason };
    let m = std::fs::symlink_metadata(p).map_err(|e| bad(e.to_string()))?;
    if !m.file_type().is_file() {
        return Err(bad("not a regular file".into()));
    }
    if m.uid() != crate::root::uid() {
        return Err(bad(format!("owned by uid {}, not the daemon's user; fix: chown", m.uid())));
    }
    if m.mode() & 0o077 != 0 {
        return Err(bad(format!("mode {:04o} lets other users read it; fix: chmod 600 {}", m.mode() & 0o7777, p.display())));
    }
    Ok(())
}

/// Reads the TOML file (documented in spool-spec/MULTIHOST.md §Configuration).
pub fn parse_file(p: &Path, host: &str) -> Result<Config, BridgeError> {
    check_private_file(p)?;
    let bad = |reason: String| BridgeError::Config { path: p.to_path_buf(), reason };
    let text = crate::fsx::read_string_bounded(p, 256 * 1024).map_err(|e| bad(e.to_string()))?;
    parse_str(&text, host).map_err(bad)
}

fn parse_str(text: &str, host: &str) -> Result<Config, String> {
    let doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| e.to_string().lines().next().unwrap_or_default().to_string())?;
    let mut c = Config::new(String::new(), host);
    let s = |item: Option<&toml_edit::Item>, key: &str| -> Result<Option<String>, String> {
        match item {
            None => Ok(None),
            Some(i) => i.as_str().map(|v| Some(v.to_string())).ok_or_else(|| format!("{key} must be a string")),
        }
    };
    let int = |item: Option<&toml_edit::Item>, key: &str| -> Result<Option<i64>, String> {
        match item {
            None => Ok(None),
            Some(i) => i.as_integer().filter(|v| *v >= 0).map(Some).ok_or_else(|| format!("{key} must be a non-negative integer")),
        }
    };
    let known_top = ["url", "token", "user", "password", "nkey_seed_file", "creds_file", "allow_hosts", "tls", "stream"];
    for (k, _) in doc.iter() {
        if !known_top.contains(&k) {
            return Err(format!("unknown key {k:?} (a typo must not silently change how the bridge connects)"));
        }
    }
    if let Some(u) = s(doc.get("url"), "url")? {
        c.url = u;
    }
    let token = s(doc.get("token"), "token")?;
    let user = s(doc.get("user"), "user")?;
    let password = s(doc.get("password"), "password")?;
    let nkey = s(doc.get("nkey_seed_file"), "nkey_seed_file")?;
    let creds = s(doc.get("creds_file"), "creds_file")?;
    let given = [token.is_some(), user.is_some() || password.is_some(), nkey.is_some(), creds.is_some()].iter().filter(|b| **b).count();
    if given > 1 {
        return Err("give one of token, user/password, nkey_seed_file, creds_file".into());
    }
    c.auth = match (token, user, password, nkey, creds) {
        (Some(t), ..) => Auth::Token(t),
        (_, Some(user), Some(password), ..) => Auth::UserPassword { user, password },
        (_, Some(_), None, ..) | (_, None, Some(_), ..) => return Err("user and password go together".into()),
        (.., Some(n), _) => Auth::NKey(n.into()),
        (.., Some(f)) => Auth::Creds(f.into()),
        _ => Auth::None,
    };
    if let Some(list) = doc.get("allow_hosts") {
        let arr = list.as_array().ok_or("allow_hosts must be an array of host names")?;
        let mut v = vec![];
        for h in arr.iter() {
            let h = h.as_str().filter(|h| crate::queue::names::is_valid(h)).ok_or("allow_hosts must hold host names")?;
            v.push(h.to_string());
        }
        c.allow_hosts = Some(v);
    }
    if let Some(t) = doc.get("tls") {
        let t = t.as_table().ok_or("tls must be a table")?;
        for (k, _) in t.iter() {
            if !["required", "ca", "cert", "key", "first"].contains(&k) {
                return Err(format!("unknown key tls.{k}"));
            }
        }
        let b = |k: &str| t.get(k).map(|i| i.as_bool().ok_or(format!("tls.{k} must be true or false"))).transpose();
        c.tls.required = b("required")?.unwrap_or(false);
        c.tls.first = b("first")?.unwrap_or(false);
        c.tls.ca = s(t.get("ca"), "tls.ca")?.map(PathBuf::from);
        c.tls.cert = s(t.get("cert"), "tls.cert")?.map(PathBuf::from);
        c.tls.key = s(t.get("key"), "tls.key")?.map(PathBuf::from);
        if c.tls.cert.is_some() != c.tls.key.is_some() {
            return Err("tls.cert and tls.key go together".into());
        }
    }
    if let Some(t) = doc.get("stream") {
        let t = t.as_table().ok_or("stream must be a table")?;
        for (k, _) in t.iter() {
            if !["name", "subject_prefix", "max_bytes", "max_age_secs", "duplicate_window_secs", "max_msg_size", "replicas"].contains(&k) {
                return Err(format!("unknown key stream.{k}"));
            }
        }
        let st = &mut c.stream;
        if let Some(n) = s(t.get("name"), "stream.name")? {
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err("stream.name must be letters, digits, _ and -".into());
            }
            st.name = n;
        }
        if let Some(p) = s(t.get("subject_prefix"), "stream.subject_prefix")? {
            if p.is_empty() || p.split('.').any(|tok| tok.is_empty() || tok.contains(['*', '>', ' '])) {
                return Err("stream.subject_prefix must be dot-separated literal tokens".into());
            }
            st.prefix = p;
        }
        if let Some(v) = int(t.get("max_bytes"), "stream.max_bytes")? {
            st.max_bytes = v;
        }
        if let Some(v) = int(t.get("max_age_secs"), "stream.max_age_secs")? {
            st.max_age = Duration::from_secs(v as u64);
        }
        if let Some(v) = int(t.get("duplicate_window_secs"), "stream.duplicate_window_secs")? {
            st.duplicate_window = Duration::from_secs(v.max(1) as u64);
        }
        if let Some(v) = int(t.get("max_msg_size"), "stream.max_msg_size")? {
            st.max_msg_size = i32::try_from(v).map_err(|_| "stream.max_msg_size is too large")?;
        }
        if let Some(v) = int(t.get("replicas"), "stream.replicas")? {
            st.replicas = (v as usize).clamp(1, 5);
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file() {
        let c = parse_str(
            r#"
url = "tls://nats.example:4222"
user = "h1"
password = "s3cret"
allow_hosts = ["h2", "h3"]
[tls]
required = true
ca = "/etc/ca.pem"
[stream]
name = "TEAM"
max_age_secs = 86400
"#,
            "h1",
        )
        .unwrap();
        assert_eq!(c.auth, Auth::UserPassword { user: "h1".into(), password: "s3cret".into() });
        assert!(!format!("{:?}", c.auth).contains("s3cret"));
        assert_eq!(c.allow_hosts.as_deref(), Some(&["h2".to_string(), "h3".to_string()][..]));
        assert!(c.tls.required);
        assert_eq!((c.stream.name.as_str(), c.stream.max_age), ("TEAM", Duration::from_secs(86400)));
        assert_eq!(c.stream.prefix, "peerspool");
    }

    #[test]
    fn mistakes_are_refused_not_guessed() {
        for (text, what) in [
            ("urll = \"x\"", "unknown key"),
            ("token = \"a\"\nuser = \"b\"\npassword = \"c\"", "one of"),
            ("user = \"b\"", "go together"),
            ("allow_hosts = [\"H2\"]", "host names"),
            ("[tls]\ncert = \"/c\"", "go together"),
            ("[stream]\nsubject_prefix = \"a.*\"", "literal"),
            ("[stream]\nmax_bytes = -1", "non-negative"),
        ] {
            let e = parse_str(text, "h1").unwrap_err();
            assert!(e.contains(what), "{text}: {e}");
        }
    }

    #[test]
    fn urls_are_shown_without_passwords() {
        let c = Config::new("nats://u:pw@host:4222".into(), "h");
        assert_eq!(c.url_redacted(), "nats://***@host:4222");
        assert_eq!(Config::new("nats://host:1".into(), "h").url_redacted(), "nats://host:1");
    }

    #[test]
    fn a_readable_secrets_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nats.toml");
        std::fs::write(&p, "url = \"nats://x:1\"\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = parse_file(&p, "h").unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(parse_file(&p, "h").unwrap().url, "nats://x:1");
    }
}
