//! The shell tmux runs a one-word command through (`default-shell -c`).
//!
//! tmux takes `$SHELL`, else the account's login shell. A daemon started by
//! systemd has no `$SHELL`, and a service account's login shell is
//! `nologin`, which prints a refusal and exits 1: every one-word command
//! peer (`-- bash`) then died at boot (status 1), under CI as `nobody`.
//! So the daemon picks the shell itself and sets it on the server.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Used when neither `$SHELL` nor the login shell can run a command.
pub const FALLBACK: &str = "/bin/sh";

/// `$SHELL` if it can run a command, else the login shell, else `/bin/sh`.
pub fn pane_shell(env_shell: Option<&OsStr>, login_shell: Option<&Path>, runnable: impl Fn(&Path) -> bool) -> PathBuf {
    let env = env_shell.map(Path::new);
    [env, login_shell]
        .into_iter()
        .flatten()
        .find(|p| usable(p) && runnable(p))
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(FALLBACK))
}

/// An absolute path that is not one of the refusing "shells".
fn usable(p: &Path) -> bool {
    let refuses = matches!(p.file_name().and_then(OsStr::to_str), Some("nologin" | "false" | "true"));
    p.is_absolute() && !refuses
}

/// An executable regular file (symlinks followed: `/bin/sh` often is one).
pub fn executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The login shell of the daemon's own user, from the passwd database.
pub fn login_shell() -> Option<PathBuf> {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let mut buf = vec![0u8; 4096];
    // SAFETY: passwd is plain old data; zeroed is a valid value for it.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf outlives the use
    // of the strings it holds (copied out below).
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() || pw.pw_shell.is_null() {
        return None;
    }
    // SAFETY: pw_shell points into buf, NUL-terminated by getpwuid_r.
    let shell = unsafe { CStr::from_ptr(pw.pw_shell) };
    (!shell.to_bytes().is_empty()).then(|| PathBuf::from(OsStr::from_bytes(shell.to_bytes())))
}

/// The shell for this daemon's panes, from its environment and account.
pub fn for_daemon() -> PathBuf {
    pane_shell(std::env::var_os("SHELL").as_deref(), login_shell().as_deref(), executable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(env: Option<&str>, login: Option<&str>) -> PathBuf {
        pane_shell(env.map(OsStr::new), login.map(Path::new), |_| true)
    }

    #[test]
    fn a_service_account_without_shell_gets_bin_sh() {
        assert_eq!(pick(None, Some("/usr/sbin/nologin")), Path::new(FALLBACK));
        assert_eq!(pick(None, Some("/bin/false")), Path::new(FALLBACK));
        assert_eq!(pick(None, None), Path::new(FALLBACK));
    }

    #[test]
    fn the_users_shell_is_kept() {
        assert_eq!(pick(Some("/bin/zsh"), Some("/bin/bash")), Path::new("/bin/zsh"));
        assert_eq!(pick(None, Some("/bin/bash")), Path::new("/bin/bash"));
        assert_eq!(pick(Some("/usr/sbin/nologin"), Some("/bin/bash")), Path::new("/bin/bash"));
    }

    #[test]
    fn a_relative_or_missing_shell_is_passed_over() {
        assert_eq!(pick(Some("zsh"), None), Path::new(FALLBACK));
        let missing = pane_shell(Some(OsStr::new("/nonexistent/zsh")), None, executable);
        assert_eq!(missing, Path::new(FALLBACK));
        assert!(executable(Path::new(FALLBACK)));
    }
}
