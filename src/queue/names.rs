//! Peer and address names. They become directory names, so the pattern is
//! the only thing standing between a task file and a path trick.

use crate::error::Error;

/// `^[a-z0-9][a-z0-9_-]{0,62}$`, checked by hand (no regex on a hot path).
pub fn is_valid(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 63 {
        return false;
    }
    let head = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    head(b[0]) && b[1..].iter().all(|&c| head(c) || c == b'_' || c == b'-')
}

/// A message address: a name (on this host), or `name@host` (a peer or
/// inbox address on another host, reached through the NATS bridge).
pub fn is_address(s: &str) -> bool {
    match s.split_once('@') {
        None => is_valid(s),
        Some((n, h)) => is_valid(n) && is_valid(h),
    }
}

/// `is_address` with the CLI's error.
pub fn check_address(what: &'static str, s: &str) -> Result<(), Error> {
    if is_address(s) {
        Ok(())
    } else {
        Err(Error::Usage(format!("invalid {what} {:?}: must be NAME or NAME@HOST, each matching ^[a-z0-9][a-z0-9_-]{{0,62}}$", s.escape_debug().to_string())))
    }
}

/// Validates a peer or address name; `what` names the role in the error.
pub fn check(what: &'static str, name: &str) -> Result<(), Error> {
    if is_valid(name) {
        Ok(())
    } else {
        Err(Error::BadName {
            what,
            name: name.escape_debug().to_string(),
        })
    }
}

/// A best-effort address for the local user (`--from` default): lowercased
/// login name with anything outside the pattern mapped to `-`.
pub fn local_user() -> String {
    let raw = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    if raw.is_empty() {
        return "user".into();
    }
    let mut s: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' })
        .take(63)
        .collect();
    if !s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        s = format!("u{s}");
        s.truncate(63);
    }
    if is_valid(&s) { s } else { "user".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_contract_names() {
        for n in ["a", "0", "alice", "peer-1", "a_b", &"x".repeat(63)] {
            assert!(is_valid(n), "{n}");
        }
    }

    #[test]
    fn refuses_path_tricks_and_case() {
        for n in ["", "..", ".a", "a/b", "A", "a b", "-a", "_a", "a\0", "é", &"x".repeat(64)] {
            assert!(!is_valid(n), "{n:?}");
        }
    }

    #[test]
    fn addresses_are_names_or_name_at_host() {
        for a in ["b", "b@h2", "user_1@build-box"] {
            assert!(is_address(a), "{a}");
        }
        for a in ["", "@", "b@", "@h", "b@h@h", "B@h", "b@H", "b@../x", "b@h.x"] {
            assert!(!is_address(a), "{a:?}");
        }
    }

    #[test]
    fn error_names_the_role() {
        let e = check("peer name", "../x").unwrap_err().to_string();
        assert!(e.contains("peer name") && e.contains("../x"), "{e}");
    }
}
