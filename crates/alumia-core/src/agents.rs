//! Agents: validation, slugs, access through workspaces, and the rules that
//! keep Ala (the default agent of every org) in place.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult, StoreError};
use crate::model::{Agent, AgentRef};
use crate::principal::Principal;
use crate::store::{PageRequest, Store};
use crate::{new_id, validate};

pub const ALA_SLUG: &str = "ala";

/// The tools an agent gets when `allowedTools` is omitted (the P2 set).
pub const DEFAULT_TOOLS: [&str; 6] = [
    "echo",
    "list_agents",
    "check_messages",
    "spawn_agent",
    "message_agent",
    "set_agent_model",
];

/// Ala as created with every org: no workspace, the org's model, any peer.
pub fn ala(org_id: Uuid, now: DateTime<Utc>) -> Agent {
    Agent {
        id: new_id(),
        org_id,
        workspace_id: None,
        name: "Ala".into(),
        slug: ALA_SLUG.into(),
        description: "Your organisation's assistant".into(),
        avatar: String::new(),
        model: None,
        system_prompt: String::new(),
        allowed_tools: DEFAULT_TOOLS.iter().map(|s| s.to_string()).collect(),
        allowed_peers: vec!["*".into()],
        allowed_connectors: Vec::new(),
        skills: Vec::new(),
        shared_workspace_ids: Vec::new(),
        settings: json!({}),
        is_default: true,
        is_active: true,
        created_by: None,
        created_at: now,
        updated_at: now,
    }
}

/// Name rule: whitespace collapsed and trimmed, 1–255 characters.
pub fn normalise_name(raw: &str) -> String {
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A slug from a name: lowercase ASCII letters and digits, single dashes.
pub fn slugify(name: &str) -> String {
    slugify_or(name, "agent")
}

/// [`slugify`], with `fallback` for a name without letters or digits.
pub fn slugify_or(name: &str, fallback: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let mut slug: String = slug.chars().take(60).collect();
    if slug.is_empty() {
        slug = fallback.into();
    }
    slug.trim_end_matches('-').to_string()
}

fn reserved(name: &str, slug: &str) -> bool {
    name.eq_ignore_ascii_case("ala") || slug == ALA_SLUG
}

/// What a create or an update may set. `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AgentInput {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<String>,
    pub avatar: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub workspace_id: Option<String>,
    pub allowed_tools: Option<Vec<String>>,
    pub allowed_peers: Option<Vec<String>>,
    pub allowed_connectors: Option<Vec<String>>,
    pub is_active: Option<bool>,
    pub settings: Option<Value>,
}

impl AgentInput {
    fn privileged(&self) -> bool {
        self.allowed_tools.is_some()
            || self.allowed_peers.is_some()
            || self.allowed_connectors.is_some()
    }
}

/// The agents service: every call is scoped by the principal's org and
/// limited to the workspaces the principal can reach.
pub struct Agents<'a> {
    pub store: &'a dyn Store,
    pub now: DateTime<Utc>,
    pub step_up_window_secs: i64,
    /// The model catalogue, for `model` checks.
    pub models: &'a dyn ModelLookup,
}

/// What the agent rules need of the model catalogue.
pub trait ModelLookup: Send + Sync {
    /// The catalogue id for `id` (a full `provider/model` id, or a bare
    /// model id offered by exactly one provider); None if unknown.
    fn canonical(&self, id: &str) -> Option<String>;
}

/// A fixed list of ids, for tests and the built-in catalogue.
impl ModelLookup for [&str] {
    fn canonical(&self, id: &str) -> Option<String> {
        if self.contains(&id) {
            return Some(id.to_string());
        }
        let mut bare = self
            .iter()
            .filter(|m| m.split_once('/').map(|(_, n)| n) == Some(id));
        match (bare.next(), bare.next()) {
            (Some(one), None) => Some(one.to_string()),
            _ => None,
        }
    }
}

impl Agents<'_> {
    fn visible(agent: &Agent, reach: &Option<Vec<Uuid>>) -> bool {
        match (reach, agent.workspace_id) {
            (None, _) | (_, None) => true,
            (Some(ids), Some(ws)) => ids.contains(&ws),
        }
    }

    /// Ala exists in every org: re-created here if it went missing.
    async fn ensure_ala(&self, p: &Principal) -> DomainResult<()> {
        if self
            .store
            .get_agent(&p.org, &AgentRef::Slug(ALA_SLUG.into()))
            .await?
            .is_none()
        {
            match self
                .store
                .create_agent(&p.org, &ala(p.org.org_id(), self.now))
                .await
            {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    pub async fn list(&self, p: &Principal, page: PageRequest) -> DomainResult<Vec<Agent>> {
        self.ensure_ala(p).await?;
        let reach = crate::access::reachable_workspaces(self.store, p).await?;
        Ok(self
            .store
            .list_agents(&p.org, reach.as_deref(), page)
            .await?)
    }

    /// 404 for a missing, deleted, invisible or foreign agent.
    pub async fn get(&self, p: &Principal, raw: &str) -> DomainResult<Agent> {
        let agent = self
            .store
            .get_agent(&p.org, &AgentRef::parse(raw))
            .await?
            .ok_or(DomainError::NotFound)?;
        if !Self::visible(
            &agent,
            &crate::access::reachable_workspaces(self.store, p).await?,
        ) {
            return Err(DomainError::NotFound);
        }
        Ok(agent)
    }

    async fn check_workspace(&self, p: &Principal, raw: &str) -> DomainResult<Uuid> {
        let invalid = || DomainError::invalid_reference("workspaceId");
        let id = Uuid::parse_str(raw).map_err(|_| invalid())?;
        self.store
            .get_workspace(&p.org, p.user_id, p.role, id)
            .await?
            .ok_or_else(invalid)?;
        Ok(id)
    }

    fn check_fields(&self, input: &mut AgentInput) -> DomainResult<()> {
        let mut checks = Vec::new();
        if let Some(name) = &input.name {
            checks.push(validate::text("name", &normalise_name(name), 1, 255));
        }
        if let Some(slug) = &input.slug
            && !validate::is_slug(slug, 1, 64)
        {
            checks.push(Err(DomainError::invalid(
                "slug",
                "must be 1-64 characters of a-z, 0-9 and single dashes",
            )));
        }
        if let Some(d) = &input.description {
            checks.push(validate::text("description", d, 0, 5000));
        }
        if let Some(a) = &input.avatar {
            checks.push(validate::text("avatar", a, 0, 2048));
        }
        if let Some(sp) = &input.system_prompt {
            checks.push(validate::text("systemPrompt", sp, 0, 50_000));
        }
        if let Some(settings) = &input.settings
            && !settings.is_object()
        {
            checks.push(Err(DomainError::invalid("settings", "must be an object")));
        }
        validate::all(checks)?;
        if let Some(model) = &input.model {
            let Some(id) = self.models.canonical(model) else {
                return Err(DomainError::invalid_with_reason(
                    "unknown_model",
                    "model",
                    "not in the model catalogue",
                ));
            };
            input.model = Some(id);
        }
        Ok(())
    }

    /// Restrictions need a browser session with a fresh step-up.
    fn check_privileged(&self, p: &Principal, input: &AgentInput) -> DomainResult<()> {
        if input.privileged() {
            p.require_step_up(self.now, self.step_up_window_secs)?;
        }
        Ok(())
    }

    pub async fn create(&self, p: &Principal, mut input: AgentInput) -> DomainResult<Agent> {
        let name =
            normalise_name(
                input
                    .name
                    .as_deref()
                    .ok_or_else(|| DomainError::BadRequest {
                        reason: "invalid_body",
                        message: "the body has missing or mistyped fields".into(),
                        fields: [("name".to_string(), "missing field `name`".to_string())].into(),
                    })?,
            );
        self.check_fields(&mut input)?;
        let explicit_slug = input.slug.clone();
        let base = explicit_slug.clone().unwrap_or_else(|| slugify(&name));
        if reserved(&name, &base) {
            return Err(DomainError::invalid_with_reason(
                "reserved_name",
                "name",
                "Ala is reserved for the default agent",
            ));
        }
        self.check_privileged(p, &input)?;
        let workspace_id = match input.workspace_id.as_deref() {
            Some(raw) => self.check_workspace(p, raw).await?,
            None => crate::access::active_or_default_workspace(self.store, p).await?,
        };
        let mut agent = Agent {
            id: new_id(),
            org_id: p.org.org_id(),
            workspace_id: Some(workspace_id),
            name,
            slug: base.clone(),
            description: input.description.unwrap_or_default(),
            avatar: input.avatar.unwrap_or_default(),
            model: input.model,
            system_prompt: input.system_prompt.unwrap_or_default(),
            allowed_tools: input
                .allowed_tools
                .unwrap_or_else(|| DEFAULT_TOOLS.iter().map(|s| s.to_string()).collect()),
            allowed_peers: input.allowed_peers.unwrap_or_else(|| vec!["*".into()]),
            allowed_connectors: input.allowed_connectors.unwrap_or_default(),
            skills: Vec::new(),
            shared_workspace_ids: Vec::new(),
            settings: input.settings.unwrap_or_else(|| json!({})),
            is_default: false,
            is_active: input.is_active.unwrap_or(true),
            created_by: Some(p.user_id),
            created_at: self.now,
            updated_at: self.now,
        };
        // A derived slug takes -2, -3 … on collision; an explicit one is a 409.
        for n in 1.. {
            match self.store.create_agent(&p.org, &agent).await {
                Ok(()) => return Ok(agent),
                Err(StoreError::Conflict(_)) if explicit_slug.is_none() && n < 50 => {
                    agent.slug = format!("{base}-{}", n + 1);
                }
                Err(StoreError::Conflict(_)) => {
                    return Err(DomainError::conflict(
                        "slug_taken",
                        "an agent of this org has that slug",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the loop returns")
    }

    pub async fn update(
        &self,
        p: &Principal,
        raw: &str,
        mut input: AgentInput,
    ) -> DomainResult<Agent> {
        let mut agent = self.get(p, raw).await?;
        self.check_fields(&mut input)?;
        if agent.is_default {
            let protected = input.slug.as_deref().is_some_and(|s| s != ALA_SLUG)
                || input.model.is_some()
                || input.is_active == Some(false)
                || input.workspace_id.is_some();
            if protected {
                return Err(DomainError::forbidden(
                    "default_agent_protected",
                    "Ala cannot be deactivated, moved, renamed off its slug or given a model",
                ));
            }
        }
        if let Some(name) = &input.name {
            let name = normalise_name(name);
            if !agent.is_default && reserved(&name, "") {
                return Err(DomainError::invalid_with_reason(
                    "reserved_name",
                    "name",
                    "Ala is reserved for the default agent",
                ));
            }
            agent.name = name;
        }
        if let Some(slug) = &input.slug
            && !agent.is_default
        {
            if reserved("", slug) {
                return Err(DomainError::invalid_with_reason(
                    "reserved_name",
                    "slug",
                    "ala is reserved for the default agent",
                ));
            }
            agent.slug = slug.clone();
        }
        self.check_privileged(p, &input)?;
        if let Some(raw_ws) = input.workspace_id.as_deref() {
            agent.workspace_id = Some(self.check_workspace(p, raw_ws).await?);
        }
        if let Some(v) = input.description {
            agent.description = v;
        }
        if let Some(v) = input.avatar {
            agent.avatar = v;
        }
        if let Some(v) = input.model {
            agent.model = Some(v);
        }
        if let Some(v) = input.system_prompt {
            agent.system_prompt = v;
        }
        if let Some(v) = input.allowed_tools {
            agent.allowed_tools = v;
        }
        if let Some(v) = input.allowed_peers {
            agent.allowed_peers = v;
        }
        if let Some(v) = input.allowed_connectors {
            agent.allowed_connectors = v;
        }
        if let Some(v) = input.is_active {
            agent.is_active = v;
        }
        if let Some(v) = input.settings {
            agent.settings = v;
        }
        agent.updated_at = self.now;
        self.store
            .update_agent(&p.org, &agent)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    DomainError::conflict("slug_taken", "an agent of this org has that slug")
                }
                other => other.into(),
            })?;
        Ok(agent)
    }

    pub async fn delete(&self, p: &Principal, raw: &str) -> DomainResult<Agent> {
        let agent = self.get(p, raw).await?;
        if agent.is_default {
            return Err(DomainError::forbidden(
                "default_agent_protected",
                "Ala cannot be deleted",
            ));
        }
        self.store.delete_agent(&p.org, agent.id, self.now).await?;
        Ok(agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_derive_from_names() {
        assert_eq!(slugify("  Research   Bot 2 "), "research-bot-2");
        assert_eq!(slugify("Émile's «helper»"), "mile-s-helper");
        assert_eq!(slugify("!!!"), "agent");
        assert_eq!(normalise_name("  a \t b\n c "), "a b c");
        assert!(reserved("ALA", "x") && reserved("x", "ala") && !reserved("Alan", "alan"));
    }
}
