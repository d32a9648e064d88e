//! `DeviceStore` in portable SQL, expanded for each engine like `sql_store`.
//! Every change of a code is one conditional UPDATE inside a write
//! transaction (`begin_write`: BEGIN IMMEDIATE on SQLite's one writer, row
//! locks on PostgreSQL), so a decision and an exchange each happen once.

use alumia_core::clock::from_millis;
use alumia_core::device::{DeviceCode, DeviceStatus};

use crate::rows::{split_words, uuid};

#[derive(sqlx::FromRow)]
pub(crate) struct DeviceCodeRow {
    pub id: String,
    pub user_code: String,
    pub client_id: String,
    pub scopes: String,
    pub device_name: Option<String>,
    pub request_ip: String,
    pub status: String,
    pub interval_secs: i64,
    pub last_polled_at: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub user_id: Option<String>,
    pub org_id: Option<String>,
    pub granted_scopes: String,
    pub decided_at: Option<i64>,
    pub api_key_id: Option<String>,
    pub exchanged_at: Option<i64>,
}

impl From<DeviceCodeRow> for DeviceCode {
    fn from(r: DeviceCodeRow) -> DeviceCode {
        DeviceCode {
            id: uuid(&r.id),
            user_code: r.user_code,
            client_id: r.client_id,
            scopes: split_words(&r.scopes),
            device_name: r.device_name,
            request_ip: r.request_ip,
            // An unknown status reads as expired: never usable.
            status: DeviceStatus::parse(&r.status).unwrap_or(DeviceStatus::Expired),
            interval_secs: r.interval_secs,
            last_polled_at: r.last_polled_at.map(from_millis),
            created_at: from_millis(r.created_at),
            expires_at: from_millis(r.expires_at),
            user_id: r.user_id.as_deref().map(uuid),
            org_id: r.org_id.as_deref().map(uuid),
            granted_scopes: split_words(&r.granted_scopes),
            decided_at: r.decided_at.map(from_millis),
            api_key_id: r.api_key_id.as_deref().map(uuid),
            exchanged_at: r.exchanged_at.map(from_millis),
        }
    }
}

/// Columns of a `device_codes` row, in `DeviceCodeRow` order (never the hash).
pub(crate) const DEVICE_COLUMNS: &str = "id, user_code, client_id, scopes, device_name, \
     request_ip, status, interval_secs, last_polled_at, created_at, expires_at, user_id, org_id, \
     granted_scopes, decided_at, api_key_id, exchanged_at";

macro_rules! impl_device_store {
    ($store:ty) => {
        const _: () = {
            use alumia_core::clock::to_millis;
            use alumia_core::device::*;
            use alumia_core::model::{ApiKey, NewApiKey};
            use alumia_core::store::StoreResult;
            use alumia_core::OrgScope;
            use chrono::{DateTime, Utc};
            use uuid::Uuid;

            use $crate::errors::{classify, err};
            use $crate::rows::ApiKeyRow;
            use $crate::sql_device::{DEVICE_COLUMNS, DeviceCodeRow};

            #[async_trait::async_trait]
            impl DeviceStore for $store {
                async fn create_device_code(&self, c: &NewDeviceCode) -> StoreResult<()> {
                    let at = to_millis(c.created_at);
                    let mut tx = self.begin_write().await?;
                    // Housekeeping, bounded by the device-code rate limit.
                    sqlx::query("DELETE FROM device_codes WHERE expires_at < $1")
                        .bind(at - KEEP_EXPIRED_FOR_SECS * 1000)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    // An expired pending code no longer holds its user code.
                    sqlx::query(
                        "UPDATE device_codes SET status = 'expired' \
                         WHERE user_code = $1 AND status = 'pending' AND expires_at < $2",
                    )
                    .bind(&c.user_code)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    sqlx::query(
                        "INSERT INTO device_codes (id, device_code_hash, user_code, client_id, scopes, \
                         device_name, request_ip, status, interval_secs, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10)",
                    )
                    .bind(c.id.to_string())
                    .bind(&c.device_code_hash)
                    .bind(&c.user_code)
                    .bind(&c.client_id)
                    .bind(c.scopes.join(" "))
                    .bind(&c.device_name)
                    .bind(&c.request_ip)
                    .bind(c.interval_secs)
                    .bind(at)
                    .bind(to_millis(c.expires_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| classify(e, "user_code"))?;
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn find_device_code_by_hash(&self, hash: &str) -> StoreResult<Option<DeviceCode>> {
                    let sql = format!(
                        "SELECT {DEVICE_COLUMNS} FROM device_codes WHERE device_code_hash = $1"
                    );
                    let row: Option<DeviceCodeRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(hash)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(err)?;
                    Ok(row.map(DeviceCode::from))
                }

                async fn find_device_code_by_user_code(
                    &self,
                    user_code: &str,
                    now: DateTime<Utc>,
                ) -> StoreResult<Option<DeviceCode>> {
                    let sql = format!(
                        "SELECT {DEVICE_COLUMNS} FROM device_codes WHERE user_code = $1 \
                         ORDER BY CASE WHEN status = 'pending' AND expires_at >= $2 THEN 0 ELSE 1 END, \
                         created_at DESC, id DESC LIMIT 1"
                    );
                    let row: Option<DeviceCodeRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(user_code)
                        .bind(to_millis(now))
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(err)?;
                    Ok(row.map(DeviceCode::from))
                }

                async fn poll_device_code(
                    &self,
                    id: Uuid,
                    at: DateTime<Utc>,
                    step_secs: i64,
                ) -> StoreResult<PollOutcome> {
                    let at = to_millis(at);
                    let mut tx = self.begin_write().await?;
                    // A no-op UPDATE, not a SELECT: it locks the row (PostgreSQL),
                    // so concurrent polls of one code see each other's time.
                    let row: Option<(i64, Option<i64>)> = sqlx::query_as(
                        "UPDATE device_codes SET interval_secs = interval_secs \
                         WHERE id = $1 AND status = 'pending' RETURNING interval_secs, last_polled_at",
                    )
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
                    let Some((interval, last)) = row else {
                        return Ok(PollOutcome::NotPending);
                    };
                    let too_soon = last.is_some_and(|last| at - last < interval * 1000);
                    let interval = if too_soon { interval + step_secs } else { interval };
                    sqlx::query(
                        "UPDATE device_codes SET interval_secs = $2, last_polled_at = $3 WHERE id = $1",
                    )
                    .bind(id.to_string())
                    .bind(interval)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(if too_soon {
                        PollOutcome::SlowDown { interval_secs: interval }
                    } else {
                        PollOutcome::Pending { interval_secs: interval }
                    })
                }

                async fn decide_device_code(
                    &self,
                    org: &OrgScope,
                    id: Uuid,
                    user: Uuid,
                    decision: &DeviceDecision,
                    at: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    let (status, scopes) = match decision {
                        DeviceDecision::Approve { scopes } => (DeviceStatus::Approved, scopes.join(" ")),
                        DeviceDecision::Deny => (DeviceStatus::Denied, String::new()),
                    };
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE device_codes SET status = $3, org_id = $2, user_id = $4, \
                         granted_scopes = $5, decided_at = $6 \
                         WHERE id = $1 AND status = 'pending' AND expires_at >= $6",
                    )
                    .bind(id.to_string())
                    .bind(org.org_id().to_string())
                    .bind(status.as_str())
                    .bind(user.to_string())
                    .bind(scopes)
                    .bind(to_millis(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(done.rows_affected() == 1)
                }

                async fn exchange_device_code(
                    &self,
                    org: &OrgScope,
                    id: Uuid,
                    key: &NewApiKey,
                    at: DateTime<Utc>,
                ) -> StoreResult<Option<ApiKey>> {
                    let at = to_millis(at);
                    let mut tx = self.begin_write().await?;
                    let claimed = sqlx::query(
                        "UPDATE device_codes SET status = 'exchanged', api_key_id = $4, exchanged_at = $5 \
                         WHERE id = $1 AND org_id = $2 AND user_id = $3 AND status = 'approved' \
                           AND expires_at >= $5",
                    )
                    .bind(id.to_string())
                    .bind(org.org_id().to_string())
                    .bind(key.user_id.to_string())
                    .bind(key.id.to_string())
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    if claimed.rows_affected() == 0 {
                        // Dropping the transaction rolls it back.
                        return Ok(None);
                    }
                    <$store>::insert_api_key(&mut *tx, org, key).await?;
                    let sql = format!(
                        "SELECT {} FROM api_keys k WHERE k.org_id = $1 AND k.id = $2",
                        $crate::sql_store::KEY_COLUMNS
                    );
                    let row: ApiKeyRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(org.org_id().to_string())
                        .bind(key.id.to_string())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(Some(ApiKey::from(row)))
                }
            }
        };
    };
}

pub(crate) use impl_device_store;
