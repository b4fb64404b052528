//! The per-user service definition for installs outside a package manager
//! (`cargo install`): the systemd user unit and the launchd agent, rendered
//! from the files in `packaging/` for a given binary path, and written only
//! when their content changes so that installing twice is a no-op.

use crate::error::{IoContext, Result};
use std::path::{Path, PathBuf};

/// The packaged unit; `render_unit` changes only ExecStart and PATH.
pub const UNIT_TEMPLATE: &str = include_str!("../../packaging/systemd/peerspool.service");
pub const PLIST_TEMPLATE: &str = include_str!("../../packaging/launchd/dev.peerspool.daemon.plist");
pub const UNIT_NAME: &str = "peerspool.service";
pub const LABEL: &str = "dev.peerspool.daemon";
const PACKAGED_EXEC: &str = "ExecStart=/usr/bin/peerspool daemon";
const PACKAGED_PATH: &str = "Environment=PATH=%h/.local/bin:%h/.cargo/bin:/usr/local/bin:/usr/bin:/bin";
/// launchd starts agents with /usr/bin:/bin:/usr/sbin:/sbin only.
const MAC_PATH: &str = "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// Quotes one ExecStart word: systemd expands `%` specifiers and `$VAR`,
/// and splits on whitespace unless the word is double-quoted.
pub fn systemd_quote(s: &str) -> String {
    let s = s.replace('%', "%%").replace('$', "$$");
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';')) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The arguments the service starts: `[--root DIR] daemon`. The root is
/// given only when it differs from what the service would find by itself
/// (a service does not see the login shell's PEERSPOOL_HOME).
pub fn daemon_args(root: &Path, home: &Path) -> Vec<String> {
    let mut a = vec![];
    if root != home.join(".local/state/peerspool") {
        a.push("--root".to_string());
        a.push(root.display().to_string());
    }
    a.push("daemon".into());
    a
}

/// The user unit for `exe`; its directory goes first on PATH so that
/// `peerspool reply` inside sessions runs the same binary.
pub fn render_unit(exe: &Path, args: &[String], home: &Path) -> String {
    let mut words = vec![systemd_quote(&exe.display().to_string())];
    words.extend(args.iter().map(|a| systemd_quote(a)));
    let mut path = PACKAGED_PATH.to_string();
    if let Some(dir) = exe.parent().map(|d| d.display().to_string()) {
        let h = home.display().to_string();
        let listed = [format!("{h}/.local/bin"), format!("{h}/.cargo/bin"), "/usr/local/bin".into(), "/usr/bin".into(), "/bin".into()];
        // A directory that would need quoting is left out: it would only matter for `reply` inside sessions.
        let plain = !dir.chars().any(|c| c.is_whitespace() || matches!(c, ':' | '"' | '\'' | '\\'));
        if plain && !listed.contains(&dir) {
            path = path.replacen("PATH=", &format!("PATH={}:", dir.replace('%', "%%").replace('$', "$$")), 1);
        }
    }
    UNIT_TEMPLATE.replacen(PACKAGED_EXEC, &format!("ExecStart={}", words.join(" ")), 1).replacen(PACKAGED_PATH, &path, 1)
}

/// The LaunchAgent for `exe`, logging to `log_dir/daemon.log`.
pub fn render_plist(exe: &Path, args: &[String], log_dir: &Path) -> String {
    let argv: Vec<String> = args.iter().map(|a| format!("<string>{}</string>", xml_escape(a))).collect();
    let path = match exe.parent() {
        Some(d) => format!("{}:{MAC_PATH}", d.display()),
        None => MAC_PATH.to_string(),
    };
    PLIST_TEMPLATE
        .replacen("<string>daemon</string>", &argv.join("\n    "), 1)
        .replace("@PEERSPOOL@", &xml_escape(&exe.display().to_string()))
        .replace("@LOG_DIR@", &xml_escape(&log_dir.display().to_string()))
        .replace("@PATH@", &xml_escape(&path))
}

/// `$XDG_CONFIG_HOME/systemd/user/peerspool.service` (default `~/.config`).
pub fn unit_path(xdg_config_home: Option<&Path>, home: &Path) -> PathBuf {
    let base = xdg_config_home.filter(|p| p.is_absolute()).map(Path::to_path_buf).unwrap_or_else(|| home.join(".config"));
    base.join("systemd/user").join(UNIT_NAME)
}

pub fn plist_path(home: &Path) -> PathBuf {
    home.join("Library/LaunchAgents").join(format!("{LABEL}.plist"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
    Unchanged,
}

/// Writes `content` to `path` unless it is already there, atomically
/// (temp file + rename), mode 0644 like any unit file.
pub fn write_if_changed(path: &Path, content: &str) -> Result<Written> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let old = crate::fsx::read_string_bounded(path, 1 << 20).ok();
    if old.as_deref() == Some(content) {
        return Ok(Written::Unchanged);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).at(dir)?;
    let tmp = dir.join(format!(".{}.tmp{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("unit"), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = crate::fsx::create_new(&tmp).at(&tmp)?;
    f.write_all(content.as_bytes()).and_then(|_| f.sync_all()).at(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).at(&tmp)?;
    std::fs::rename(&tmp, path).at(path)?;
    Ok(if old.is_some() { Written::Updated } else { Written::Created })
}

/// Removes `path`; false when it was not there.
pub fn remove(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(crate::Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(systemd_quote("/home/a/.cargo/bin/peerspool"), "/home/a/.cargo/bin/peerspool");
        assert_eq!(systemd_quote("/opt/my tools/peerspool"), "\"/opt/my tools/peerspool\"");
        assert_eq!(systemd_quote("/x/100%/$HOME"), "/x/100%%/$$HOME");
        assert_eq!(systemd_quote("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn unit_changes_only_exec_and_path() {
        let home = Path::new("/home/u");
        let u = render_unit(Path::new("/home/u/.cargo/bin/peerspool"), &daemon_args(&home.join(".local/state/peerspool"), home), home);
        assert!(u.contains("\nExecStart=/home/u/.cargo/bin/peerspool daemon\n"));
        assert!(!u.contains("/usr/bin/peerspool daemon"));
        assert!(u.contains("\nEnvironment=PATH=%h/.local/bin:%h/.cargo/bin:/usr/local/bin:/usr/bin:/bin\n"));
        assert!(u.contains("\nType=notify\n") && u.contains("\nRestart=on-failure\n") && u.contains("ExecReload=/bin/kill -HUP $MAINPID"));
        let n_diff = UNIT_TEMPLATE.lines().zip(u.lines()).filter(|(a, b)| a != b).count();
        assert_eq!(n_diff, 1, "only ExecStart differs");

        let u = render_unit(Path::new("/opt/ps/peerspool"), &daemon_args(Path::new("/srv/root dir"), home), home);
        assert!(u.contains("\nExecStart=/opt/ps/peerspool --root \"/srv/root dir\" daemon\n"), "{u}");
        assert!(u.contains("\nEnvironment=PATH=/opt/ps:%h/.local/bin:"));
    }

    #[test]
    fn plist_fills_placeholders() {
        let p = render_plist(Path::new("/Users/a/.cargo/bin/peerspool"), &["--root".into(), "/tmp/a&b".into(), "daemon".into()], Path::new("/tmp/a&b/log"));
        assert!(!p.contains('@'), "{p}");
        assert!(p.contains("<string>/Users/a/.cargo/bin/peerspool</string>\n    <string>--root</string>\n    <string>/tmp/a&amp;b</string>\n    <string>daemon</string>"), "{p}");
        assert!(p.contains("<string>/tmp/a&amp;b/log/daemon.log</string>"));
        assert!(p.contains("<string>/Users/a/.cargo/bin:/opt/homebrew/bin:"));
    }

    #[test]
    fn paths() {
        let home = Path::new("/home/u");
        assert_eq!(unit_path(None, home), Path::new("/home/u/.config/systemd/user/peerspool.service"));
        assert_eq!(unit_path(Some(Path::new("/x/cfg")), home), Path::new("/x/cfg/systemd/user/peerspool.service"));
        assert_eq!(unit_path(Some(Path::new("rel")), home), Path::new("/home/u/.config/systemd/user/peerspool.service"));
        assert_eq!(plist_path(home), Path::new("/home/u/Library/LaunchAgents/dev.peerspool.daemon.plist"));
    }

    #[test]
    fn write_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/unit");
        assert_eq!(write_if_changed(&p, "one").unwrap(), Written::Created);
        assert_eq!(write_if_changed(&p, "one").unwrap(), Written::Unchanged);
        assert_eq!(write_if_changed(&p, "two").unwrap(), Written::Updated);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1, "no temp file left");
        assert!(remove(&p).unwrap());
        assert!(!remove(&p).unwrap());
    }
}
