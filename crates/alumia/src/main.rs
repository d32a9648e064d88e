//! `alumia`: the server (`serve`), host-side administration (`admin …`) and,
//! later, the terminal client. Configuration: flag > env > file > default.

mod admin;
mod config;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::CommonArgs;

#[derive(Parser)]
#[command(
    name = "alumia",
    version,
    about = "Self-hostable multi-tenant AI-agent platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API, pages and workers.
    Serve(serve::ServeArgs),
    /// Host-side administration, directly against the database.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
        #[command(flatten)]
        common: CommonArgs,
        /// Print JSON instead of text.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Print a commented example configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// The default configuration, as TOML with comments.
    Default,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("alumia: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Admin {
                command,
                common,
                json,
            } => admin::run(command, common, json).await,
            Command::Config {
                command: ConfigCommand::Default,
            } => {
                print!("{}", config::DEFAULT_CONFIG);
                ExitCode::SUCCESS
            }
        }
    })
}
