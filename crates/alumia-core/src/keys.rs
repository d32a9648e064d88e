//! API key format: `alm_<env>_<48 lowercase hex>` (24 random bytes).

use subtle::ConstantTimeEq;

use crate::crypto::{random_bytes, sha256_hex};

/// `live` when `ALUMIA_ENV=production`, `test` when `development`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEnv {
    Live,
    Test,
}

impl KeyEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyEnv::Live => "live",
            KeyEnv::Test => "test",
        }
    }
}

pub const PREFIX_LEN: usize = 12;
const HEX_LEN: usize = 48;

/// A freshly minted key: the plaintext (shown once) and what is stored.
#[derive(Clone)]
pub struct MintedKey {
    pub plaintext: String,
    pub prefix: String,
    pub hash: String,
}

impl std::fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MintedKey({}…)", self.prefix)
    }
}

pub fn mint(env: KeyEnv) -> MintedKey {
    let plaintext = format!("alm_{}_{}", env.as_str(), hex::encode(random_bytes::<24>()));
    MintedKey {
        prefix: plaintext[..PREFIX_LEN].to_string(),
        hash: sha256_hex(plaintext.as_bytes()),
        plaintext,
    }
}

/// Checks the exact shape `^alm_(live|test)_[0-9a-f]{48}$` with this server's
/// env, with no allocation and no lookup. Returns the SHA-256 hex to look up.
pub fn parse(token: &str, env: KeyEnv) -> Option<String> {
    let rest = token.strip_prefix("alm_")?.strip_prefix(env.as_str())?;
    let hex_part = rest.strip_prefix('_')?;
    if hex_part.len() != HEX_LEN
        || !hex_part
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    Some(sha256_hex(token.as_bytes()))
}

/// Constant-time comparison of two fixed-length hex digests.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_have_the_documented_shape_and_parse_back_to_their_hash() {
        let key = mint(KeyEnv::Live);
        assert_eq!(key.plaintext.len(), "alm_live_".len() + 48);
        assert!(key.plaintext.starts_with("alm_live_"));
        assert_eq!(key.prefix, &key.plaintext[..12]);
        assert_eq!(
            parse(&key.plaintext, KeyEnv::Live).as_deref(),
            Some(key.hash.as_str())
        );
        assert_ne!(mint(KeyEnv::Live).plaintext, key.plaintext);
    }

    #[test]
    fn parse_rejects_every_other_shape() {
        let good = mint(KeyEnv::Test).plaintext;
        assert!(parse(&good, KeyEnv::Test).is_some());
        let cases = [
            ("other env", good.clone(), KeyEnv::Live),
            (
                "uppercase hex",
                good.to_uppercase().replacen("ALM_TEST_", "alm_test_", 1),
                KeyEnv::Test,
            ),
            ("short", good[..good.len() - 1].to_string(), KeyEnv::Test),
            ("long", format!("{good}0"), KeyEnv::Test),
            (
                "non-hex",
                format!("{}g", &good[..good.len() - 1]),
                KeyEnv::Test,
            ),
            ("no prefix", good[4..].to_string(), KeyEnv::Test),
            ("empty", String::new(), KeyEnv::Test),
            (
                "unicode",
                format!("{}é", &good[..good.len() - 2]),
                KeyEnv::Test,
            ),
        ];
        for (what, token, env) in cases {
            assert!(parse(&token, env).is_none(), "{what} was accepted");
        }
    }

    #[test]
    fn digest_comparison_needs_equal_length_and_bytes() {
        assert!(digests_equal("abcd", "abcd"));
        assert!(!digests_equal("abcd", "abce"));
        assert!(!digests_equal("abcd", "abc"));
    }
}
