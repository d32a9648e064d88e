use uuid::Uuid;

/// The org every tenant-owned query is filtered by.
///
/// Only this crate can make one: from a verified credential, a just-created
/// org, or a host-side admin command. Handlers never build it from input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrgScope {
    org_id: Uuid,
}

impl OrgScope {
    pub(crate) fn new(org_id: Uuid) -> Self {
        OrgScope { org_id }
    }

    pub fn org_id(&self) -> Uuid {
        self.org_id
    }
}
