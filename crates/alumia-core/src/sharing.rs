//! Sharing a project (spec 06 §5): a read-only share link anyone holding its
//! token may open, and an invite link that makes a member of the same org a
//! project member.
//!
//! Tokens are 54 random bytes, base64url: 72 characters, the only credential.
//! Both are looked up by their SHA-256. The share token is also kept sealed
//! with the server secret, because `POST /share` without `rotate` hands the
//! existing link back; invite tokens are shown once.
//!
//! Managing links takes a browser session with a fresh step-up, and the
//! project's creator or an org admin: a link opens the project to people
//! outside its workspaces, which is the creator's call like its visibility.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::crypto::{SecretKey, random_bytes, sha256_hex};
use crate::error::{DomainError, DomainResult};
use crate::principal::Principal;
use crate::projects::{Project, Projects};
use crate::scope::OrgScope;
use crate::store::{Store, StoreResult};

/// Characters of a share or invite token.
pub const TOKEN_LEN: usize = 72;
pub const MEMBER_ROLES: [&str; 2] = ["viewer", "editor"];
pub const INVITE_DAYS_DEFAULT: i64 = 7;
pub const INVITE_DAYS_MAX: i64 = 30;

/// A new 72-character token: 54 bytes from the OS, base64url.
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<54>())
}

/// Whether `raw` could be a token at all; anything else is a 404 without a
/// database round trip.
pub fn well_formed(raw: &str) -> bool {
    raw.len() == TOKEN_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// The stored share link of a project (the token still sealed).
#[derive(Debug, Clone, PartialEq)]
pub struct ShareLink {
    pub sealed_token: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProjectInvite {
    pub project_id: Uuid,
    pub org_id: Uuid,
    pub token_hash: String,
    pub role: String,
    pub created_by: Uuid,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProjectMember {
    pub project_id: Uuid,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait ShareStore: Send + Sync {
    /// The live project's share link, if one exists.
    async fn get_share_link(&self, org: &OrgScope, project: Uuid)
    -> StoreResult<Option<ShareLink>>;
    /// Sets (or replaces) the link of a live project. `NotFound` when gone;
    /// `Conflict("share_token")` on a (vanishingly unlikely) hash collision.
    async fn set_share_link(
        &self,
        org: &OrgScope,
        project: Uuid,
        token_hash: &str,
        link: &ShareLink,
    ) -> StoreResult<()>;
    /// Clears the link; `NotFound` when the project is gone.
    async fn clear_share_link(&self, org: &OrgScope, project: Uuid) -> StoreResult<()>;
    /// The live project a share token opens. Unscoped: the token is how the
    /// org is found.
    async fn find_project_by_share_hash(&self, token_hash: &str) -> StoreResult<Option<Project>>;
    /// Replaces the project's invite.
    async fn replace_invite(&self, org: &OrgScope, invite: &ProjectInvite) -> StoreResult<()>;
    /// Unscoped, like `find_project_by_share_hash`.
    async fn find_invite_by_hash(&self, token_hash: &str) -> StoreResult<Option<ProjectInvite>>;
    /// Adds the member, or changes the role of an existing one.
    async fn upsert_project_member(
        &self,
        org: &OrgScope,
        member: &ProjectMember,
    ) -> StoreResult<()>;
    async fn get_project_member(
        &self,
        org: &OrgScope,
        project: Uuid,
        user: Uuid,
    ) -> StoreResult<Option<ProjectMember>>;
}

/// A project opened by its share token.
#[derive(Debug, Clone)]
pub struct SharedProject {
    pub org: OrgScope,
    pub project: Project,
    pub shared_at: DateTime<Utc>,
}

/// What `POST /share` answers.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareGrant {
    pub token: String,
    pub created_at: DateTime<Utc>,
}

pub struct Sharing<'a> {
    pub store: &'a dyn Store,
    pub secret: &'a SecretKey,
    pub now: DateTime<Utc>,
    pub step_up_window_secs: i64,
}

impl Sharing<'_> {
    fn projects(&self) -> Projects<'_> {
        Projects {
            store: self.store,
            now: self.now,
        }
    }

    /// Browser session, fresh step-up, a project the principal sees, and
    /// its creator or an org admin.
    async fn governed_project(&self, p: &Principal, raw: &str) -> DomainResult<Project> {
        p.require_step_up(self.now, self.step_up_window_secs)?;
        let project = self.projects().get(p, raw).await?;
        if project.user_id != p.user_id && !p.role.is_admin() {
            return Err(DomainError::forbidden(
                "not_project_creator",
                "only the project's creator or an org admin may share it",
            ));
        }
        Ok(project)
    }

    /// Enables sharing: the existing token unless `rotate`, else a new one.
    pub async fn enable(
        &self,
        p: &Principal,
        raw: &str,
        rotate: bool,
    ) -> DomainResult<(Project, ShareGrant)> {
        let project = self.governed_project(p, raw).await?;
        if !rotate && let Some(link) = self.store.get_share_link(&p.org, project.id).await? {
            // A link sealed under a key that is gone cannot be shown again:
            // issue a new one rather than fail.
            if let Ok(bytes) = self.secret.open(&link.sealed_token)
                && let Ok(token) = String::from_utf8(bytes)
            {
                return Ok((
                    project,
                    ShareGrant {
                        token,
                        created_at: link.created_at,
                    },
                ));
            }
        }
        let token = new_token();
        let link = ShareLink {
            sealed_token: self.secret.seal(token.as_bytes()),
            created_at: self.now,
        };
        self.store
            .set_share_link(&p.org, project.id, &token_hash(&token), &link)
            .await?;
        Ok((
            project,
            ShareGrant {
                token,
                created_at: self.now,
            },
        ))
    }

    pub async fn disable(&self, p: &Principal, raw: &str) -> DomainResult<Project> {
        let project = self.governed_project(p, raw).await?;
        self.store.clear_share_link(&p.org, project.id).await?;
        Ok(project)
    }

    /// A new invite link (replacing the previous one); returns its token.
    pub async fn invite(
        &self,
        p: &Principal,
        raw: &str,
        role: Option<String>,
        expires_in_days: Option<i64>,
    ) -> DomainResult<(String, ProjectInvite)> {
        let role = role.unwrap_or_else(|| "viewer".into());
        let days = expires_in_days.unwrap_or(INVITE_DAYS_DEFAULT);
        let mut checks = Vec::new();
        if !MEMBER_ROLES.contains(&role.as_str()) {
            checks.push(Err(DomainError::invalid(
                "role",
                "must be viewer or editor",
            )));
        }
        if !(1..=INVITE_DAYS_MAX).contains(&days) {
            checks.push(Err(DomainError::invalid(
                "expiresInDays",
                "must be 1 to 30",
            )));
        }
        crate::validate::all(checks)?;
        let project = self.governed_project(p, raw).await?;
        let token = new_token();
        let invite = ProjectInvite {
            project_id: project.id,
            org_id: project.org_id,
            token_hash: token_hash(&token),
            role,
            created_by: p.user_id,
            expires_at: self.now + Duration::days(days),
            created_at: self.now,
        };
        self.store.replace_invite(&p.org, &invite).await?;
        Ok((token, invite))
    }

    /// A signed-in member of the invite's org joins the project. Any other
    /// token (unknown, expired, another org's, a deleted project) is a 404.
    pub async fn accept(&self, p: &Principal, token: &str) -> DomainResult<ProjectMember> {
        p.require_browser_session()?;
        if !well_formed(token) {
            return Err(DomainError::NotFound);
        }
        let invite = self
            .store
            .find_invite_by_hash(&token_hash(token))
            .await?
            .filter(|i| i.org_id == p.org.org_id() && i.expires_at > self.now)
            .ok_or(DomainError::NotFound)?;
        self.store
            .get_project(&p.org, &crate::projects::ProjectRef::Id(invite.project_id))
            .await?
            .ok_or(DomainError::NotFound)?;
        let member = ProjectMember {
            project_id: invite.project_id,
            user_id: p.user_id,
            org_id: invite.org_id,
            role: invite.role.clone(),
            created_at: self.now,
        };
        self.store.upsert_project_member(&p.org, &member).await?;
        Ok(member)
    }

    /// The project behind a public share token, or a 404 for anything else.
    /// The token is the credential: the scope it yields reads that project's
    /// org, and the caller reads nothing but the project's own rows with it.
    pub async fn open(&self, token: &str) -> DomainResult<SharedProject> {
        if !well_formed(token) {
            return Err(DomainError::NotFound);
        }
        let project = self
            .store
            .find_project_by_share_hash(&token_hash(token))
            .await?
            .ok_or(DomainError::NotFound)?;
        let org = OrgScope::new(project.org_id);
        let shared_at = self
            .store
            .get_share_link(&org, project.id)
            .await?
            .map_or(project.updated_at, |l| l.created_at);
        Ok(SharedProject {
            org,
            project,
            shared_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_72_url_safe_characters_and_distinct() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(well_formed(&a), "{a}");
        assert_ne!(a, b);
        assert!(!well_formed(&a[1..]));
        assert!(!well_formed(&format!("{}!", &a[1..])));
        assert!(!well_formed(&format!("{}/", &a[1..])));
    }
}
