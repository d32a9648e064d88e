//! Opaque list cursors: base64url of the last row's sort key, its id and a
//! hash of the list's filters, so a cursor from another list is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Serialize, Deserialize)]
struct CursorBody {
    t: i64,
    i: Uuid,
    f: String,
}

fn filter_hash(filter: &str) -> String {
    crate::crypto::sha256_hex(filter.as_bytes())[..16].to_string()
}

pub fn encode(sort_key: i64, id: Uuid, filter: &str) -> String {
    let body = CursorBody {
        t: sort_key,
        i: id,
        f: filter_hash(filter),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).expect("cursor serialises"))
}

/// `None` for anything this server did not issue for this same filter.
pub fn decode(cursor: &str, filter: &str) -> Option<(i64, Uuid)> {
    if cursor.len() > 512 {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let body: CursorBody = serde_json::from_slice(&raw).ok()?;
    (body.f == filter_hash(filter)).then_some((body.t, body.i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_only_for_their_own_filter() {
        let id = Uuid::now_v7();
        let c = encode(1234, id, "api-keys:user-a");
        assert_eq!(decode(&c, "api-keys:user-a"), Some((1234, id)));
        assert_eq!(decode(&c, "api-keys:user-b"), None);
        assert_eq!(decode("garbage!", "api-keys:user-a"), None);
        assert_eq!(decode("", "x"), None);
    }
}
