//! `peerspool service install|uninstall|status`: the per-user service for
//! installs without a package (cargo install). The files come from
//! `peerspool::install::service`; this layer talks to systemctl / launchctl.

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use peerspool::root::Root;
use peerspool::install::service::{self, Written};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Subcommand, Debug)]
pub enum ServiceCmd {
    /// Write the user unit (Linux) or LaunchAgent (macOS) for this binary and enable it
    Install(InstallArgs),
    /// Disable and remove what `service install` wrote
    Uninstall(UninstallArgs),
    /// Installed, enabled, active: as far as the service manager can tell
    Status(ManagerArg),
}

#[derive(Args, Debug)]
pub struct ManagerArg {
    /// Which service manager (default: launchd on macOS, systemd elsewhere)
    #[arg(long, value_enum, hide = true)]
    pub manager: Option<Manager>,
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Write the file only; do not reload, enable or start the service
    #[arg(long)]
    pub no_enable: bool,
    /// Print the file that would be written, and where; change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub m: ManagerArg,
}

#[derive(Args, Debug)]
pub struct UninstallArgs {
    /// Remove the file only; do not stop or disable the service
    #[arg(long)]
    pub no_disable: bool,
    #[command(flatten)]
    pub m: ManagerArg,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    Systemd,
    Launchd,
}

impl Manager {
    fn pick(m: Option<Manager>) -> Manager {
        m.unwrap_or(if cfg!(target_os = "macos") { Manager::Launchd } else { Manager::Systemd })
    }
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).ok_or_else(|| peerspool::Error::Usage("HOME is not set".into()).into())
}

fn file_path(m: Manager, home: &Path) -> PathBuf {
    match m {
        Manager::Systemd => service::unit_path(std::env::var_os("XDG_CONFIG_HOME").as_deref().map(Path::new), home),
        Manager::Launchd => service::plist_path(home),
    }
}

pub fn run(root: &Root, c: ServiceCmd) -> anyhow::Result<i32> {
    match c {
        ServiceCmd::Install(a) => install(root, a),
        ServiceCmd::Uninstall(a) => uninstall(a),
        ServiceCmd::Status(a) => status(root, a),
    }
}

/// Runs a manager command; Err carries its first stderr line.
fn call(bin: &str, args: &[&str]) -> Result<String, String> {
    match Command::new(bin).args(args).stdin(std::process::Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let out = String::from_utf8_lossy(&o.stdout);
            let line = err.lines().chain(out.lines()).map(str::trim).find(|l| !l.is_empty()).unwrap_or("failed").to_string();
            Err(line)
        }
        Err(e) => Err(format!("cannot run {bin}: {e}")),
    }
}

fn systemctl(args: &[&str]) -> Result<String, String> {
    let mut a = vec!["--user"];
    a.extend_from_slice(args);
    call("systemctl", &a)
}

/// Whether `systemctl --user` reaches a user manager; Err says why not.
fn user_manager() -> Result<(), String> {
    systemctl(&["show-environment"]).map(|_| ())
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

fn install(root: &Root, a: InstallArgs) -> anyhow::Result<i32> {
    let m = Manager::pick(a.m.manager);
    let home = home()?;
    let exe = std::env::current_exe().context("finding this binary's path")?;
    let args = service::daemon_args(&root.path, &home);
    let content = match m {
        Manager::Systemd => service::render_unit(&exe, &args, &home),
        Manager::Launchd => service::render_plist(&exe, &args, &root.log_dir()),
    };
    let path = file_path(m, &home);
    if a.dry_run {
        eprintln!("# would write {}", path.display());
        print!("{content}");
        return Ok(0);
    }
    // launchd opens the log file itself and does not create its directory.
    root.ensure()?;
    let w = service::write_if_changed(&path, &content)?;
    println!("{}: {}", path.display(), match w {
        Written::Created => "written",
        Written::Updated => "updated",
        Written::Unchanged => "unchanged",
    });
    if a.no_enable {
        return Ok(0);
    }
    match m {
        Manager::Systemd => enable_systemd(w, &path),
        Manager::Launchd => enable_launchd(w, &path),
    }
}

fn enable_systemd(w: Written, path: &Path) -> anyhow::Result<i32> {
    if let Err(why) = user_manager() {
        anyhow::bail!("systemctl --user is unavailable ({why}); {} is in place: run `systemctl --user enable --now peerspool` in a login session", path.display());
    }
    let step = |args: &[&str]| systemctl(args).map_err(|e| anyhow::anyhow!("systemctl --user {}: {e}", args.join(" ")));
    if w != Written::Unchanged {
        step(&["daemon-reload"])?;
    }
    step(&["enable", "--now", service::UNIT_NAME])?;
    if w == Written::Updated {
        // Picks up a changed ExecStart; sessions survive (KillMode=process).
        step(&["try-restart", service::UNIT_NAME])?;
    }
    println!("{}: enabled and started (systemctl --user status peerspool)", service::UNIT_NAME);
    Ok(0)
}

fn enable_launchd(w: Written, path: &Path) -> anyhow::Result<i32> {
    let domain = format!("gui/{}", uid());
    let target = format!("{domain}/{}", service::LABEL);
    let loaded = call("launchctl", &["print", &target]).is_ok();
    if loaded && w == Written::Unchanged {
        println!("{}: already loaded", service::LABEL);
        return Ok(0);
    }
    if loaded {
        let _ = call("launchctl", &["bootout", &target]);
    }
    let p = path.display().to_string();
    if let Err(e) = call("launchctl", &["bootstrap", &domain, &p]) {
        // Older macOS: the legacy verb.
        call("launchctl", &["load", "-w", &p]).map_err(|e2| anyhow::anyhow!("launchctl bootstrap {domain} {p}: {e}; launchctl load: {e2}"))?;
    }
    println!("{}: loaded (launchctl print {target})", service::LABEL);
    Ok(0)
}

fn uninstall(a: UninstallArgs) -> anyhow::Result<i32> {
    let m = Manager::pick(a.m.manager);
    let home = home()?;
    let path = file_path(m, &home);
    if !path.exists() {
        println!("{}: not installed", path.display());
        return Ok(0);
    }
    if !a.no_disable {
        match m {
            Manager::Systemd => match user_manager() {
                Ok(()) => {
                    let _ = systemctl(&["disable", "--now", service::UNIT_NAME]);
                }
                Err(why) => println!("systemctl --user is unavailable ({why}); removing the file only"),
            },
            Manager::Launchd => {
                let _ = call("launchctl", &["bootout", &format!("gui/{}/{}", uid(), service::LABEL)]);
            }
        }
    }
    service::remove(&path)?;
    println!("{}: removed", path.display());
    if m == Manager::Systemd && !a.no_disable && user_manager().is_ok() {
        let _ = systemctl(&["daemon-reload"]);
    }
    Ok(0)
}

fn status(root: &Root, a: ManagerArg) -> anyhow::Result<i32> {
    let m = Manager::pick(a.manager);
    let home = home()?;
    let path = file_path(m, &home);
    let exe = std::env::current_exe().ok();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let current = exe.as_ref().is_some_and(|e| text.contains(&e.display().to_string()));
            println!("installed: yes, {}{}", path.display(), if current { "" } else { " (for another binary: run `peerspool service install` to update)" });
        }
        Err(_) => {
            let packaged = Path::new("/usr/lib/systemd/user").join(service::UNIT_NAME);
            if m == Manager::Systemd && packaged.exists() {
                println!("installed: by the package, {}", packaged.display());
            } else {
                println!("installed: no ({} does not exist)", path.display());
            }
        }
    }
    match m {
        Manager::Systemd => match user_manager() {
            Err(why) => println!("systemd: systemctl --user is unavailable here ({why}); cannot tell enabled/active"),
            Ok(()) => {
                let q = |verb: &str| systemctl(&[verb, service::UNIT_NAME]).unwrap_or_else(|e| e);
                println!("enabled: {}", q("is-enabled"));
                println!("active: {}", q("is-active"));
            }
        },
        Manager::Launchd => match call("launchctl", &["print", &format!("gui/{}/{}", uid(), service::LABEL)]) {
            Ok(out) => {
                let state = out.lines().map(str::trim).find_map(|l| l.strip_prefix("state = ")).unwrap_or("loaded");
                println!("launchd: loaded, state {state}");
            }
            Err(why) => println!("launchd: not loaded ({why})"),
        },
    }
    match peerspool::daemon::lock::running(root) {
        Some(pid) => println!("daemon: running (pid {pid}) on {}", root.path.display()),
        None => println!("daemon: not running on {}", root.path.display()),
    }
    Ok(0)
}
