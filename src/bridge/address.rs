//! The address grammar: `name` (on this host) or `name@host`. Host names
//! follow the peer-name pattern because they become NATS subject tokens
//! and appear in file names; a bare name never leaves the host.

use super::BridgeError as Error;
use crate::queue::names;

/// Where a message goes or comes from. `host: None` is this host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    pub name: String,
    pub host: Option<String>,
}

impl Address {
    pub fn local(name: &str) -> Address {
        Address { name: name.to_string(), host: None }
    }

    /// `b@me` is the local `b`: an address that names this host never
    /// goes through NATS.
    pub fn normalized(mut self, me: &str) -> Address {
        if self.host.as_deref() == Some(me) {
            self.host = None;
        }
        self
    }

    /// The remote host this address names, after normalisation by `me`.
    pub fn remote_host<'a>(&'a self, me: &str) -> Option<&'a str> {
        self.host.as_deref().filter(|h| *h != me)
    }

    /// The form that is meaningful on another host: always qualified.
    pub fn qualified(&self, me: &str) -> String {
        format!("{}@{}", self.name, self.host.as_deref().unwrap_or(me))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Some(h) => write!(f, "{}@{h}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The longest address: two names and the `@`.
pub const MAX_ADDRESS_BYTES: usize = 63 + 1 + 63;

/// Parses `name` or `name@host`; exactly one `@`, both parts valid names.
pub fn parse(s: &str) -> Option<Address> {
    match s.split_once('@') {
        None => names::is_valid(s).then(|| Address::local(s)),
        Some((n, h)) => (names::is_valid(n) && names::is_valid(h)).then(|| Address { name: n.into(), host: Some(h.into()) }),
    }
}

pub fn is_valid(s: &str) -> bool {
    parse(s).is_some()
}

/// `parse` with the CLI's error: `what` names the role (`recipient`, `--reply-to`).
pub fn check(what: &'static str, s: &str) -> Result<Address, Error> {
    parse(s).ok_or_else(|| Error::BadAddress { what, name: s.escape_debug().to_string() })
}

/// This daemon's host name: `PEERSPOOL_HOST`, else the machine's short host
/// name mapped into the name pattern (lowercase, other characters `-`).
/// A `PEERSPOOL_HOST` that is not a valid name is an error, not a guess:
/// two hosts silently sharing a fallback name would read each other's mail.
pub fn this_host() -> Result<String, Error> {
    if let Some(h) = std::env::var("PEERSPOOL_HOST").ok().filter(|h| !h.is_empty()) {
        if !names::is_valid(&h) {
            return Err(Error::BadHost(h.escape_debug().to_string()));
        }
        return Ok(h);
    }
    let raw = machine_host_name();
    let short = raw.split('.').next().unwrap_or_default();
    let mapped = map_name(short);
    if names::is_valid(&mapped) {
        Ok(mapped)
    } else {
        Err(Error::BadHost(format!("{} (the machine's host name; set PEERSPOOL_HOST)", raw.escape_debug())))
    }
}

/// Lowercased, anything outside `[a-z0-9_-]` mapped to `-`, leading `-`/`_` dropped.
pub fn map_name(raw: &str) -> String {
    let s: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' })
        .collect();
    let s = s.trim_start_matches(['-', '_']);
    s.chars().take(63).collect()
}

fn machine_host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(parse("b"), Some(Address::local("b")));
        assert_eq!(parse("b@h2"), Some(Address { name: "b".into(), host: Some("h2".into()) }));
        for bad in ["", "@", "b@", "@h2", "b@h2@h3", "B@h2", "b@H2", "b@h 2", "b@../x", "../x", "b@h.2", "b@-h"] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
        let long = format!("{}@{}", "x".repeat(63), "y".repeat(63));
        assert_eq!(long.len(), MAX_ADDRESS_BYTES);
        assert!(is_valid(&long));
        assert!(!is_valid(&format!("{}@{}", "x".repeat(64), "y")));
    }

    #[test]
    fn normalisation_and_qualification() {
        let a = parse("b@h1").unwrap();
        assert_eq!(a.remote_host("h1"), None);
        assert_eq!(a.remote_host("h2"), Some("h1"));
        assert_eq!(a.clone().normalized("h1"), Address::local("b"));
        assert_eq!(a.to_string(), "b@h1");
        assert_eq!(Address::local("user").qualified("h1"), "user@h1");
        assert_eq!(a.qualified("h9"), "b@h1");
    }

    #[test]
    fn host_names_map_into_the_pattern() {
        assert_eq!(map_name("Build-Box_7"), "build-box_7");
        assert_eq!(map_name("-x.y"), "x-y");
        assert!(names::is_valid(&map_name(&"A".repeat(80))));
    }

    #[test]
    fn check_names_the_role() {
        let e = check("recipient", "b@@h").unwrap_err().to_string();
        assert!(e.contains("recipient") && e.contains("b@@h"), "{e}");
    }
}
