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
        /// Write DIR/peerspool.1 instead of printing
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
        GenerateCmd::Man { out } => {
            let mut buf = vec![];
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            emit(out.as_deref(), "peerspool.1", &buf)?;
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
