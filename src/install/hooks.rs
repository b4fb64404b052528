//! Wiring a runtime's own turn-end hook to `peerspool hook turn-end`:
//! Claude Code's `Stop` hook in `<cwd>/.claude/settings.local.json`, Codex's
//! `notify` program in its `config.toml`. Installing twice changes nothing;
//! the user's other settings stay as they are; uninstall removes only ours.

use std::path::{Path, PathBuf};

/// Marks the entries we own: the program ends the hook verb with this.
const OURS: &str = "hook turn-end";

fn is_ours(cmd: &str) -> bool {
    cmd.contains(OURS)
}

/// `<cwd>/.claude/settings.local.json`.
pub fn claude_settings(cwd: &Path) -> PathBuf {
    cwd.join(".claude").join("settings.local.json")
}

fn read_opt(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    crate::daemon::state::replace_file(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// A POSIX-shell word for `s`.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Removes our `Stop` entries (and groups left empty). True if any were.
fn claude_strip(v: &mut serde_json::Value) -> bool {
    let Some(stop) = v.get_mut("hooks").and_then(|h| h.get_mut("Stop")).and_then(|s| s.as_array_mut()) else { return false };
    let before = stop.clone();
    for group in stop.iter_mut() {
        if let Some(hs) = group.get_mut("hooks").and_then(|h| h.as_array_mut()) {
            hs.retain(|h| !h["command"].as_str().is_some_and(is_ours));
        }
    }
    stop.retain(|g| g.get("hooks").and_then(|h| h.as_array()).is_none_or(|h| !h.is_empty()));
    *stop != before
}

/// Drops `hooks.Stop` and `hooks` when uninstalling left them empty.
fn claude_tidy(v: &mut serde_json::Value) {
    if let Some(h) = v.get_mut("hooks").and_then(|h| h.as_object_mut()) {
        if h.get("Stop").and_then(|s| s.as_array()).is_some_and(|s| s.is_empty()) {
            h.remove("Stop");
        }
        if h.is_empty() {
            v.as_object_mut().map(|o| o.remove("hooks"));
        }
    }
}

fn claude_load(path: &Path) -> Result<(Option<String>, serde_json::Value), String> {
    let old = read_opt(path)?;
    let v = match old.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(s) => serde_json::from_str(s).map_err(|e| format!("{}: not valid JSON ({e})", path.display()))?,
        None => serde_json::json!({}),
    };
    if !v.is_object() {
        return Err(format!("{}: not a JSON object", path.display()));
    }
    if v.get("hooks").is_some_and(|h| !h.is_object()) || v["hooks"].get("Stop").is_some_and(|s| !s.is_array()) {
        return Err(format!("{}: \"hooks\" / \"hooks.Stop\" has an unexpected shape", path.display()));
    }
    Ok((old, v))
}

fn save_if_changed(path: &Path, old: Option<&str>, v: &serde_json::Value) -> Result<bool, String> {
    let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())? + "\n";
    if old == Some(text.as_str()) {
        return Ok(false);
    }
    write(path, &text)?;
    Ok(true)
}

/// Adds the `Stop` hook running `command`. Returns whether the file changed.
pub fn install_claude(path: &Path, command: &str) -> Result<bool, String> {
    let (old, mut v) = claude_load(path)?;
    claude_strip(&mut v);
    let hooks = v.as_object_mut().map(|o| o.entry("hooks").or_insert_with(|| serde_json::json!({})));
    let Some(stop) = hooks.and_then(|h| h.as_object_mut()).map(|h| h.entry("Stop").or_insert_with(|| serde_json::json!([]))) else {
        return Err(format!("{}: cannot add hooks.Stop", path.display()));
    };
    if let Some(a) = stop.as_array_mut() {
        a.push(serde_json::json!({"hooks": [{"type": "command", "command": command}]}));
    }
    save_if_changed(path, old.as_deref(), &v)
}

/// Removes our `Stop` hook. Returns whether the file changed.
pub fn uninstall_claude(path: &Path) -> Result<bool, String> {
    let (old, mut v) = claude_load(path)?;
    if old.is_none() || !claude_strip(&mut v) {
        return Ok(false);
    }
    claude_tidy(&mut v);
    if v.as_object().is_some_and(|o| o.is_empty()) {
        return remove_emptied(path);
    }
    save_if_changed(path, old.as_deref(), &v)
}

/// A settings file that held only our hook goes, with a `.claude/` it
/// leaves empty: uninstall leaves the directory as it was before install.
fn remove_emptied(path: &Path) -> Result<bool, String> {
    std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir); // only if empty
    }
    Ok(true)
}

fn codex_load(path: &Path) -> Result<(String, toml_edit::DocumentMut), String> {
    let old = read_opt(path)?.unwrap_or_default();
    let doc = old.parse::<toml_edit::DocumentMut>().map_err(|e| format!("{}: not valid TOML ({})", path.display(), crate::session::runtime::norm(&e.to_string())))?;
    Ok((old, doc))
}

fn notify_of(doc: &toml_edit::DocumentMut) -> Option<Vec<String>> {
    let a = doc.get("notify")?.as_array()?;
    Some(a.iter().map(|v| v.as_str().unwrap_or("").to_string()).collect())
}

/// Sets Codex's `notify = [argv...]`. Refuses when the user already has a
/// notify program of their own (Codex runs only one).
pub fn install_codex(path: &Path, argv: &[String]) -> Result<bool, String> {
    let (old, mut doc) = codex_load(path)?;
    if doc.contains_key("notify") {
        match notify_of(&doc) {
            Some(cur) if is_ours(&cur.join(" ")) => {}
            _ => {
                let cur = doc.get("notify").map(|i| i.to_string()).unwrap_or_default();
                return Err(format!("{}: notify is already set to{cur}; Codex runs one notify program: remove it or call `peerspool hook turn-end` from it", path.display()));
            }
        }
    }
    let mut arr = toml_edit::Array::new();
    for a in argv {
        arr.push(a.as_str());
    }
    doc["notify"] = toml_edit::value(arr);
    let text = doc.to_string();
    if text == old {
        return Ok(false);
    }
    write(path, &text)?;
    Ok(true)
}

/// Removes `notify` if it is ours.
pub fn uninstall_codex(path: &Path) -> Result<bool, String> {
    if !path.exists() {
        return Ok(false);
    }
    let (_, mut doc) = codex_load(path)?;
    if !notify_of(&doc).is_some_and(|n| is_ours(&n.join(" "))) {
        return Ok(false);
    }
    doc.remove("notify");
    if doc.to_string().trim().is_empty() {
        std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(true);
    }
    write(path, &doc.to_string())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMD: &str = "/usr/bin/peerspool hook turn-end --if-peer";

    #[test]
    fn claude_install_is_idempotent_and_keeps_other_settings() {
        let d = tempfile::tempdir().unwrap();
        let p = claude_settings(d.path());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let user = serde_json::json!({
            "permissions": {"allow": ["Bash(ls)"]},
            "hooks": {
                "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
                "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "audit"}]}]
            }
        });
        std::fs::write(&p, serde_json::to_string_pretty(&user).unwrap()).unwrap();
        assert!(install_claude(&p, CMD).unwrap());
        let once = std::fs::read_to_string(&p).unwrap();
        assert!(!install_claude(&p, CMD).unwrap(), "second install changes nothing");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), once);
        let v: serde_json::Value = serde_json::from_str(&once).unwrap();
        assert_eq!(v["permissions"], user["permissions"]);
        assert_eq!(v["hooks"]["PreToolUse"], user["hooks"]["PreToolUse"]);
        let stop = v["hooks"]["Stop"].as_array().unwrap();
        assert_eq!(stop.len(), 2);
        assert_eq!(stop[0], user["hooks"]["Stop"][0]);
        assert_eq!(stop[1]["hooks"][0]["command"], CMD);
        // A new program path replaces ours rather than adding a second.
        assert!(install_claude(&p, "/opt/peerspool hook turn-end --if-peer").unwrap());
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["hooks"]["Stop"].as_array().unwrap().len(), 2);
        assert!(uninstall_claude(&p).unwrap());
        assert!(!uninstall_claude(&p).unwrap());
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v, user, "uninstall restores the user's settings");
    }

    #[test]
    fn claude_install_into_missing_file_and_uninstall_tidies() {
        let d = tempfile::tempdir().unwrap();
        let p = claude_settings(d.path());
        assert!(!uninstall_claude(&p).unwrap());
        assert!(install_claude(&p, CMD).unwrap());
        assert!(uninstall_claude(&p).unwrap());
        assert!(!p.exists() && !p.parent().unwrap().exists(), "a file holding only our hook is removed, with its empty .claude/");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "{not json").unwrap();
        let e = install_claude(&p, CMD).unwrap_err();
        assert!(e.contains("settings.local.json") && e.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn codex_notify_keeps_formatting_and_refuses_foreign_notify() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.toml");
        let user = "# my settings\nmodel = \"o3\"   # favourite\n\n[projects.\"/w\"]\ntrust_level = \"trusted\"\n";
        std::fs::write(&p, user).unwrap();
        let argv: Vec<String> = ["/usr/bin/peerspool", "hook", "turn-end", "--if-peer"].map(String::from).to_vec();
        assert!(install_codex(&p, &argv).unwrap());
        let once = std::fs::read_to_string(&p).unwrap();
        assert!(once.starts_with("# my settings\nmodel = \"o3\"   # favourite\n"), "{once}");
        assert!(once.contains("[projects.\"/w\"]\ntrust_level = \"trusted\"\n"));
        let doc: toml_edit::DocumentMut = once.parse().unwrap();
        assert_eq!(notify_of(&doc).unwrap(), argv);
        assert!(doc["projects"]["/w"].get("notify").is_none(), "notify is a top-level key");
        assert!(!install_codex(&p, &argv).unwrap());
        assert!(uninstall_codex(&p).unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), user, "uninstall gives back the user's file");
        assert!(!uninstall_codex(&p).unwrap());
        std::fs::write(&p, "notify = [\"notify-send\", \"codex\"]\n").unwrap();
        let e = install_codex(&p, &argv).unwrap_err();
        assert!(e.contains("notify is already set"), "{e}");
        assert!(!uninstall_codex(&p).unwrap(), "a foreign notify is left alone");
        assert!(install_codex(&d.path().join("new/config.toml"), &argv).unwrap());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/usr/bin/peerspool"), "/usr/bin/peerspool");
        assert_eq!(shell_quote("/my dir/it's"), r"'/my dir/it'\''s'");
    }
}
