//! `alumia models list`: the model catalogue.

use std::process::ExitCode;

use clap::Subcommand;

use super::{GlobalArgs, table, with_client};

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// The models this org can use.
    List,
}

pub async fn run(command: ModelsCommand, global: GlobalArgs) -> ExitCode {
    with_client(global, |client, out| async move {
        match command {
            ModelsCommand::List => {
                let page = client.models_list().await?;
                if out.json {
                    out.json(&page.data);
                    return Ok(ExitCode::SUCCESS);
                }
                let yes = |b: bool| if b { "yes" } else { "" }.to_string();
                let rows = page
                    .items
                    .iter()
                    .map(|m| {
                        vec![
                            m.id.clone(),
                            m.name.clone(),
                            m.context_window.to_string(),
                            yes(m.supports_tools),
                            yes(m.supports_reasoning),
                            yes(m.is_default),
                        ]
                    })
                    .collect();
                table(
                    &["ID", "NAME", "CONTEXT", "TOOLS", "REASONING", "DEFAULT"],
                    rows,
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}
