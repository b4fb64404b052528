use clap::{Args, Subcommand};
use peerspool::registry::profile::Profile;
use peerspool::root::Root;
use peerspool::install::hooks;
use peerspool::Error;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum HooksCmd {
    /// Wire the runtime's turn-end hook to `peerspool hook turn-end`
    Install(HooksArgs),
    /// Remove what `install` added
    Uninstall(HooksArgs),
}

#[derive(Args, Debug)]
pub struct HooksArgs {
    /// Whose hook: claude (Stop hook in <cwd>/.claude/settings.local.json) or codex (notify in config.toml)
    #[arg(value_parser = ["claude", "codex"])]
    pub runtime: String,
    /// Use this peer's cwd (claude) or its CODEX_HOME/HOME (codex);
    /// default: the current directory / $CODEX_HOME or ~/.codex
    #[arg(long)]
    pub peer: Option<String>,
}

fn profile(root: &Root, peer: &str) -> anyhow::Result<Profile> {
    let p = root.peer(peer)?;
    if !root.is_peer(peer) {
        return Err(Error::UnknownPeer(peer.into()).into());
    }
    Ok(Profile::load(&p.profile())?)
}

fn target(root: &Root, a: &HooksArgs) -> anyhow::Result<PathBuf> {
    let prof = a.peer.as_deref().map(|p| profile(root, p)).transpose()?;
    if let (Some(p), Some(name)) = (&prof, &a.peer) {
        if p.runtime.as_str() != a.runtime {
            return Err(Error::Usage(format!("peer {name} runs {}, not {}: `peerspool hooks install {} --peer {name}`", p.runtime.as_str(), a.runtime, p.runtime.as_str())).into());
        }
    }
    Ok(match (a.runtime.as_str(), prof) {
        ("claude", Some(p)) => hooks::claude_settings(&p.cwd),
        ("claude", None) => hooks::claude_settings(&std::env::current_dir()?),
        (_, Some(p)) => peerspool::session::runtime::session_dir(&p, "CODEX_HOME", ".codex").join("config.toml"),
        (_, None) => {
            let home = std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty()).map(PathBuf::from);
            let home = home.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".codex")));
            home.ok_or_else(|| Error::Usage("neither CODEX_HOME nor HOME is set".into()))?.join("config.toml")
        }
    })
}

pub fn run(root: &Root, c: HooksCmd) -> anyhow::Result<i32> {
    let (install, a) = match c {
        HooksCmd::Install(a) => (true, a),
        HooksCmd::Uninstall(a) => (false, a),
    };
    let path = target(root, &a)?;
    let exe = std::env::current_exe()?.display().to_string();
    // --if-peer: a session not started by peerspool has no peer; stay quiet there.
    let argv = vec![exe.clone(), "hook".into(), "turn-end".into(), "--if-peer".into()];
    let changed = match (install, a.runtime.as_str()) {
        (true, "claude") => hooks::install_claude(&path, &argv.iter().map(|s| hooks::shell_quote(s)).collect::<Vec<_>>().join(" ")),
        (true, _) => hooks::install_codex(&path, &argv),
        (false, "claude") => hooks::uninstall_claude(&path),
        (false, _) => hooks::uninstall_codex(&path),
    }
    .map_err(anyhow::Error::msg)?;
    let what = if a.runtime == "claude" { "Stop hook" } else { "notify program" };
    match (install, changed) {
        (true, true) => println!("installed {} {what} in {}", a.runtime, path.display()),
        (true, false) => println!("{} {what} already installed in {}", a.runtime, path.display()),
        (false, true) => println!("removed {} {what} from {}", a.runtime, path.display()),
        (false, false) => println!("no peerspool {what} in {}", path.display()),
    }
    Ok(0)
}
