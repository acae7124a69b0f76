//! Shared validation vocabulary: the [`ValidationError`] returned by every
//! `from_json`, and small helpers for reading fields out of a JSON object
//! with messages a person can act on.

use serde_json::{Map, Value};

/// Longest piece of user input (in characters) echoed back in a message.
pub const ECHO_LIMIT: usize = 40;

/// A rejected input: which field, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The JSON field name as the sender wrote it (e.g. `amount`, `ids[3]`),
    /// or `body` when the whole body is wrong.
    pub field: String,
    /// What is wrong, in words; never echoes more than [`ECHO_LIMIT`]
    /// characters of input.
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Quote a piece of user input for an error message: truncated to
/// [`ECHO_LIMIT`] characters (with `…` appended when cut) and escaped so
/// control characters cannot reach a log line raw.
pub fn echo(input: &str) -> String {
    let mut chars = input.chars();
    let head: String = chars.by_ref().take(ECHO_LIMIT).collect();
    if chars.next().is_some() {
        format!("{:?}…", head)
    } else {
        format!("{:?}", head)
    }
}

/// The JSON type of a value, for "must be a string, got number" messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The body must be a JSON object.
pub fn as_object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ValidationError> {
    v.as_object().ok_or_else(|| {
        ValidationError::new(
            "body",
            format!("must be a JSON object ({what}), got {}", json_type(v)),
        )
    })
}

/// Reject any key not in `allowed`. The first offending key in sorted order
/// is reported, so the error is deterministic.
pub fn reject_unknown_fields(
    obj: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(), ValidationError> {
    let mut unknown: Vec<&String> = obj
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    unknown.sort();
    match unknown.first() {
        None => Ok(()),
        Some(key) => {
            let more = if unknown.len() > 1 {
                format!(" (and {} more)", unknown.len() - 1)
            } else {
                String::new()
            };
            Err(ValidationError::new(
                truncate(key),
                format!(
                    "unknown field{more}; accepted fields are: {}",
                    allowed.join(", ")
                ),
            ))
        }
    }
}

/// A field's value, with JSON `null` treated as absent.
pub fn present<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v),
    }
}

/// Truncate (without quoting) to [`ECHO_LIMIT`] characters; used where a
/// piece of input becomes a field name.
pub fn truncate(input: &str) -> String {
    let mut chars = input.chars();
    let head: String = chars.by_ref().take(ECHO_LIMIT).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Which characters a text field may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// No control characters at all.
    SingleLine,
    /// Control characters other than tab, CR and LF are rejected.
    MultiLine,
}

/// Check a trimmed text value: non-empty, at most `max_chars` characters
/// (Unicode scalar values), no disallowed control characters.
pub fn check_text(
    field: &str,
    trimmed: &str,
    max_chars: usize,
    kind: TextKind,
) -> Result<(), ValidationError> {
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    let len = trimmed.chars().count();
    if len > max_chars {
        return Err(ValidationError::new(
            field,
            format!("is {len} characters long, at most {max_chars} allowed"),
        ));
    }
    let bad = trimmed.chars().find(|c| match kind {
        TextKind::SingleLine => c.is_control(),
        TextKind::MultiLine => c.is_control() && !matches!(c, '\n' | '\r' | '\t'),
    });
    if let Some(c) = bad {
        let allowed = match kind {
            TextKind::SingleLine => "control characters (including line breaks) are not allowed",
            TextKind::MultiLine => {
                "control characters other than tab and line breaks are not allowed"
            }
        };
        return Err(ValidationError::new(
            field,
            format!(
                "contains the control character U+{:04X}; {allowed}",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// A required string field: present, a JSON string, non-empty after trimming,
/// within `max_chars`. Returns the trimmed text.
pub fn required_text(
    obj: &Map<String, Value>,
    field: &str,
    max_chars: usize,
    kind: TextKind,
) -> Result<String, ValidationError> {
    match present(obj, field) {
        None => Err(ValidationError::new(field, "is required")),
        Some(Value::String(s)) => {
            let t = s.trim();
            check_text(field, t, max_chars, kind)?;
            Ok(t.to_owned())
        }
        Some(other) => Err(ValidationError::new(
            field,
            format!("must be a string, got {}", json_type(other)),
        )),
    }
}

/// An optional string field. Absent, `null`, and empty/whitespace-only
/// strings all mean "not given". Returns the trimmed text.
pub fn optional_text(
    obj: &Map<String, Value>,
    field: &str,
    max_chars: usize,
    kind: TextKind,
) -> Result<Option<String>, ValidationError> {
    match present(obj, field) {
        None => Ok(None),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                return Ok(None);
            }
            check_text(field, t, max_chars, kind)?;
            Ok(Some(t.to_owned()))
        }
        Some(other) => Err(ValidationError::new(
            field,
            format!("must be a string, got {}", json_type(other)),
        )),
    }
}

/// A value that may be given as a string or an integer JSON number, kept as
/// a string (integers in plain decimal). Floats, booleans, arrays and
/// objects are rejected. Strings are trimmed; the result may be empty.
pub fn string_or_integer(field: &str, v: &Value) -> Result<String, ValidationError> {
    match v {
        Value::String(s) => Ok(s.trim().to_owned()),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(u.to_string())
            } else if let Some(i) = n.as_i64() {
                Ok(i.to_string())
            } else {
                Err(ValidationError::new(
                    field,
                    format!(
                        "must be a string or an integer, got the non-integer number {}",
                        echo(&n.to_string())
                    ),
                ))
            }
        }
        other => Err(ValidationError::new(
            field,
            format!("must be a string or an integer, got {}", json_type(other)),
        )),
    }
}

/// Maximum length of an external id (the sender's own id).
pub const EXTERNAL_ID_MAX_CHARS: usize = 200;

/// Validate one external id (string or integer): trimmed, 1..=200
/// characters, no control characters.
pub fn external_id(field: &str, v: &Value) -> Result<String, ValidationError> {
    let s = string_or_integer(field, v)?;
    check_text(field, &s, EXTERNAL_ID_MAX_CHARS, TextKind::SingleLine)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn echo_truncates_long_input_to_40_chars() {
        let long = "x".repeat(500);
        let e = echo(&long);
        assert!(e.chars().count() <= ECHO_LIMIT + 3, "{e}");
        assert!(e.ends_with('…'));
        assert_eq!(echo("short"), "\"short\"");
    }

    #[test]
    fn echo_escapes_control_characters() {
        assert_eq!(echo("a\nb\u{1b}"), "\"a\\nb\\u{1b}\"");
    }

    #[test]
    fn display_is_field_colon_message() {
        let e = ValidationError::new("amount", "has 3 decimal places, GBP allows 2");
        assert_eq!(e.to_string(), "amount: has 3 decimal places, GBP allows 2");
    }

    #[test]
    fn unknown_field_report_is_deterministic_and_truncated() {
        let v = json!({"zzz": 1, "aaa": 2, "ok": 3});
        let obj = v.as_object().unwrap();
        let e = reject_unknown_fields(obj, &["ok"]).unwrap_err();
        assert_eq!(e.field, "aaa");
        assert!(e.message.contains("1 more"), "{}", e.message);

        let long_key = "k".repeat(300);
        let v = json!({ long_key: 1 });
        let e = reject_unknown_fields(v.as_object().unwrap(), &["ok"]).unwrap_err();
        assert!(e.field.chars().count() <= ECHO_LIMIT + 1);
    }

    #[test]
    fn control_characters_rejected_by_kind() {
        assert!(check_text("f", "a\nb", 10, TextKind::SingleLine).is_err());
        assert!(check_text("f", "a\nb\tc", 10, TextKind::MultiLine).is_ok());
        assert!(check_text("f", "a\u{7}b", 10, TextKind::MultiLine).is_err());
    }

    #[test]
    fn string_or_integer_accepts_both_and_rejects_floats() {
        assert_eq!(string_or_integer("f", &json!(42)).unwrap(), "42");
        assert_eq!(string_or_integer("f", &json!(-7)).unwrap(), "-7");
        assert_eq!(string_or_integer("f", &json!(" ab ")).unwrap(), "ab");
        assert!(string_or_integer("f", &json!(1.5)).is_err());
        assert!(string_or_integer("f", &json!(true)).is_err());
        assert!(string_or_integer("f", &json!([1])).is_err());
    }
}
