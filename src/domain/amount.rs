//! Payout amounts: exact decimals validated against a currency's minor unit.
//!
//! Input is parsed from its decimal text (a JSON number's own text or a
//! decimal string), never through floating-point arithmetic. The only float
//! involved is the final JSON number sent to the panel, and an amount is
//! accepted only if that number's shortest text reads back as exactly the
//! same decimal.

use std::fmt;

use rust_decimal::Decimal;
use serde_json::{Number, Value};

use super::currency::Currency;
use super::validation::{echo, json_type};

/// Largest accepted amount, in major units: 10^12.
pub const MAX_AMOUNT: u64 = 1_000_000_000_000;

/// Longest amount text accepted before any parsing (characters).
const MAX_TEXT_LEN: usize = 100;

/// A positive, exact amount with no more decimal places than its currency's
/// minor unit, at most [`MAX_AMOUNT`], and exactly representable as a JSON
/// number. Stored normalised (`10.50` is kept as `10.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Amount(Decimal);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be a number or a decimal string such as \"10.50\", got {0}")]
    WrongType(&'static str),
    #[error("must not be empty")]
    Empty,
    #[error("{0} is not a finite number")]
    NotFinite(String),
    #[error("{0} is not a decimal number; write digits with an optional '.' and no thousands separators or currency symbols, e.g. \"1234.50\"")]
    NotANumber(String),
    #[error("must be greater than zero, got {0}")]
    NotPositive(String),
    #[error("{0} is larger than the maximum of {max}", max = MAX_AMOUNT)]
    TooLarge(String),
    #[error("has {places} decimal {}, {currency} allows {allowed}", if *places == 1 { "place" } else { "places" })]
    TooManyDecimalPlaces {
        places: u64,
        currency: &'static str,
        allowed: u8,
    },
    #[error("{0} has too many significant digits to be sent to the panel as an exact JSON number")]
    NotExactInJson(String),
}

/// A parsed decimal: `(-1)^negative × digits × 10^exp`, with `digits`
/// free of leading and trailing zeros (empty means zero).
#[derive(Debug, PartialEq, Eq)]
struct DecimalText {
    negative: bool,
    digits: Vec<u8>,
    exp: i64,
}

/// Parse `[+-]? DIGITS ('.' DIGITS)? ([eE] [+-]? DIGITS)?` exactly.
fn parse_decimal_text(text: &str) -> Result<DecimalText, AmountError> {
    let not_a_number = || AmountError::NotANumber(echo(text));
    let lower = text.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, "nan" | "inf" | "infinity") {
        return Err(AmountError::NotFinite(echo(text)));
    }
    if text.len() > MAX_TEXT_LEN {
        return Err(not_a_number());
    }

    let bytes = text.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if let Some(&b) = bytes.first() {
        if b == b'-' || b == b'+' {
            negative = b == b'-';
            i = 1;
        }
    }
    let take_digits = |start: usize| -> usize {
        bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };

    let int_len = take_digits(i);
    if int_len == 0 {
        return Err(not_a_number());
    }
    let int_digits = &bytes[i..i + int_len];
    i += int_len;

    let mut frac_digits: &[u8] = &[];
    if bytes.get(i) == Some(&b'.') {
        let frac_len = take_digits(i + 1);
        if frac_len == 0 {
            return Err(not_a_number());
        }
        frac_digits = &bytes[i + 1..i + 1 + frac_len];
        i += 1 + frac_len;
    }

    let mut exponent: i64 = 0;
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        let mut exp_negative = false;
        if let Some(&b) = bytes.get(i) {
            if b == b'-' || b == b'+' {
                exp_negative = b == b'-';
                i += 1;
            }
        }
        let exp_len = take_digits(i);
        if exp_len == 0 {
            return Err(not_a_number());
        }
        for &d in &bytes[i..i + exp_len] {
            exponent = exponent
                .saturating_mul(10)
                .saturating_add(i64::from(d - b'0'));
        }
        if exp_negative {
            exponent = -exponent;
        }
        i += exp_len;
    }

    if i != bytes.len() {
        return Err(not_a_number());
    }

    let mut digits: Vec<u8> = int_digits
        .iter()
        .chain(frac_digits)
        .map(|d| d - b'0')
        .skip_while(|&d| d == 0)
        .collect();
    let mut exp = exponent.saturating_sub(frac_digits.len() as i64);
    while digits.last() == Some(&0) {
        digits.pop();
        exp = exp.saturating_add(1);
    }
    if digits.is_empty() {
        exp = 0;
    }
    Ok(DecimalText {
        negative,
        digits,
        exp,
    })
}

/// The JSON number for a normalised positive decimal: an integer for whole
/// amounts, otherwise the nearest f64. `None` when that f64's shortest text
/// does not read back as exactly `value`.
fn exact_json_number(value: Decimal) -> Option<Number> {
    let value = value.normalize();
    if value.scale() == 0 {
        let whole = u64::try_from(value.mantissa()).ok()?;
        return Some(Number::from(whole));
    }
    let text = value.to_string();
    let float: f64 = text.parse().ok()?;
    let number = Number::from_f64(float)?;
    let back = parse_decimal_text(&number.to_string()).ok()?;
    let want = parse_decimal_text(&text).ok()?;
    (back == want).then_some(number)
}

impl Amount {
    /// Validate a JSON value: a number (read from its exact text) or a
    /// decimal string (surrounding whitespace ignored).
    pub fn from_json(value: &Value, currency: Currency) -> Result<Amount, AmountError> {
        match value {
            Value::Number(n) => Amount::parse_str(&n.to_string(), currency),
            Value::String(s) => Amount::parse_str(s, currency),
            other => Err(AmountError::WrongType(json_type(other))),
        }
    }

    /// Validate decimal text such as `"10.50"`, `"1e2"` or `"1.5E+3"`.
    pub fn parse_str(text: &str, currency: Currency) -> Result<Amount, AmountError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        let parsed = parse_decimal_text(text)?;
        if parsed.digits.is_empty() || parsed.negative {
            return Err(AmountError::NotPositive(echo(text)));
        }
        // value < 10^(len + exp); it is >= 10^(len - 1 + exp), so a sum
        // above 13 means at least 10^13.
        let len = parsed.digits.len() as i64;
        if len.saturating_add(parsed.exp) > 13 {
            return Err(AmountError::TooLarge(echo(text)));
        }
        let places = if parsed.exp < 0 {
            parsed.exp.unsigned_abs()
        } else {
            0
        };
        let allowed = currency.minor_units();
        if places > u64::from(allowed) {
            return Err(AmountError::TooManyDecimalPlaces {
                places,
                currency: currency.code(),
                allowed,
            });
        }
        // Now places <= 4 and len + exp <= 13, so len <= 17: fits in i128.
        let mut mantissa: i128 = 0;
        for &d in &parsed.digits {
            mantissa = mantissa * 10 + i128::from(d);
        }
        for _ in 0..parsed.exp.max(0) {
            mantissa *= 10;
        }
        let scale = u32::try_from(places).map_err(|_| AmountError::TooLarge(echo(text)))?;
        let value = Decimal::try_from_i128_with_scale(mantissa, scale)
            .map_err(|_| AmountError::TooLarge(echo(text)))?
            .normalize();
        if value > Decimal::from(MAX_AMOUNT) {
            return Err(AmountError::TooLarge(echo(text)));
        }
        if exact_json_number(value).is_none() {
            return Err(AmountError::NotExactInJson(echo(text)));
        }
        Ok(Amount(value))
    }

    /// Validate an already-exact decimal.
    pub fn new(value: Decimal, currency: Currency) -> Result<Amount, AmountError> {
        Amount::parse_str(&value.to_string(), currency)
    }

    /// The exact, normalised value.
    pub fn value(&self) -> Decimal {
        self.0
    }

    /// The value as the panel's JSON number: an integer for whole amounts,
    /// otherwise an f64 whose shortest text is exactly this decimal.
    pub fn to_json_number(&self) -> Number {
        exact_json_number(self.0)
            .expect("Amount invariant: exact JSON representability is checked at construction")
    }
}

impl fmt::Display for Amount {
    /// The normalised decimal text, e.g. `10.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::str::FromStr;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    fn ok(v: Value, code: &str) -> String {
        Amount::from_json(&v, cur(code)).unwrap().to_string()
    }

    fn err(v: Value, code: &str) -> AmountError {
        Amount::from_json(&v, cur(code)).unwrap_err()
    }

    #[test]
    fn json_integers_and_floats_are_exact() {
        assert_eq!(ok(json!(1), "GBP"), "1");
        assert_eq!(ok(json!(10.1), "GBP"), "10.1");
        assert_eq!(ok(json!(10.5), "GBP"), "10.5");
        assert_eq!(ok(json!(0.01), "GBP"), "0.01");
        assert_eq!(ok(json!(999999999999u64), "JPY"), "999999999999");
        assert_eq!(ok(json!(1.005), "KWD"), "1.005");
    }

    #[test]
    fn json_number_text_with_exponent() {
        for (text, want) in [
            ("1e2", "100"),
            ("1.5E+3", "1500"),
            ("2.5e-1", "0.25"),
            ("1E0", "1"),
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ok(v, "GBP"), want, "{text}");
        }
    }

    #[test]
    fn decimal_strings_are_accepted_and_normalised() {
        assert_eq!(ok(json!("10.50"), "GBP"), "10.5");
        assert_eq!(ok(json!(" 10.50 "), "GBP"), "10.5");
        assert_eq!(ok(json!("007"), "GBP"), "7");
        assert_eq!(ok(json!("1e3"), "JPY"), "1000");
        assert_eq!(ok(json!("+5"), "GBP"), "5");
    }

    #[test]
    fn trailing_zeros_do_not_count_as_decimal_places() {
        assert_eq!(ok(json!("10.500"), "GBP"), "10.5");
        assert_eq!(ok(json!("100.000"), "JPY"), "100");
        assert_eq!(ok(json!(100.0), "JPY"), "100");
    }

    #[test]
    fn too_many_decimal_places_names_currency_and_limit() {
        let e = err(json!("10.505"), "GBP");
        assert_eq!(e.to_string(), "has 3 decimal places, GBP allows 2");
        assert_eq!(
            err(json!(1.5), "JPY").to_string(),
            "has 1 decimal place, JPY allows 0"
        );
        assert_eq!(
            err(json!("1.0001"), "KWD").to_string(),
            "has 4 decimal places, KWD allows 3"
        );
        assert!(Amount::parse_str("1.2345", cur("CLF")).is_ok());
        assert!(Amount::parse_str("1.2345", cur("UYW")).is_ok());
        assert!(Amount::parse_str("1.23456", cur("CLF")).is_err());
        // Float noise is reported honestly rather than rounded away.
        assert!(matches!(
            err(json!(0.1 + 0.2), "GBP"),
            AmountError::TooManyDecimalPlaces { places: 17, .. }
        ));
        // A huge negative exponent is a decimal-places error, not a panic.
        assert!(matches!(
            err(json!("1e-999999999999999999999"), "GBP"),
            AmountError::TooManyDecimalPlaces { .. }
        ));
    }

    #[test]
    fn zero_and_negative_are_rejected() {
        for v in [
            json!(0),
            json!(0.0),
            json!(-0.0),
            json!("0"),
            json!("0.00"),
            json!("-0"),
            json!(-1),
            json!(-10.5),
            json!("-10.50"),
            json!("0e5"),
        ] {
            assert!(
                matches!(err(v.clone(), "GBP"), AmountError::NotPositive(_)),
                "{v}"
            );
        }
    }

    #[test]
    fn non_finite_strings_are_rejected() {
        for s in ["NaN", "nan", "inf", "-inf", "+Infinity", "INF"] {
            assert!(
                matches!(err(json!(s), "GBP"), AmountError::NotFinite(_)),
                "{s}"
            );
        }
    }

    #[test]
    fn malformed_strings_are_rejected() {
        for s in [
            "abc", "10,50", "1,000.00", "£10", "10 GBP", ".5", "5.", "1e", "1e+", "--1", "0x10",
            "1_000", "1.2.3", "١٢",
        ] {
            assert!(
                matches!(err(json!(s), "GBP"), AmountError::NotANumber(_)),
                "{s}"
            );
        }
    }

    #[test]
    fn empty_and_wrong_types_are_rejected() {
        assert_eq!(err(json!(""), "GBP"), AmountError::Empty);
        assert_eq!(err(json!("   "), "GBP"), AmountError::Empty);
        assert_eq!(err(json!(true), "GBP"), AmountError::WrongType("boolean"));
        assert_eq!(err(json!([1]), "GBP"), AmountError::WrongType("array"));
        assert_eq!(err(json!({}), "GBP"), AmountError::WrongType("object"));
        assert_eq!(err(Value::Null, "GBP"), AmountError::WrongType("null"));
    }

    #[test]
    fn cap_is_ten_to_the_twelfth() {
        assert_eq!(ok(json!(1_000_000_000_000u64), "GBP"), "1000000000000");
        assert_eq!(ok(json!("1e12"), "GBP"), "1000000000000");
        for v in [
            json!(1_000_000_000_001u64),
            json!("1000000000000.01"),
            json!(1e13),
            json!(1e300),
            json!("1e999999999999999999999999"),
            json!(u64::MAX),
            json!("9".repeat(90)),
        ] {
            assert!(
                matches!(err(v.clone(), "GBP"), AmountError::TooLarge(_)),
                "{v}"
            );
        }
    }

    #[test]
    fn overlong_text_is_rejected_without_echoing_it() {
        let long = format!("1.{}", "0".repeat(500));
        let e = err(json!(long), "GBP").to_string();
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn json_number_is_integer_or_exact_float() {
        let a = Amount::parse_str("10.50", cur("GBP")).unwrap();
        assert_eq!(a.to_json_number().to_string(), "10.5");
        assert!(a.to_json_number().is_f64());
        let b = Amount::parse_str("100.00", cur("GBP")).unwrap();
        assert_eq!(b.to_json_number().to_string(), "100");
        assert!(b.to_json_number().is_u64());
        let c = Amount::parse_str("999999999999.99", cur("GBP")).unwrap();
        assert_eq!(c.to_json_number().to_string(), "999999999999.99");
    }

    #[test]
    fn values_that_f64_cannot_carry_exactly_are_rejected() {
        // 16 significant digits near the cap: f64 steps there are ~0.000122,
        // so the nearest f64 prints as a different 4-place decimal.
        let e = Amount::parse_str("999999999999.0003", cur("CLF")).unwrap_err();
        assert!(matches!(e, AmountError::NotExactInJson(_)), "{e}");
        assert!(e.to_string().contains("significant digits"));
        // The same magnitude with fewer places is fine.
        assert!(Amount::parse_str("999999999999.01", cur("CLF")).is_ok());
    }

    #[test]
    fn every_two_place_amount_round_trips_through_json() {
        // A sweep of cents across magnitudes: the JSON number must read back exactly.
        let gbp = cur("GBP");
        for whole in [0u64, 1, 9, 99, 12345, 999_999, 123_456_789, 999_999_999_999] {
            for cents in [1u64, 5, 10, 33, 49, 50, 67, 99] {
                let text = format!("{whole}.{cents:02}");
                let a = Amount::parse_str(&text, gbp).unwrap();
                let back = Decimal::from_str(&a.to_json_number().to_string()).unwrap();
                assert_eq!(back, a.value(), "{text}");
            }
        }
    }

    #[test]
    fn new_from_decimal_validates() {
        let gbp = cur("GBP");
        assert!(Amount::new(Decimal::from_str("1.23").unwrap(), gbp).is_ok());
        assert!(Amount::new(Decimal::from_str("1.234").unwrap(), gbp).is_err());
        assert!(Amount::new(Decimal::from_str("-1").unwrap(), gbp).is_err());
        assert!(Amount::new(Decimal::MAX, gbp).is_err());
    }
}
