//! `alumia admin …`: host-side commands that work on the database directly,
//! even while a server runs.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use alumia_core::identity::{Identity, MintInput, SignupInput};
use alumia_core::model::Role;
use alumia_core::{DomainError, SystemClock};
use alumia_store::ConnectOptions;
use clap::Subcommand;
use serde_json::json;

use crate::config::{CommonArgs, Config};

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Apply migrations and exit.
    Migrate,
    /// Create whatever is missing among the user, the org and its default
    /// workspace. Idempotent; never changes a password or role.
    Bootstrap {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[arg(long)]
        org_slug: String,
        #[arg(long)]
        org_name: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Create the user if needed and add the membership.
    CreateUser {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[arg(long)]
        org_slug: String,
        #[arg(long, default_value = "member", value_parser = ["member", "admin", "owner"])]
        role: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Mint a key for automation on the host; prints only the key.
    CreateKey {
        #[arg(long)]
        email: String,
        #[arg(long)]
        org_slug: String,
        #[arg(long)]
        name: String,
        /// Comma-separated, default `models:read`.
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// e.g. `30d`, `12h`, `90m`.
        #[arg(long)]
        expires_in: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct PasswordArgs {
    /// Or `--password-stdin`, or `ALUMIA_ADMIN_PASSWORD`.
    #[arg(long, env = "ALUMIA_ADMIN_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    #[arg(long)]
    password_stdin: bool,
}

impl PasswordArgs {
    fn resolve(&self) -> Result<String, String> {
        if self.password_stdin {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
            return Ok(s.trim_end_matches(['\n', '\r']).to_string());
        }
        self.password
            .clone()
            .ok_or_else(|| "give --password, --password-stdin or ALUMIA_ADMIN_PASSWORD".into())
    }
}

/// Exit codes of 05-cli §1: 2 usage, 4 not found, 5 conflict/validation.
fn exit_for(e: &DomainError) -> ExitCode {
    ExitCode::from(match e {
        DomainError::NotFound => 4,
        DomainError::Conflict { .. } | DomainError::Validation { .. } => 5,
        DomainError::BadRequest { .. } => 2,
        DomainError::Unauthorized { .. } | DomainError::Forbidden { .. } => 3,
        DomainError::RateLimited { .. } => 6,
        DomainError::Unavailable(_) | DomainError::Internal(_) => 1,
    })
}

fn report(e: &DomainError, json: bool) -> ExitCode {
    let message = match e {
        DomainError::Validation { fields, .. } => fields
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    if json {
        eprintln!(
            "{}",
            json!({ "success": false, "error": { "message": message } })
        );
    } else {
        eprintln!("alumia admin: {message}");
    }
    exit_for(e)
}

fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = num.parse().ok().filter(|n| *n > 0)?;
    Some(match unit {
        "d" => chrono::Duration::days(n),
        "h" => chrono::Duration::hours(n),
        "m" => chrono::Duration::minutes(n),
        "s" => chrono::Duration::seconds(n),
        _ => return None,
    })
}

pub async fn run(command: AdminCommand, common: CommonArgs, json: bool) -> ExitCode {
    let config = match Config::load(&common, None, None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("alumia admin: invalid configuration: {}", e.0);
            return ExitCode::from(2);
        }
    };
    if let AdminCommand::Migrate = command {
        return match alumia_store::migrate(&config.database_url).await {
            Ok(()) => {
                println!("migrations applied to {}", config.database_url);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("alumia admin migrate: {e}");
                ExitCode::from(1)
            }
        };
    }
    let (secret, _) = match config.secret_key() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("alumia admin: {}", e.0);
            return ExitCode::from(2);
        }
    };
    let store = match alumia_store::connect(&config.database_url, &ConnectOptions::default()).await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "alumia admin: cannot open the database {}: {e}",
                config.database_url
            );
            return ExitCode::from(1);
        }
    };
    let identity = Identity::new(
        store.clone(),
        Arc::new(SystemClock),
        secret,
        config.key_env,
        config.auth.clone(),
    );
    let code = match command {
        AdminCommand::Migrate => unreachable!("handled above"),
        AdminCommand::Bootstrap {
            email,
            password,
            org_slug,
            org_name,
            name,
        } => {
            let password = match password.resolve() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("alumia admin bootstrap: {e}");
                    return ExitCode::from(2);
                }
            };
            match identity
                .bootstrap(SignupInput {
                    email,
                    password,
                    name,
                    org_slug,
                    org_name,
                })
                .await
            {
                Ok(out) => {
                    println!(
                        "{}",
                        json!({ "userId": out.user_id.to_string(), "orgId": out.org_id.to_string(), "created": out.created })
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => report(&e, json),
            }
        }
        AdminCommand::CreateUser {
            email,
            password,
            org_slug,
            role,
            name,
        } => {
            let password = match password.resolve() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("alumia admin create-user: {e}");
                    return ExitCode::from(2);
                }
            };
            let role = Role::parse(&role).unwrap_or(Role::Member);
            match identity
                .admin_create_user(&email, &password, name, &org_slug, role)
                .await
            {
                Ok(user_id) => {
                    println!(
                        "{}",
                        json!({ "userId": user_id.to_string(), "role": role.as_str() })
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => report(&e, json),
            }
        }
        AdminCommand::CreateKey {
            email,
            org_slug,
            name,
            scopes,
            expires_in,
        } => {
            let expires_at = match expires_in.as_deref() {
                None => None,
                Some(raw) => match parse_duration(raw) {
                    Some(d) => Some(chrono::Utc::now() + d),
                    None => {
                        eprintln!(
                            "alumia admin create-key: --expires-in {raw:?} must look like 30d, 12h or 90m"
                        );
                        return ExitCode::from(2);
                    }
                },
            };
            match identity
                .admin_create_key(
                    &email,
                    &org_slug,
                    MintInput {
                        name,
                        scopes,
                        expires_at,
                    },
                )
                .await
            {
                Ok((key, plaintext)) => {
                    if json {
                        println!(
                            "{}",
                            json!({
                                "id": key.id.to_string(),
                                "prefix": key.prefix,
                                "key": plaintext,
                                "scopes": key.scopes,
                                "expiresAt": key.expires_at.map(alumia_core::clock::format_ts),
                            })
                        );
                    } else {
                        println!("{plaintext}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => report(&e, json),
            }
        }
    };
    store.close().await;
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_durations_parse_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("30d"), Some(chrono::Duration::days(30)));
        assert_eq!(parse_duration("12h"), Some(chrono::Duration::hours(12)));
        assert_eq!(parse_duration("0d"), None);
        assert_eq!(parse_duration("5y"), None);
        assert_eq!(parse_duration(""), None);
    }
}
