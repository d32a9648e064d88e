//! One module per resource. Handlers parse at the edge, call the identity
//! service or the store with the principal's org scope, and wrap the result.

pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod blocks;
pub mod byok_keys;
pub mod chat;
pub mod device;
pub mod files;
pub mod health;
pub mod me;
pub mod messages;
pub mod meta;
pub mod models;
pub mod orgs;
pub mod pages;
pub mod projects;
pub mod sessions;
pub mod setup;
pub mod share;
pub mod workspaces;

use alumia_core::cursor;
use alumia_core::store::PageRequest;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiError;

/// `?limit=&cursor=` of cursor lists.
#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl ListQuery {
    /// Validates `limit` (1..=100, default 50; else 422) and `cursor` (else
    /// `400 invalid_cursor`). Fetches one extra row to learn `hasMore`.
    pub fn page_request(&self, filter: &str) -> Result<(PageRequest, u32), ApiError> {
        let limit = match self.limit.as_deref() {
            None => 50,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| {
                    ApiError::from(alumia_core::DomainError::invalid(
                        "limit",
                        "must be an integer from 1 to 100",
                    ))
                })?,
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(cursor::decode(c, filter).ok_or_else(|| {
                ApiError::bad_request("invalid_cursor", "the cursor is not valid for this list")
            })?),
        };
        Ok((
            PageRequest {
                limit: limit + 1,
                after,
            },
            limit,
        ))
    }
}

/// Trims the extra row and returns the cursor of the last row kept.
pub fn finish_page<T>(
    mut rows: Vec<T>,
    limit: u32,
    filter: &str,
    key: impl Fn(&T) -> (i64, Uuid),
) -> (Vec<T>, Option<String>) {
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        let (sort, id) = key(rows.last().expect("non-empty after truncate"));
        (rows, Some(cursor::encode(sort, id, filter)))
    } else {
        (rows, None)
    }
}
