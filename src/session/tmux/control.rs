//! The persistent control-mode client (`tmux -C attach`) and the quoting
//! of tmux's command language: how a command reaches a peer's server in a
//! pipe round trip instead of a process spawn. Owns nothing else: which
//! commands to send is `Tmux`'s business.

use super::{tmux_bin, SESSION};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long a control client that failed to connect is not tried again.
pub(super) const CTL_RETRY: Duration = Duration::from_secs(5);
pub(super) const CTL_TIMEOUT: Duration = Duration::from_secs(5);
/// A connect takes milliseconds; one that hangs must not hold a boot or a
/// delivery for long, since spawning clients works meanwhile.
pub(super) const CTL_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct CtlSlot {
    pub(super) ctl: Option<Control>,
    pub(super) failed_at: Option<std::time::Instant>,
    /// Set while a call waits for its answers: still set on the next call
    /// means the last one was dropped midway, and its answers would be
    /// taken for the next command's, so the client is replaced.
    pub(super) busy: bool,
}

/// A persistent control-mode client (`tmux -C attach`): a command costs a
/// pipe round trip (~0.1 ms) instead of spawning a client (1-4 ms), which
/// was most of a warm delivery's latency. It sends one command per line
/// and reads its `%begin`..`%end`/`%error` block, skipping notifications.
/// Any transport failure drops it and the call falls back to spawning.
pub(super) struct Control {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::BufReader<tokio::process::ChildStdout>,
}

pub(super) fn block_tag(rest: &[u8]) -> Vec<u8> {
    // `%begin TIME NUMBER FLAGS`: time and number pair a block's ends.
    rest.split(|&b| b == b' ').take(2).collect::<Vec<_>>().join(&b' ')
}

impl Control {
    pub(super) async fn connect(socket: &Path) -> std::io::Result<Control> {
        let mut c = tokio::process::Command::new(tmux_bin());
        c.arg("-S").arg(socket).args(["-C", "attach-session", "-t", SESSION]);
        c.env_remove("TMUX").env_remove("TMUX_PANE");
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true);
        // A daemon killed by a signal leaves this client attached with no
        // reader for its output; told to exit later (a reap), tmux's server
        // then waits for it forever: `wedge` ends both. Not PDEATHSIG as
        // for paste clients: its pre_exec makes every spawn fork+exec, one
        // more descriptor each, and under descriptor exhaustion that turned
        // unanswered pane checks into false deaths (1 run in 6 of the
        // tight-limit test).
        let mut child = c.spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("control client without pipes"));
        };
        let mut ctl = Control { _child: child, stdin, stdout: tokio::io::BufReader::new(stdout) };
        // The attach itself answers with a block; align on a token echoed
        // back rather than counting blocks.
        let token = format!("peerspool-sync-{}-{}", std::process::id(), crate::daemon::state::now_ms());
        ctl.stdin.write_all(format!("display-message -p {token}\n").as_bytes()).await?;
        loop {
            let (_, body) = ctl.read_block().await?;
            if body.trim() == token {
                break;
            }
        }
        // Pane output is not needed; older tmux refuses the flag, harmlessly.
        let _ = ctl.call_all(&["refresh-client -f no-output".to_string()]).await?;
        Ok(ctl)
    }

    /// The next answer to a command of ours: `(true, message)` when tmux
    /// reported an error. Blocks with flags 0 are not ours (the attach's
    /// own block may come after the first of ours) and are read past.
    pub(super) async fn read_block(&mut self) -> std::io::Result<(bool, String)> {
        use tokio::io::AsyncBufReadExt;
        let mut line = Vec::new();
        let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "control client closed");
        loop {
            let (tag, ours) = loop {
                line.clear();
                if self.stdout.read_until(b'\n', &mut line).await? == 0 {
                    return Err(eof());
                }
                if let Some(rest) = line.strip_prefix(b"%begin ") {
                    break (block_tag(rest), rest.split(|&b| b == b' ').nth(2).is_some_and(|f| f.trim_ascii() == b"1"));
                }
                if line.starts_with(b"%exit") {
                    return Err(eof());
                }
            };
            let mut body = Vec::new();
            let error = loop {
                line.clear();
                if self.stdout.read_until(b'\n', &mut line).await? == 0 {
                    return Err(eof());
                }
                if let Some(error) = [(&b"%end "[..], false), (&b"%error "[..], true)]
                    .into_iter()
                    .find_map(|(end, error)| line.strip_prefix(end).is_some_and(|r| block_tag(r) == tag).then_some(error))
                {
                    break error;
                }
                body.extend_from_slice(&line);
            };
            if ours {
                return Ok((error, String::from_utf8_lossy(&body).into_owned()));
            }
        }
    }

    /// Several commands in one write; each answers with its own block.
    pub(super) async fn call_all(&mut self, cmds: &[String]) -> std::io::Result<Vec<(bool, String)>> {
        let mut line = String::new();
        for c in cmds {
            line.push_str(c);
            line.push('\n');
        }
        self.stdin.write_all(line.as_bytes()).await?;
        let mut out = Vec::with_capacity(cmds.len());
        for _ in cmds {
            out.push(self.read_block().await?);
        }
        Ok(out)
    }
}

/// Largest text sent through the control client; a longer one goes
/// through a spawned client's stdin, which has no line to keep short.
pub(super) const CONTROL_TEXT_MAX: usize = 64 * 1024;

/// `text` as one word of tmux's command language, taken literally:
/// single-quoted runs, with `'` and newline in double quotes (where `\n`
/// is the escape). `None` for any other control character, which
/// sanitising has already removed from a task.
pub(super) fn quote_text(text: &str) -> Option<String> {
    if text.len() > CONTROL_TEXT_MAX || text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return None;
    }
    let mut q = String::with_capacity(text.len() + 8);
    q.push('\'');
    for c in text.chars() {
        match c {
            '\'' => q.push_str("'\"'\"'"),
            '\n' => q.push_str("'\"\\n\"'"),
            c => q.push(c),
        }
    }
    q.push('\'');
    Some(q)
}

/// A paste client must not outlive a killed daemon: its late paste would
/// land after the next daemon has judged the screen, and merge with its own.
#[cfg(target_os = "linux")]
pub(super) fn die_with_parent(c: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe and touches no Rust state.
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn die_with_parent(_: &mut tokio::process::Command) {}

/// Quotes one argument for a control-mode command line; `None` when it
/// cannot be quoted simply (the caller then spawns a client instead).
pub(super) fn quote(arg: &str) -> Option<String> {
    (!arg.contains(['\'', '\n', '\r'])).then(|| format!("'{arg}'"))
}

