use anyhow::Context;
use clap::{Args, Subcommand};
use peerspool::root::Root;
use peerspool::Error;
use std::io::{BufRead, Seek, SeekFrom};
use std::path::PathBuf;

pub fn daemon(root: Root) -> anyhow::Result<i32> {
    // Without tmux no session can start: refuse instead of failing every wake.
    if let Some(t) = peerspool::session::preflight::missing_tmux() {
        return Err(Error::Refused(format!("tmux ({t}) is not on PATH: install tmux (apt-get install tmux, brew install tmux) or set PEERSPOOL_TMUX; the daemon did not start")).into());
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PEERSPOOL_LOG").unwrap_or_else(|_| "info".into()))
        .try_init();
    peerspool::daemon::run_blocking(root, None)?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the temporary root for inspection
    #[arg(long)]
    pub keep: bool,
}

pub fn demo(a: DemoArgs) -> anyhow::Result<i32> {
    peerspool::demo::run(a.keep)
}

pub fn attach(root: &Root, peer: &str) -> anyhow::Result<i32> {
    root.peer(peer)?;
    if !root.is_peer(peer) {
        return Err(Error::UnknownPeer(peer.into()).into());
    }
    let t = peerspool::session::tmux::Tmux::new(root.tmux_socket(peer));
    if !t.alive_blocking() {
        anyhow::bail!("peer {peer:?} is asleep: no live session to attach to (send it a task to wake it)");
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(Error::Usage(format!(
            "attach needs a terminal (stdin is not a tty); to read the screen instead: tmux -S {} capture-pane -p -t {}",
            t.socket.display(),
            peerspool::session::tmux::SESSION
        ))
        .into());
    }
    let st = std::process::Command::new("tmux")
        .arg("-S")
        .arg(&t.socket)
        .args(["attach-session", "-t", peerspool::session::tmux::SESSION])
        .status()
        .context("running tmux attach")?;
    Ok(if st.success() { 0 } else { 1 })
}

#[derive(Args, Debug)]
pub struct LogArgs {
    /// Keep printing new lines
    #[arg(long, short)]
    pub follow: bool,
    /// Only lines about this peer
    #[arg(long)]
    pub peer: Option<String>,
    /// Which log: delivery, lifecycle or both
    #[arg(long, default_value = "both", value_parser = ["delivery", "lifecycle", "both"])]
    pub which: String,
}

pub fn log(root: &Root, a: LogArgs) -> anyhow::Result<i32> {
    if let Some(p) = &a.peer {
        root.peer(p)?;
        if !root.is_peer(p) {
            return Err(Error::UnknownPeer(p.clone()).into());
        }
    }
    let files: Vec<PathBuf> = match a.which.as_str() {
        "delivery" => vec![root.log_dir().join("delivery.log")],
        "lifecycle" => vec![root.log_dir().join("lifecycle.log")],
        _ => vec![root.log_dir().join("lifecycle.log"), root.log_dir().join("delivery.log")],
    };
    let needle = a.peer.map(|p| format!("peer={p} "));
    let keep = |l: &str| needle.as_ref().is_none_or(|n| l.contains(n.as_str()));
    let mut lines: Vec<String> = vec![];
    let mut offsets = vec![];
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        offsets.push(text.len() as u64);
        lines.extend(text.lines().filter(|l| keep(l)).map(str::to_string));
    }
    lines.sort(); // ts= comes first, so this interleaves by time
    for l in &lines {
        println!("{l}");
    }
    if !a.follow {
        return Ok(0);
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(250));
        for (i, f) in files.iter().enumerate() {
            let Ok(mut fh) = std::fs::File::open(f) else { continue };
            let len = fh.metadata().map(|m| m.len()).unwrap_or(0);
            if len < offsets[i] {
                offsets[i] = 0; // rotated
            }
            fh.seek(SeekFrom::Start(offsets[i]))?;
            let mut r = std::io::BufReader::new(fh);
            let mut l = String::new();
            while r.read_line(&mut l)? > 0 {
                if !l.ends_with('\n') {
                    break;
                }
                offsets[i] += l.len() as u64;
                if keep(&l) {
                    print!("{l}");
                }
                l.clear();
            }
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum HookCmd {
    /// Mark "turn finished" for the peer of this session (PEERSPOOL_PEER)
    TurnEnd {
        /// The peer (default: $PEERSPOOL_PEER)
        #[arg(long)]
        peer: Option<String>,
        /// Exit quietly when there is no peer (a session peerspool did not start)
        #[arg(long)]
        if_peer: bool,
        /// Ignored: what the runtime passes along (Codex appends a JSON event)
        #[arg(hide = true, allow_hyphen_values = true)]
        event: Vec<String>,
    },
}

pub fn hook(root: &Root, c: HookCmd) -> anyhow::Result<i32> {
    let HookCmd::TurnEnd { peer, if_peer, event: _ } = c;
    let peer = peer.or_else(peerspool::queue::send::session_peer);
    if peer.is_none() && if_peer {
        return Ok(0);
    }
    let peer = peer.ok_or_else(|| Error::Usage("no peer: run inside a session or pass --peer".into()))?;
    peerspool::session::hook::turn_end(root, &peer)?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Append every received message (JSON lines) here
    #[arg(long)]
    pub log: PathBuf,
    /// Answer each task through the outbox
    #[arg(long)]
    pub reply: bool,
    /// After answering, touch the turn-end marker
    #[arg(long)]
    pub turn_end: bool,
    /// Exit after this many messages
    #[arg(long)]
    pub exit_after: Option<u64>,
    /// Started as a resumed session (shown in the banner)
    #[arg(long)]
    pub resumed: bool,
    /// Answer by running `peerspool reply` instead of writing the outbox
    #[arg(long)]
    pub reply_cli: bool,
    /// Simulated work before answering, in milliseconds
    #[arg(long, default_value_t = 0)]
    pub work_ms: u64,
    /// Add nanosecond CLOCK_REALTIME stamps to the log (for benchmarks)
    #[arg(long)]
    pub stamp: bool,
    /// Send every answer to this peer (as a reply) instead of the sender
    #[arg(long)]
    pub forward_to: Option<String>,
}

impl From<AgentArgs> for peerspool::demo::agent::Options {
    fn from(a: AgentArgs) -> Self {
        peerspool::demo::agent::Options { log: a.log, reply: a.reply, turn_end: a.turn_end, exit_after: a.exit_after, resumed: a.resumed, reply_cli: a.reply_cli, work_ms: a.work_ms, stamp: a.stamp, forward_to: a.forward_to }
    }
}
