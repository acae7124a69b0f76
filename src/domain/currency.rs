//! ISO 4217 currency codes and their minor units.
//!
//! The table holds ISO 4217 List One as in force in 2026: every active
//! currency and fund code. Codes withdrawn in recent amendments (ANG → XCG,
//! BGN → EUR, CUC, HRK → EUR, SLL → SLE, ZWL → ZWG) are not in it.
//! Codes whose minor unit is "N.A." (precious metals, bond-market units,
//! SDR, XSU, XUA, the testing code XTS and "no currency" XXX) are listed with
//! `None`: they are known, but cannot be paid out.

use std::fmt;

/// A validated, payable ISO 4217 currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    minor_units: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    #[error("must be a 3-letter ISO 4217 code such as GBP, got {0}")]
    Malformed(String),
    #[error("{0} is not an active ISO 4217 currency code")]
    Unknown(String),
    #[error("{0} is an ISO 4217 unit without a minor unit (precious metal, bond-market or accounting unit, testing or \"no currency\" code) and cannot be paid out")]
    NotPayable(&'static str),
}

impl Currency {
    /// Parse a code: surrounding whitespace is ignored, letters are
    /// upper-cased, and the code must be a payable entry of [`ISO_4217`].
    pub fn parse(input: &str) -> Result<Currency, CurrencyError> {
        let trimmed = input.trim();
        if trimmed.len() != 3 || !trimmed.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(CurrencyError::Malformed(super::validation::echo(trimmed)));
        }
        let code = trimmed.to_ascii_uppercase();
        match ISO_4217.binary_search_by(|(c, _)| (*c).cmp(code.as_str())) {
            Ok(i) => {
                let (code, minor) = ISO_4217[i];
                match minor {
                    Some(minor_units) => Ok(Currency { code, minor_units }),
                    None => Err(CurrencyError::NotPayable(code)),
                }
            }
            Err(_) => Err(CurrencyError::Unknown(code)),
        }
    }

    /// The upper-case three-letter code, e.g. `"GBP"`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Number of decimal places of the minor unit (GBP 2, JPY 0, KWD 3, CLF 4).
    pub fn minor_units(&self) -> u8 {
        self.minor_units
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl std::str::FromStr for Currency {
    type Err = CurrencyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

/// ISO 4217 List One: `(code, minor units)`, sorted by code (binary
/// searched). `None` = "N.A." in the standard.
pub const ISO_4217: [(&str, Option<u8>); 178] = [
    ("AED", Some(2)),
    ("AFN", Some(2)),
    ("ALL", Some(2)),
    ("AMD", Some(2)),
    ("AOA", Some(2)),
    ("ARS", Some(2)),
    ("AUD", Some(2)),
    ("AWG", Some(2)),
    ("AZN", Some(2)),
    ("BAM", Some(2)),
    ("BBD", Some(2)),
    ("BDT", Some(2)),
    ("BHD", Some(3)),
    ("BIF", Some(0)),
    ("BMD", Some(2)),
    ("BND", Some(2)),
    ("BOB", Some(2)),
    ("BOV", Some(2)),
    ("BRL", Some(2)),
    ("BSD", Some(2)),
    ("BTN", Some(2)),
    ("BWP", Some(2)),
    ("BYN", Some(2)),
    ("BZD", Some(2)),
    ("CAD", Some(2)),
    ("CDF", Some(2)),
    ("CHE", Some(2)),
    ("CHF", Some(2)),
    ("CHW", Some(2)),
    ("CLF", Some(4)),
    ("CLP", Some(0)),
    ("CNY", Some(2)),
    ("COP", Some(2)),
    ("COU", Some(2)),
    ("CRC", Some(2)),
    ("CUP", Some(2)),
    ("CVE", Some(2)),
    ("CZK", Some(2)),
    ("DJF", Some(0)),
    ("DKK", Some(2)),
    ("DOP", Some(2)),
    ("DZD", Some(2)),
    ("EGP", Some(2)),
    ("ERN", Some(2)),
    ("ETB", Some(2)),
    ("EUR", Some(2)),
    ("FJD", Some(2)),
    ("FKP", Some(2)),
    ("GBP", Some(2)),
    ("GEL", Some(2)),
    ("GHS", Some(2)),
    ("GIP", Some(2)),
    ("GMD", Some(2)),
    ("GNF", Some(0)),
    ("GTQ", Some(2)),
    ("GYD", Some(2)),
    ("HKD", Some(2)),
    ("HNL", Some(2)),
    ("HTG", Some(2)),
    ("HUF", Some(2)),
    ("IDR", Some(2)),
    ("ILS", Some(2)),
    ("INR", Some(2)),
    ("IQD", Some(3)),
    ("IRR", Some(2)),
    ("ISK", Some(0)),
    ("JMD", Some(2)),
    ("JOD", Some(3)),
    ("JPY", Some(0)),
    ("KES", Some(2)),
    ("KGS", Some(2)),
    ("KHR", Some(2)),
    ("KMF", Some(0)),
    ("KPW", Some(2)),
    ("KRW", Some(0)),
    ("KWD", Some(3)),
    ("KYD", Some(2)),
    ("KZT", Some(2)),
    ("LAK", Some(2)),
    ("LBP", Some(2)),
    ("LKR", Some(2)),
    ("LRD", Some(2)),
    ("LSL", Some(2)),
    ("LYD", Some(3)),
    ("MAD", Some(2)),
    ("MDL", Some(2)),
    ("MGA", Some(2)),
    ("MKD", Some(2)),
    ("MMK", Some(2)),
    ("MNT", Some(2)),
    ("MOP", Some(2)),
    ("MRU", Some(2)),
    ("MUR", Some(2)),
    ("MVR", Some(2)),
    ("MWK", Some(2)),
    ("MXN", Some(2)),
    ("MXV", Some(2)),
    ("MYR", Some(2)),
    ("MZN", Some(2)),
    ("NAD", Some(2)),
    ("NGN", Some(2)),
    ("NIO", Some(2)),
    ("NOK", Some(2)),
    ("NPR", Some(2)),
    ("NZD", Some(2)),
    ("OMR", Some(3)),
    ("PAB", Some(2)),
    ("PEN", Some(2)),
    ("PGK", Some(2)),
    ("PHP", Some(2)),
    ("PKR", Some(2)),
    ("PLN", Some(2)),
    ("PYG", Some(0)),
    ("QAR", Some(2)),
    ("RON", Some(2)),
    ("RSD", Some(2)),
    ("RUB", Some(2)),
    ("RWF", Some(0)),
    ("SAR", Some(2)),
    ("SBD", Some(2)),
    ("SCR", Some(2)),
    ("SDG", Some(2)),
    ("SEK", Some(2)),
    ("SGD", Some(2)),
    ("SHP", Some(2)),
    ("SLE", Some(2)),
    ("SOS", Some(2)),
    ("SRD", Some(2)),
    ("SSP", Some(2)),
    ("STN", Some(2)),
    ("SVC", Some(2)),
    ("SYP", Some(2)),
    ("SZL", Some(2)),
    ("THB", Some(2)),
    ("TJS", Some(2)),
    ("TMT", Some(2)),
    ("TND", Some(3)),
    ("TOP", Some(2)),
    ("TRY", Some(2)),
    ("TTD", Some(2)),
    ("TWD", Some(2)),
    ("TZS", Some(2)),
    ("UAH", Some(2)),
    ("UGX", Some(0)),
    ("USD", Some(2)),
    ("USN", Some(2)),
    ("UYI", Some(0)),
    ("UYU", Some(2)),
    ("UYW", Some(4)),
    ("UZS", Some(2)),
    ("VED", Some(2)),
    ("VES", Some(2)),
    ("VND", Some(0)),
    ("VUV", Some(0)),
    ("WST", Some(2)),
    ("XAD", Some(2)),
    ("XAF", Some(0)),
    ("XAG", None),
    ("XAU", None),
    ("XBA", None),
    ("XBB", None),
    ("XBC", None),
    ("XBD", None),
    ("XCD", Some(2)),
    ("XCG", Some(2)),
    ("XDR", None),
    ("XOF", Some(0)),
    ("XPD", None),
    ("XPF", Some(0)),
    ("XPT", None),
    ("XSU", None),
    ("XTS", None),
    ("XUA", None),
    ("XXX", None),
    ("YER", Some(2)),
    ("ZAR", Some(2)),
    ("ZMW", Some(2)),
    ("ZWG", Some(2)),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_well_formed() {
        for pair in ISO_4217.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} !< {}", pair[0].0, pair[1].0);
        }
        for (code, minor) in ISO_4217 {
            assert_eq!(code.len(), 3);
            assert!(code.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(minor.is_none_or(|m| m <= 4), "{code}");
        }
    }

    #[test]
    fn minor_units_of_notable_currencies() {
        let cases = [
            ("GBP", 2),
            ("EUR", 2),
            ("USD", 2),
            ("JPY", 0),
            ("KRW", 0),
            ("ISK", 0),
            ("KWD", 3),
            ("BHD", 3),
            ("JOD", 3),
            ("OMR", 3),
            ("TND", 3),
            ("IQD", 3),
            ("LYD", 3),
            ("CLF", 4),
            ("UYW", 4),
            ("XCG", 2),
            ("ZWG", 2),
            ("SLE", 2),
        ];
        for (code, minor) in cases {
            assert_eq!(
                Currency::parse(code).unwrap().minor_units(),
                minor,
                "{code}"
            );
        }
    }

    #[test]
    fn lower_case_and_whitespace_are_normalised() {
        let c = Currency::parse(" gbp ").unwrap();
        assert_eq!(c.code(), "GBP");
        assert_eq!(c.to_string(), "GBP");
        assert_eq!("eUr".parse::<Currency>().unwrap().code(), "EUR");
    }

    #[test]
    fn malformed_codes_are_rejected() {
        for bad in ["", "GB", "GBPX", "G1P", "£££", "GB ", "ÄBC"] {
            assert!(
                matches!(Currency::parse(bad), Err(CurrencyError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unknown_and_withdrawn_codes_are_rejected() {
        for bad in [
            "ABC", "QQQ", "HRK", "ANG", "BGN", "SLL", "ZWL", "CUC", "DEM",
        ] {
            assert_eq!(
                Currency::parse(bad),
                Err(CurrencyError::Unknown(bad.to_owned())),
                "{bad}"
            );
        }
        let e = Currency::parse("abc").unwrap_err();
        assert_eq!(e.to_string(), "ABC is not an active ISO 4217 currency code");
    }

    #[test]
    fn codes_without_minor_unit_are_not_payable() {
        for code in [
            "XAU", "XAG", "XPT", "XPD", "XDR", "XTS", "XXX", "XBA", "XSU", "XUA",
        ] {
            assert_eq!(Currency::parse(code), Err(CurrencyError::NotPayable(code)));
        }
    }

    #[test]
    fn long_malformed_input_is_truncated_in_message() {
        let e = Currency::parse(&"x".repeat(1000)).unwrap_err().to_string();
        assert!(e.len() < 150, "{e}");
    }
}
