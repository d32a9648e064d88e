//! Tool arguments: checked against the tool's own schema (the small subset
//! of JSON Schema the catalogue uses: object, required, types, enum,
//! integer bounds, no extra properties), and turned into path segments and
//! query strings safely.

use serde_json::{Map, Value};

use crate::catalog::ToolSpec;

/// Why arguments were refused, phrased for the caller.
pub fn check(spec: &ToolSpec, args: &Map<String, Value>) -> Result<(), String> {
    let schema = spec.input_schema();
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for required in spec.required {
        if args.get(*required).is_none_or(Value::is_null) {
            return Err(format!("`{required}` is required"));
        }
    }
    for (name, value) in args {
        let Some(prop) = properties.get(name) else {
            return Err(format!("unknown argument `{name}`"));
        };
        if value.is_null() {
            continue;
        }
        let ok = match prop["type"].as_str() {
            Some("string") => value.is_string(),
            Some("integer") => value.as_i64().is_some(),
            Some("boolean") => value.is_boolean(),
            Some("object") => value.is_object(),
            Some("array") => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            _ => true,
        };
        if !ok {
            return Err(format!(
                "`{name}` must be {}",
                match prop["type"].as_str().unwrap_or("valid") {
                    "integer" => "an integer",
                    "object" => "an object",
                    "boolean" => "a boolean",
                    "array" => "an array of strings",
                    _ => "a string",
                }
            ));
        }
        if let (Some(n), Some(min)) = (value.as_i64(), prop["minimum"].as_i64())
            && n < min
        {
            return Err(format!("`{name}` must be at least {min}"));
        }
        if let (Some(n), Some(max)) = (value.as_i64(), prop["maximum"].as_i64())
            && n > max
        {
            return Err(format!("`{name}` must be at most {max}"));
        }
        // Ids become path segments: `.` and `..` would be resolved as steps.
        if matches!(name.as_str(), "id" | "sessionId" | "projectId")
            && value
                .as_str()
                .is_some_and(|v| v.is_empty() || v == "." || v == "..")
        {
            return Err(format!("`{name}` is not a valid id"));
        }
        if let Some(allowed) = prop["enum"].as_array()
            && !allowed.contains(value)
        {
            return Err(format!(
                "`{name}` must be one of {}",
                Value::Array(allowed.clone())
            ));
        }
    }
    Ok(())
}

/// A string argument, if given.
pub fn str_arg<'a>(args: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

/// Percent-encodes one path segment: ids and slugs can never leave it.
pub fn segment(raw: &str) -> String {
    encode(raw)
}

fn encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // `.` and `..` alone would be resolved as path steps.
    if out == "." || out == ".." {
        return out.replace('.', "%2E");
    }
    out
}

/// `?a=1&b=x` from the given arguments that are present (strings and numbers).
pub fn query(args: &Map<String, Value>, names: &[(&str, &str)]) -> String {
    let mut parts = Vec::new();
    for (arg, param) in names {
        let value = match args.get(*arg) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => continue,
        };
        parts.push(format!("{param}={}", encode(&value)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::find;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn arguments_are_checked_against_the_tool_schema() {
        let chat = find("chat_send").unwrap();
        assert!(check(chat, &obj(json!({"message": "hi"}))).is_ok());
        assert_eq!(
            check(chat, &obj(json!({}))).unwrap_err(),
            "`message` is required"
        );
        assert!(
            check(chat, &obj(json!({"message": 5})))
                .unwrap_err()
                .contains("string")
        );
        assert!(
            check(chat, &obj(json!({"message": "x", "timeoutSeconds": 301})))
                .unwrap_err()
                .contains("at most 300")
        );
        assert!(
            check(chat, &obj(json!({"message": "x", "nope": 1})))
                .unwrap_err()
                .contains("nope")
        );
        let msgs = find("session_messages").unwrap();
        assert!(check(msgs, &obj(json!({"id": "s", "order": "sideways"}))).is_err());
        assert!(check(msgs, &obj(json!({"id": "s", "order": "desc", "limit": 5}))).is_ok());
        for bad in ["", ".", ".."] {
            assert!(check(msgs, &obj(json!({"id": bad}))).is_err(), "{bad:?}");
        }
        let stop = find("chat_stop").unwrap();
        assert!(check(stop, &obj(json!({"sessionId": ".."}))).is_err());
    }

    #[test]
    fn ids_cannot_leave_their_path_segment() {
        assert_eq!(segment("ala"), "ala");
        assert_eq!(segment("../api-keys"), "..%2Fapi-keys");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("a?b#c"), "a%3Fb%23c");
        assert_eq!(
            query(
                &obj(json!({"limit": 5, "cursor": "a&b"})),
                &[("limit", "limit"), ("cursor", "cursor")]
            ),
            "?limit=5&cursor=a%26b"
        );
    }
}
