//! Wire types shared by the server, the typed client and the CLI.
//!
//! Only serde lives here: the envelope every JSON answer uses, the public
//! error-code catalogue with its HTTP statuses, and request/response DTOs.

pub mod device;
pub mod dto;
pub mod envelope;
pub mod error_code;

pub use envelope::{ApiErrorBody, Envelope, ErrorEnvelope, Page};
pub use error_code::ErrorCode;
