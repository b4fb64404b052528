//! A real nats-server with JetStream for the multi-host tests: a loopback
//! port of its own, a store in a temporary directory, a config with one
//! user per host and the permissions spool-spec/MULTIHOST.md documents, and
//! an `admin` user for inspection. Stopped by its own pid in Drop (and on
//! `kill`), never by name.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const STREAM: &str = "PEERSPOOL";
pub const PREFIX: &str = "peerspool";

pub struct Nats {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    starts: u32,
}

/// The password of a host's user in the test config.
pub fn password(host: &str) -> String {
    format!("pw-{host}")
}

/// The permissions one host gets: publish only as itself, read only its
/// own consumer, replies only under its own inbox prefix.
pub fn host_permissions(host: &str) -> String {
    let pubs = [
        format!("{PREFIX}.msg.*.{host}"),
        "$JS.API.INFO".into(),
        format!("$JS.API.STREAM.INFO.{STREAM}"),
        format!("$JS.API.STREAM.CREATE.{STREAM}"),
        format!("$JS.API.CONSUMER.INFO.{STREAM}.in-{host}"),
        format!("$JS.API.CONSUMER.CREATE.{STREAM}.in-{host}.{PREFIX}.msg.{host}.*"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{STREAM}.in-{host}"),
        format!("$JS.API.CONSUMER.DELETE.{STREAM}.in-{host}"),
        format!("$JS.ACK.{STREAM}.in-{host}.>"),
    ];
    let list = pubs.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    format!("{{ publish: {{ allow: [{list}] }}, subscribe: {{ allow: [\"_INBOX_{host}.>\"] }} }}")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A host's entry in the server's user list: a user with a password.
pub fn password_user(host: &str) -> String {
    format!("{{ user: \"{host}\", password: \"{}\", permissions: {} }}", password(host), host_permissions(host))
}

impl Nats {
    /// Starts a server whose users are `hosts` (plus `admin`).
    pub fn start(hosts: &[&str]) -> Nats {
        Nats::start_with(hosts, password_user, "")
    }

    /// Starts a server whose users are `user(host)` for each of `hosts`
    /// (plus `admin`), with `extra` added to its configuration (a `tls {}`
    /// block, say).
    pub fn start_with(hosts: &[&str], user: impl Fn(&str) -> String, extra: &str) -> Nats {
        let dir = tempfile::Builder::new().prefix("nats-").tempdir_in("/tmp").expect("tempdir");
        let users: Vec<String> = hosts
            .iter()
            .map(|h| format!("    {}", user(h)))
            .chain(std::iter::once("    { user: \"admin\", password: \"pw-admin\" }".to_string()))
            .collect();
        let conf = format!("max_payload: 4194304\n{extra}authorization {{\n  users = [\n{}\n  ]\n}}\n", users.join(",\n"));
        std::fs::write(dir.path().join("nats.conf"), conf).expect("write nats.conf");
        let mut n = Nats { port: free_port(), dir, child: None, starts: 0 };
        n.spawn();
        n
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "nats-server already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("nats.log")).expect("nats.log");
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(self.dir.path().join("nats.conf"))
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.store())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server (apt-get install nats-server; .ci/run installs it)");
        self.child = Some(child);
        self.starts += 1;
        let want = self.starts;
        let start = Instant::now();
        loop {
            let ready = self.log().matches("Server is ready").count() as u32 >= want;
            if ready && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("nats-server exited ({st}) at start:\n{}", self.log());
            }
            assert!(start.elapsed() < Duration::from_secs(20), "nats-server not ready in 20 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, by the pid we started.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A bridge configuration file for `host` (mode 0600), at `path`.
    pub fn write_host_config(&self, host: &str, path: &Path, extra: &str) {
        let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(path).expect("config");
        writeln!(f, "url = \"{}\"\nuser = \"{host}\"\npassword = \"{}\"\n{extra}", self.url(), password(host)).expect("write config");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- nats-server log (tail) ---\n{}", self.log().lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        self.kill();
    }
}
