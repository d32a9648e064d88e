//! Field rules shared by every route. Lengths count Unicode scalar values.

use crate::error::DomainError;

/// Runs every check and reports all failing fields together (one 422).
pub fn all(checks: impl IntoIterator<Item = Result<(), DomainError>>) -> Result<(), DomainError> {
    let mut fields = std::collections::BTreeMap::new();
    for check in checks {
        match check {
            Ok(()) => {}
            Err(DomainError::Validation { fields: f, .. }) => fields.extend(f),
            Err(other) => return Err(other),
        }
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(DomainError::Validation {
            reason: None,
            fields,
        })
    }
}

pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// `^[a-z0-9]+(-[a-z0-9]+)*$`, within `min..=max` characters.
pub fn is_slug(s: &str, min: usize, max: usize) -> bool {
    let len = s.len();
    len >= min
        && len <= max
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub fn org_slug(field: &str, s: &str) -> Result<(), DomainError> {
    if is_slug(s, 3, 48) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            "must be 3-48 characters of a-z, 0-9 and single dashes",
        ))
    }
}

pub fn text(field: &str, s: &str, min: usize, max: usize) -> Result<(), DomainError> {
    let n = char_len(s.trim());
    if n < min || char_len(s) > max {
        return Err(DomainError::invalid(
            field,
            format!("must be {min}-{max} characters"),
        ));
    }
    Ok(())
}

pub fn password(field: &str, s: &str) -> Result<(), DomainError> {
    let n = char_len(s);
    if !(12..=256).contains(&n) {
        return Err(DomainError::invalid(field, "must be 12-256 characters"));
    }
    Ok(())
}

/// A deliberately simple check: one `@`, something on both sides, a dot in
/// the domain, no spaces. Returns the case-folded address.
pub fn email(field: &str, s: &str) -> Result<String, DomainError> {
    let e = s.trim().to_lowercase();
    let ok = e.len() <= 254
        && !e.contains(char::is_whitespace)
        && matches!(e.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
            && !domain.ends_with('.') && !domain.contains('@'));
    if ok {
        Ok(e)
    } else {
        Err(DomainError::invalid(field, "must be an email address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_documented_pattern() {
        for good in ["acme", "a-b-c", "abc123", "x9z"] {
            assert!(is_slug(good, 3, 48), "{good}");
        }
        for bad in [
            "ab",
            "-abc",
            "abc-",
            "a--b",
            "ABC",
            "a_b",
            "héllo",
            &"a".repeat(49),
        ] {
            assert!(!is_slug(bad, 3, 48), "{bad}");
        }
    }

    #[test]
    fn emails_are_case_folded_and_checked() {
        assert_eq!(
            email("email", " Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@x.io",
            "ada@x",
            "a da@x.io",
            "a@b@c.io",
            "a@.io",
        ] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lengths_count_unicode_scalars() {
        assert!(text("name", &"é".repeat(120), 1, 120).is_ok());
        assert!(text("name", &"é".repeat(121), 1, 120).is_err());
        assert!(text("name", "   ", 1, 120).is_err());
        assert!(password("password", &"ü".repeat(12)).is_ok());
        assert!(password("password", "short").is_err());
    }
}
