//! Random tokens, digests and the server secret that seals stored
//! third-party secrets (TOTP seeds now; provider and webhook secrets later).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::TryRng;
use sha2::{Digest, Sha256};

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rngs::SysRng
        .try_fill_bytes(&mut out)
        .expect("the operating system's random source failed");
    out
}

/// 256 random bits, base64url: session cookies, CSRF tokens.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The 32-byte server secret (`ALUMIA_SECRET_KEY`). Its `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey {
    current: [u8; 32],
    previous: Option<[u8; 32]>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key must be 32 bytes, as 64 hex characters or base64")]
    BadKey,
    #[error("a sealed value could not be opened")]
    Unseal,
}

impl SecretKey {
    pub fn new(current: [u8; 32], previous: Option<[u8; 32]>) -> Self {
        SecretKey { current, previous }
    }

    pub fn generate() -> Self {
        SecretKey::new(random_bytes(), None)
    }

    /// Accepts 64 hex characters or standard/url-safe base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<[u8; 32], SecretError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| SecretError::BadKey)?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| SecretError::BadKey)?
        };
        bytes.try_into().map_err(|_| SecretError::BadKey)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.current)
    }

    /// AES-256-GCM with a random 96-bit nonce: `base64(nonce || ciphertext)`.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let cipher = Aes256Gcm::new_from_slice(&self.current).expect("32-byte key");
        let nonce_bytes = random_bytes::<12>();
        let nonce = Nonce::from(nonce_bytes);
        let mut out = nonce_bytes.to_vec();
        out.extend(
            cipher
                .encrypt(&nonce, plaintext)
                .expect("AES-GCM encryption cannot fail for in-memory data"),
        );
        STANDARD.encode(out)
    }

    /// Opens a sealed value with the current key, then the previous one.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SecretError> {
        let raw = STANDARD.decode(sealed).map_err(|_| SecretError::Unseal)?;
        if raw.len() < 12 + 16 {
            return Err(SecretError::Unseal);
        }
        let (nonce, body) = raw.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| SecretError::Unseal)?;
        for key in std::iter::once(&self.current).chain(self.previous.iter()) {
            let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
            if let Ok(plain) = cipher.decrypt(&Nonce::from(nonce), body) {
                return Ok(plain);
            }
        }
        Err(SecretError::Unseal)
    }

    /// HMAC-SHA256 keyed by the server secret, hex: recovery codes.
    pub fn mac_hex(&self, data: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.current).expect("any key length");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_current_or_previous_key_only() {
        let old = SecretKey::generate();
        let sealed = old.seal(b"JBSWY3DPEHPK3PXP");
        assert_ne!(sealed.as_bytes(), b"JBSWY3DPEHPK3PXP");
        assert_eq!(old.open(&sealed).unwrap(), b"JBSWY3DPEHPK3PXP");

        let rotated = SecretKey::new(random_bytes(), Some(old.current));
        assert_eq!(rotated.open(&sealed).unwrap(), b"JBSWY3DPEHPK3PXP");

        let stranger = SecretKey::generate();
        assert!(stranger.open(&sealed).is_err());
        assert!(stranger.open("not base64!").is_err());
    }

    #[test]
    fn secret_key_parses_hex_and_base64_and_rejects_other_lengths() {
        let hex_key = "00".repeat(32);
        assert_eq!(SecretKey::parse(&hex_key).unwrap(), [0u8; 32]);
        let b64 = STANDARD.encode([7u8; 32]);
        assert_eq!(SecretKey::parse(&b64).unwrap(), [7u8; 32]);
        assert!(SecretKey::parse("abcd").is_err());
        assert!(format!("{:?}", SecretKey::generate()).contains("redacted"));
    }
}
