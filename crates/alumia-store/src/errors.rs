use alumia_core::StoreError;

/// The one place driver errors become store errors. `unique` names the
/// constraint a unique violation means for this statement.
pub(crate) fn classify(e: sqlx::Error, unique: &'static str) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(unique),
        sqlx::Error::Database(db) => {
            // PostgreSQL classes 08 (connection) and 57 (operator intervention,
            // e.g. shutdown) and 53 (resources) are outages, not bugs.
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            if code.starts_with("08") || code.starts_with("57") || code.starts_with("53") {
                StoreError::Unavailable(e.to_string())
            } else if code == "5" || code == "517" || code == "6" {
                // SQLITE_BUSY / SQLITE_BUSY_SNAPSHOT / SQLITE_LOCKED after busy_timeout.
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Other(e.to_string())
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

pub(crate) fn err(e: sqlx::Error) -> StoreError {
    classify(e, "unique")
}
