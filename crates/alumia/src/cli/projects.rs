//! `alumia projects list|get|export` (spec 05 §5, spec 06 §4).

use std::path::PathBuf;
use std::process::ExitCode;

use alumia_types::dto::ProjectView;
use clap::Subcommand;

use super::{CliError, GlobalArgs, list_pages, or_dash, short, table, with_client};

#[derive(Subcommand, Debug)]
pub enum ProjectsCommand {
    /// Projects you can see, most recently updated first.
    List {
        /// Only projects whose name or description contains this.
        #[arg(long)]
        search: Option<String>,
        /// Page size, 1–100.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: Option<u32>,
        /// Follow cursors and list every project.
        #[arg(long)]
        all: bool,
    },
    /// One project, by id or slug.
    Get {
        #[arg(value_name = "ID|SLUG")]
        project: String,
    },
    /// Write the project's export manifest (JSON) to a file or stdout.
    Export {
        #[arg(value_name = "ID|SLUG")]
        project: String,
        /// Write here instead of stdout (created with mode 0600 on Unix).
        #[arg(long, short, value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

pub async fn run(command: ProjectsCommand, global: GlobalArgs) -> ExitCode {
    with_client(global, |client, out| async move {
        match command {
            ProjectsCommand::List { search, limit, all } => {
                let (client, search) = (&client, search.as_deref());
                let Some(projects) = list_pages(out, all, |cursor| async move {
                    client.projects_list(limit, cursor.as_deref(), search).await
                })
                .await?
                else {
                    return Ok(ExitCode::SUCCESS);
                };
                if projects.is_empty() {
                    println!("No projects.");
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = projects
                    .iter()
                    .map(|p| {
                        vec![
                            p.id.clone(),
                            p.slug.clone(),
                            short(format!("{} {}", p.emoji, p.name).trim(), 40),
                            p.visibility.clone(),
                            p.status.clone(),
                            p.updated_at.clone(),
                        ]
                    })
                    .collect();
                table(
                    &["ID", "SLUG", "NAME", "VISIBILITY", "STATUS", "UPDATED"],
                    rows,
                );
            }
            ProjectsCommand::Get { project } => {
                let project = client.projects_get(&project).await?;
                if out.json {
                    out.json(&project.data);
                } else {
                    print_project(&project);
                }
            }
            ProjectsCommand::Export { project, output } => {
                let manifest = client.projects_export(&project).await?;
                let text = serde_json::to_string_pretty(&manifest.data)
                    .map_err(|e| CliError::Failed(e.to_string()))?;
                match output {
                    None => println!("{text}"),
                    Some(path) => {
                        write_private(&path, text.as_bytes()).map_err(|e| {
                            CliError::Failed(format!("cannot write {}: {e}", path.display()))
                        })?;
                        let blocks = manifest.data["blocks"].as_array().map_or(0, Vec::len);
                        let files = manifest.data["files"].as_array().map_or(0, Vec::len);
                        out.progress(format!(
                            "Exported {blocks} blocks and {files} file entries to {}",
                            path.display()
                        ));
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}

/// A manifest names the project's files and blocks: keep it to the user.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn print_project(p: &ProjectView) {
    let mut rows = vec![
        vec!["ID".into(), p.id.clone()],
        vec!["Slug".into(), p.slug.clone()],
        vec![
            "Name".into(),
            format!("{} {}", p.emoji, p.name).trim().to_string(),
        ],
        vec![
            "Description".into(),
            or_dash(Some(&short(&p.description, 72))),
        ],
        vec!["Visibility".into(), p.visibility.clone()],
        vec!["Status".into(), p.status.clone()],
        vec!["Tags".into(), or_dash(Some(&p.tags.join(" ")))],
        vec![
            "Shared link".into(),
            if p.share_enabled { "on" } else { "off" }.into(),
        ],
    ];
    if let Some(ws) = &p.workspaces {
        let names: Vec<String> = ws
            .iter()
            .map(|w| {
                if w.is_primary {
                    format!("{} (primary)", w.name)
                } else {
                    w.name.clone()
                }
            })
            .collect();
        rows.push(vec!["Workspaces".into(), names.join(", ")]);
    }
    if let Some(spend) = &p.spend {
        rows.push(vec![
            "Tokens".into(),
            format!("{} in / {} out", spend.input_tokens, spend.output_tokens),
        ]);
    }
    rows.push(vec!["Created".into(), p.created_at.clone()]);
    rows.push(vec!["Updated".into(), p.updated_at.clone()]);
    table(&[], rows);
}
