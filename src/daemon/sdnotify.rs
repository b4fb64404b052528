//! systemd's readiness protocol (sd_notify) over a plain Unix datagram
//! socket, so the daemon needs no libsystemd. Without `NOTIFY_SOCKET`
//! (launchd, a terminal) every call is a no-op.
//!
//! The variables are taken out of the process environment at start, before
//! any thread or child exists: a session the daemon starts must not inherit
//! `NOTIFY_SOCKET`, or an agent could report readiness for the daemon.

use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Path(PathBuf),
    /// Linux abstract namespace (`@name` in `NOTIFY_SOCKET`).
    Abstract(Vec<u8>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notifier {
    pub target: Option<Target>,
    /// How often to send WATCHDOG=1 (half the period systemd enforces).
    pub watchdog: Option<Duration>,
}

static GLOBAL: OnceLock<Notifier> = OnceLock::new();

/// Parses `NOTIFY_SOCKET`: an absolute path or `@abstract`.
pub fn parse_socket(v: &std::ffi::OsStr) -> Option<Target> {
    use std::os::unix::ffi::OsStrExt;
    let b = v.as_bytes();
    match b.first()? {
        b'@' if b.len() > 1 => Some(Target::Abstract(b[1..].to_vec())),
        b'/' => Some(Target::Path(PathBuf::from(v))),
        _ => None,
    }
}

/// The ping interval from `WATCHDOG_USEC`, when `WATCHDOG_PID` is unset or
/// names this process (the variables may have leaked from a parent).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok()? != me {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

/// Reads and removes `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
/// Call once, before the runtime starts threads; later calls keep the first.
pub fn take_from_env() -> &'static Notifier {
    GLOBAL.get_or_init(|| {
        let get = |k: &str| std::env::var_os(k);
        let sock: Option<OsString> = get("NOTIFY_SOCKET");
        let usec = get("WATCHDOG_USEC").and_then(|v| v.into_string().ok());
        let pid = get("WATCHDOG_PID").and_then(|v| v.into_string().ok());
        for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(k);
        }
        let target = sock.as_deref().and_then(parse_socket);
        let watchdog = target.as_ref().and(watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id()));
        Notifier { target, watchdog }
    })
}

/// The notifier taken at start (none when `take_from_env` was not called).
pub fn global() -> Notifier {
    GLOBAL.get().cloned().unwrap_or_default()
}

impl Notifier {
    /// Sends one state message (`READY=1`, `STOPPING=1`, ...). Failures are
    /// logged, never fatal: a supervisor that stopped listening must not
    /// take the daemon down.
    pub fn notify(&self, state: &str) {
        let Some(t) = &self.target else { return };
        if let Err(e) = send(t, state.as_bytes()) {
            tracing::warn!(error = %e, "sd_notify {:?} failed", state.lines().next().unwrap_or(""));
        }
    }
}

fn send(t: &Target, msg: &[u8]) -> std::io::Result<usize> {
    let s = UnixDatagram::unbound()?;
    match t {
        Target::Path(p) => s.send_to(msg, p),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            s.send_to_addr(msg, &addr)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        Target::Abstract(_) => Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "abstract sockets are Linux-only")),
    }
}

/// Shorthand for `global().notify(state)`.
pub fn notify(state: &str) {
    global().notify(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn socket_forms() {
        assert_eq!(parse_socket(OsStr::new("/run/user/1000/systemd/notify")), Some(Target::Path("/run/user/1000/systemd/notify".into())));
        assert_eq!(parse_socket(OsStr::new("@/org/freedesktop/systemd1/notify/123")), Some(Target::Abstract(b"/org/freedesktop/systemd1/notify/123".to_vec())));
        assert_eq!(parse_socket(OsStr::new("@")), None);
        assert_eq!(parse_socket(OsStr::new("relative/path")), None);
        assert_eq!(parse_socket(OsStr::new("")), None);
    }

    #[test]
    fn watchdog_honours_pid_and_halves_period() {
        assert_eq!(watchdog_interval(Some("30000000"), None, 7), Some(Duration::from_secs(15)));
        assert_eq!(watchdog_interval(Some("30000000"), Some("7"), 7), Some(Duration::from_secs(15)));
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
    }

    #[test]
    fn sends_to_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notify");
        let rx = UnixDatagram::bind(&p).unwrap();
        Notifier { target: Some(Target::Path(p)), watchdog: None }.notify("READY=1\nSTATUS=ok");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_abstract_socket() {
        let mut buf = [0u8; 64];
        use std::os::linux::net::SocketAddrExt;
        let name = format!("peerspool-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier { target: parse_socket(OsStr::new(&format!("@{name}"))), watchdog: None }.notify("STOPPING=1");
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
