//! Chat sessions (spec 03 §2): create, list, read, relabel, archive, delete.
//! Turns and messages come with the chat routes.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::agents::Agents;
use crate::error::{DomainError, DomainResult};
use crate::model::{ChatSession, Participant, SessionFilter};
use crate::principal::Principal;
use crate::projects::Projects;
use crate::store::{PageRequest, Store};
use crate::{new_id, validate};

pub const STATUSES: [&str; 6] = [
    "active",
    "awaiting_peer",
    "awaiting_input",
    "paused",
    "idle",
    "archived",
];
/// Statuses a client may set; the others belong to the server.
pub const CLIENT_STATUSES: [&str; 3] = ["active", "idle", "archived"];
const METADATA_MAX_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Default)]
pub struct SessionInput {
    pub label: Option<String>,
    pub project_id: Option<String>,
    pub agent_id: Option<String>,
    pub metadata: Option<Value>,
    pub status: Option<String>,
}

pub struct Sessions<'a> {
    pub store: &'a dyn Store,
    pub now: DateTime<Utc>,
}

impl Sessions<'_> {
    fn check(&self, input: &SessionInput) -> DomainResult<()> {
        let mut checks = Vec::new();
        if let Some(label) = &input.label {
            checks.push(validate::text("label", label, 1, 255));
        }
        if let Some(meta) = &input.metadata {
            if !meta.is_object() {
                checks.push(Err(DomainError::invalid("metadata", "must be an object")));
            } else if meta.to_string().len() > METADATA_MAX_BYTES {
                checks.push(Err(DomainError::invalid(
                    "metadata",
                    "must be at most 16 KB",
                )));
            }
        }
        if let Some(status) = &input.status
            && !CLIENT_STATUSES.contains(&status.as_str())
        {
            checks.push(Err(DomainError::invalid(
                "status",
                "must be one of active, idle, archived",
            )));
        }
        validate::all(checks)
    }

    pub async fn create(
        &self,
        p: &Principal,
        input: SessionInput,
        agents: &Agents<'_>,
    ) -> DomainResult<ChatSession> {
        let (session, participants) = self.prepare(p, input, agents).await?;
        self.store
            .create_chat_session(&p.org, &session, &participants)
            .await?;
        Ok(session)
    }

    /// Validates and builds a new session and its first participants
    /// without storing them (chat stores them with the first turn).
    pub async fn prepare(
        &self,
        p: &Principal,
        input: SessionInput,
        agents: &Agents<'_>,
    ) -> DomainResult<(ChatSession, Vec<Participant>)> {
        self.check(&input)?;
        let project = match input.project_id.as_deref() {
            Some(raw) => Some(
                Projects {
                    store: self.store,
                    now: self.now,
                }
                .reference(p, raw)
                .await?,
            ),
            None => None,
        };
        let agent = match input.agent_id.as_deref() {
            Some(raw) => Some(agents.get(p, raw).await.map_err(|e| match e {
                DomainError::NotFound => DomainError::invalid_reference("agentId"),
                other => other,
            })?),
            None => None,
        };
        // A project's session lives in the project's workspace.
        let workspace_id = match (&project, agent.as_ref().and_then(|a| a.workspace_id)) {
            (Some(project), _) => project.workspace_id,
            (None, Some(ws)) => ws,
            (None, None) => crate::access::active_or_default_workspace(self.store, p).await?,
        };
        let session = ChatSession {
            id: new_id(),
            org_id: p.org.org_id(),
            workspace_id,
            project_id: project.as_ref().map(|pr| pr.id),
            agent_id: agent.as_ref().map(|a| a.id),
            user_id: p.user_id,
            label: input.label.unwrap_or_else(|| "New chat".into()),
            status: "active".into(),
            relationship: "direct".into(),
            running_turn: None,
            metadata: input.metadata.unwrap_or_else(|| json!({})),
            message_count: 0,
            last_message_at: None,
            created_at: self.now,
            updated_at: self.now,
        };
        let mut participants = vec![Participant {
            kind: "user".into(),
            id: p.user_id,
            joined_at: self.now,
        }];
        if let Some(agent) = &agent {
            participants.push(Participant {
                kind: "agent".into(),
                id: agent.id,
                joined_at: self.now,
            });
        }
        Ok((session, participants))
    }

    pub async fn list(
        &self,
        p: &Principal,
        filter: &SessionFilter,
        page: PageRequest,
    ) -> DomainResult<Vec<ChatSession>> {
        let reach = crate::access::reachable_workspaces(self.store, p).await?;
        Ok(self
            .store
            .list_chat_sessions(&p.org, reach.as_deref(), filter, page)
            .await?)
    }

    /// 404 for missing, deleted, foreign or inaccessible sessions.
    pub async fn get(&self, p: &Principal, id: Uuid) -> DomainResult<ChatSession> {
        let session = self
            .store
            .get_chat_session(&p.org, id)
            .await?
            .ok_or(DomainError::NotFound)?;
        if let Some(reach) = crate::access::reachable_workspaces(self.store, p).await?
            && !reach.contains(&session.workspace_id)
        {
            return Err(DomainError::NotFound);
        }
        Ok(session)
    }

    pub async fn update(
        &self,
        p: &Principal,
        id: Uuid,
        input: SessionInput,
    ) -> DomainResult<ChatSession> {
        self.check(&input)?;
        let mut session = self.get(p, id).await?;
        if let Some(label) = input.label {
            session.label = label;
        }
        if let Some(metadata) = input.metadata {
            session.metadata = metadata;
        }
        if let Some(status) = input.status {
            session.status = status;
        }
        session.updated_at = self.now;
        self.store.update_chat_session(&p.org, &session).await?;
        Ok(session)
    }

    pub async fn delete(&self, p: &Principal, id: Uuid) -> DomainResult<()> {
        self.get(p, id).await?;
        Ok(self.store.delete_chat_session(&p.org, id, self.now).await?)
    }
}
