//! What a wake needs before tmux is asked for anything: a working
//! directory, tmux, the program. Missing, they are configuration errors
//! with a fix, not crashes: a pane that died at once because `claude` is not
//! installed said "program exited during boot (status 1): Pane is dead",
//! counted as a death, and blocked the peer for the crash-loop window.

use std::collections::BTreeMap;
use std::path::Path;

/// Prefix of the block reason (`peerspool status`, `send`) for these.
pub const CONFIG: &str = "config";

/// How soon a wake refused for configuration is tried again (the fix is
/// made by hand; a profile change or `peerspool start` needs no restart).
pub const RETRY_MS: u64 = 10_000;

fn executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
}

/// Whether `prog` names an executable: a path, or a name found on `path`.
pub fn on_path(prog: &str, path: Option<&std::ffi::OsStr>) -> bool {
    if prog.contains('/') {
        return executable(Path::new(prog));
    }
    path.is_some_and(|p| std::env::split_paths(p).any(|d| executable(&d.join(prog))))
}

/// The tmux program the daemon runs (`PEERSPOOL_TMUX`, else `tmux`), when it
/// cannot be found.
pub fn missing_tmux() -> Option<String> {
    let t = std::env::var("PEERSPOOL_TMUX").unwrap_or_else(|_| "tmux".into());
    (!on_path(&t, std::env::var_os("PATH").as_deref())).then_some(t)
}

/// The first problem that would make a session fail to start, with the fix.
pub fn check(cwd: &Path, argv: &[String], env: &BTreeMap<String, String>) -> Result<(), String> {
    if !cwd.is_dir() {
        return Err(format!("cwd {} does not exist: create it, or give the peer another (`peerspool peer add --force ... --cwd DIR`)", cwd.display()));
    }
    if let Some(t) = missing_tmux() {
        return Err(format!("tmux ({t}) is not on PATH: install tmux (apt-get install tmux, brew install tmux) or set PEERSPOOL_TMUX"));
    }
    // One argv element is run by tmux through the shell: only a plain
    // program name is checked then, not shell syntax.
    let prog = match argv {
        [one] if one.split_whitespace().count() > 1 => one.split_whitespace().next(),
        [first, ..] => Some(first.as_str()),
        [] => None,
    };
    let path = env.get("PATH").map(std::ffi::OsString::from).or_else(|| std::env::var_os("PATH"));
    // A relative path is relative to the session's cwd, where tmux runs it.
    let found = |p: &str| if p.contains('/') && !p.starts_with('/') { executable(&cwd.join(p)) } else { on_path(p, path.as_deref()) };
    match prog {
        Some(p) if !found(p) => Err(format!(
            "program {p:?} not found{}: install it, or give its full path in the peer's command",
            if p.contains('/') { String::new() } else { " on the daemon's PATH".into() }
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_is_missing() {
        let env = BTreeMap::new();
        let argv = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check(Path::new("/tmp"), &argv(&["sh"]), &env).is_ok());
        assert!(check(Path::new("/tmp"), &argv(&["sh -c 'exit 0'"]), &env).is_ok());
        assert!(check(Path::new("/nonexistent-dir"), &argv(&["sh"]), &env).unwrap_err().contains("cwd"));
        assert!(check(Path::new("/tmp"), &argv(&["no-such-prog-xyz", "-v"]), &env).unwrap_err().contains("no-such-prog-xyz"));
        assert!(check(Path::new("/tmp"), &argv(&["/no/such/prog"]), &env).unwrap_err().contains("/no/such/prog"));
        assert!(check(Path::new("/usr"), &argv(&["bin/sh"]), &env).is_ok(), "relative to the cwd");
        let mut e2 = BTreeMap::new();
        e2.insert("PATH".to_string(), "/nonexistent".to_string());
        assert!(check(Path::new("/tmp"), &argv(&["sh"]), &e2).is_err(), "the session's own PATH decides");
    }
}
