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
        shell: Shell,
        /// Write into DIR (peerspool.bash, _peerspool, peerspool.fish, ...) instead of printing
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

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
            emit(None, "peerspool.1", &buf)?;
        }
        // peerspool.1 lists the verbs as peerspool-VERB(1): write those too.
        GenerateCmd::Man { out: Some(dir) } => {
            std::fs::create_dir_all(&dir).map_err(|e| peerspool::Error::io(&dir, e))?;
            clap_mangen::generate_to(cmd.disable_help_subcommand(true), &dir).map_err(|e| peerspool::Error::io(&dir, e))?;
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
