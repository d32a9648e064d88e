//! argon2id password hashes (m=19456 KiB, t=2, p=1), checked off the async
//! runtime because each takes tens of milliseconds.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

fn hasher() -> Argon2<'static> {
    let params = Params::new(19456, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub async fn hash(password: String) -> String {
    tokio::task::spawn_blocking(move || {
        hasher()
            .hash_password(password.as_bytes())
            .expect("argon2 hashing of an in-memory password")
            .to_string()
    })
    .await
    .expect("hashing task")
}

/// False for a wrong password and for a malformed stored hash.
pub async fn verify(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || match PasswordHash::new(&phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    })
    .await
    .unwrap_or(false)
}

/// A fixed hash checked for unknown emails, so they take as long as known ones.
pub fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$bhNtKUvnRaNRpv8GH2Ib5u+VLgn1Ut2kOfVEQaWw8cE"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let phc = hash("correct horse battery".into()).await;
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery".into(), phc.clone()).await);
        assert!(!verify("correct horse batterY".into(), phc).await);
        assert!(!verify("x".into(), "not a phc string".into()).await);
    }

    #[test]
    fn the_dummy_hash_parses_so_unknown_emails_pay_the_full_cost() {
        assert!(PasswordHash::new(dummy_hash()).is_ok());
    }
}
