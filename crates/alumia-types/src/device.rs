//! Device login (RFC 8628; spec 01 §10). The code and token endpoints speak
//! OAuth: plain JSON, snake_case, errors as `{"error", "error_description"}`.
//! The browser routes (lookup, approve, deny) use the usual envelope.
//! `Debug` never shows a device code or an access token.

use serde::{Deserialize, Serialize};

/// `200` of `POST /api/v1/auth/device/code`.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceCodeResponse {
    pub device_code: String,
    /// `XXXX-XXXX`.
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

impl std::fmt::Debug for DeviceCodeResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCodeResponse")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// `200` of `POST /api/v1/auth/device/token`: a new API key.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceTokenResponse {
    /// `alm_<env>_…`, shown once.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Space-separated: `terminal models:read[ mcp:read][ mcp:write]`.
    pub scope: String,
}

impl std::fmt::Debug for DeviceTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTokenResponse")
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// `400` of the code and token endpoints (RFC 6749 §5.2, RFC 8628 §3.5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OAuthErrorResponse {
    /// `authorization_pending`, `slow_down`, `access_denied`, `expired_token`,
    /// `invalid_grant`, `unsupported_grant_type`, `invalid_client`,
    /// `invalid_scope` or `invalid_request`.
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// With `slow_down`: the code's new polling interval, seconds (our addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
}

/// `GET /api/v1/auth/device/lookup?userCode=` → `data`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeviceLookupView {
    /// `Alumia CLI`.
    pub client_name: String,
    pub device_name: Option<String>,
    pub request_ip: String,
    pub requested_at: String,
    pub expires_at: String,
    /// Canonical order; always with `terminal` and `models:read`.
    pub requested_scopes: Vec<String>,
}

/// Body of `POST /api/v1/auth/device/approve` and `…/deny`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDecisionRequest {
    pub user_code: String,
    /// Approve only: the MCP scopes left ticked (all requested ones when absent).
    #[serde(default)]
    pub grant_scopes: Option<Vec<String>>,
}
