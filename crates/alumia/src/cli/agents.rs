//! `alumia agents list|get|create` (spec 05 §5).

use std::path::PathBuf;
use std::process::ExitCode;

use alumia_types::dto::{AgentRequest, AgentView};
use clap::Subcommand;

use super::{CliError, GlobalArgs, list_pages, or_dash, short, table, with_client};

#[derive(Subcommand, Debug)]
pub enum AgentsCommand {
    /// Agents in your workspaces, most recently updated first.
    List {
        /// Only this workspace (id).
        #[arg(long, value_name = "ID")]
        workspace: Option<String>,
        /// Page size, 1–100.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: Option<u32>,
        /// Follow cursors and list every agent.
        #[arg(long)]
        all: bool,
    },
    /// One agent, by id or slug.
    Get {
        #[arg(value_name = "ID|SLUG")]
        agent: String,
    },
    /// Create an agent.
    Create {
        #[arg(long)]
        name: String,
        /// A catalogue id, e.g. `dev/echo` (default: the org's default model).
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, conflicts_with = "system_prompt_file")]
        system_prompt: Option<String>,
        /// Read the system prompt from a file.
        #[arg(long, value_name = "PATH")]
        system_prompt_file: Option<PathBuf>,
        /// Derived from the name when omitted.
        #[arg(long)]
        slug: Option<String>,
    },
}

pub async fn run(command: AgentsCommand, global: GlobalArgs) -> ExitCode {
    with_client(global, |client, out| async move {
        match command {
            AgentsCommand::List {
                workspace,
                limit,
                all,
            } => {
                let (client, workspace) = (&client, workspace.as_deref());
                let Some(agents) = list_pages(out, all, |cursor| async move {
                    client
                        .agents_list(limit, cursor.as_deref(), workspace)
                        .await
                })
                .await?
                else {
                    return Ok(ExitCode::SUCCESS);
                };
                if agents.is_empty() {
                    println!("No agents.");
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = agents
                    .iter()
                    .map(|a| {
                        vec![
                            a.id.clone(),
                            a.slug.clone(),
                            a.name.clone(),
                            a.model.clone(),
                            if a.is_active { "yes" } else { "no" }.to_string(),
                        ]
                    })
                    .collect();
                table(&["ID", "SLUG", "NAME", "MODEL", "ACTIVE"], rows);
            }
            AgentsCommand::Get { agent } => {
                let agent = client.agents_get(&agent).await?;
                if out.json {
                    out.json(&agent.data);
                } else {
                    print_agent(&agent);
                }
            }
            AgentsCommand::Create {
                name,
                model,
                description,
                system_prompt,
                system_prompt_file,
                slug,
            } => {
                let system_prompt = match system_prompt_file {
                    Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                        CliError::Usage(format!("cannot read {}: {e}", path.display()))
                    })?),
                    None => system_prompt,
                };
                let request = AgentRequest {
                    name: Some(name),
                    slug,
                    description,
                    model,
                    system_prompt,
                    ..Default::default()
                };
                let agent = client.agents_create(&request).await?;
                if out.json {
                    out.json(&agent.data);
                } else {
                    println!("Created agent {} ({})", agent.slug, agent.id);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}

fn print_agent(a: &AgentView) {
    table(
        &[],
        vec![
            vec!["ID".into(), a.id.clone()],
            vec!["Slug".into(), a.slug.clone()],
            vec!["Name".into(), a.name.clone()],
            vec!["Model".into(), a.model.clone()],
            vec!["Workspace".into(), or_dash(a.workspace_id.as_deref())],
            vec![
                "Description".into(),
                or_dash(Some(&short(&a.description, 72))),
            ],
            vec![
                "System prompt".into(),
                or_dash(Some(&short(&a.system_prompt, 72))),
            ],
            vec!["Tools".into(), or_dash(Some(&a.allowed_tools.join(" ")))],
            vec![
                "Active".into(),
                if a.is_active { "yes" } else { "no" }.into(),
            ],
            vec![
                "Default".into(),
                if a.is_default { "yes" } else { "no" }.into(),
            ],
            vec!["Created".into(), a.created_at.clone()],
            vec!["Updated".into(), a.updated_at.clone()],
        ],
    );
}
