//! `alumia sessions list|create` (spec 05 §5).

use std::process::ExitCode;

use alumia_client::SessionFilters;
use alumia_types::dto::SessionRequest;
use clap::Subcommand;

use super::{GlobalArgs, or_dash, table, with_client};

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// Your sessions, most recently updated first.
    List {
        /// Project id or slug.
        #[arg(long)]
        project: Option<String>,
        /// Agent id or slug.
        #[arg(long)]
        agent: Option<String>,
        /// active, awaiting_peer, awaiting_input, paused, idle or archived.
        #[arg(long)]
        status: Option<String>,
    },
    /// Start an empty session.
    Create {
        /// Agent id or slug.
        #[arg(long)]
        agent: Option<String>,
        /// Project id or slug.
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        label: Option<String>,
    },
}

pub async fn run(command: SessionsCommand, global: GlobalArgs) -> ExitCode {
    with_client(global, |client, out| async move {
        match command {
            SessionsCommand::List {
                project,
                agent,
                status,
            } => {
                let filters = SessionFilters {
                    project,
                    agent,
                    status,
                    ..Default::default()
                };
                let page = client.sessions_list(&filters).await?;
                if out.json {
                    out.json(&page.data);
                    return Ok(ExitCode::SUCCESS);
                }
                if page.items.is_empty() {
                    println!("No sessions.");
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = page
                    .items
                    .iter()
                    .map(|s| {
                        vec![
                            s.id.clone(),
                            s.label.clone(),
                            s.status.clone(),
                            or_dash(s.agent_name.as_deref().or(s.agent_id.as_deref())),
                            s.message_count.to_string(),
                            s.updated_at.clone(),
                        ]
                    })
                    .collect();
                table(
                    &["ID", "LABEL", "STATUS", "AGENT", "MESSAGES", "UPDATED"],
                    rows,
                );
            }
            SessionsCommand::Create {
                agent,
                project,
                label,
            } => {
                let request = SessionRequest {
                    label,
                    project_id: project,
                    agent_id: agent,
                    ..Default::default()
                };
                let session = client.sessions_create(&request).await?;
                if out.json {
                    out.json(&session.data);
                } else {
                    println!("Created session {} ({})", session.id, session.label);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}
