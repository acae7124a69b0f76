//! The commands the bridge sends to the payout panel, validated from the
//! JSON a sender's mapping produces.

use std::collections::HashSet;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::amount::Amount;
use super::currency::Currency;
use super::date::PanelDate;
use super::validation::{
    as_object, check_text, echo, external_id, json_type, optional_text, present,
    reject_unknown_fields, required_text, string_or_integer, TextKind,
};

pub use super::validation::ValidationError;

/// Maximum length of `name` (characters).
pub const NAME_MAX_CHARS: usize = 255;
/// Maximum length of `description` (characters).
pub const DESCRIPTION_MAX_CHARS: usize = 1000;
/// Maximum length of `userName`, `referenceId`, `firstName`, `lastName`.
pub const SHORT_TEXT_MAX_CHARS: usize = 255;
/// Maximum length of `email` (RFC 5321 path limit).
pub const EMAIL_MAX_CHARS: usize = 254;
/// Digits allowed in `phoneNumber` (E.164 allows at most 15).
pub const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 4..=15;
/// Most ids (panel ids plus external ids, after removing duplicates) in one cancel.
pub const MAX_CANCEL_IDS: usize = 1000;
/// Largest panel id accepted: JavaScript's `Number.MAX_SAFE_INTEGER`, so
/// the panel can hold it exactly.
pub const MAX_PANEL_ID: u64 = (1 << 53) - 1;

/// Field name used when none of the recipient identifiers is given.
pub const RECIPIENT_FIELD: &str = "userName|phoneNumber|referenceId";
/// Field name used when a cancel names no payout at all or too many.
pub const CANCEL_IDS_FIELD: &str = "ids|externalIds";

const CREATE_FIELDS: &[&str] = &[
    "amount",
    "currency",
    "startDate",
    "endDate",
    "name",
    "description",
    "userName",
    "phoneNumber",
    "referenceId",
    "firstName",
    "lastName",
    "email",
    "notification",
    "externalId",
];
const CANCEL_FIELDS: &[&str] = &["ids", "externalIds"];

/// Create one payout on the panel (`POST /api/payment/create`).
#[derive(Debug, Clone, PartialEq)]
pub struct CreatePayout {
    pub amount: Amount,
    pub currency: Currency,
    pub start_date: PanelDate,
    pub end_date: PanelDate,
    pub name: String,
    pub description: String,
    pub user_name: Option<String>,
    pub phone_number: Option<String>,
    pub reference_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub notification: bool,
    /// The sender's own id; never sent to the panel.
    pub external_id: Option<String>,
}

/// Cancel payouts, by panel id and/or by the sender's external id.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelPayouts {
    pub ids: Vec<u64>,
    pub external_ids: Vec<String>,
}

/// One validated request. Not boxed: one short-lived value per request, and
/// callers match on it directly.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Create(CreatePayout),
    Cancel(CancelPayouts),
}

/// What a route does with its commands (`action:` in the routes file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Cancel,
}

impl Action {
    /// `"create"` or `"cancel"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Cancel => "cancel",
        }
    }
}

// ---------------------------------------------------------------------------
// Create

fn required<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a Value, ValidationError> {
    present(obj, field).ok_or_else(|| ValidationError::new(field, "is required"))
}

fn phone_number(obj: &Map<String, Value>) -> Result<Option<String>, ValidationError> {
    const FIELD: &str = "phoneNumber";
    let raw = match present(obj, FIELD) {
        None => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(other) => {
            return Err(ValidationError::new(
                FIELD,
                format!(
                    "must be a string (quote it to keep a leading + or 0), got {}",
                    json_type(other)
                ),
            ))
        }
    };
    if raw.is_empty() {
        return Ok(None);
    }
    let (plus, rest) = match raw.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", raw),
    };
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
    {
        return Err(ValidationError::new(
            FIELD,
            format!(
                "{} may contain only digits, an optional leading +, spaces and dashes",
                echo(raw)
            ),
        ));
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if !PHONE_DIGITS.contains(&digits.len()) {
        return Err(ValidationError::new(
            FIELD,
            format!(
                "has {} digits, expected {} to {}",
                digits.len(),
                PHONE_DIGITS.start(),
                PHONE_DIGITS.end()
            ),
        ));
    }
    Ok(Some(format!("{plus}{digits}")))
}

fn email(obj: &Map<String, Value>) -> Result<Option<String>, ValidationError> {
    const FIELD: &str = "email";
    let Some(e) = optional_text(obj, FIELD, EMAIL_MAX_CHARS, TextKind::SingleLine)? else {
        return Ok(None);
    };
    let bad = |why: &str| ValidationError::new(FIELD, format!("{} {why}", echo(&e)));
    if e.chars().any(char::is_whitespace) {
        return Err(bad("must not contain spaces"));
    }
    let mut parts = e.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) if !local.is_empty() && !domain.is_empty() => Ok(Some(e)),
        (_, _, Some(_)) => Err(bad("must contain exactly one @")),
        (_, None, _) => Err(bad("is not an email address: it has no @")),
        _ => Err(bad("needs text on both sides of the @")),
    }
}

fn reference_id(obj: &Map<String, Value>) -> Result<Option<String>, ValidationError> {
    const FIELD: &str = "referenceId";
    let Some(v) = present(obj, FIELD) else {
        return Ok(None);
    };
    let s = string_or_integer(FIELD, v)?;
    if s.is_empty() {
        return Ok(None);
    }
    check_text(FIELD, &s, SHORT_TEXT_MAX_CHARS, TextKind::SingleLine)?;
    Ok(Some(s))
}

fn notification(obj: &Map<String, Value>) -> Result<bool, ValidationError> {
    const FIELD: &str = "notification";
    match required(obj, FIELD)? {
        Value::Bool(b) => Ok(*b),
        Value::String(_) => Err(ValidationError::new(
            FIELD,
            "must be the JSON boolean true or false, not a string (\"true\" in quotes is not accepted)",
        )),
        other => Err(ValidationError::new(
            FIELD,
            format!("must be the JSON boolean true or false, got {}", json_type(other)),
        )),
    }
}

impl CreatePayout {
    /// Validate a create request written with the panel's own field names
    /// (plus the optional `externalId`). The first problem found is
    /// reported, in the order the fields are listed in the panel API.
    pub fn from_json(v: &Value) -> Result<Self, ValidationError> {
        let obj = as_object(v, "a payout with amount, currency, startDate, ...")?;
        reject_unknown_fields(obj, CREATE_FIELDS)?;

        let currency = match required(obj, "currency")? {
            Value::String(s) => {
                Currency::parse(s).map_err(|e| ValidationError::new("currency", e.to_string()))?
            }
            other => {
                return Err(ValidationError::new(
                    "currency",
                    format!("must be a string such as \"GBP\", got {}", json_type(other)),
                ))
            }
        };
        let amount = Amount::from_json(required(obj, "amount")?, currency)
            .map_err(|e| ValidationError::new("amount", e.to_string()))?;
        let start_date = PanelDate::from_json(required(obj, "startDate")?)
            .map_err(|e| ValidationError::new("startDate", e.to_string()))?;
        let end_date = PanelDate::from_json(required(obj, "endDate")?)
            .map_err(|e| ValidationError::new("endDate", e.to_string()))?;
        if end_date.instant() <= start_date.instant() {
            return Err(ValidationError::new(
                "endDate",
                format!(
                    "must be after startDate ({} is not after {})",
                    echo(end_date.as_str()),
                    echo(start_date.as_str())
                ),
            ));
        }

        let name = required_text(obj, "name", NAME_MAX_CHARS, TextKind::SingleLine)?;
        let description = required_text(
            obj,
            "description",
            DESCRIPTION_MAX_CHARS,
            TextKind::MultiLine,
        )?;

        let user_name = optional_text(obj, "userName", SHORT_TEXT_MAX_CHARS, TextKind::SingleLine)?;
        let phone_number = phone_number(obj)?;
        let reference_id = reference_id(obj)?;
        if user_name.is_none() && phone_number.is_none() && reference_id.is_none() {
            return Err(ValidationError::new(
                RECIPIENT_FIELD,
                "at least one of userName, phoneNumber or referenceId is required \
                 (null and empty strings count as missing)",
            ));
        }

        let first_name =
            optional_text(obj, "firstName", SHORT_TEXT_MAX_CHARS, TextKind::SingleLine)?;
        let last_name = optional_text(obj, "lastName", SHORT_TEXT_MAX_CHARS, TextKind::SingleLine)?;
        let email = email(obj)?;
        let notification = notification(obj)?;
        let external_id = match present(obj, "externalId") {
            None => None,
            Some(v) => Some(external_id("externalId", v)?),
        };

        Ok(CreatePayout {
            amount,
            currency,
            start_date,
            end_date,
            name,
            description,
            user_name,
            phone_number,
            reference_id,
            first_name,
            last_name,
            email,
            notification,
            external_id,
        })
    }

    /// The panel's create body: the panel's field names, `amount` as a JSON
    /// number, `referenceId` as a string, dates as given (trimmed), absent
    /// optionals omitted, and no `externalId`.
    pub fn panel_body(&self) -> Value {
        let mut m = Map::new();
        m.insert("amount".into(), Value::Number(self.amount.to_json_number()));
        m.insert("currency".into(), self.currency.code().into());
        m.insert("startDate".into(), self.start_date.as_str().into());
        m.insert("endDate".into(), self.end_date.as_str().into());
        m.insert("name".into(), self.name.as_str().into());
        m.insert("description".into(), self.description.as_str().into());
        let optionals = [
            ("userName", &self.user_name),
            ("phoneNumber", &self.phone_number),
            ("referenceId", &self.reference_id),
            ("firstName", &self.first_name),
            ("lastName", &self.last_name),
            ("email", &self.email),
        ];
        for (key, value) in optionals {
            if let Some(v) = value {
                m.insert(key.into(), v.as_str().into());
            }
        }
        m.insert("notification".into(), self.notification.into());
        Value::Object(m)
    }

    /// The canonical text the fingerprint hashes: a version line, then a
    /// JSON object with sorted keys, the amount as its normalised decimal,
    /// dates as their UTC instants (RFC 3339), absent optionals omitted.
    fn canonical(&self) -> String {
        let mut fields: Vec<(&str, Canon<'_>)> = vec![
            ("amount", Canon::Raw(self.amount.to_string())),
            ("currency", Canon::Str(self.currency.code())),
            ("startDate", Canon::Owned(self.start_date.canonical())),
            ("endDate", Canon::Owned(self.end_date.canonical())),
            ("name", Canon::Str(&self.name)),
            ("description", Canon::Str(&self.description)),
            ("notification", Canon::Raw(self.notification.to_string())),
        ];
        let optionals = [
            ("userName", &self.user_name),
            ("phoneNumber", &self.phone_number),
            ("referenceId", &self.reference_id),
            ("firstName", &self.first_name),
            ("lastName", &self.last_name),
            ("email", &self.email),
            ("externalId", &self.external_id),
        ];
        for (key, value) in optionals {
            if let Some(v) = value {
                fields.push((key, Canon::Str(v)));
            }
        }
        format!("payout-bridge/create/v1\n{}", canonical_object(fields))
    }

    /// Lower-case hex SHA-256 of the canonical form (panel body +
    /// `externalId`). Independent of key order, number spelling (`10.5`,
    /// `10.50`, `"10.50"`), surrounding whitespace, and date spelling of
    /// the same instant.
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.canonical())
    }
}

// ---------------------------------------------------------------------------
// Cancel

fn panel_id(field: &str, v: &Value) -> Result<u64, ValidationError> {
    let must = |got: String| {
        ValidationError::new(
            field,
            format!("must be a positive integer payout id, got {got}"),
        )
    };
    let id = match v {
        Value::Number(n) => match n.as_u64() {
            Some(id) => id,
            None => return Err(must(echo(&n.to_string()))),
        },
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(must(echo(s)));
            }
            match t.parse::<u64>() {
                Ok(id) => id,
                Err(_) => {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "{} is larger than the largest panel id {MAX_PANEL_ID}",
                            echo(t)
                        ),
                    ))
                }
            }
        }
        other => return Err(must(json_type(other).to_owned())),
    };
    if id == 0 {
        return Err(must("0".to_owned()));
    }
    if id > MAX_PANEL_ID {
        return Err(ValidationError::new(
            field,
            format!("{id} is larger than the largest panel id {MAX_PANEL_ID}"),
        ));
    }
    Ok(id)
}

fn optional_array<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    what: &str,
) -> Result<&'a [Value], ValidationError> {
    match present(obj, field) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(ValidationError::new(
            field,
            format!("must be an array of {what}, got {}", json_type(other)),
        )),
    }
}

impl CancelPayouts {
    /// Validate `{"ids": [...], "externalIds": [...]}`: either or both, at
    /// least one id overall, at most [`MAX_CANCEL_IDS`] after duplicates
    /// are removed (first occurrence kept).
    pub fn from_json(v: &Value) -> Result<Self, ValidationError> {
        let obj = as_object(v, "with ids and/or externalIds")?;
        reject_unknown_fields(obj, CANCEL_FIELDS)?;

        let raw_ids = optional_array(obj, "ids", "positive integer payout ids")?;
        let raw_external = optional_array(obj, "externalIds", "external ids")?;

        let mut seen_ids = HashSet::new();
        let mut ids = Vec::new();
        for (i, item) in raw_ids.iter().enumerate() {
            let id = panel_id(&format!("ids[{i}]"), item)?;
            if seen_ids.insert(id) {
                ids.push(id);
            }
        }
        let mut seen_external = HashSet::new();
        let mut external_ids = Vec::new();
        for (i, item) in raw_external.iter().enumerate() {
            let id = external_id(&format!("externalIds[{i}]"), item)?;
            if seen_external.insert(id.clone()) {
                external_ids.push(id);
            }
        }

        let total = ids.len() + external_ids.len();
        if total == 0 {
            return Err(ValidationError::new(
                CANCEL_IDS_FIELD,
                "at least one id is required in ids or externalIds",
            ));
        }
        if total > MAX_CANCEL_IDS {
            return Err(ValidationError::new(
                CANCEL_IDS_FIELD,
                format!("{total} distinct ids given, at most {MAX_CANCEL_IDS} allowed per request"),
            ));
        }
        Ok(CancelPayouts { ids, external_ids })
    }

    fn canonical(&self) -> String {
        let mut ids = self.ids.clone();
        ids.sort_unstable();
        ids.dedup();
        let mut external: Vec<&str> = self.external_ids.iter().map(String::as_str).collect();
        external.sort_unstable();
        external.dedup();
        let fields = vec![
            (
                "ids",
                Canon::List(ids.iter().map(|id| Canon::Raw(id.to_string())).collect()),
            ),
            (
                "externalIds",
                Canon::List(external.into_iter().map(Canon::Str).collect()),
            ),
        ];
        format!("payout-bridge/cancel/v1\n{}", canonical_object(fields))
    }

    /// Lower-case hex SHA-256 of the canonical form. The ids are treated as
    /// sets: order and duplicates do not change the fingerprint.
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.canonical())
    }
}

// ---------------------------------------------------------------------------
// Command

impl Command {
    pub fn from_json(action: Action, v: &Value) -> Result<Self, ValidationError> {
        match action {
            Action::Create => CreatePayout::from_json(v).map(Command::Create),
            Action::Cancel => CancelPayouts::from_json(v).map(Command::Cancel),
        }
    }

    pub fn action(&self) -> Action {
        match self {
            Command::Create(_) => Action::Create,
            Command::Cancel(_) => Action::Cancel,
        }
    }

    /// Fingerprint of the inner command; create and cancel fingerprints
    /// never collide (their canonical forms carry distinct prefixes).
    pub fn fingerprint(&self) -> String {
        match self {
            Command::Create(c) => c.fingerprint(),
            Command::Cancel(c) => c.fingerprint(),
        }
    }

    /// The sender's `externalId` of a create; `None` for a cancel.
    pub fn external_id(&self) -> Option<&str> {
        match self {
            Command::Create(c) => c.external_id.as_deref(),
            Command::Cancel(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Canonical form

/// A value in the canonical form.
enum Canon<'a> {
    Str(&'a str),
    Owned(String),
    /// Already-canonical JSON literal text (numbers, booleans).
    Raw(String),
    List(Vec<Canon<'a>>),
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_canon(out: &mut String, v: &Canon<'_>) {
    match v {
        Canon::Str(s) => push_json_string(out, s),
        Canon::Owned(s) => push_json_string(out, s),
        Canon::Raw(r) => out.push_str(r),
        Canon::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_canon(out, item);
            }
            out.push(']');
        }
    }
}

/// Compact JSON object with keys in byte order.
fn canonical_object(mut fields: Vec<(&str, Canon<'_>)>) -> String {
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, key);
        out.push(':');
        push_canon(&mut out, value);
    }
    out.push('}');
    out
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The panel documentation's own example request.
    fn doc_example() -> Value {
        json!({
            "amount": 1, "currency": "GBP",
            "startDate": "2018-01-01 12:00:00", "endDate": "2018-01-02 00:00:00",
            "name": "Project name", "description": "Payment description",
            "userName": "tester", "phoneNumber": "123456789", "referenceId": 1,
            "firstName": "test", "lastName": "tester", "email": "test@test.test",
            "notification": true
        })
    }

    fn minimal() -> Value {
        json!({
            "amount": "10.50", "currency": "GBP",
            "startDate": "2024-01-01", "endDate": "2024-02-01",
            "name": "Payroll", "description": "January",
            "userName": "alice", "notification": false
        })
    }

    fn with(mut base: Value, key: &str, value: Value) -> Value {
        base.as_object_mut().unwrap().insert(key.to_owned(), value);
        base
    }

    fn without(mut base: Value, key: &str) -> Value {
        base.as_object_mut().unwrap().remove(key);
        base
    }

    fn create(v: &Value) -> CreatePayout {
        CreatePayout::from_json(v).unwrap()
    }

    fn create_err(v: &Value) -> ValidationError {
        CreatePayout::from_json(v).unwrap_err()
    }

    fn cancel_err(v: &Value) -> ValidationError {
        CancelPayouts::from_json(v).unwrap_err()
    }

    // --- body shape -------------------------------------------------------

    #[test]
    fn body_must_be_an_object() {
        for v in [json!([]), json!("x"), json!(1), json!(null), json!(true)] {
            assert_eq!(create_err(&v).field, "body", "{v}");
            assert_eq!(cancel_err(&v).field, "body", "{v}");
        }
        assert!(create_err(&json!([])).message.contains("got array"));
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = create_err(&with(minimal(), "ammount", json!(1)));
        assert_eq!(e.field, "ammount");
        assert!(e.message.starts_with("unknown field"), "{}", e.message);
        assert!(
            e.message.contains("amount"),
            "lists accepted fields: {}",
            e.message
        );

        let e = cancel_err(&json!({"ids": [1], "id": 2}));
        assert_eq!(e.field, "id");
    }

    #[test]
    fn null_optional_fields_are_absent() {
        let base = minimal();
        let plain = create(&base);
        let mut nulls = base.clone();
        for key in [
            "phoneNumber",
            "referenceId",
            "firstName",
            "lastName",
            "email",
            "externalId",
        ] {
            nulls = with(nulls, key, Value::Null);
        }
        assert_eq!(create(&nulls), plain);
    }

    #[test]
    fn null_required_field_is_missing() {
        assert_eq!(
            create_err(&with(minimal(), "name", Value::Null)).to_string(),
            "name: is required"
        );
    }

    // --- the panel body ----------------------------------------------------

    #[test]
    fn doc_example_produces_the_documented_body() {
        let c = create(&doc_example());
        let mut expected = doc_example();
        expected["referenceId"] = json!("1");
        assert_eq!(c.panel_body(), expected);
    }

    #[test]
    fn panel_body_omits_absent_optionals_and_external_id() {
        let c = create(&with(minimal(), "externalId", json!("crm-42")));
        assert_eq!(c.external_id.as_deref(), Some("crm-42"));
        assert_eq!(
            c.panel_body(),
            json!({
                "amount": 10.5, "currency": "GBP",
                "startDate": "2024-01-01", "endDate": "2024-02-01",
                "name": "Payroll", "description": "January",
                "userName": "alice", "notification": false
            })
        );
    }

    #[test]
    fn panel_body_reads_back_as_the_same_command() {
        let c = create(&doc_example());
        assert_eq!(create(&c.panel_body()), c);
    }

    // --- amount ------------------------------------------------------------

    #[test]
    fn amount_is_required() {
        assert_eq!(
            create_err(&without(minimal(), "amount")).to_string(),
            "amount: is required"
        );
    }

    #[test]
    fn amount_decimal_places_follow_the_currency() {
        let e = create_err(&with(minimal(), "amount", json!("10.505")));
        assert_eq!(e.to_string(), "amount: has 3 decimal places, GBP allows 2");
        let jpy = with(
            with(minimal(), "currency", json!("JPY")),
            "amount",
            json!(10.5),
        );
        assert_eq!(
            create_err(&jpy).to_string(),
            "amount: has 1 decimal place, JPY allows 0"
        );
        let kwd = with(
            with(minimal(), "currency", json!("kwd")),
            "amount",
            json!(10.505),
        );
        assert_eq!(create(&kwd).panel_body()["amount"], json!(10.505));
    }

    #[test]
    fn amount_as_number_or_string_is_sent_as_a_number() {
        for v in [
            json!(10.5),
            json!("10.50"),
            json!("10.500"),
            json!(" 1.05e1 "),
        ] {
            let c = create(&with(minimal(), "amount", v.clone()));
            assert_eq!(c.panel_body()["amount"], json!(10.5), "{v}");
        }
        let c = create(&with(minimal(), "amount", json!("250")));
        assert!(c.panel_body()["amount"].is_u64());
    }

    #[test]
    fn amount_rejects_zero_negative_nan_and_huge() {
        for (v, needle) in [
            (json!(0), "greater than zero"),
            (json!(-5), "greater than zero"),
            (json!("NaN"), "not a finite number"),
            (json!("inf"), "not a finite number"),
            (json!(""), "must not be empty"),
            (json!(1e15), "larger than the maximum"),
            (json!(true), "must be a number"),
        ] {
            let e = create_err(&with(minimal(), "amount", v.clone()));
            assert_eq!(e.field, "amount");
            assert!(e.message.contains(needle), "{v}: {}", e.message);
        }
    }

    #[test]
    fn long_inputs_are_not_echoed_back() {
        let long = "9".repeat(5000) + "x";
        for key in ["amount", "currency", "startDate", "phoneNumber", "email"] {
            let e = create_err(&with(minimal(), key, json!(long)));
            assert!(e.message.len() < 600, "{key}: {}", e.message.len());
            assert!(!e.message.contains(&"9".repeat(41)), "{key}: {}", e.message);
        }
        let e = create_err(&with(minimal(), &long, json!(1)));
        assert!(e.field.chars().count() <= 41);
    }

    // --- currency ----------------------------------------------------------

    #[test]
    fn currency_is_upper_cased() {
        let c = create(&with(minimal(), "currency", json!("gbp")));
        assert_eq!(c.panel_body()["currency"], "GBP");
    }

    #[test]
    fn currency_must_be_a_known_code() {
        for v in [
            json!("XYZ"),
            json!("GB"),
            json!("XAU"),
            json!(826),
            json!(""),
        ] {
            let e = create_err(&with(minimal(), "currency", v.clone()));
            assert_eq!(e.field, "currency", "{v}");
        }
        assert_eq!(
            create_err(&with(minimal(), "currency", json!("xyz"))).to_string(),
            "currency: XYZ is not an active ISO 4217 currency code"
        );
        assert_eq!(
            create_err(&without(minimal(), "currency")).to_string(),
            "currency: is required"
        );
    }

    // --- dates -------------------------------------------------------------

    #[test]
    fn dates_are_sent_as_given_trimmed() {
        let v = with(
            with(
                minimal(),
                "startDate",
                json!(" Tue, 1 Jul 2003 10:52:37 +0200 "),
            ),
            "endDate",
            json!("2003-07-01T10:52:38+02:00"),
        );
        let body = create(&v).panel_body();
        assert_eq!(body["startDate"], "Tue, 1 Jul 2003 10:52:37 +0200");
        assert_eq!(body["endDate"], "2003-07-01T10:52:38+02:00");
    }

    #[test]
    fn end_date_must_be_strictly_after_start_date() {
        let same = with(
            with(minimal(), "startDate", json!("2024-01-01T12:00:00+01:00")),
            "endDate",
            json!("2024-01-01 11:00:00"),
        );
        let e = create_err(&same);
        assert_eq!(e.field, "endDate");
        assert!(
            e.message.contains("must be after startDate"),
            "{}",
            e.message
        );

        let before = with(minimal(), "endDate", json!("2023-12-31"));
        assert_eq!(create_err(&before).field, "endDate");

        // Compared as instants, not as text.
        let ok = with(
            with(minimal(), "startDate", json!("2024-01-01T12:00:00+01:00")),
            "endDate",
            json!("2024-01-01 11:00:01"),
        );
        assert!(CreatePayout::from_json(&ok).is_ok());
    }

    #[test]
    fn bad_dates_list_the_accepted_formats() {
        let e = create_err(&with(minimal(), "startDate", json!("01/02/2024")));
        assert_eq!(e.field, "startDate");
        assert!(e.message.contains("accepted formats"), "{}", e.message);
        let e = create_err(&with(minimal(), "endDate", json!(1706702400)));
        assert_eq!(e.to_string(), "endDate: must be a date string, got number");
    }

    // --- name / description -------------------------------------------------

    #[test]
    fn name_and_description_are_required_and_non_empty() {
        for key in ["name", "description"] {
            assert_eq!(
                create_err(&without(minimal(), key)).to_string(),
                format!("{key}: is required")
            );
            assert_eq!(
                create_err(&with(minimal(), key, json!("   "))).to_string(),
                format!("{key}: must not be empty")
            );
            assert_eq!(
                create_err(&with(minimal(), key, json!(5))).to_string(),
                format!("{key}: must be a string, got number")
            );
        }
        let c = create(&with(minimal(), "name", json!("  Payroll  ")));
        assert_eq!(c.name, "Payroll");
    }

    #[test]
    fn name_and_description_length_limits() {
        assert!(CreatePayout::from_json(&with(minimal(), "name", json!("é".repeat(255)))).is_ok());
        let e = create_err(&with(minimal(), "name", json!("é".repeat(256))));
        assert_eq!(
            e.to_string(),
            "name: is 256 characters long, at most 255 allowed"
        );
        assert!(
            CreatePayout::from_json(&with(minimal(), "description", json!("d".repeat(1000))))
                .is_ok()
        );
        let e = create_err(&with(minimal(), "description", json!("d".repeat(1001))));
        assert_eq!(e.field, "description");
    }

    #[test]
    fn description_may_span_lines_name_may_not() {
        assert!(CreatePayout::from_json(&with(minimal(), "description", json!("a\nb"))).is_ok());
        assert_eq!(
            create_err(&with(minimal(), "name", json!("a\nb"))).field,
            "name"
        );
    }

    // --- recipient ---------------------------------------------------------

    #[test]
    fn one_recipient_identifier_is_required() {
        let none = without(minimal(), "userName");
        let e = create_err(&none);
        assert_eq!(e.field, RECIPIENT_FIELD);
        let blanks = with(
            with(
                with(none.clone(), "userName", json!(" ")),
                "phoneNumber",
                json!(""),
            ),
            "referenceId",
            Value::Null,
        );
        assert_eq!(create_err(&blanks).field, RECIPIENT_FIELD);
        for (key, value) in [
            ("userName", json!("bob")),
            ("phoneNumber", json!("+44 7700 900123")),
            ("referenceId", json!("R-1")),
            ("referenceId", json!(7)),
        ] {
            assert!(
                CreatePayout::from_json(&with(none.clone(), key, value)).is_ok(),
                "{key}"
            );
        }
    }

    #[test]
    fn reference_id_string_or_integer_kept_as_string() {
        let c = create(&with(minimal(), "referenceId", json!(12345)));
        assert_eq!(c.reference_id.as_deref(), Some("12345"));
        assert_eq!(c.panel_body()["referenceId"], json!("12345"));
        let c = create(&with(minimal(), "referenceId", json!(" A-9 ")));
        assert_eq!(c.reference_id.as_deref(), Some("A-9"));
        for bad in [json!(1.5), json!(true), json!([1])] {
            assert_eq!(
                create_err(&with(minimal(), "referenceId", bad)).field,
                "referenceId"
            );
        }
    }

    #[test]
    fn phone_number_is_normalised_to_plus_and_digits() {
        let c = create(&with(minimal(), "phoneNumber", json!(" +44 7700-900 123 ")));
        assert_eq!(c.phone_number.as_deref(), Some("+447700900123"));
        let c = create(&with(minimal(), "phoneNumber", json!("123456789")));
        assert_eq!(c.panel_body()["phoneNumber"], "123456789");
    }

    #[test]
    fn phone_number_rejects_other_characters_lengths_and_numbers() {
        for bad in [
            json!("+44 (0) 7700"),
            json!("0770O900123"),
            json!("44+7700"),
            json!("++447700900"),
            json!("123"),
            json!("1234567890123456"),
            json!(447700900123u64),
        ] {
            assert_eq!(
                create_err(&with(minimal(), "phoneNumber", bad.clone())).field,
                "phoneNumber",
                "{bad}"
            );
        }
    }

    #[test]
    fn email_must_look_like_an_email() {
        assert!(
            CreatePayout::from_json(&with(minimal(), "email", json!("a.b+c@example.co.uk")))
                .is_ok()
        );
        for bad in [
            "nobody",
            "a@b@c",
            "@example.com",
            "a@",
            "a b@example.com",
            "a@exa mple.com",
        ] {
            let e = create_err(&with(minimal(), "email", json!(bad)));
            assert_eq!(e.field, "email", "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(
            create_err(&with(minimal(), "email", json!(long))).field,
            "email"
        );
    }

    #[test]
    fn first_and_last_name_are_optional_strings_with_a_limit() {
        let c = create(&with(
            with(minimal(), "firstName", json!(" Ann ")),
            "lastName",
            json!("Lee"),
        ));
        assert_eq!(c.first_name.as_deref(), Some("Ann"));
        assert_eq!(c.last_name.as_deref(), Some("Lee"));
        for key in ["firstName", "lastName"] {
            assert_eq!(
                create_err(&with(minimal(), key, json!("x".repeat(256)))).field,
                key
            );
            assert_eq!(create_err(&with(minimal(), key, json!(1))).field, key);
        }
    }

    // --- notification ------------------------------------------------------

    #[test]
    fn notification_must_be_a_real_boolean() {
        assert_eq!(
            create_err(&without(minimal(), "notification")).to_string(),
            "notification: is required"
        );
        for bad in [json!("true"), json!("false"), json!(1), json!(0)] {
            let e = create_err(&with(minimal(), "notification", bad.clone()));
            assert_eq!(e.field, "notification", "{bad}");
        }
        assert!(create_err(&with(minimal(), "notification", json!("true")))
            .message
            .contains("not a string"));
        assert!(create(&with(minimal(), "notification", json!(true))).notification);
    }

    // --- externalId --------------------------------------------------------

    #[test]
    fn external_id_string_or_integer_within_limits() {
        let c = create(&with(minimal(), "externalId", json!(987)));
        assert_eq!(c.external_id.as_deref(), Some("987"));
        assert!(
            CreatePayout::from_json(&with(minimal(), "externalId", json!("x".repeat(200)))).is_ok()
        );
        for bad in [
            json!(""),
            json!("  "),
            json!("x".repeat(201)),
            json!("a\u{0}b"),
            json!(1.5),
            json!({}),
        ] {
            let e = create_err(&with(minimal(), "externalId", bad.clone()));
            assert_eq!(e.field, "externalId", "{bad}");
        }
    }

    // --- fingerprints --------------------------------------------------------

    #[test]
    fn fingerprint_is_sha256_hex_and_has_a_stable_canonical_form() {
        let c = create(&with(minimal(), "externalId", json!("e-1")));
        assert_eq!(
            c.canonical(),
            "payout-bridge/create/v1\n{\"amount\":10.5,\"currency\":\"GBP\",\
             \"description\":\"January\",\"endDate\":\"2024-02-01T00:00:00Z\",\
             \"externalId\":\"e-1\",\"name\":\"Payroll\",\"notification\":false,\
             \"startDate\":\"2024-01-01T00:00:00Z\",\"userName\":\"alice\"}"
        );
        let f = c.fingerprint();
        assert_eq!(f.len(), 64);
        assert!(f
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(f, sha256_hex(&c.canonical()));
    }

    #[test]
    fn fingerprint_ignores_number_spelling_and_key_order() {
        let a = create(&with(minimal(), "amount", json!(10.5)));
        let b = create(&with(minimal(), "amount", json!("10.50")));
        let text = r#"{"notification":false,"userName":"alice","description":"January",
            "name":"Payroll","endDate":"2024-02-01","startDate":"2024-01-01",
            "currency":"gbp","amount":10.50}"#;
        let c = create(&serde_json::from_str(text).unwrap());
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn fingerprint_changes_with_every_field() {
        let base = with(doc_example(), "externalId", json!("x1"));
        let f0 = create(&base).fingerprint();
        let changes = [
            ("amount", json!(2)),
            ("currency", json!("EUR")),
            ("startDate", json!("2018-01-01 12:00:01")),
            ("endDate", json!("2018-01-02 00:00:01")),
            ("name", json!("Project name 2")),
            ("description", json!("Payment description 2")),
            ("userName", json!("tester2")),
            ("phoneNumber", json!("123456780")),
            ("referenceId", json!(2)),
            ("firstName", json!("test2")),
            ("lastName", json!("tester2")),
            ("email", json!("test2@test.test")),
            ("notification", json!(false)),
            ("externalId", json!("x2")),
        ];
        let mut seen = HashSet::from([f0.clone()]);
        for (key, value) in changes {
            let f = create(&with(base.clone(), key, value)).fingerprint();
            assert!(
                seen.insert(f),
                "changing {key} did not change the fingerprint"
            );
        }
        for key in [
            "userName",
            "phoneNumber",
            "firstName",
            "lastName",
            "email",
            "externalId",
        ] {
            let f = create(&without(base.clone(), key)).fingerprint();
            assert!(
                seen.insert(f),
                "removing {key} did not change the fingerprint"
            );
        }
    }

    #[test]
    fn fingerprint_fields_cannot_bleed_into_each_other() {
        let a = create(&with(
            with(minimal(), "firstName", json!("a\",\"b")),
            "lastName",
            json!("c"),
        ));
        let b = create(&with(
            with(minimal(), "firstName", json!("a")),
            "lastName",
            json!("b\",\"c"),
        ));
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn fingerprint_treats_equal_instants_as_equal() {
        let a = create(&with(minimal(), "startDate", json!("2024-01-01")));
        let b = create(&with(
            minimal(),
            "startDate",
            json!("2024-01-01T01:00:00+01:00"),
        ));
        assert_ne!(a, b);
        assert_eq!(a.fingerprint(), b.fingerprint());
    }

    // --- cancel ------------------------------------------------------------

    #[test]
    fn cancel_by_panel_ids_and_numeric_strings() {
        let c = CancelPayouts::from_json(&json!({"ids": [3, "4", " 5 "]})).unwrap();
        assert_eq!(c.ids, vec![3, 4, 5]);
        assert!(c.external_ids.is_empty());
    }

    #[test]
    fn cancel_rejects_bad_panel_ids() {
        for (bad, field) in [
            (json!([0]), "ids[0]"),
            (json!([1, -1]), "ids[1]"),
            (json!([1.5]), "ids[0]"),
            (json!(["1.0"]), "ids[0]"),
            (json!([""]), "ids[0]"),
            (json!(["-3"]), "ids[0]"),
            (json!([true]), "ids[0]"),
            (json!([MAX_PANEL_ID + 1]), "ids[0]"),
            (json!(["99999999999999999999999"]), "ids[0]"),
            (json!(5), "ids"),
            (json!("1,2"), "ids"),
        ] {
            let e = cancel_err(&json!({ "ids": bad }));
            assert_eq!(e.field, field, "{bad}");
        }
        assert!(CancelPayouts::from_json(&json!({"ids": [MAX_PANEL_ID]})).is_ok());
    }

    #[test]
    fn cancel_by_external_ids_strings_or_integers() {
        let c = CancelPayouts::from_json(&json!({"externalIds": ["a", 7, " b "]})).unwrap();
        assert_eq!(c.external_ids, vec!["a", "7", "b"]);
        assert!(c.ids.is_empty());
        for bad in [
            json!([""]),
            json!([1.5]),
            json!([null]),
            json!(["x".repeat(201)]),
        ] {
            assert_eq!(
                cancel_err(&json!({ "externalIds": bad })).field,
                "externalIds[0]"
            );
        }
    }

    #[test]
    fn cancel_removes_duplicates_keeping_order() {
        let c = CancelPayouts::from_json(&json!({
            "ids": [5, 3, "5", 1, 3], "externalIds": ["b", "a", "b", 1, "1"]
        }))
        .unwrap();
        assert_eq!(c.ids, vec![5, 3, 1]);
        assert_eq!(c.external_ids, vec!["b", "a", "1"]);
    }

    #[test]
    fn cancel_needs_at_least_one_id() {
        for v in [
            json!({}),
            json!({"ids": []}),
            json!({"ids": null, "externalIds": []}),
        ] {
            assert_eq!(cancel_err(&v).field, CANCEL_IDS_FIELD, "{v}");
        }
        assert!(CancelPayouts::from_json(&json!({"ids": null, "externalIds": ["x"]})).is_ok());
    }

    #[test]
    fn cancel_allows_at_most_1000_distinct_ids() {
        let ids: Vec<u64> = (1..=600).collect();
        let ext: Vec<String> = (1..=400).map(|i| format!("e{i}")).collect();
        assert!(CancelPayouts::from_json(&json!({"ids": ids, "externalIds": ext})).is_ok());
        let ext: Vec<String> = (1..=401).map(|i| format!("e{i}")).collect();
        let e = cancel_err(&json!({"ids": ids, "externalIds": ext}));
        assert_eq!(e.field, CANCEL_IDS_FIELD);
        assert!(e.message.contains("1001"), "{}", e.message);
        // Duplicates do not count.
        let dup: Vec<u64> = (0..5000).map(|i| 1 + i % 10).collect();
        assert_eq!(
            CancelPayouts::from_json(&json!({ "ids": dup }))
                .unwrap()
                .ids
                .len(),
            10
        );
    }

    #[test]
    fn cancel_fingerprint_treats_ids_as_sets() {
        let a =
            CancelPayouts::from_json(&json!({"ids": [1, 2], "externalIds": ["a", "b"]})).unwrap();
        let b = CancelPayouts::from_json(&json!({"externalIds": ["b", "a", "a"], "ids": ["2", 1]}))
            .unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c =
            CancelPayouts::from_json(&json!({"ids": [1, 3], "externalIds": ["a", "b"]})).unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
        // An id moved between the two lists is a different command.
        let d = CancelPayouts::from_json(&json!({"externalIds": ["1"]})).unwrap();
        let e = CancelPayouts::from_json(&json!({"ids": [1]})).unwrap();
        assert_ne!(d.fingerprint(), e.fingerprint());
        assert_eq!(
            a.canonical(),
            "payout-bridge/cancel/v1\n{\"externalIds\":[\"a\",\"b\"],\"ids\":[1,2]}"
        );
    }

    // --- Command -----------------------------------------------------------

    #[test]
    fn command_dispatches_on_action() {
        let create_body = with(minimal(), "externalId", json!("ext"));
        let c = Command::from_json(Action::Create, &create_body).unwrap();
        assert_eq!(c.action(), Action::Create);
        assert_eq!(c.external_id(), Some("ext"));
        assert_eq!(c.fingerprint(), create(&create_body).fingerprint());

        let k = Command::from_json(Action::Cancel, &json!({"ids": [1]})).unwrap();
        assert_eq!(k.action(), Action::Cancel);
        assert_eq!(k.external_id(), None);
        assert_ne!(k.fingerprint(), c.fingerprint());

        // A create body is not a cancel body and vice versa.
        assert!(Command::from_json(Action::Cancel, &create_body).is_err());
        assert!(Command::from_json(Action::Create, &json!({"ids": [1]})).is_err());
        assert_eq!(Action::Create.as_str(), "create");
        assert_eq!(Action::Cancel.as_str(), "cancel");
    }

    #[test]
    fn external_id_of_create_without_one_is_none() {
        let c = Command::from_json(Action::Create, &minimal()).unwrap();
        assert_eq!(c.external_id(), None);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Number};

    const KNOWN_KEYS: &[&str] = &[
        "amount",
        "currency",
        "startDate",
        "endDate",
        "name",
        "description",
        "userName",
        "phoneNumber",
        "referenceId",
        "firstName",
        "lastName",
        "email",
        "notification",
        "externalId",
        "ids",
        "externalIds",
    ];

    fn arb_key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(KNOWN_KEYS).prop_map(str::to_owned),
            1 => ".{0,12}",
        ]
    }

    fn arb_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
            ".{0,30}".prop_map(Value::from),
            "[-+0-9.eE ]{0,24}".prop_map(Value::from),
            prop::sample::select(vec![
                "10.50",
                "GBP",
                "jpy",
                "XAU",
                "2024-01-01",
                "2024-01-01T00:00:00Z",
                "Tue, 1 Jul 2003 10:52:37 +0200",
                "NaN",
                "-inf",
                "1e-400",
                "+44 7700 900123",
                "a@b",
                "true",
                "0",
                "1e999999999999999999",
            ])
            .prop_map(Value::from),
        ]
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        arb_leaf().prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((arb_key(), inner), 0..10)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn valid_base() -> Value {
        json!({
            "amount": 1, "currency": "GBP",
            "startDate": "2018-01-01 12:00:00", "endDate": "2018-01-02 00:00:00",
            "name": "Project name", "description": "Payment description",
            "userName": "tester", "phoneNumber": "123456789", "referenceId": 1,
            "firstName": "test", "lastName": "tester", "email": "test@test.test",
            "notification": true, "externalId": "x-1"
        })
    }

    fn exercise(v: &Value) {
        for action in [Action::Create, Action::Cancel] {
            if let Ok(c) = Command::from_json(action, v) {
                let _ = c.fingerprint();
                let _ = c.external_id();
                if let Command::Create(c) = c {
                    let body = c.panel_body();
                    assert!(body.get("externalId").is_none());
                }
            }
        }
    }

    /// Render an object as JSON text with its keys in the given order.
    fn object_text(pairs: &[(String, Value)]) -> String {
        let inner: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v))
            .collect();
        format!("{{{}}}", inner.join(","))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn from_json_never_panics_on_arbitrary_json(v in arb_json()) {
            exercise(&v);
        }

        #[test]
        fn from_json_never_panics_when_one_field_is_arbitrary(
            key in prop::sample::select(KNOWN_KEYS),
            value in arb_json(),
        ) {
            let mut v = valid_base();
            v.as_object_mut().unwrap().insert(key.to_owned(), value.clone());
            exercise(&v);
            exercise(&json!({ key: value }));
        }

        #[test]
        fn from_json_never_panics_on_arbitrary_id_lists(
            ids in prop::collection::vec(arb_leaf(), 0..20),
            ext in prop::collection::vec(arb_leaf(), 0..20),
        ) {
            exercise(&json!({"ids": ids, "externalIds": ext}));
        }

        #[test]
        fn any_whole_cents_amount_is_accepted_and_sent_exactly(cents in 1u64..=100_000_000_000_000) {
            let text = format!("{}.{:02}", cents / 100, cents % 100);
            let mut v = valid_base();
            v["amount"] = Value::from(text.as_str());
            let c = CreatePayout::from_json(&v).unwrap();
            let sent = c.panel_body()["amount"].to_string();
            let back: rust_decimal::Decimal = sent.parse().unwrap();
            prop_assert_eq!(back, c.amount.value());
        }

        #[test]
        fn json_number_amounts_with_cents_are_read_exactly(cents in 1u64..=100_000_000_000_000) {
            // serde_json reads numbers of up to 15 significant digits into the
            // correctly rounded f64, whose shortest text is the original.
            let text = format!("{}.{:02}", cents / 100, cents % 100);
            let from_number: Value = serde_json::from_str(&text).unwrap();
            let a = Amount::from_json(&from_number, Currency::parse("GBP").unwrap()).unwrap();
            let want: rust_decimal::Decimal = text.parse().unwrap();
            prop_assert_eq!(a.value(), want.normalize());
        }

        #[test]
        fn create_fingerprint_is_stable_under_key_reordering(
            perm in Just((0..14).collect::<Vec<usize>>()).prop_shuffle(),
            cents in 1u64..10_000_000,
            name in "[a-zA-Z0-9][a-zA-Z0-9 ]{0,19}",
            notification in any::<bool>(),
        ) {
            let mut base = valid_base();
            base["amount"] = json!(format!("{}.{:02}", cents / 100, cents % 100));
            base["name"] = json!(name);
            base["notification"] = json!(notification);
            let pairs: Vec<(String, Value)> =
                base.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(pairs.len(), perm.len());
            let shuffled: Vec<(String, Value)> = perm.iter().map(|&i| pairs[i].clone()).collect();

            let a = CreatePayout::from_json(&base).unwrap();
            let b_value: Value = serde_json::from_str(&object_text(&shuffled)).unwrap();
            let b = CreatePayout::from_json(&b_value).unwrap();
            prop_assert_eq!(a.fingerprint(), b.fingerprint());

            // Also independent of how the amount is spelled.
            let mut c_value = base.clone();
            c_value["amount"] = json!(format!("{}.{:02}0", cents / 100, cents % 100));
            prop_assert_eq!(a.fingerprint(), CreatePayout::from_json(&c_value).unwrap().fingerprint());
            if let Some(n) = a.amount.to_json_number().as_f64().and_then(Number::from_f64) {
                c_value["amount"] = Value::Number(n);
                prop_assert_eq!(a.fingerprint(), CreatePayout::from_json(&c_value).unwrap().fingerprint());
            }
        }

        #[test]
        fn cancel_fingerprint_is_stable_under_reordering(
            ids in prop::collection::vec(1u64..1000, 1..30),
            ext in prop::collection::vec("[a-z0-9]{1,6}", 0..30),
            seed in any::<u64>(),
            ids_first in any::<bool>(),
        ) {
            let a = CancelPayouts::from_json(&json!({"ids": ids, "externalIds": ext})).unwrap();
            let mut ids2 = ids.clone();
            let mut ext2 = ext.clone();
            let n = ids2.len();
            ids2.rotate_left((seed as usize) % n);
            ids2.reverse();
            if !ext2.is_empty() {
                let m = ext2.len();
                ext2.rotate_right((seed as usize) % m);
            }
            let pairs = vec![
                ("ids".to_owned(), json!(ids2)),
                ("externalIds".to_owned(), json!(ext2)),
            ];
            let pairs = if ids_first { pairs } else { pairs.into_iter().rev().collect() };
            let b_value: Value = serde_json::from_str(&object_text(&pairs)).unwrap();
            let b = CancelPayouts::from_json(&b_value).unwrap();
            prop_assert_eq!(a.fingerprint(), b.fingerprint());
        }

        #[test]
        fn panel_body_reads_back_to_the_same_fingerprint(cents in 1u64..1_000_000_000, ref_id in any::<u32>()) {
            let mut v = valid_base();
            v["amount"] = json!(format!("{}.{:02}", cents / 100, cents % 100));
            v["referenceId"] = json!(ref_id);
            let mut v2 = v.clone();
            v2.as_object_mut().unwrap().remove("externalId");
            let c = CreatePayout::from_json(&v2).unwrap();
            let again = CreatePayout::from_json(&c.panel_body()).unwrap();
            prop_assert_eq!(c.fingerprint(), again.fingerprint());
            prop_assert_eq!(c, again);
        }
    }
}
