//! The command line: clap definitions and dispatch. Each verb's work lives
//! in the library; this layer adds context and exit codes.
//!
//! Owns: argument parsing, one-line errors with the next step, exit codes
//! and rendering. It may not hold decisions or file formats of its own:
//! those live in the library, where the tests and benches use them too.

mod check;
mod doctor;
mod generate;
mod hooks;
mod inbox;
mod ops;
mod messaging;
mod peer;
mod service;
mod show;
mod status;
mod top;

use clap::{Parser, Subcommand};
use peerspool::root::Root;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "peerspool", version, about = "Keep a team of AI coding agents reachable through file spools and tmux sessions")]
pub struct Cli {
    /// Root directory (default: $PEERSPOOL_HOME, $XDG_STATE_HOME/peerspool, ~/.local/state/peerspool)
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the daemon in the foreground (SIGTERM/SIGINT: stop, SIGHUP: reload)
    Daemon,
    /// A self-contained demo on a temporary root with built-in test peers
    Demo(ops::DemoArgs),
    /// Enqueue a task for a peer and print its id
    #[command(after_help = "Exit status: 0 sent (with --wait: the reply is on stdout); 1 failure, or no reply within \
--timeout; 2 usage error (nothing was written); with --wait also 3 the daemon failed the task (reason on stderr), \
4 the peer cannot be woken (reason on stderr), 5 the loop guard stopped the conversation it started (notice on \
stderr), 130 interrupted. After 1, 4 and 130 the task stays queued: \
`peerspool inbox read <id>` collects its reply later.")]
    Send(messaging::SendArgs),
    /// Inside a session: answer the task being worked on
    Reply(messaging::ReplyArgs),
    /// Replies for scripts (`inbox/<address>/new/`): list, read, rm
    #[command(subcommand)]
    Inbox(inbox::InboxCmd),
    /// Manage peers
    #[command(subcommand)]
    Peer(peer::PeerCmd),
    /// Show the daemon and every peer's queue and session
    Status(status::StatusArgs),
    /// One message's story: written, routed, waited, claimed, delivered, done, replies, failures, with times
    Show(show::ShowArgs),
    /// A live view of every peer (state, queue, task in flight, deaths) and the messages between them; keys: q, s, enter
    Top(top::TopArgs),
    /// Judge files as the daemon would and print the verdicts
    #[command(subcommand)]
    Spool(check::SpoolCmd),
    /// Check tmux, inotify limits, permissions and runtimes
    Doctor,
    /// Operator halt: the peer is not woken; its tasks wait in the spool
    Stop {
        /// The peer to halt
        peer: String,
    },
    /// Release an operator halt (also clears a crash-loop block)
    Start {
        /// The peer to release
        peer: String,
    },
    /// Join the peer's live session (detach with C-b d)
    Attach {
        /// The peer whose session to join
        peer: String,
    },
    /// Read the logs
    Log(ops::LogArgs),
    /// Agent hooks (turn-end marker)
    #[command(subcommand)]
    Hook(ops::HookCmd),
    /// Run the daemon as a per-user service (systemd user unit / LaunchAgent)
    #[command(subcommand)]
    Service(service::ServiceCmd),
    /// Man page and shell completions (used by packaging)
    #[command(subcommand, hide = true)]
    Generate(generate::GenerateCmd),
    /// Install or remove a runtime's turn-end hook (claude Stop, codex notify)
    #[command(subcommand)]
    Hooks(hooks::HooksCmd),
    /// The built-in test agent (used by the demo and the tests)
    #[command(hide = true)]
    Agent(ops::AgentArgs),
}

pub fn root(cli_root: &Option<PathBuf>) -> peerspool::Result<Root> {
    match cli_root {
        Some(p) => Ok(Root::new(p.clone())),
        None => Root::from_env(),
    }
}

/// Runs the CLI and returns the process exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            if !e.use_stderr() || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return if e.use_stderr() { 2 } else { 0 };
            }
            eprintln!("peerspool: {}", usage_line(&e.render().to_string()));
            return 2;
        }
    };
    // A closed stdout (`status | head -1`) ends a CLI verb quietly, as for
    // other Unix tools, instead of a panic in println!. Not for the long-
    // running verbs: a daemon must survive a vanished tmux client or log
    // reader.
    if !matches!(cli.cmd, Cmd::Daemon | Cmd::Demo(_) | Cmd::Agent(_)) {
        // SAFETY: restores the default action of one signal before any
        // thread is started; no handler runs Rust code.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = e.downcast_ref::<peerspool::Error>().map(|e| e.exit_code()).unwrap_or(1);
            eprintln!("peerspool: {}", message(&e));
            code
        }
    }
}

/// The error and its causes on one line, each said once: a typed error
/// that already prints its source (`{path}: {source}`) is not followed by
/// that source again.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let c = one_line(&cause.to_string());
        if c.is_empty() || out.contains(&c) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&c);
    }
    out
}

/// clap's usage error on one line: the message, any tip, the usage.
fn usage_line(rendered: &str) -> String {
    let mut msg = vec![];
    let mut usage = None;
    for l in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(u) = l.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        } else if !l.starts_with("For more information") {
            msg.push(l.strip_prefix("error: ").unwrap_or(l).to_string());
        }
    }
    let mut out = msg.join(" ");
    match usage {
        Some(u) => out.push_str(&format!(" (usage: {u}; see --help)")),
        None => out.push_str(" (see --help)"),
    }
    out
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// `Root::check` for verbs that read a root someone set up: a missing one
/// is the first-run case, said with the next step, not an I/O error.
pub fn check_root(root: &Root) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(&root.path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        anyhow::bail!(
            "no root at {} yet: add a peer first (`peerspool peer add NAME --runtime command --cwd DIR -- PROGRAM`), or point --root / PEERSPOOL_HOME at an existing root",
            root.path.display()
        );
    }
    root.check()?;
    Ok(())
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let root = root(&cli.root)?;
    match cli.cmd {
        Cmd::Send(a) => messaging::send(&root, a),
        Cmd::Reply(a) => messaging::reply(&root, a),
        Cmd::Inbox(c) => inbox::run(&root, c),
        Cmd::Peer(c) => peer::run(&root, c),
        Cmd::Status(a) => status::run(&root, a),
        Cmd::Show(a) => show::run(&root, a),
        Cmd::Top(a) => top::run(&root, a),
        Cmd::Spool(c) => check::run(c),
        Cmd::Doctor => doctor::run(&root),
        Cmd::Stop { peer } => status::set_stopped(&root, &peer, true),
        Cmd::Start { peer } => status::set_stopped(&root, &peer, false),
        Cmd::Daemon => ops::daemon(root),
        Cmd::Demo(a) => ops::demo(a),
        Cmd::Attach { peer } => ops::attach(&root, &peer),
        Cmd::Log(a) => ops::log(&root, a),
        Cmd::Hook(c) => ops::hook(&root, c),
        Cmd::Hooks(c) => hooks::run(&root, c),
        Cmd::Agent(a) => Ok(peerspool::demo::agent::run(&a.into())),
        Cmd::Service(c) => service::run(&root, c),
        Cmd::Generate(c) => generate::run(c),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every option and argument of every verb says what it is for
    /// (the man pages and completions are generated from these).
    #[test]
    fn every_argument_has_help() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments() {
                let id = a.get_id().as_str();
                if a.get_help().is_none() && !["help", "version"].contains(&id) {
                    missing.push(format!("{path} {id}"));
                }
            }
            for s in c.get_subcommands() {
                walk(s, &format!("{path} {}", s.get_name()), missing);
            }
        }
        let mut missing = vec![];
        walk(&super::Cli::command(), "peerspool", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
