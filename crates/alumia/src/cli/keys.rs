//! `alumia keys list|revoke <id>`: the caller's own API keys.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use super::{GlobalArgs, or_dash, table, with_client};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Your keys in this org, newest first (never the secret).
    List,
    /// Revoke one of your keys.
    Revoke {
        /// The key's id.
        id: String,
    },
}

pub async fn run(command: KeysCommand, global: GlobalArgs) -> ExitCode {
    with_client(global, |client, out| async move {
        match command {
            KeysCommand::List => {
                let mut items: Vec<Value> = Vec::new();
                let mut keys = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let page = client.keys_list(cursor.as_deref()).await?;
                    if let Some(raw) = page.data["items"].as_array() {
                        items.extend(raw.iter().cloned());
                    }
                    let page = page.into_value();
                    keys.extend(page.items);
                    match page.next_cursor {
                        Some(next) if page.has_more => cursor = Some(next),
                        _ => break,
                    }
                }
                if out.json {
                    out.json(&json!({"items": items, "nextCursor": null, "hasMore": false}));
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.id.clone(),
                            k.name.clone(),
                            k.prefix.clone(),
                            k.scopes.join(" "),
                            k.created_via.clone(),
                            or_dash(k.last_used_at.as_deref()),
                            or_dash(k.expires_at.as_deref()),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "ID",
                        "NAME",
                        "PREFIX",
                        "SCOPES",
                        "VIA",
                        "LAST USED",
                        "EXPIRES",
                    ],
                    rows,
                );
            }
            KeysCommand::Revoke { id } => {
                let revoked = client.keys_revoke(&id).await?;
                if out.json {
                    out.json(&revoked.data);
                } else {
                    println!("Revoked key {} at {}", revoked.id, revoked.revoked_at);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}
