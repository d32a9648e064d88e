//! Alumia's domain: what an org, a user, a key and a session are, how a
//! credential becomes a [`Principal`] scoped to one org, and the contracts the
//! store and the rate limiter implement. No HTTP, no SQL.

pub mod access;
pub mod agents;
pub mod blocks;
pub mod chat_store;
pub mod clock;
pub mod crypto;
pub mod cursor;
pub mod device;
pub mod error;
pub mod file_types;
pub mod files;
pub mod identity;
pub mod keys;
pub mod limits;
pub mod model;
pub mod password;
pub mod portability;
pub mod principal;
pub mod projects;
pub mod scope;
pub mod sessions;
pub mod sharing;
pub mod store;
pub mod totp;
pub mod validate;

#[cfg(feature = "testing")]
pub mod testing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{DomainError, StoreError};
pub use principal::{Principal, PrincipalKind};
pub use scope::OrgScope;
pub use store::Store;

/// A new UUID v7: time-ordered, so ids index well and sort by creation.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
