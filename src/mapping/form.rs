//! `application/x-www-form-urlencoded` bodies as JSON, for senders that post
//! forms instead of JSON.

use serde_json::map::Entry;
use serde_json::{Map, Value};

/// Decode a form body into a JSON object of strings.
///
/// `+` and percent-escapes are decoded (invalid UTF-8 becomes U+FFFD); a key
/// without `=` has the value `""`; empty pairs (`a=1&&b=2`) are skipped; a
/// repeated key becomes an array of its values in order; keys such as `a[b]`
/// or `a[]` are kept literally (no nesting).
pub fn form_to_json(body: &[u8]) -> Value {
    let mut map = Map::new();
    for (key, value) in form_urlencoded::parse(body) {
        let value = Value::String(value.into_owned());
        match map.entry(key.into_owned()) {
            Entry::Vacant(e) => {
                e.insert(value);
            }
            Entry::Occupied(mut e) => match e.get_mut() {
                Value::Array(values) => values.push(value),
                first => {
                    let first = first.take();
                    e.insert(Value::Array(vec![first, value]));
                }
            },
        }
    }
    Value::Object(map)
}
