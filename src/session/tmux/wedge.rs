//! A tmux server that is exiting but cannot finish: it refuses every new
//! client ("server exited unexpectedly") and its session is gone, so the
//! peer can neither be reached nor woken again on that socket. tmux 3.3a
//! gets there when told to exit (`kill-server`, a reap) while a control
//! client with no reader for its output is attached: a client orphaned by
//! a daemon that was killed (this daemon's own control clients die with
//! it, but one from an older version or another program may not). The
//! processes are found by the socket path in their argv: each was started
//! with `-S <this peer's private socket>`, and nothing else is.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What tmux prints for a server that dropped the connection unanswered.
pub const SYMPTOM: &str = "server exited unexpectedly";

/// Whether `argv` (NUL-separated, as in /proc/PID/cmdline) is a tmux
/// process started on `socket`.
pub fn started_on(cmdline: &[u8], socket: &Path) -> bool {
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let is_tmux = args.first().and_then(|a| a.rsplit(|&b| b == b'/').next()).is_some_and(|b| b.starts_with(b"tmux"));
    let want = socket.as_os_str().as_encoded_bytes();
    is_tmux && args.windows(2).any(|w| w[0] == b"-S" && w[1] == want)
}

/// This user's processes started on `socket`, the server among them.
fn processes_on(socket: &Path) -> Vec<i32> {
    let me = crate::root::uid();
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|d| d.ok())
        .filter_map(|d| d.file_name().to_str()?.parse::<i32>().ok().map(|pid| (pid, d.path())))
        .filter(|(pid, p)| *pid as u32 != std::process::id() && std::fs::metadata(p).is_ok_and(|m| m.uid() == me))
        .filter(|(_, p)| std::fs::read(p.join("cmdline")).is_ok_and(|c| started_on(&c, socket)))
        .map(|(pid, _)| pid)
        .collect()
}

/// Ends every process started on `socket` (SIGKILL): the orphaned
/// clients, and the server that waited for them. Returns how many.
pub fn unwedge(socket: &Path) -> usize {
    let pids = processes_on(socket);
    for &pid in &pids {
        // SAFETY: kill has no memory preconditions; the pid was just read
        // as one of this user's tmux processes on this private socket.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    pids.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tmux_on_this_very_socket_counts() {
        let s = Path::new("/tmp/peerspool-0/abcd-w");
        assert!(started_on(b"tmux\0-S\0/tmp/peerspool-0/abcd-w\0-C\0attach-session\0", s));
        assert!(started_on(b"/usr/bin/tmux\0-S\0/tmp/peerspool-0/abcd-w\0-f\0/dev/null\0start-server\0", s));
        assert!(!started_on(b"tmux\0-S\0/tmp/peerspool-0/abcd-w2\0", s), "another peer's socket");
        assert!(!started_on(b"bash\0-c\0tmux -S /tmp/peerspool-0/abcd-w\0", s), "not tmux itself");
        assert!(!started_on(b"tmux\0new-session\0/tmp/peerspool-0/abcd-w\0", s), "the path not as -S");
    }
}
