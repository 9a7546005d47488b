//! The `compliance-guard` command: a thin shell over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use compliance_guard::rules::{LoadOptions, RuleSet};

/// compliance-guard: may we contact this borrower now, on this channel,
/// about this debt?
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Check every rule file in DIR and report each problem as
    /// `file:line:column: message`; exits 1 if there is any.
    Check {
        /// The rules directory.
        #[arg(default_value = "rules")]
        dir: PathBuf,
        /// Days of history the index keeps; longer windows are refused.
        #[arg(long, default_value_t = compliance_guard::index::DEFAULT_HORIZON_DAYS)]
        horizon_days: u32,
    },
    /// List the rules in DIR with their ids, kinds and citations.
    List {
        /// The rules directory.
        #[arg(default_value = "rules")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Rules {
            command: RulesCommand::Check { dir, horizon_days },
        } => {
            let opts = LoadOptions {
                horizon_days,
                ..LoadOptions::default()
            };
            match RuleSet::load_dir(&dir, &opts) {
                Ok(set) => {
                    println!("ok: {} rules, version {}", set.rules().len(), set.version());
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors.0 {
                        println!("{e}");
                    }
                    eprintln!(
                        "{} problem{} found",
                        errors.0.len(),
                        if errors.0.len() == 1 { "" } else { "s" }
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Rules {
            command: RulesCommand::List { dir },
        } => {
            let set = RuleSet::load_dir(&dir, &LoadOptions::default())
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("loading rules from {}", dir.display()))?;
            for r in set.rules() {
                let places: Vec<&str> = r.jurisdictions.iter().map(|j| j.code()).collect();
                println!(
                    "{}\t{}\t{}\t{}",
                    r.id,
                    r.kind.name(),
                    places.join(","),
                    r.citation
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
