//! RFC 6238 TOTP: HMAC-SHA1, 6 digits, 30 s steps, ±1 step of drift.
//!
//! Written on `hmac` + `sha1` rather than a TOTP crate because replay
//! protection needs the matched step number, and the whole algorithm is the
//! few lines below, pinned by the RFC's test vectors.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use crate::crypto::random_bytes;

pub const STEP_SECS: i64 = 30;
pub const DIGITS: u32 = 6;

/// The HOTP value (RFC 4226) of `secret` at `counter`, with `digits` digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("any key length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    let code = binary % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The step (now−1, now or now+1) whose code equals `code`, if any.
/// The caller must still refuse a step that is not newer than the last used.
pub fn matching_step(secret: &[u8], code: &str, unix_secs: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_secs);
    [now - 1, now, now + 1].into_iter().find(|step| {
        *step >= 0 && crate::keys::digests_equal(&hotp(secret, *step as u64, DIGITS), code)
    })
}

/// A new 160-bit secret.
pub fn generate_secret() -> Vec<u8> {
    random_bytes::<20>().to_vec()
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding, as authenticator apps expect.
pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let value = BASE32.iter().position(|&b| b == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// `otpauth://totp/Alumia:<email>?secret=…&issuer=Alumia&…`
pub fn otpauth_url(secret_b32: &str, account: &str) -> String {
    let label: String = account
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!(
        "otpauth://totp/Alumia:{label}?secret={secret_b32}&issuer=Alumia&algorithm=SHA1&digits=6&period=30"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_sha1_test_vectors_pass() {
        for (t, expected) in [
            (59i64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
        ] {
            assert_eq!(hotp(RFC_SECRET, step_at(t) as u64, 8), expected, "T={t}");
        }
        assert_eq!(hotp(RFC_SECRET, step_at(59) as u64, 6), "287082");
    }

    #[test]
    fn codes_match_within_one_step_of_drift_only() {
        let now = 1_700_000_000;
        let code = hotp(RFC_SECRET, step_at(now) as u64, 6);
        assert_eq!(matching_step(RFC_SECRET, &code, now), Some(step_at(now)));
        assert_eq!(
            matching_step(RFC_SECRET, &code, now + 30),
            Some(step_at(now))
        );
        assert_eq!(
            matching_step(RFC_SECRET, &code, now - 30),
            Some(step_at(now))
        );
        assert_eq!(matching_step(RFC_SECRET, &code, now + 60), None);
        assert_eq!(matching_step(RFC_SECRET, "12345", now), None);
        assert_eq!(matching_step(RFC_SECRET, "abcdef", now), None);
    }

    #[test]
    fn base32_round_trips_and_matches_rfc_4648() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("MZXW6YTBOI").unwrap(), b"foobar");
        let secret = generate_secret();
        assert_eq!(base32_decode(&base32_encode(&secret)).unwrap(), secret);
        assert!(base32_decode("not*base32").is_none());
        let url = otpauth_url("ABC", "a b@x.io");
        assert!(url.starts_with("otpauth://totp/Alumia:a%20b@x.io?secret=ABC&issuer=Alumia"));
    }
}
