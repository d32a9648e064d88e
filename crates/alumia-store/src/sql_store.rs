//! The `Store` implementation, written once and expanded for each engine.
//!
//! Every statement here is portable: `$N` placeholders (sqlx's SQLite driver
//! numbers them), TEXT ids, BIGINT milliseconds, BOOLEAN. The engine modules
//! provide only `pool`, `begin_write()` and `SETUP_LOCK`.

/// Columns of an `api_keys` row, in `ApiKeyRow` order.
pub(crate) const KEY_COLUMNS: &str = "k.id, k.org_id, k.user_id, k.name, k.prefix, k.scopes, \
     k.created_via, k.active_workspace_id, k.last_used_at, k.expires_at, k.revoked_at, k.created_at";

macro_rules! impl_sql_store {
    ($store:ty) => {
        use alumia_core::clock::to_millis;
        use alumia_core::model::*;
        use alumia_core::store::{PageRequest, StoreResult};
        use alumia_core::{OrgScope, Store, StoreError};
        use chrono::{DateTime, Utc};
        use uuid::Uuid;

        use $crate::errors::{classify, err};
        use $crate::rows::*;

        const WORKSPACE_SELECT: &str = "SELECT w.id, w.org_id, w.name, w.slug, w.description, \
            w.is_default, w.created_at, w.updated_at, \
            (CASE WHEN w.is_default \
                THEN (SELECT COUNT(*) FROM memberships m WHERE m.org_id = w.org_id) \
                ELSE (SELECT COUNT(*) FROM workspace_members wm WHERE wm.workspace_id = w.id) \
             END) AS member_count \
            FROM workspaces w \
            WHERE w.org_id = $1 AND w.deleted_at IS NULL \
              AND ($3 OR w.is_default OR EXISTS (SELECT 1 FROM workspace_members wm \
                   WHERE wm.workspace_id = w.id AND wm.user_id = $2))";

        impl $store {
            /// Inserts a session and its first participants inside `tx`.
            pub(crate) async fn insert_chat_session(
                conn: &mut <<Self as EngineDb>::Db as sqlx::Database>::Connection,
                org: &OrgScope,
                c: &ChatSession,
                participants: &[Participant],
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO chat_sessions (id, org_id, workspace_id, project_id, agent_id, user_id, label, \
                     status, relationship, running_turn, metadata, message_count, last_message_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, 0, NULL, $11, $11)",
                )
                .bind(c.id.to_string())
                .bind(org.org_id().to_string())
                .bind(c.workspace_id.to_string())
                .bind(c.project_id.map(|u| u.to_string()))
                .bind(c.agent_id.map(|u| u.to_string()))
                .bind(c.user_id.to_string())
                .bind(&c.label)
                .bind(&c.status)
                .bind(&c.relationship)
                .bind(c.metadata.to_string())
                .bind(to_millis(c.created_at))
                .execute(&mut *conn)
                .await
                .map_err(err)?;
                for p in participants {
                    sqlx::query(
                        "INSERT INTO session_participants (session_id, kind, participant_id, joined_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(c.id.to_string())
                    .bind(&p.kind)
                    .bind(p.id.to_string())
                    .bind(to_millis(p.joined_at))
                    .execute(&mut *conn)
                    .await
                    .map_err(err)?;
                }
                Ok(())
            }

            /// The one INSERT of a key: dashboard and admin mints, and the
            /// device-code exchange (inside its transaction).
            pub(crate) async fn insert_api_key<'c, E>(exec: E, org: &OrgScope, key: &NewApiKey) -> StoreResult<()>
            where
                E: sqlx::Executor<'c, Database = <Self as EngineDb>::Db>,
            {
                sqlx::query(
                    "INSERT INTO api_keys (id, org_id, user_id, name, prefix, key_hash, scopes, created_via, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(key.id.to_string())
                .bind(org.org_id().to_string())
                .bind(key.user_id.to_string())
                .bind(&key.name)
                .bind(&key.prefix)
                .bind(&key.key_hash)
                .bind(key.scopes.join(" "))
                .bind(key.created_via.as_str())
                .bind(key.expires_at.map(to_millis))
                .bind(to_millis(key.created_at))
                .execute(exec)
                .await
                .map_err(|e| classify(e, "api_key_hash"))?;
                Ok(())
            }

            async fn insert_user<'c, E>(exec: E, user: &NewUser) -> StoreResult<()>
            where
                E: sqlx::Executor<'c, Database = <Self as EngineDb>::Db>,
            {
                sqlx::query(
                    "INSERT INTO users (id, email, name, password_hash, preferences, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(user.id.to_string())
                .bind(user.email.to_lowercase())
                .bind(&user.name)
                .bind(&user.password_hash)
                .bind(serde_json::to_string(&UserPreferences::default()).expect("prefs serialise"))
                .bind(to_millis(user.created_at))
                .execute(exec)
                .await
                .map_err(|e| classify(e, "user_email"))?;
                Ok(())
            }

            async fn insert_org(
                tx: &mut sqlx::Transaction<'static, <Self as EngineDb>::Db>,
                org: &NewOrg,
                owner: Uuid,
            ) -> StoreResult<()> {
                let at = to_millis(org.created_at);
                sqlx::query(
                    "INSERT INTO orgs (id, slug, name, settings, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(org.id.to_string())
                .bind(&org.slug)
                .bind(&org.name)
                .bind(serde_json::to_string(&OrgSettings::default()).expect("settings serialise"))
                .bind(at)
                .execute(&mut **tx)
                .await
                .map_err(|e| classify(e, "org_slug"))?;
                sqlx::query(
                    "INSERT INTO workspaces (id, org_id, name, slug, description, is_default, created_at, updated_at) \
                     VALUES ($1, $2, 'General', 'general', '', TRUE, $3, $3)",
                )
                .bind(org.default_workspace_id.to_string())
                .bind(org.id.to_string())
                .bind(at)
                .execute(&mut **tx)
                .await
                .map_err(err)?;
                sqlx::query(
                    "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)",
                )
                .bind(org.id.to_string())
                .bind(owner.to_string())
                .bind(at)
                .execute(&mut **tx)
                .await
                .map_err(err)?;
                Self::insert_agent(&mut **tx, org.id, &org.default_agent).await?;
                Ok(())
            }

            async fn insert_agent<'c, E>(exec: E, org: Uuid, a: &Agent) -> StoreResult<()>
            where
                E: sqlx::Executor<'c, Database = <Self as EngineDb>::Db>,
            {
                sqlx::query(
                    "INSERT INTO agents (id, org_id, workspace_id, name, slug, description, avatar, model, \
                     system_prompt, allowed_tools, allowed_peers, allowed_connectors, skills, shared_workspace_ids, \
                     settings, is_default, is_active, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
                )
                .bind(a.id.to_string())
                .bind(org.to_string())
                .bind(a.workspace_id.map(|u| u.to_string()))
                .bind(&a.name)
                .bind(&a.slug)
                .bind(&a.description)
                .bind(&a.avatar)
                .bind(&a.model)
                .bind(&a.system_prompt)
                .bind(json_text(&a.allowed_tools))
                .bind(json_text(&a.allowed_peers))
                .bind(json_text(&a.allowed_connectors))
                .bind(json_text(&a.skills))
                .bind(json_text(&a.shared_workspace_ids))
                .bind(a.settings.to_string())
                .bind(a.is_default)
                .bind(a.is_active)
                .bind(a.created_by.map(|u| u.to_string()))
                .bind(to_millis(a.created_at))
                .bind(to_millis(a.updated_at))
                .execute(exec)
                .await
                .map_err(|e| classify(e, "agent_slug"))?;
                Ok(())
            }
        }

        fn json_text<T: serde::Serialize>(v: &T) -> String {
            serde_json::to_string(v).expect("lists serialise")
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn kind(&self) -> &'static str {
                <Self as EngineDb>::KIND
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(err)?;
                Ok(())
            }

            async fn close(&self) {
                self.close_pools().await;
            }

            async fn count_users(&self) -> StoreResult<i64> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(n)
            }

            async fn setup_first_owner(&self, user: &NewUser, org: &NewOrg) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                if let Some(lock) = <Self as EngineDb>::SETUP_LOCK {
                    sqlx::query(lock).execute(&mut *tx).await.map_err(err)?;
                }
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err)?;
                if n > 0 {
                    return Err(StoreError::Conflict("already_set_up"));
                }
                Self::insert_user(&mut *tx, user).await?;
                Self::insert_org(&mut tx, org, user.id).await?;
                tx.commit().await.map_err(err)?;
                Ok(())
            }

            async fn create_user(&self, user: &NewUser) -> StoreResult<()> {
                Self::insert_user(&self.pool, user).await
            }

            async fn create_org(&self, org: &NewOrg, owner: Uuid) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::insert_org(&mut tx, org, owner).await?;
                tx.commit().await.map_err(err)?;
                Ok(())
            }

            async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserCredentials>> {
                let row: Option<UserRow> = sqlx::query_as("SELECT * FROM users WHERE email = $1")
                    .bind(email.to_lowercase())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(row.map(UserRow::into_credentials))
            }

            async fn get_user(&self, id: Uuid) -> StoreResult<Option<User>> {
                let row: Option<UserRow> = sqlx::query_as("SELECT * FROM users WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(row.map(UserRow::into_user))
            }

            async fn get_password_hash(&self, user: Uuid) -> StoreResult<Option<String>> {
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
                        .bind(user.to_string())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(err)?;
                Ok(row.map(|r| r.0))
            }

            async fn set_password_hash(&self, user: Uuid, hash: &str, at: DateTime<Utc>) -> StoreResult<()> {
                let done = sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                    .bind(user.to_string())
                    .bind(hash)
                    .bind(to_millis(at))
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn get_org(&self, id: Uuid) -> StoreResult<Option<Org>> {
                let row: Option<OrgRow> = sqlx::query_as("SELECT * FROM orgs WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(row.map(Org::from))
            }

            async fn get_org_by_slug(&self, slug: &str) -> StoreResult<Option<Org>> {
                let row: Option<OrgRow> = sqlx::query_as("SELECT * FROM orgs WHERE slug = $1")
                    .bind(slug)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(row.map(Org::from))
            }

            async fn list_user_orgs(&self, user: Uuid) -> StoreResult<Vec<OrgMembership>> {
                let rows: Vec<OrgRoleRow> = sqlx::query_as(
                    "SELECT o.*, m.role FROM memberships m JOIN orgs o ON o.id = m.org_id \
                     WHERE m.user_id = $1 ORDER BY o.slug",
                )
                .bind(user.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
                Ok(rows.into_iter().map(OrgMembership::from).collect())
            }

            async fn add_member(&self, org: &OrgScope, user: Uuid, role: Role, at: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(org.org_id().to_string())
                    .bind(user.to_string())
                    .bind(role.as_str())
                    .bind(to_millis(at))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| classify(e, "membership"))?;
                Ok(())
            }

            async fn get_role(&self, org: &OrgScope, user: Uuid) -> StoreResult<Option<Role>> {
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
                        .bind(org.org_id().to_string())
                        .bind(user.to_string())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(err)?;
                Ok(row.and_then(|r| Role::parse(&r.0)))
            }

            async fn list_members(&self, org: &OrgScope) -> StoreResult<Vec<Member>> {
                let rows: Vec<MemberRow> = sqlx::query_as(
                    "SELECT u.id AS user_id, u.email, u.name, m.role, m.created_at \
                     FROM memberships m JOIN users u ON u.id = m.user_id \
                     WHERE m.org_id = $1 ORDER BY u.email",
                )
                .bind(org.org_id().to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
                Ok(rows.into_iter().map(Member::from).collect())
            }

            async fn remove_member(&self, org: &OrgScope, user: Uuid) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM workspace_members WHERE org_id = $1 AND user_id = $2")
                    .bind(org.org_id().to_string())
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                let done = sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
                    .bind(org.org_id().to_string())
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                tx.commit().await.map_err(err)?;
                Ok(())
            }

            async fn list_workspaces(&self, org: &OrgScope, user: Uuid, role: Role) -> StoreResult<Vec<Workspace>> {
                let sql = format!("{WORKSPACE_SELECT} ORDER BY w.is_default DESC, w.name, w.id");
                let rows: Vec<WorkspaceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(org.org_id().to_string())
                    .bind(user.to_string())
                    .bind(role.is_admin())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(rows.into_iter().map(Workspace::from).collect())
            }

            async fn get_workspace(&self, org: &OrgScope, user: Uuid, role: Role, id: Uuid) -> StoreResult<Option<Workspace>> {
                let sql = format!("{WORKSPACE_SELECT} AND w.id = $4");
                let row: Option<WorkspaceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(org.org_id().to_string())
                    .bind(user.to_string())
                    .bind(role.is_admin())
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(row.map(Workspace::from))
            }

            async fn create_api_key(&self, org: &OrgScope, key: &NewApiKey) -> StoreResult<ApiKey> {
                Self::insert_api_key(&self.pool, org, key).await?;
                self.get_api_key(org, key.id).await?.ok_or(StoreError::NotFound)
            }

            async fn find_key_grant_by_hash(&self, key_hash: &str) -> StoreResult<Option<KeyGrant>> {
                let sql = format!(
                    "SELECT {}, k.key_hash, o.slug AS org_slug, m.role \
                     FROM api_keys k JOIN orgs o ON o.id = k.org_id \
                     LEFT JOIN memberships m ON m.org_id = k.org_id AND m.user_id = k.user_id \
                     WHERE k.key_hash = $1",
                    $crate::sql_store::KEY_COLUMNS
                );
                let row: Option<KeyGrantRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(key_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(row.map(KeyGrant::from))
            }

            async fn list_api_keys(&self, org: &OrgScope, user: Uuid, page: PageRequest) -> StoreResult<Vec<ApiKey>> {
                let sql = format!(
                    "SELECT {} FROM api_keys k \
                     WHERE k.org_id = $1 AND k.user_id = $2 AND k.revoked_at IS NULL \
                       AND ($3 IS NULL OR k.created_at < $3 OR (k.created_at = $3 AND k.id < $4)) \
                     ORDER BY k.created_at DESC, k.id DESC LIMIT $5",
                    $crate::sql_store::KEY_COLUMNS
                );
                let rows: Vec<ApiKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(org.org_id().to_string())
                    .bind(user.to_string())
                    .bind(page.after.map(|a| a.0))
                    .bind(page.after.map(|a| a.1.to_string()))
                    .bind(i64::from(page.limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(rows.into_iter().map(ApiKey::from).collect())
            }

            async fn get_api_key(&self, org: &OrgScope, id: Uuid) -> StoreResult<Option<ApiKey>> {
                let sql = format!(
                    "SELECT {} FROM api_keys k WHERE k.org_id = $1 AND k.id = $2",
                    $crate::sql_store::KEY_COLUMNS
                );
                let row: Option<ApiKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(org.org_id().to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(row.map(ApiKey::from))
            }

            async fn revoke_api_key(&self, org: &OrgScope, user: Uuid, id: Uuid, at: DateTime<Utc>) -> StoreResult<ApiKey> {
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $4 \
                     WHERE org_id = $1 AND user_id = $2 AND id = $3 AND revoked_at IS NULL",
                )
                .bind(org.org_id().to_string())
                .bind(user.to_string())
                .bind(id.to_string())
                .bind(to_millis(at))
                .execute(&self.pool)
                .await
                .map_err(err)?;
                let key = self
                    .get_api_key(org, id)
                    .await?
                    .filter(|k| k.user_id == user)
                    .ok_or(StoreError::NotFound)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict("already_revoked"));
                }
                Ok(key)
            }

            async fn touch_api_key(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                    .bind(id.to_string())
                    .bind(to_millis(at))
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(())
            }

            async fn set_key_workspace(&self, org: &OrgScope, key: Uuid, workspace: Uuid) -> StoreResult<()> {
                let done = sqlx::query("UPDATE api_keys SET active_workspace_id = $3 WHERE org_id = $1 AND id = $2")
                    .bind(org.org_id().to_string())
                    .bind(key.to_string())
                    .bind(workspace.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn create_session(&self, token_hash: &str, s: &BrowserSession) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO browser_sessions (id, token_hash, user_id, current_org_id, active_workspace_id, \
                     csrf_token, auth_time, step_up_at, amr, ip, user_agent, last_seen_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(s.id.to_string())
                .bind(token_hash)
                .bind(s.user_id.to_string())
                .bind(s.current_org_id.map(|u| u.to_string()))
                .bind(s.active_workspace_id.map(|u| u.to_string()))
                .bind(&s.csrf_token)
                .bind(to_millis(s.auth_time))
                .bind(s.step_up_at.map(to_millis))
                .bind(s.amr.join(" "))
                .bind(&s.ip)
                .bind(&s.user_agent)
                .bind(to_millis(s.last_seen_at))
                .bind(to_millis(s.expires_at))
                .execute(&self.pool)
                .await
                .map_err(|e| classify(e, "session_token"))?;
                Ok(())
            }

            async fn find_session_by_hash(&self, token_hash: &str) -> StoreResult<Option<BrowserSession>> {
                let row: Option<SessionRow> = sqlx::query_as(
                    "SELECT id, user_id, current_org_id, active_workspace_id, csrf_token, auth_time, step_up_at, \
                     amr, ip, user_agent, last_seen_at, expires_at FROM browser_sessions WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
                Ok(row.map(BrowserSession::from))
            }

            async fn rotate_session(&self, id: Uuid, new_token_hash: &str, step_up_at: DateTime<Utc>, amr: &[String]) -> StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE browser_sessions SET token_hash = $2, step_up_at = $3, amr = $4, last_seen_at = $3 WHERE id = $1",
                )
                .bind(id.to_string())
                .bind(new_token_hash)
                .bind(to_millis(step_up_at))
                .bind(amr.join(" "))
                .execute(&self.pool)
                .await
                .map_err(err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn set_session_context(&self, id: Uuid, current_org: Option<Uuid>, active_workspace: Option<Uuid>) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE browser_sessions SET current_org_id = COALESCE($2, current_org_id), \
                     active_workspace_id = $3 WHERE id = $1",
                )
                .bind(id.to_string())
                .bind(current_org.map(|u| u.to_string()))
                .bind(active_workspace.map(|u| u.to_string()))
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(())
            }

            async fn touch_session(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query("UPDATE browser_sessions SET last_seen_at = $2 WHERE id = $1")
                    .bind(id.to_string())
                    .bind(to_millis(at))
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(())
            }

            async fn delete_session(&self, id: Uuid) -> StoreResult<()> {
                sqlx::query("DELETE FROM browser_sessions WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(())
            }

            async fn delete_user_sessions(&self, user: Uuid, except: Option<Uuid>) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM browser_sessions WHERE user_id = $1 AND ($2 IS NULL OR id <> $2)")
                    .bind(user.to_string())
                    .bind(except.map(|u| u.to_string()))
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(done.rows_affected())
            }

            async fn get_totp(&self, user: Uuid) -> StoreResult<Option<TotpState>> {
                let row: Option<TotpRow> =
                    sqlx::query_as("SELECT secret_enc, enabled, last_step FROM user_totp WHERE user_id = $1")
                        .bind(user.to_string())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(err)?;
                Ok(row.map(TotpState::from))
            }

            async fn set_totp_pending(&self, user: Uuid, secret_enc: &str) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO user_totp (user_id, secret_enc, enabled, last_step) VALUES ($1, $2, FALSE, NULL) \
                     ON CONFLICT (user_id) DO UPDATE SET secret_enc = excluded.secret_enc, last_step = NULL \
                     WHERE user_totp.enabled = FALSE",
                )
                .bind(user.to_string())
                .bind(secret_enc)
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(())
            }

            async fn enable_totp(&self, user: Uuid, codes: &[String], at: DateTime<Utc>) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("UPDATE user_totp SET enabled = TRUE, updated_at = $2 WHERE user_id = $1 AND enabled = FALSE")
                    .bind(user.to_string())
                    .bind(to_millis(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                for code in codes {
                    sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                        .bind(user.to_string())
                        .bind(code)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                }
                tx.commit().await.map_err(err)?;
                Ok(())
            }

            async fn accept_totp_step(&self, user: Uuid, step: i64) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE user_totp SET last_step = $2 WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2)",
                )
                .bind(user.to_string())
                .bind(step)
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn disable_totp(&self, user: Uuid) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM user_totp WHERE user_id = $1")
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                tx.commit().await.map_err(err)?;
                Ok(())
            }

            async fn recovery_codes_remaining(&self, user: Uuid) -> StoreResult<i64> {
                let (n,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
                        .bind(user.to_string())
                        .fetch_one(&self.pool)
                        .await
                        .map_err(err)?;
                Ok(n)
            }

            async fn use_recovery_code(&self, user: Uuid, code_hash: &str, at: DateTime<Utc>) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
                )
                .bind(user.to_string())
                .bind(code_hash)
                .bind(to_millis(at))
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn create_agent(&self, org: &OrgScope, agent: &Agent) -> StoreResult<()> {
                Self::insert_agent(&self.pool, org.org_id(), agent).await
            }

            async fn get_agent(&self, org: &OrgScope, agent: &AgentRef) -> StoreResult<Option<Agent>> {
                let (column, value) = match agent {
                    AgentRef::Id(id) => ("id", id.to_string()),
                    AgentRef::Slug(slug) => ("slug", slug.clone()),
                };
                let sql = format!(
                    "SELECT * FROM agents WHERE org_id = $1 AND {column} = $2 AND deleted_at IS NULL"
                );
                let row: Option<AgentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(org.org_id().to_string())
                    .bind(value)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(row.map(Agent::from))
            }

            async fn list_agents(
                &self,
                org: &OrgScope,
                workspaces: Option<&[Uuid]>,
                page: PageRequest,
            ) -> StoreResult<Vec<Agent>> {
                // Workspace ids are bound as parameters $5.. (never spliced in).
                let filter = match workspaces {
                    None => String::new(),
                    Some(ids) => {
                        let params: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 5)).collect();
                        let list = if params.is_empty() { "NULL".to_string() } else { params.join(", ") };
                        format!(" AND (workspace_id IS NULL OR workspace_id IN ({list}))")
                    }
                };
                let sql = format!(
                    "SELECT * FROM agents WHERE org_id = $1 AND deleted_at IS NULL \
                       AND ($2 IS NULL OR updated_at < $2 OR (updated_at = $2 AND id < $3)){filter} \
                     ORDER BY updated_at DESC, id DESC LIMIT $4"
                );
                let mut query = sqlx::query_as::<_, AgentRow>(sqlx::AssertSqlSafe(sql))
                    .bind(org.org_id().to_string())
                    .bind(page.after.map(|a| a.0))
                    .bind(page.after.map(|a| a.1.to_string()))
                    .bind(i64::from(page.limit));
                for id in workspaces.unwrap_or_default() {
                    query = query.bind(id.to_string());
                }
                let rows = query.fetch_all(&self.pool).await.map_err(err)?;
                Ok(rows.into_iter().map(Agent::from).collect())
            }

            async fn update_agent(&self, org: &OrgScope, a: &Agent) -> StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE agents SET workspace_id = $3, name = $4, slug = $5, description = $6, avatar = $7, \
                     model = $8, system_prompt = $9, allowed_tools = $10, allowed_peers = $11, \
                     allowed_connectors = $12, skills = $13, shared_workspace_ids = $14, settings = $15, \
                     is_active = $16, updated_at = $17 \
                     WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                )
                .bind(org.org_id().to_string())
                .bind(a.id.to_string())
                .bind(a.workspace_id.map(|u| u.to_string()))
                .bind(&a.name)
                .bind(&a.slug)
                .bind(&a.description)
                .bind(&a.avatar)
                .bind(&a.model)
                .bind(&a.system_prompt)
                .bind(json_text(&a.allowed_tools))
                .bind(json_text(&a.allowed_peers))
                .bind(json_text(&a.allowed_connectors))
                .bind(json_text(&a.skills))
                .bind(json_text(&a.shared_workspace_ids))
                .bind(a.settings.to_string())
                .bind(a.is_active)
                .bind(to_millis(a.updated_at))
                .execute(&self.pool)
                .await
                .map_err(|e| classify(e, "agent_slug"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn delete_agent(&self, org: &OrgScope, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE agents SET deleted_at = $3, updated_at = $3 \
                     WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL AND is_default = FALSE",
                )
                .bind(org.org_id().to_string())
                .bind(id.to_string())
                .bind(to_millis(at))
                .execute(&self.pool)
                .await
                .map_err(err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn create_chat_session(
                &self,
                org: &OrgScope,
                c: &ChatSession,
                participants: &[Participant],
            ) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::insert_chat_session(&mut tx, org, c, participants).await?;
                tx.commit().await.map_err(err)?;
                Ok(())
            }

            async fn get_chat_session(&self, org: &OrgScope, id: Uuid) -> StoreResult<Option<ChatSession>> {
                let row: Option<ChatSessionRow> = sqlx::query_as(
                    "SELECT * FROM chat_sessions WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                )
                .bind(org.org_id().to_string())
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
                Ok(row.map(ChatSession::from))
            }

            async fn list_chat_sessions(
                &self,
                org: &OrgScope,
                workspaces: Option<&[Uuid]>,
                filter: &SessionFilter,
                page: PageRequest,
            ) -> StoreResult<Vec<ChatSession>> {
                // Workspace ids are bound as parameters $9.. (never spliced in).
                let reach = match workspaces {
                    None => String::new(),
                    Some(ids) => {
                        let params: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 9)).collect();
                        let list = if params.is_empty() { "NULL".to_string() } else { params.join(", ") };
                        format!(" AND workspace_id IN ({list})")
                    }
                };
                let sql = format!(
                    "SELECT * FROM chat_sessions WHERE org_id = $1 AND deleted_at IS NULL \
                       AND ($2 IS NULL OR updated_at < $2 OR (updated_at = $2 AND id < $3)) \
                       AND ($5 IS NULL OR agent_id = $5) \
                       AND ($6 IS NULL OR status = $6) \
                       AND ($7 OR status <> 'archived') \
                       AND ($8 IS NULL OR project_id = $8){reach} \
                     ORDER BY updated_at DESC, id DESC LIMIT $4"
                );
                let mut query = sqlx::query_as::<_, ChatSessionRow>(sqlx::AssertSqlSafe(sql))
                    .bind(org.org_id().to_string())
                    .bind(page.after.map(|a| a.0))
                    .bind(page.after.map(|a| a.1.to_string()))
                    .bind(i64::from(page.limit))
                    .bind(filter.agent_id.map(|u| u.to_string()))
                    .bind(filter.status.clone())
                    .bind(filter.include_archived)
                    .bind(filter.project_id.map(|u| u.to_string()));
                for id in workspaces.unwrap_or_default() {
                    query = query.bind(id.to_string());
                }
                let rows = query.fetch_all(&self.pool).await.map_err(err)?;
                Ok(rows.into_iter().map(ChatSession::from).collect())
            }

            async fn update_chat_session(&self, org: &OrgScope, c: &ChatSession) -> StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE chat_sessions SET label = $3, status = $4, metadata = $5, updated_at = $6 \
                     WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                )
                .bind(org.org_id().to_string())
                .bind(c.id.to_string())
                .bind(&c.label)
                .bind(&c.status)
                .bind(c.metadata.to_string())
                .bind(to_millis(c.updated_at))
                .execute(&self.pool)
                .await
                .map_err(err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn delete_chat_session(&self, org: &OrgScope, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE chat_sessions SET deleted_at = $3, running_turn = NULL \
                     WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                )
                .bind(org.org_id().to_string())
                .bind(id.to_string())
                .bind(to_millis(at))
                .execute(&self.pool)
                .await
                .map_err(err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                // Its running turn stops at its next save, on whichever replica runs it.
                sqlx::query(
                    "UPDATE turns SET stop_requested = TRUE WHERE org_id = $1 AND session_id = $2 AND status = 'running'",
                )
                .bind(org.org_id().to_string())
                .bind(id.to_string())
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(())
            }

            async fn list_participants(&self, org: &OrgScope, session: Uuid) -> StoreResult<Vec<Participant>> {
                let rows: Vec<ParticipantRow> = sqlx::query_as(
                    "SELECT p.kind, p.participant_id, p.joined_at FROM session_participants p \
                     JOIN chat_sessions c ON c.id = p.session_id \
                     WHERE c.org_id = $1 AND p.session_id = $2 ORDER BY p.joined_at, p.kind, p.participant_id",
                )
                .bind(org.org_id().to_string())
                .bind(session.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
                Ok(rows.into_iter().map(Participant::from).collect())
            }

            async fn record_audit(&self, org: &OrgScope, e: &AuditEvent) -> StoreResult<()> {
                let result = sqlx::query(
                    "INSERT INTO audit_events (id, org_id, type, actor_kind, actor_user_id, actor_key_id, ip, \
                     target_kind, target_id, data, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(e.id.to_string())
                .bind(org.org_id().to_string())
                .bind(&e.kind)
                .bind(&e.actor_kind)
                .bind(e.actor_user_id.map(|u| u.to_string()))
                .bind(e.actor_key_id.map(|u| u.to_string()))
                .bind(&e.ip)
                .bind(&e.target_kind)
                .bind(&e.target_id)
                .bind(e.data.to_string())
                .bind(to_millis(e.created_at))
                .execute(&self.pool)
                .await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, "audit event not recorded");
                    return Err(err(e));
                }
                Ok(())
            }

            async fn list_audit(&self, org: &OrgScope, page: PageRequest) -> StoreResult<Vec<AuditEvent>> {
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT * FROM audit_events WHERE org_id = $1 \
                       AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
                     ORDER BY created_at DESC, id DESC LIMIT $4",
                )
                .bind(org.org_id().to_string())
                .bind(page.after.map(|a| a.0))
                .bind(page.after.map(|a| a.1.to_string()))
                .bind(i64::from(page.limit))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
                Ok(rows.into_iter().map(AuditEvent::from).collect())
            }
        }
    };
}

pub(crate) use impl_sql_store;

/// What each engine module provides to the shared implementation.
pub(crate) trait EngineDb {
    type Db: sqlx::Database;
    const KIND: &'static str;
    /// A statement run first in the setup transaction to serialise first runs
    /// (SQLite's `BEGIN IMMEDIATE` already does).
    const SETUP_LOCK: Option<&'static str>;
}
