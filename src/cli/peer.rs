use clap::{Args, Subcommand};
use peerspool::registry::profile::{Envelope, Profile, RuntimeKind, WakePolicy};
use peerspool::root::Root;
use peerspool::Error;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum PeerCmd {
    /// Register a peer: write peer.json and its directories
    Add(Box<AddArgs>),
    /// List registered peers (name, runtime, policy, cwd)
    List {
        /// Machine-readable output (one JSON array)
        #[arg(long)]
        json: bool,
    },
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
    /// The peer's name: ^[a-z0-9][a-z0-9_-]{0,62}$
    pub name: String,
    /// What runs in the session: an agent (claude, codex) or any program (command)
    #[arg(long, value_parser = ["claude", "codex", "command"])]
    pub runtime: String,
    /// Working directory of the session (made absolute; a leading ~/ is your home)
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
    /// Reap the session after this long without activity (default: PEERSPOOL_IDLE_SECS, 3600)
    #[arg(long, value_name = "SECS")]
    pub idle_secs: Option<f64>,
    /// Ephemeral: reap this long after the last outbox file or activity (default: PEERSPOOL_QUIET_SECS, 20)
    #[arg(long, value_name = "SECS")]
    pub quiet_secs: Option<f64>,
    /// Extra session environment, KEY=VALUE (repeatable)
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A human also types into this session
    #[arg(long)]
    pub human: bool,
    /// What is pasted: `header` (a `[peerspool task ...]` line, then the text: for agents) or `text` alone (for a shell or REPL)
    #[arg(long, value_parser = ["header", "text"], default_value = "header")]
    pub envelope: String,
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
        PeerCmd::List { json } => {
            let mut rows = vec![];
            for n in root.peer_names()? {
                let p = root.peer(&n)?;
                rows.push(match Profile::load(&p.profile()) {
                    Ok(pr) => serde_json::json!({
                        "name": n, "runtime": pr.runtime.as_str(),
                        "policy": if pr.wake_policy == WakePolicy::Ephemeral { "ephemeral" } else { "warm" },
                        "cwd": pr.cwd, "profile_error": null,
                    }),
                    Err(e) => serde_json::json!({"name": n, "runtime": "invalid", "policy": null, "cwd": null, "profile_error": e.to_string()}),
                });
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(0);
            }
            for r in &rows {
                let f = |k: &str| r[k].as_str().unwrap_or("").to_string();
                match r["profile_error"].as_str() {
                    None => println!("{}\t{}\t{}\t{}", f("name"), f("runtime"), f("policy"), f("cwd")),
                    Some(e) => println!("{}\tinvalid\t{e}", f("name")),
                }
            }
            Ok(0)
        }
        PeerCmd::Rm { name, force } => {
            let r = peerspool::registry::remove::remove(root, &name, force)?;
            if r.daemon_released == Some(false) {
                eprintln!("peerspool: warning: the daemon did not let go of {name} within {}s; its session was ended here", peerspool::registry::remove::DAEMON_GRACE.as_secs());
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
    if runtime == RuntimeKind::Command && a.argv.is_empty() {
        return Err(Error::Usage(format!("peer {}: runtime command needs a program: put it after `--` (peer add {} --runtime command --cwd DIR -- bash)", a.name, a.name)).into());
    }
    if runtime != RuntimeKind::Command {
        let given = [("--ready-pattern", a.ready_pattern.is_some()), ("--activity", a.activity.is_some()), ("--resume-command", a.resume_command.is_some())];
        if let Some((flag, _)) = given.iter().find(|g| g.1) {
            return Err(Error::Usage(format!("{flag} applies to --runtime command only; the {} adapter knows when its program is ready", a.runtime)).into());
        }
    }
    let cwd = expand_home(&a.cwd)?;
    let cwd = if cwd.is_absolute() { cwd } else { std::env::current_dir()?.join(&cwd) };
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
    pr.envelope = if a.envelope == "text" { Envelope::Text } else { Envelope::Header };
    for kv in a.env {
        let (k, v) = kv.split_once('=').ok_or_else(|| Error::Usage(format!("--env {kv:?}: expected KEY=VALUE")))?;
        pr.env.insert(k.into(), v.into());
    }
    let warnings = pr.validate().map_err(|e| Error::Usage(format!("peer {}: {e}", a.name)))?;
    for w in warnings {
        eprintln!("peerspool: warning: peer {}: {w}", a.name);
    }
    if let Some(prog) = program(&pr).filter(|p| !peerspool::session::preflight::on_path(p, std::env::var_os("PATH").as_deref())) {
        eprintln!("peerspool: warning: peer {}: program {prog:?} is not on PATH: install it, or give its full path (the daemon's PATH may differ from yours)", a.name);
    }
    root.ensure_peer_dirs(&p)?;
    peerspool::daemon::state::replace_file(&p.profile(), pr.to_json().as_bytes())?;
    println!("added peer {} ({}, {})", a.name, pr.runtime.as_str(), pr.cwd.display());
    Ok(0)
}

/// `~` and `~/x` are the home directory, as a shell would have made them
/// (`--cwd=~/x` reaches us unexpanded); `~user` is refused.
fn expand_home(p: &std::path::Path) -> anyhow::Result<PathBuf> {
    let Some(s) = p.to_str().filter(|s| s.starts_with('~')) else { return Ok(p.to_path_buf()) };
    let home = || std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).ok_or_else(|| Error::Usage(format!("--cwd {s}: HOME is not set; give an absolute path")));
    match s {
        "~" => Ok(home()?),
        _ if s.starts_with("~/") => Ok(home()?.join(&s[2..])),
        _ => Err(Error::Usage(format!("--cwd {s}: ~user is not expanded; give an absolute path")).into()),
    }
}

/// The program the session will start, as the runtime adapter picks it.
fn program(pr: &Profile) -> Option<String> {
    match pr.runtime {
        RuntimeKind::Command => pr.command.as_ref().and_then(|c| c.first().cloned()),
        RuntimeKind::Claude => Some(peerspool::session::runtime::program_and_extras(pr, peerspool::session::runtime::claude::BIN_ENV, "claude").0),
        RuntimeKind::Codex => Some(peerspool::session::runtime::program_and_extras(pr, peerspool::session::runtime::codex::BIN_ENV, "codex").0),
    }
}
