//! Conversion between `serde_json::Value` and jaq's `jaq_json::Val`.
//!
//! # Numbers
//!
//! jaq-json represents a number as one of
//! `Int(isize)`, `BigInt` (arbitrary precision), `Float(f64)` or
//! `Dec(text)`: a non-integer literal (from the filter source, or from a JSON
//! text parsed by jaq, i.e. [`super::Filter::run_json`]) is kept as its text
//! until it is computed on (then it becomes `f64`). `tostring`/`tojson` of a
//! `Dec` give the text verbatim (`10.10` stays `"10.10"`).
//!
//! This crate's serde_json has no `arbitrary_precision`, so:
//!
//! * **Into the filter** ([`json_to_val`]): `i64`/`u64` → integer (exact);
//!   `f64` → `Float` (serde_json already turned `10.10` into `10.1`, and
//!   `123456789012345678.01` into `123456789012345680`, and an integer
//!   literal beyond `u64` into an `f64`).
//! * **Out of the filter** ([`val_to_json`]):
//!   - `Int`, and `BigInt` within `i64`/`u64` → exact integer;
//!   - `BigInt` beyond `u64` → nearest `f64` (what serde_json itself would
//!     parse from that literal);
//!   - `Float` → the same `f64`; note an integral float prints as `5.0`
//!     (e.g. `10 / 2`), as jaq prints it;
//!   - `Dec` text → nearest `f64` (`10.10` → `10.1`; large decimals lose
//!     digits);
//!   - NaN / ±infinity (`nan`, `infinite`, `1 / 0` — jaq allows division by
//!     zero on numbers) → **error**, never `null`: a money amount must not
//!     silently become `null`.
//!
//! Amounts that must keep every digit should travel as strings
//! (`.amount | tostring` with [`super::Filter::run_json`]).
//!
//! # Other values
//!
//! Text strings with invalid UTF-8 (e.g. from `@base64d`) are converted
//! lossily (U+FFFD), as jq does. Byte strings (`tobytes`), non-string object
//! keys (`{(1): 2}` is allowed by jaq) and nesting deeper than
//! [`super::MAX_OUTPUT_DEPTH`] are errors.

use jaq_json::{Num, Val};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Why a jq value cannot be represented as JSON, with the path to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    /// Path segments from the root, e.g. `["payslips", "[0]", "amount"]`.
    path: Vec<String>,
    reason: String,
}

impl ConvertError {
    fn new(reason: impl Into<String>) -> Self {
        ConvertError {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    /// Prepend a path segment (called while unwinding the recursion).
    fn within(mut self, segment: String) -> Self {
        self.path.push(segment);
        self
    }

    /// The path to the offending value, jq style (`.a[0].b`, or `.`).
    pub fn path(&self) -> String {
        if self.path.is_empty() {
            return ".".to_owned();
        }
        self.path.iter().rev().map(String::as_str).collect()
    }

    /// What is wrong with the value.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.path(), self.reason)
    }
}

impl std::error::Error for ConvertError {}

/// Convert a serde_json value to a jaq value (moves strings, no validation
/// needed: every JSON value is a jaq value).
pub fn json_to_val(value: Value) -> Val {
    match value {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(b),
        Value::Number(n) => Val::Num(number_to_num(&n)),
        Value::String(s) => Val::utf8_str(s.into_bytes()),
        Value::Array(a) => Val::Arr(jaq_json::Rc::new(a.into_iter().map(json_to_val).collect())),
        Value::Object(o) => Val::obj(
            o.into_iter()
                .map(|(k, v)| (Val::utf8_str(k.into_bytes()), json_to_val(v)))
                .collect(),
        ),
    }
}

fn number_to_num(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::from_integral(i)
    } else if let Some(u) = n.as_u64() {
        Num::from_integral(u)
    } else {
        // without arbitrary_precision, a Number is i64, u64 or finite f64
        Num::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Convert a jaq value to a serde_json value (see the module docs).
pub fn val_to_json(val: &Val) -> Result<Value, ConvertError> {
    to_json(val, 0)
}

fn to_json(val: &Val, depth: usize) -> Result<Value, ConvertError> {
    Ok(match val {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => Value::Number(num_to_number(n)?),
        Val::TStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::BStr(_) => {
            return Err(ConvertError::new(
                "a byte string (from tobytes) is not JSON; use tostring or @base64",
            ))
        }
        Val::Arr(a) => {
            check_depth(depth)?;
            let items = a
                .iter()
                .enumerate()
                .map(|(i, x)| to_json(x, depth + 1).map_err(|e| e.within(format!("[{i}]"))));
            Value::Array(items.collect::<Result<_, _>>()?)
        }
        Val::Obj(o) => {
            check_depth(depth)?;
            let mut map = Map::new();
            for (k, v) in o.iter() {
                let key = match k {
                    Val::TStr(b) => String::from_utf8_lossy(b).into_owned(),
                    other => {
                        return Err(ConvertError::new(format!(
                            "object key {other} is not a string"
                        )))
                    }
                };
                let value = to_json(v, depth + 1).map_err(|e| e.within(key_segment(&key)))?;
                map.insert(key, value);
            }
            Value::Object(map)
        }
    })
}

fn check_depth(depth: usize) -> Result<(), ConvertError> {
    if depth >= super::MAX_OUTPUT_DEPTH {
        Err(ConvertError::new(format!(
            "nested deeper than {} levels",
            super::MAX_OUTPUT_DEPTH
        )))
    } else {
        Ok(())
    }
}

fn key_segment(key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!(".{key}")
    } else {
        format!("[{}]", Value::String(key.to_owned()))
    }
}

fn num_to_number(n: &Num) -> Result<Number, ConvertError> {
    match n {
        Num::Int(i) => Ok(Number::from(*i as i64)),
        Num::BigInt(b) => {
            let text = b.to_string();
            if let Ok(i) = text.parse::<i64>() {
                Ok(Number::from(i))
            } else if let Ok(u) = text.parse::<u64>() {
                Ok(Number::from(u))
            } else {
                finite(text.parse::<f64>().unwrap_or(f64::NAN), &text)
            }
        }
        Num::Float(f) => finite(*f, &n.to_string()),
        Num::Dec(text) => finite(text.parse::<f64>().unwrap_or(f64::NAN), text),
    }
}

fn finite(f: f64, shown: &str) -> Result<Number, ConvertError> {
    Number::from_f64(f).ok_or_else(|| {
        ConvertError::new(format!(
            "number {shown} is not finite (JSON has no NaN or infinity)"
        ))
    })
}

/// Text of a jq value for messages: a string as is (lossy UTF-8), anything
/// else as compact JSON.
pub(super) fn val_text(val: &Val) -> String {
    match val {
        Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
        other => other.to_string(),
    }
}
