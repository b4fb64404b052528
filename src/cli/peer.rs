use clap::{Args, Subcommand};
use peerspool::profile::{Profile, RuntimeKind, WakePolicy};
use peerspool::root::Root;
use peerspool::Error;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum PeerCmd {
    /// Register a peer: write peer.json and its directories
    Add(Box<AddArgs>),
    /// List registered peers
    List,
    /// Remove a peer, whole or not at all; a running daemon lets go of it
    /// first (refused while tasks are queued, unless --force)
    Rm {
        /// The peer to remove
        name: String,
        /// Also delete queued and in-flight tasks
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct AddArgs {
    pub name: String,
    #[arg(long, value_parser = ["claude", "codex", "command"])]
    pub runtime: String,
    /// Working directory of the session (made absolute)
    #[arg(long)]
    pub cwd: PathBuf,
    /// One fresh session per task, reaped after the reply
    #[arg(long)]
    pub ephemeral: bool,
    /// For `command`: path or glob whose newest mtime is the activity signal
    #[arg(long, value_name = "GLOB")]
    pub activity: Option<String>,
    /// For `command`: regex on the pane text meaning "input ready"
    #[arg(long, value_name = "RE")]
    pub ready_pattern: Option<String>,
    /// Text prepended to the first message of a fresh session
    #[arg(long)]
    pub initial_prompt: Option<String>,
    #[arg(long)]
    pub idle_secs: Option<f64>,
    #[arg(long)]
    pub quiet_secs: Option<f64>,
    /// Extra session environment, KEY=VALUE (repeatable)
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A human also types into this session
    #[arg(long)]
    pub human: bool,
    /// For `command`: argv to resume a parked session, as one shell-split string
    #[arg(long, value_name = "ARGV")]
    pub resume_command: Option<String>,
    /// Overwrite an existing profile
    #[arg(long)]
    pub force: bool,
    /// The session's argv (required for `command`)
    #[arg(last = true)]
    pub argv: Vec<String>,
}

pub fn run(root: &Root, c: PeerCmd) -> anyhow::Result<i32> {
    match c {
        PeerCmd::Add(a) => add(root, *a),
        PeerCmd::List => {
            for n in root.peer_names()? {
                let p = root.peer(&n)?;
                match Profile::load(&p.profile()) {
                    Ok(pr) => println!(
                        "{n}\t{}\t{}\t{}",
                        pr.runtime.as_str(),
                        if pr.wake_policy == WakePolicy::Ephemeral { "ephemeral" } else { "warm" },
                        pr.cwd.display()
                    ),
                    Err(e) => println!("{n}\tinvalid\t{e}"),
                }
            }
            Ok(0)
        }
        PeerCmd::Rm { name, force } => {
            let r = peerspool::remove::remove(root, &name, force)?;
            if r.daemon_released == Some(false) {
                eprintln!("peerspool: warning: the daemon did not let go of {name} within {}s; its session was ended here", peerspool::remove::DAEMON_GRACE.as_secs());
            }
            match r.tasks {
                0 => println!("removed peer {name}"),
                n => println!("removed peer {name} and {n} queued task(s)"),
            }
            Ok(0)
        }
    }
}

fn add(root: &Root, a: AddArgs) -> anyhow::Result<i32> {
    let p = root.peer(&a.name)?;
    root.ensure()?;
    if p.profile().exists() && !a.force {
        return Err(Error::PeerExists(a.name).into());
    }
    let runtime = match a.runtime.as_str() {
        "claude" => RuntimeKind::Claude,
        "codex" => RuntimeKind::Codex,
        _ => RuntimeKind::Command,
    };
    let cwd = if a.cwd.is_absolute() { a.cwd.clone() } else { std::env::current_dir()?.join(&a.cwd) };
    let mut pr = Profile::new(runtime, cwd);
    if a.ephemeral {
        pr.wake_policy = WakePolicy::Ephemeral;
    }
    pr.command = (!a.argv.is_empty()).then_some(a.argv);
    pr.resume_command = a.resume_command.map(|s| s.split_whitespace().map(str::to_string).collect());
    pr.activity = a.activity;
    pr.ready_pattern = a.ready_pattern;
    pr.initial_prompt = a.initial_prompt;
    pr.idle_secs = a.idle_secs;
    pr.quiet_secs = a.quiet_secs;
    pr.human = a.human;
    for kv in a.env {
        let (k, v) = kv.split_once('=').ok_or_else(|| Error::Usage(format!("--env {kv:?}: expected KEY=VALUE")))?;
        pr.env.insert(k.into(), v.into());
    }
    let warnings = pr.validate().map_err(|e| Error::Usage(format!("peer {}: {e}", a.name)))?;
    for w in warnings {
        eprintln!("peerspool: warning: peer {}: {w}", a.name);
    }
    root.ensure_peer_dirs(&p)?;
    peerspool::state::replace_file(&p.profile(), pr.to_json().as_bytes())?;
    println!("added peer {} ({}, {})", a.name, pr.runtime.as_str(), pr.cwd.display());
    Ok(0)
}
