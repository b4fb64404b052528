use clap::{Subcommand, ValueEnum};
use peerspool::queue::format::{parse_outbox, parse_task};
use peerspool::registry::profile::Profile;
use peerspool::queue::spool::{read_checked, Limits};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum SpoolCmd {
    /// Judge each FILE as the daemon would; exit 1 if any is rejected
    Check {
        /// How to judge (default: from the path: outbox/..., peer.json, else task)
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Outbox owner, for the self-send rule (default: from the path)
        #[arg(long)]
        owner: Option<String>,
        /// The files to judge (each verdict on a line of its own)
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Task,
    Outbox,
    Peer,
}

fn infer(path: &Path) -> (Kind, Option<String>) {
    if path.file_name().is_some_and(|n| n == "peer.json") {
        return (Kind::Peer, None);
    }
    let parts: Vec<String> = path.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    match parts.iter().rposition(|c| c == "outbox") {
        Some(i) => (Kind::Outbox, i.checked_sub(1).map(|j| parts[j].clone())),
        None => (Kind::Task, None),
    }
}

/// One file's verdict line and whether it was accepted.
fn judge(path: &Path, kind: Kind, owner: &str, lim: &Limits) -> (String, bool) {
    if kind == Kind::Peer {
        return match Profile::load(path) {
            Ok(p) => match p.validate() {
                Ok(w) if w.is_empty() => ("ok".into(), true),
                Ok(w) => (format!("ok (warning: {})", w.join("; ")), true),
                Err(e) => (format!("rejected invalid-profile: {e}"), false),
            },
            Err(peerspool::Error::Profile { reason, .. }) => (format!("rejected invalid-profile: {reason}"), false),
            Err(e) => (format!("rejected invalid-profile: {e}"), false),
        };
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let verdict = read_checked(path, lim).and_then(|b| match kind {
        Kind::Outbox => parse_outbox(&b, owner).map(|m| format!("outbox to={} bytes={}", m.to, m.text.len())),
        _ => parse_task(&b, stem).map(|t| format!("task id={} from={} reply_to={} bytes={}", t.id, t.from, t.reply_to, t.text.len())),
    });
    match verdict {
        Ok(d) => (format!("ok {d}"), true),
        Err(r) => (format!("rejected {r}"), false),
    }
}

/// A path on one line: control characters are shown escaped.
fn printable(p: &Path) -> String {
    p.display().to_string().chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

pub fn run(c: SpoolCmd) -> anyhow::Result<i32> {
    let SpoolCmd::Check { kind, owner, files } = c;
    let (cfg, _) = peerspool::config::from_env();
    let lim = Limits { max_bytes: cfg.max_bytes, ..Limits::default() };
    let mut all_ok = true;
    for f in files {
        let (k0, o0) = infer(&f);
        let k = kind.unwrap_or(k0);
        let o = owner.clone().or(o0).unwrap_or_default();
        let (line, ok) = judge(&f, k, &o, &lim);
        all_ok &= ok;
        println!("{}: {line}", printable(&f));
    }
    Ok(if all_ok { 0 } else { 1 })
}
