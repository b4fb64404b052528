//! `peerspool generate man|completions`: the man page and shell
//! completions, generated from the clap definitions so they never drift
//! from the CLI. Packaging runs these at build time (cargo deb, Homebrew).

use clap::{CommandFactory, Subcommand};
use clap_complete::Shell;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum GenerateCmd {
    /// The man page, peerspool(1)
    Man {
        /// Write DIR/peerspool.1 and a page per verb (peerspool-send.1, ...) instead of printing
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Completions for a shell
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: Shell,
        /// Write into DIR (peerspool.bash, _peerspool, peerspool.fish, ...) instead of printing
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// What `--help` cannot carry: peerspool(1)'s EXIT STATUS, ENVIRONMENT,
/// FILES and EXAMPLES sections, appended to the clap-generated page.
const MAN_EXTRA: &str = r#".SH "EXIT STATUS"
.TP
0
success (\fBsend \-\-wait\fR: the reply is on stdout)
.TP
1
operational failure; \fBsend \-\-wait\fR: no reply within \-\-timeout (the task stays queued)
.TP
2
usage error: bad arguments, unknown peer; nothing was written
.TP
3
\fBsend \-\-wait\fR: the daemon failed the task (reason on stderr, from spool/failed/<file>.error)
.TP
4
\fBsend \-\-wait\fR: the peer cannot be woken (wake failed, crash\-loop block; the task stays queued)
.TP
5
\fBsend \-\-wait\fR: the loop guard stopped the conversation the task started (its notice on stderr)
.TP
130
\fBsend \-\-wait\fR interrupted (SIGINT/SIGTERM; the task stays queued, \fBpeerspool inbox read <id>\fR collects the reply)
.PP
A closed stdout (\fBpeerspool status | head \-1\fR) ends a command quietly (SIGPIPE).
.SH ENVIRONMENT
.TP
PEERSPOOL_HOME
the root (else $XDG_STATE_HOME/peerspool, else ~/.local/state/peerspool); \-\-root overrides it
.TP
PEERSPOOL_PEER
set by the daemon in every session: \fBsend\fR and \fBreply\fR there write the peer's own outbox
.TP
PEERSPOOL_BIN
set by the daemon in every session: the absolute path of this binary, for \fB"$PEERSPOOL_BIN" reply\fR from a login shell that resets PATH
.TP
PEERSPOOL_LOG
the daemon's stderr log filter (tracing syntax; default info)
.TP
NO_COLOR
no ANSI colour in the daemon's stderr log (nor when stderr is not a terminal)
.TP
PEERSPOOL_CLAUDE_BIN, PEERSPOOL_CODEX_BIN
the claude / codex program to start
.TP
PEERSPOOL_TMUX
the tmux program (default tmux on PATH)
.TP
PEERSPOOL_TMUX_CONTROL
0: no tmux control client (spawn a tmux client per command)
.TP
PEERSPOOL_SYNC
syncfs: make routed copies durable with one syncfs of the whole filesystem per batch (the former behaviour) instead of an fsync of each copy (for benchmark comparisons; it waits for every other writer's data)
.TP
PEERSPOOL_IDLE_SECS, PEERSPOOL_QUIET_SECS, PEERSPOOL_UNARMED_IDLE_SECS
reap a warm peer idle this long (3600), an armed ephemeral one silent this long (20), an unarmed one (600)
.TP
PEERSPOOL_BOOT_DEADLINE_SECS, PEERSPOOL_READY_GATE_SECS
a boot's limit (240); how long a first task waits for activity (120)
.TP
PEERSPOOL_CRASHLOOP_MAX, PEERSPOOL_CRASHLOOP_WINDOW_SECS
deaths within the window that stop waking (3 in 300)
.TP
PEERSPOOL_LOG_MAX_BYTES, PEERSPOOL_LOG_KEEP
log rotation (5 MiB, 5 files)
.TP
PEERSPOOL_SETTLE_SECS, PEERSPOOL_TICK_SECS, PEERSPOOL_RESCAN_SECS
settle window of files written in place (1), supervision tick (1), periodic re\-list (30)
.TP
PEERSPOOL_MAX_BYTES
task and outbox file size limit (1048576)
.TP
PEERSPOOL_DONE_KEEP, PEERSPOOL_DONE_MAX_AGE_SECS
pruning of done/, outbox/sent/ and inboxes (10000 files, 604800 s)
.TP
PEERSPOOL_MAX_HOPS
loop guard: a message more routing hops from the conversation's first message is not delivered (16; max_hops in peer.json overrides it for that peer's messages)
.TP
PEERSPOOL_PAIR_RATE, PEERSPOOL_PAIR_WINDOW_SECS
loop guard: messages between two peers per window before the next is held in the outbox (60 in 60 s)
.TP
PEERSPOOL_HOST
this daemon's host name in addresses (\fBpeer@host\fR); default the machine's short host name; a name like a peer's
.TP
PEERSPOOL_NATS_URL
turns the bridge to other hosts on (nats://host:4222); unset and no config file: nothing changes
.TP
PEERSPOOL_NATS_CONFIG
the bridge's configuration file, mode 0600 (default <root>/nats.toml): url, credentials (token, user/password, nkey_seed_file, creds_file), [tls], [stream], allow_hosts; see spool-spec/MULTIHOST.md
.SH FILES
.TP
<root>/peers/<name>/peer.json
the peer's profile
.TP
<root>/peers/<name>/spool/{tmp,new,cur,done,failed}/
the task queue; failed/<file>.error says why
.TP
<root>/peers/<name>/outbox/{tmp,new,sent,failed}/
what the agent sends
.TP
<root>/inbox/<address>/{new,cur}/
replies for scripts (\fBpeerspool inbox\fR)
.TP
<root>/log/delivery.log, <root>/log/lifecycle.log
logfmt, size\-rotated
.SH EXAMPLES
.nf
peerspool peer add sh1 \-\-runtime command \-\-cwd /tmp \-\-ready\-pattern '[$#] $' \-\- bash
peerspool daemon &
peerspool send sh1 \-\-wait \-\-timeout 60 "echo hi"
peerspool inbox list \-\-json
peerspool status | head \-1
peerspool peer rm \-\-force sh1
.fi
.PP
See also the specification, spool\-spec/SPEC.md.
"#;

fn emit(out: Option<&Path>, file: &str, bytes: &[u8]) -> anyhow::Result<()> {
    match out {
        None => std::io::stdout().write_all(bytes)?,
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| peerspool::Error::io(dir, e))?;
            let p = dir.join(file);
            std::fs::write(&p, bytes).map_err(|e| peerspool::Error::io(&p, e))?;
            println!("{}", p.display());
        }
    }
    Ok(())
}

pub fn run(c: GenerateCmd) -> anyhow::Result<i32> {
    let mut cmd = super::Cli::command();
    match c {
        // `help` is not a page of its own; without this, peerspool.1 would list peerspool-help(1).
        GenerateCmd::Man { out: None } => {
            let cmd = cmd.disable_help_subcommand(true);
            let mut buf = vec![];
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            buf.extend_from_slice(MAN_EXTRA.as_bytes());
            emit(None, "peerspool.1", &buf)?;
        }
        // peerspool.1 lists the verbs as peerspool-VERB(1): write those too.
        GenerateCmd::Man { out: Some(dir) } => {
            std::fs::create_dir_all(&dir).map_err(|e| peerspool::Error::io(&dir, e))?;
            clap_mangen::generate_to(cmd.disable_help_subcommand(true), &dir).map_err(|e| peerspool::Error::io(&dir, e))?;
            let main = dir.join("peerspool.1");
            let mut page = std::fs::read(&main).map_err(|e| peerspool::Error::io(&main, e))?;
            page.extend_from_slice(MAN_EXTRA.as_bytes());
            std::fs::write(&main, page).map_err(|e| peerspool::Error::io(&main, e))?;
            let mut pages: Vec<_> = std::fs::read_dir(&dir)
                .map_err(|e| peerspool::Error::io(&dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "1"))
                .collect();
            pages.sort();
            for p in pages {
                println!("{}", p.display());
            }
        }
        GenerateCmd::Completions { shell, out } => {
            let mut buf = vec![];
            clap_complete::generate(shell, &mut cmd, "peerspool", &mut buf);
            let file = match shell {
                Shell::Bash => "peerspool.bash".to_string(),
                Shell::Zsh => "_peerspool".to_string(),
                Shell::Fish => "peerspool.fish".to_string(),
                Shell::Elvish => "peerspool.elv".to_string(),
                Shell::PowerShell => "_peerspool.ps1".to_string(),
                other => format!("peerspool.{other}"),
            };
            emit(out.as_deref(), &file, &buf)?;
        }
    }
    Ok(0)
}
