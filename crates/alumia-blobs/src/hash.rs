use sha2::{Digest, Sha256};

use crate::BlobError;

/// Accepts exactly 64 lowercase hex digits, so a hash used as a file name or
/// object key can never contain `/`, `..` or anything else that escapes the
/// store's folder or prefix.
pub fn validate_sha256(sha256: &str) -> Result<&str, BlobError> {
    let ok = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(sha256)
    } else {
        Err(BlobError::InvalidHash)
    }
}

/// SHA-256 and length of the bytes seen so far, with the size limit.
pub(crate) struct Hashing {
    hasher: Sha256,
    size: u64,
    max_bytes: u64,
}

impl Hashing {
    pub(crate) fn new(max_bytes: u64) -> Self {
        Self {
            hasher: Sha256::new(),
            size: 0,
            max_bytes,
        }
    }

    /// Counts and hashes a chunk; `TooLarge` once the total passes the limit.
    pub(crate) fn update(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.size = self.size.saturating_add(chunk.len() as u64);
        if self.size > self.max_bytes {
            return Err(BlobError::TooLarge {
                max_bytes: self.max_bytes,
            });
        }
        self.hasher.update(chunk);
        Ok(())
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn finish(self) -> crate::PutBlob {
        crate::PutBlob {
            sha256: hex::encode(self.hasher.finalize()),
            size: self.size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_accepts_only_64_lowercase_hex_digits() {
        let good = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(validate_sha256(good).is_ok());
        for bad in [
            "",
            &good[..63],
            &format!("{good}0"),
            &good.to_uppercase(),
            "../../../../../../../../../../../../../../../../../../../etc/pwd",
            &format!("{}/{}", &good[..31], &good[32..]),
            &format!("{}g", &good[..63]),
        ] {
            assert!(
                matches!(validate_sha256(bad), Err(BlobError::InvalidHash)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hashing_matches_sha256_of_the_whole_and_enforces_the_limit() {
        let mut h = Hashing::new(3);
        h.update(b"a").unwrap();
        h.update(b"bc").unwrap();
        let blob = h.finish();
        assert_eq!(
            blob.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(blob.size, 3);

        let mut h = Hashing::new(3);
        h.update(b"ab").unwrap();
        assert!(matches!(
            h.update(b"cd"),
            Err(BlobError::TooLarge { max_bytes: 3 })
        ));
    }
}
