//! `alumia`: the server (`serve`), host-side administration (`admin …`) and
//! the terminal client (`login`, `agents`, `chat`, …; spec 05).
//! Configuration: flag > env > file > default.

mod admin;
mod cli;
mod config;
mod mcp_stdio;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cli::GlobalArgs;
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
    /// Sign in: `--device` in a browser, else an API key from stdin.
    Login {
        #[command(flatten)]
        args: cli::login::LoginArgs,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Revoke the stored key and delete the stored credentials.
    Logout {
        #[command(flatten)]
        args: cli::login::LogoutArgs,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Who the current credentials are: URL, email, org, role, key, scopes.
    Whoami {
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// List, show and create agents.
    Agents {
        #[command(subcommand)]
        command: cli::agents::AgentsCommand,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// List and create sessions.
    Sessions {
        #[command(subcommand)]
        command: cli::sessions::SessionsCommand,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// List and show projects; export one as a manifest.
    Projects {
        #[command(subcommand)]
        command: cli::projects::ProjectsCommand,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Send a message and stream the answer.
    Chat {
        #[command(flatten)]
        args: cli::chat::ChatArgs,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// List and revoke your API keys.
    Keys {
        #[command(subcommand)]
        command: cli::keys::KeysCommand,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// The model catalogue.
    Models {
        #[command(subcommand)]
        command: cli::models::ModelsCommand,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Serve the MCP tools to a local MCP client, with your credentials.
    Mcp {
        /// Speak MCP over stdin/stdout (the only transport).
        #[arg(long, required = true)]
        stdio: bool,
        #[command(flatten)]
        conn: cli::Connection,
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
            Command::Login { args, global } => cli::login::login(args, global).await,
            Command::Logout { args, global } => cli::login::logout(args, global).await,
            Command::Whoami { global } => cli::whoami::run(global).await,
            Command::Agents { command, global } => cli::agents::run(command, global).await,
            Command::Sessions { command, global } => cli::sessions::run(command, global).await,
            Command::Projects { command, global } => cli::projects::run(command, global).await,
            Command::Chat { args, global } => cli::chat::run(args, global).await,
            Command::Keys { command, global } => cli::keys::run(command, global).await,
            Command::Models { command, global } => cli::models::run(command, global).await,
            Command::Mcp { stdio: _, conn } => {
                // Errors go to stderr as text: stdout belongs to JSON-RPC.
                let out = cli::Out {
                    json: false,
                    quiet: true,
                };
                match cli::resolve(&conn, &config::ClientEnv::load()) {
                    Ok(client) => mcp_stdio::run(client).await,
                    Err(e) => cli::finish(out, Err(e)),
                }
            }
        }
    })
}
