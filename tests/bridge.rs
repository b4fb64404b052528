//! The bridge alone against a real nats-server: two roots and two host
//! names in one process stand for two machines. The daemon-level tests
//! (CLI, peers, `send --wait`) are in tests/multihost.rs.

mod nats;

use nats::Nats;
use peerspool::bridge::{config, envelope::Envelope, outbound::OutQueue, Bridge};
use peerspool::root::Root;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Host {
    _dir: tempfile::TempDir,
    root: Root,
    name: String,
    bridge: Option<Bridge>,
}

fn host(name: &str, peers: &[&str]) -> Host {
    let dir = tempfile::Builder::new().prefix("br-").tempdir_in("/tmp").expect("tempdir");
    let root = Root::new(dir.path().join("root"));
    root.ensure().expect("root");
    for p in peers {
        let pp = root.peer(p).expect("peer");
        root.ensure_peer_dirs(&pp).expect("peer dirs");
        let mut pr = peerspool::registry::profile::Profile::new(peerspool::registry::profile::RuntimeKind::Command, "/tmp".into());
        pr.command = Some(vec!["cat".into()]);
        std::fs::write(pp.profile(), pr.to_json()).expect("profile");
    }
    Host { _dir: dir, root, name: name.into(), bridge: None }
}

impl Host {
    async fn start(&mut self, n: &Nats, extra: &str) {
        let p = self.root.path.join("nats.toml");
        n.write_host_config(&self.name, &p, extra);
        self.start_file(&p).await;
    }

    /// Starts with the configuration file at `p` (mode 0600).
    async fn start_file(&mut self, p: &std::path::Path) {
        let cfg = config::parse_file(p, &self.name).expect("config");
        let log = Arc::new(peerspool::logfmt::Log::new(self.root.log_dir().join("delivery.log"), 50 << 20, 2));
        self.bridge = Some(Bridge::start(self.root.clone(), cfg, log).await.expect("bridge start"));
    }

    async fn stop(&mut self) {
        if let Some(b) = self.bridge.take() {
            b.shutdown().await;
        }
    }

    fn send(&self, id: &str, sender: &str, to: &str, text: &str, in_reply_to: Option<&str>) {
        let env = Envelope {
            v: 1,
            id: id.into(),
            sender: sender.into(),
            to: to.into(),
            src: None,
            reply_to: format!("{sender}@{}", self.name),
            topic: None,
            in_reply_to: in_reply_to.map(str::to_string),
            hops: 0,
            origin: None,
            notice: None,
            text: text.into(),
        };
        OutQueue::of(&self.root).enqueue(&self.root, &env).expect("enqueue");
        if let Some(b) = &self.bridge {
            b.kick();
        }
    }

    fn spool_new(&self, peer: &str) -> std::path::PathBuf {
        self.root.peer(peer).unwrap().spool_sub("new")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.log_dir().join("delivery.log")).unwrap_or_default()
    }

    /// Ids landed here, in the order they were written.
    fn landed(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("event=bridge-in") && l.contains("outcome=written"))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")).map(str::to_string))
            .collect()
    }
}

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_default()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_and_its_reply_cross_hosts_with_the_sender_from_the_subject() {
    let n = Nats::start(&["h1", "h2"]);
    let (mut h1, mut h2) = (host("h1", &[]), host("h2", &["b"]));
    h1.start(&n, "").await;
    h2.start(&n, "").await;
    h1.send("0001", "script", "b@h2", "hello b", None);
    let task = h2.spool_new("b").join("0001.json");
    wait_for("the task on h2", Duration::from_secs(20), || task.exists()).await;
    let t = json(&task);
    assert_eq!((t["from"].as_str(), t["reply_to"].as_str(), t["text"].as_str()), (Some("script@h1"), Some("script@h1"), Some("hello b")));
    assert_eq!(peerspool::queue::spool::depth(&OutQueue::of(&h1.root).sent), 1, "h1's copy moved to sent/ after the ack");
    // b answers: the reply goes back to the script's inbox on h1.
    h2.send("0002", "b", "script@h1", "hi script", Some("0001"));
    let reply = h1.root.inbox("script").unwrap().join("new").join("0002.json");
    wait_for("the reply on h1", Duration::from_secs(20), || reply.exists()).await;
    let r = json(&reply);
    assert_eq!((r["from"].as_str(), r["to"].as_str(), r["in_reply_to"].as_str()), (Some("b@h2"), Some("script"), Some("0001")));
    let v = h1.bridge.as_ref().unwrap().status();
    assert!(v.line().contains("pending out 0"), "{}", v.line());
    h1.stop().await;
    h2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_arrive_once_in_order_across_a_server_restart() {
    let mut n = Nats::start(&["h1", "h2"]);
    let (mut h1, mut h2) = (host("h1", &[]), host("h2", &["b"]));
    h1.start(&n, "").await;
    h2.start(&n, "").await;
    let t0 = Instant::now();
    for i in 0..500 {
        h1.send(&format!("{i:06}"), "script", "b@h2", &format!("message {i}"), None);
    }
    // Kill the server mid-stream (some landed, some not), keep sending.
    wait_for("some messages landed", Duration::from_secs(30), || !h2.landed().is_empty()).await;
    n.kill();
    for i in 500..1000 {
        h1.send(&format!("{i:06}"), "script", "b@h2", &format!("message {i}"), None);
    }
    wait_for("status says it waits for NATS", Duration::from_secs(20), || {
        peerspool::bridge::status::read(&h1.root).is_some_and(|v| v.line().contains("waiting for NATS") || v.line().contains("disconnected"))
    })
    .await;
    n.restart();
    // The log line follows the ack: wait for the log, not the files.
    wait_for("all 1000 landed", Duration::from_secs(120), || h2.landed().len() >= 1000).await;
    eprintln!("1000 messages h1 -> h2 with a server restart: {:?}", t0.elapsed());
    let landed = h2.landed();
    let want: Vec<String> = (0..1000).map(|i| format!("{i:06}")).collect();
    let first_diff = landed.iter().zip(&want).position(|(a, b)| a != b);
    assert!(landed == want, "each exactly once, in order: {} landed, first difference at {first_diff:?}: {:?}", landed.len(), first_diff.map(|i| &landed[i.saturating_sub(2)..(i + 3).min(landed.len())]));
    assert_eq!(peerspool::queue::spool::depth(&h2.spool_new("b")), 1000);
    wait_for("h1's queue drained", Duration::from_secs(10), || OutQueue::of(&h1.root).pending() == 0).await;
    h1.stop().await;
    h2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_cannot_publish_as_another() {
    let n = Nats::start(&["h1", "h2"]);
    let mut h2 = host("h2", &["b"]);
    h2.start(&n, "").await;
    // The stream exists once h2's consumer reads from it.
    wait_for("h2's consumer", Duration::from_secs(20), || {
        h2.bridge.as_ref().is_some_and(|b| b.status().inbound == peerspool::bridge::status::Link::Connected)
    })
    .await;
    let h1 = async_nats::ConnectOptions::with_user_and_password("h1".into(), nats::password("h1"))
        .custom_inbox_prefix("_INBOX_h1")
        .connect(n.url())
        .await
        .expect("connect as h1");
    let js = async_nats::jetstream::ContextBuilder::new().timeout(Duration::from_secs(3)).build(h1);
    let forged = |src: &str| {
        serde_json::to_vec(&serde_json::json!({"v":1,"id":format!("forged-{src}"),"sender":"mallory","to":"b@h2","src":src,"reply_to":"mallory@h3","text":"hi"})).unwrap()
    };
    // 1. On h3's subject: the server refuses the publish (permissions).
    let r = async { js.publish("peerspool.msg.h2.h3", forged("h3").into()).await?.await }.await;
    assert!(r.is_err(), "h1 published as h3: {r:?}");
    // 2. On its own subject, claiming h3 in the payload: h2 refuses it.
    js.publish("peerspool.msg.h2.h1", forged("h3").into()).await.expect("publish").await.expect("ack");
    let refused = h2.root.path.join("bridge/refused");
    wait_for("h2 records the refusal", Duration::from_secs(20), || {
        std::fs::read_dir(&refused).map(|d| d.count()).unwrap_or(0) >= 2
    })
    .await;
    let errs: Vec<String> = std::fs::read_dir(&refused)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".error"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(errs.len() == 1 && errs[0].starts_with("source-mismatch: "), "{errs:?}");
    // 3. A genuine message from h1 after both is landed, and nothing else.
    js.publish("peerspool.msg.h2.h1", serde_json::to_vec(&serde_json::json!({"v":1,"id":"genuine","sender":"a","to":"b@h2","reply_to":"a@h1","text":"hi"})).unwrap().into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    let genuine = h2.spool_new("b").join("genuine.json");
    wait_for("the genuine message", Duration::from_secs(20), || genuine.exists()).await;
    assert_eq!(json(&genuine)["from"].as_str(), Some("a@h1"));
    assert_eq!(peerspool::queue::spool::list(&h2.spool_new("b")).unwrap(), vec!["genuine.json".to_string()]);
    // The stream never held anything on h3's subject.
    let admin = async_nats::ConnectOptions::with_user_and_password("admin".into(), "pw-admin".into()).connect(n.url()).await.expect("admin");
    let ajs = async_nats::jetstream::new(admin);
    let mut st = ajs.get_stream(nats::STREAM).await.expect("stream");
    // The ack follows the landed file: the stream empties just after.
    let start = Instant::now();
    loop {
        let left = st.info().await.expect("info").state.messages;
        if left == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{left} message(s) neither acknowledged nor terminated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!n.log().is_empty());
    h2.stop().await;
}

/// Runs `openssl` with `args` in `dir`; panics with its stderr on failure.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl (apt-get install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test CA and a server certificate for 127.0.0.1 signed by it (a
/// self-signed CA certificate cannot itself serve as the server's: rustls
/// refuses a CA certificate as an end entity).
fn make_certs(dir: &std::path::Path) {
    openssl(dir, &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=peerspool-test-ca"]);
    openssl(dir, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("ext");
    openssl(dir, &["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"]);
}

/// Over TLS (a `tls {}` block in nats-server.conf, the client trusting the
/// test CA through `[tls] ca`): a message and its reply cross; a client
/// that does not trust the CA is refused at the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_crosses_over_tls_and_an_untrusted_server_is_refused() {
    let certs = tempfile::Builder::new().prefix("tls-").tempdir_in("/tmp").expect("tempdir");
    make_certs(certs.path());
    let c = |f: &str| certs.path().join(f).display().to_string();
    let n = Nats::start_with(&["h1", "h2"], nats::password_user, &format!("tls {{ cert_file: \"{}\", key_file: \"{}\" }}\n", c("server.pem"), c("server.key")));
    let trust = format!("[tls]\nrequired = true\nca = \"{}\"\n", c("ca.pem"));
    let (mut h1, mut h2) = (host("h1", &[]), host("h2", &["b"]));
    h1.start(&n, &trust).await;
    h2.start(&n, &trust).await;
    h1.send("0001", "script", "b@h2", "hello over tls", None);
    let task = h2.spool_new("b").join("0001.json");
    wait_for("the task on h2", Duration::from_secs(30), || task.exists()).await;
    assert_eq!(json(&task)["from"].as_str(), Some("script@h1"));
    h2.send("0002", "b", "script@h1", "reply over tls", Some("0001"));
    let reply = h1.root.inbox("script").unwrap().join("new").join("0002.json");
    wait_for("the reply on h1", Duration::from_secs(30), || reply.exists()).await;
    assert!(n.log().contains("TLS required for client connections"), "the server ran with TLS: {}", n.log());
    // Without the CA: the system roots do not know it, so no connection.
    let p = h1.root.path.join("untrusting.toml");
    n.write_host_config("h1", &p, "[tls]\nrequired = true\n");
    let cfg = config::parse_file(&p, "h1").expect("config");
    let r = async { peerspool::bridge::connect_options(&cfg, false).await?.connect(n.url()).await.map_err(|e| peerspool::bridge::BridgeError::Nats(e.to_string())) };
    let r = tokio::time::timeout(Duration::from_secs(20), r).await.expect("a refusal, not a hang");
    let err = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("UnknownIssuer"), "connected without trusting the CA, or failed otherwise: {err:?}");
    h1.stop().await;
    h2.stop().await;
}

/// A host authenticated by an nkey (a user public key in nats-server.conf,
/// its seed in `nkey_seed_file`, mode 0600) with the same permissions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_authenticated_by_nkeys_exchange_messages() {
    let keys: Vec<(String, nkeys::KeyPair)> = ["h1", "h2"].iter().map(|h| (h.to_string(), nkeys::KeyPair::new_user())).collect();
    let publics: std::collections::HashMap<String, String> = keys.iter().map(|(h, k)| (h.clone(), k.public_key())).collect();
    let n = Nats::start_with(&["h1", "h2"], move |h| format!("{{ nkey: \"{}\", permissions: {} }}", publics[h], nats::host_permissions(h)), "");
    let (mut h1, mut h2) = (host("h1", &[]), host("h2", &["b"]));
    for (h, (name, kp)) in [&mut h1, &mut h2].into_iter().zip(&keys) {
        use std::os::unix::fs::PermissionsExt;
        let seed = h.root.path.join(format!("{name}.nk"));
        std::fs::write(&seed, kp.seed().expect("seed")).expect("seed file");
        std::fs::set_permissions(&seed, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let p = h.root.path.join("nats.toml");
        std::fs::write(&p, format!("url = \"{}\"\nnkey_seed_file = \"{}\"\n", n.url(), seed.display())).expect("config");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        h.start_file(&p).await;
    }
    h1.send("0001", "script", "b@h2", "hello by nkey", None);
    let task = h2.spool_new("b").join("0001.json");
    wait_for("the task on h2", Duration::from_secs(30), || task.exists()).await;
    assert_eq!(json(&task)["from"].as_str(), Some("script@h1"));
    h1.stop().await;
    h2.stop().await;
}
