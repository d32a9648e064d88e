//! `alumia whoami`: URL, email, org, role, key prefix and scopes.

use std::process::ExitCode;

use super::{GlobalArgs, or_dash, table, with_client};

pub async fn run(global: GlobalArgs) -> ExitCode {
    with_client(global, |client, out| async move {
        let me = client.me().await?;
        if out.json {
            out.json(&me.data);
            return Ok(ExitCode::SUCCESS);
        }
        let principal = &me.principal;
        let key = match principal.key_prefix.as_deref() {
            Some(prefix) => format!("{prefix}… ({})", principal.kind),
            None => principal.kind.clone(),
        };
        table(
            &[],
            vec![
                vec!["URL".into(), client.base_url().to_string()],
                vec!["Email".into(), me.user.email.clone()],
                vec!["Org".into(), format!("{} ({})", me.org.slug, me.org.name)],
                vec!["Role".into(), me.role.clone()],
                vec!["Key".into(), key],
                vec!["Scopes".into(), or_dash(Some(&principal.scopes.join(" ")))],
            ],
        );
        Ok(ExitCode::SUCCESS)
    })
    .await
}
