//! Mapping a sender's JSON payload to canonical commands with a jq filter.
//!
//! A [`Filter`] is compiled once and then run on every delivery. Each output of
//! the filter is one command (a JSON value).
//!
//! # When a filter is compiled
//!
//! Compiling a filter loads jaq's standard library with it (~0.4 ms each in
//! release). [`Filter::lazy`] keeps only the source and compiles on first use,
//! at most once (behind a `OnceLock`, shared by clones), so a cold start pays
//! nothing for routes it does not serve. A filter that does not compile then
//! answers [`MapError::Compile`] on every run (never a panic). Configuration
//! that must not reach production with a broken filter is checked ahead with
//! [`Filter::check`] / [`Filter::compile_now`] (`payout-bridge check-config`,
//! and a test for the routes file compiled into the binary).
//! [`Filter::compile`] compiles at once and reports errors right away.
//! Filters are executed with [jaq](https://docs.rs/jaq-core), a jq clone, with
//! the jaq core, standard-library and JSON definitions loaded, so filters such as
//! `.a | tostring`, `select`, `map`, `to_entries`, `@base64`, `ascii_downcase`,
//! `tonumber`, `now` and `strptime` work as in jq.
//!
//! The filter sees one global variable, `$headers`: an object mapping the
//! (lower-case) request header names to their values.
//!
//! # Safety limits
//!
//! * At most [`MAX_OUTPUTS`] outputs are taken; an infinite generator such as
//!   `repeat(1)` ends with [`MapError::TooManyOutputs`].
//! * `halt` and `halt_error` end the run with [`MapError::Halted`]; they never
//!   exit the process.
//! * Outputs nested deeper than [`MAX_OUTPUT_DEPTH`] are rejected.
//! * The native `env` filter (which would expose the process environment, i.e.
//!   cloud credentials) is not available; neither are `input`/`inputs` nor
//!   module `import`/`include`.
//! * There is no time limit: a filter that loops forever *without producing
//!   outputs* (e.g. `def f: f; f`) is not interrupted. Filters are operator
//!   configuration, not sender input.
//!
//! # Numbers
//!
//! See [`convert`] for what is and isn't preserved exactly. In short: integers
//! in the `i64`/`u64` range and decimals that `f64` represents round-trip;
//! decimal *text* (`10.10`, `123456789012345678.01`) is only kept by
//! [`Filter::run_json`] (raw body) and only if the filter turns it into a
//! string (`.amount | tostring`); numbers that come back as JSON numbers go
//! through `f64`. Non-finite numbers (`nan`, `infinite`, `1/0`) in an output
//! are an error ([`MapError::InvalidOutput`]), never `null`.

mod compile_error;
pub mod convert;
pub mod form;

#[cfg(test)]
mod tests;

pub use form::form_to_json;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use jaq_core::data::JustLut;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{native, Ctx, Exn, RunPtr, ValXs, Vars};
use jaq_json::Val;
use serde_json::Value;

/// Maximum number of outputs (commands) one run may produce.
pub const MAX_OUTPUTS: usize = 1000;

/// Maximum nesting depth of one output value (same as serde_json's parse limit).
pub const MAX_OUTPUT_DEPTH: usize = 128;

/// Maximum nesting depth of a raw body given to [`Filter::run_json`]
/// (serde_json's own limit when parsing into a `Value`).
pub const MAX_INPUT_DEPTH: usize = 128;

/// Name of the global variable holding the request headers.
pub const HEADERS_VAR: &str = "$headers";

/// Longest `halt_error`/`stderr` message kept for [`MapError::Halted`].
const MAX_HALT_MESSAGE: usize = 1024;

/// Native filters of jaq-std that are not offered to mapping filters.
const EXCLUDED_NATIVES: &[&str] = &[
    // exposes the whole process environment (AWS credentials on Lambda)
    "env",
];

type Data = JustLut<Val>;
type JaqFilter = jaq_core::Filter<Data>;

/// Errors of compiling or running a mapping filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The filter does not lex, parse or compile (e.g. undefined filter).
    /// The message gives byte offset, line:column and the offending text.
    #[error("invalid jq filter: {message}")]
    Compile { message: String },
    /// The filter raised an error, e.g. `error("no employees")` (message
    /// `no employees`) or a type error. Non-string error values are given as
    /// compact JSON.
    #[error("jq filter failed: {message}")]
    Runtime { message: String },
    /// The filter called `halt` or `halt_error`. `message` is the value
    /// given to `halt_error` (or the last `stderr` output), if any.
    #[error("jq filter halted with exit code {exit_code}{}", fmt_halt_message(.message))]
    Halted {
        exit_code: i32,
        message: Option<String>,
    },
    /// The filter produced more than `limit` outputs.
    #[error("jq filter produced more than {limit} outputs")]
    TooManyOutputs { limit: usize },
    /// Output number `index` (0-based) cannot be represented as JSON
    /// (non-finite number, byte string, non-string object key, too deep).
    #[error("jq filter output {index} is not valid JSON: {message}")]
    InvalidOutput { index: usize, message: String },
    /// The raw body given to [`Filter::run_json`] is not valid JSON.
    #[error("payload is not valid JSON: {message}")]
    InvalidInput { message: String },
}

fn fmt_halt_message(message: &Option<String>) -> String {
    match message {
        Some(m) => format!(": {}", m.trim_end()),
        None => String::new(),
    }
}

/// A jq mapping filter: its source, compiled at once ([`Filter::compile`]) or
/// on first use ([`Filter::lazy`]).
///
/// `Filter` is `Send + Sync + 'static`: jaq's compiled filter is a lookup table
/// of terms (plain data) and native-function *pointers*, and holds no
/// reference-counted jq values, so it can be shared across threads as is
/// (asserted at compile time just below). All jq values (`jaq_json::Val`,
/// which use `Rc`) are created and dropped inside one call to [`Filter::run`].
#[derive(Clone)]
pub struct Filter {
    source: Arc<str>,
    identity: bool,
    /// the compiled filter, or why it does not compile; filled once, shared by
    /// clones (so cloning a `Filter` is cheap and compiles nothing)
    compiled: Arc<OnceLock<Result<JaqFilter, MapError>>>,
}

// `Filter` is shared across tokio tasks: fail the build if it ever stops being
// `Send + Sync + 'static` (e.g. if jaq started storing `Rc` values in it).
const _: () = {
    const fn assert_send_sync_static<T: Send + Sync + 'static>() {}
    assert_send_sync_static::<Filter>();
};

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("source", &self.source)
            .field("compiled", &self.is_compiled())
            .finish_non_exhaustive()
    }
}

impl Filter {
    /// Compile a jq filter now, with jaq's core, std and JSON definitions and
    /// the global variable `$headers`.
    pub fn compile(source: &str) -> Result<Filter, MapError> {
        let filter = Filter::lazy(source);
        filter.compile_now()?;
        Ok(filter)
    }

    /// A filter compiled on its first run (or [`Filter::compile_now`]), at most
    /// once. Nothing is checked here: a source that does not compile makes every
    /// run answer [`MapError::Compile`]. The identity `.` never needs compiling.
    pub fn lazy(source: &str) -> Filter {
        let identity = source.trim() == ".";
        let compiled = Arc::new(OnceLock::new());
        if identity {
            // jaq's default filter is the identity term and needs no natives
            let _ = compiled.set(Ok(JaqFilter::default()));
        }
        Filter {
            source: Arc::from(source),
            identity,
            compiled,
        }
    }

    /// Checks that `source` compiles (and throws the result away).
    pub fn check(source: &str) -> Result<(), MapError> {
        Filter::lazy(source).compile_now()
    }

    /// Compiles the filter now if that has not happened yet; the compile error,
    /// if any (the same one every run of this filter answers).
    pub fn compile_now(&self) -> Result<(), MapError> {
        self.compiled().map(|_| ())
    }

    /// True once the filter has been compiled (successfully or not).
    pub fn is_compiled(&self) -> bool {
        self.compiled.get().is_some()
    }

    /// The identity filter `.`: every payload is one command, unchanged.
    pub fn identity() -> Filter {
        Filter::lazy(".")
    }

    fn compiled(&self) -> Result<&JaqFilter, MapError> {
        self.compiled
            .get_or_init(|| {
                // jaq is not expected to panic on any source, but a filter is
                // compiled while a delivery waits: turn a panic into an error
                catch_unwind(AssertUnwindSafe(|| compile_jaq(&self.source))).unwrap_or_else(|_| {
                    Err(MapError::Compile {
                        message: "the jq compiler failed on this filter (internal error)".into(),
                    })
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// True if the source trims to `.`; such a filter returns its input as is.
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// The filter's source text, as given to [`Filter::compile`] or [`Filter::lazy`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Run on one payload. Each output is one command (a JSON value).
    ///
    /// `headers`: lower-case header names → values, bound to `$headers` as
    /// an object. An error after some outputs is an error for the whole run.
    ///
    /// Numbers in `input` are what serde_json made of them (`i64`, `u64` or
    /// `f64`): decimal text is already gone. Use [`Filter::run_json`] with the
    /// raw body to keep it.
    pub fn run(
        &self,
        input: Value,
        headers: &BTreeMap<String, String>,
    ) -> Result<Vec<Value>, MapError> {
        if self.identity {
            return Ok(vec![input]);
        }
        self.run_val(convert::json_to_val(input), headers)
    }

    /// Like [`Filter::run`], but on the raw JSON body.
    ///
    /// The body is checked to be one strict JSON value (by serde_json), then
    /// parsed by jaq, which keeps non-integer number literals as their text:
    /// `.amount | tostring` then yields e.g. `"123456789012345678.01"` exactly
    /// as sent, which [`Filter::run`] cannot do.
    pub fn run_json(
        &self,
        body: &[u8],
        headers: &BTreeMap<String, String>,
    ) -> Result<Vec<Value>, MapError> {
        let invalid = |message: String| MapError::InvalidInput { message };
        if self.identity {
            let value =
                serde_json::from_slice::<Value>(body).map_err(|e| invalid(e.to_string()))?;
            return Ok(vec![value]);
        }
        // a filter that does not compile is a configuration error, whatever the body
        self.compile_now()?;
        // jaq's reader recurses without a limit (stack overflow on deep input);
        // serde_json's IgnoredAny does not check depth either
        if exceeds_depth(body, MAX_INPUT_DEPTH) {
            return Err(invalid(format!(
                "nested deeper than {MAX_INPUT_DEPTH} levels"
            )));
        }
        // strict JSON (jaq's reader also accepts NaN, comments, byte strings
        // and several values), without building a serde_json::Value
        serde_json::from_slice::<serde::de::IgnoredAny>(body)
            .map_err(|e| invalid(e.to_string()))?;
        let input = jaq_json::read::parse_single(body).map_err(|e| invalid(e.to_string()))?;
        self.run_val(input, headers)
    }

    fn run_val(
        &self,
        input: Val,
        headers: &BTreeMap<String, String>,
    ) -> Result<Vec<Value>, MapError> {
        let compiled = self.compiled()?;
        let headers = Val::obj(
            headers
                .iter()
                .map(|(k, v)| {
                    let (k, v) = (k.clone().into_bytes(), v.clone().into_bytes());
                    (Val::utf8_str(k), Val::utf8_str(v))
                })
                .collect(),
        );
        LAST_STDERR.with(|s| s.borrow_mut().take());
        let ctx = Ctx::<Data>::new(&compiled.lut, Vars::new([headers]));
        let mut outputs = Vec::new();
        // pull at most MAX_OUTPUTS + 1 items: the extra one tells "too many"
        for item in compiled.id.run((ctx, input)) {
            let value = item.map_err(exception_to_error)?;
            if outputs.len() == MAX_OUTPUTS {
                return Err(MapError::TooManyOutputs { limit: MAX_OUTPUTS });
            }
            let json = convert::val_to_json(&value).map_err(|e| MapError::InvalidOutput {
                index: outputs.len(),
                message: e.to_string(),
            })?;
            outputs.push(json);
        }
        Ok(outputs)
    }
}

/// Compiles `source` with jaq's core, std and JSON definitions (minus
/// [`EXCLUDED_NATIVES`]) and the global variable `$headers`.
fn compile_jaq(source: &str) -> Result<JaqFilter, MapError> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let std_funs = jaq_std::funs::<Data>()
        .filter(|(name, _, _)| !EXCLUDED_NATIVES.contains(name))
        .filter(|(name, _, _)| *name != "stderr_empty")
        .chain([native::run::<Data>((
            "stderr_empty",
            native::v(0),
            capture_stderr as RunPtr<Data>,
        ))]);
    let funs = jaq_core::funs::<Data>()
        .chain(std_funs)
        .chain(jaq_json::funs::<Data>());

    let arena = Arena::default();
    let file = File {
        code: source,
        path: (),
    };
    let modules = Loader::new(defs)
        .load(&arena, file)
        .map_err(|errs| MapError::Compile {
            message: compile_error::load_errors(source, &errs),
        })?;
    jaq_core::Compiler::default()
        .with_funs(funs)
        .with_global_vars([HEADERS_VAR])
        .compile(modules)
        .map_err(|errs| MapError::Compile {
            message: compile_error::compile_errors(source, &errs),
        })
}

/// True if arrays/objects in `json` nest deeper than `limit` (strings are
/// skipped; the text is not otherwise validated).
fn exceeds_depth(json: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > limit {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    false
}

thread_local! {
    /// Last value given to `stderr_empty` (used by `stderr` and `halt_error`)
    /// during the current run on this thread. A run is synchronous, so this
    /// cannot mix up two runs.
    static LAST_STDERR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replacement for jaq-std's `stderr_empty` (which logs): keep the message so
/// that `halt_error` can report it.
fn capture_stderr<'a>(cv: jaq_core::Cv<'a, Data>) -> ValXs<'a, Val> {
    let mut text = convert::val_text(&cv.1);
    if text.len() > MAX_HALT_MESSAGE {
        let mut end = MAX_HALT_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    LAST_STDERR.with(|s| *s.borrow_mut() = Some(text));
    Box::new(std::iter::empty())
}

fn exception_to_error(exn: Exn<'_, Val>) -> MapError {
    match exn.get_err() {
        Ok(err) => MapError::Runtime {
            message: convert::val_text(&err.into_val()),
        },
        Err(exn) => match exn.get_halt() {
            Ok(exit_code) => MapError::Halted {
                exit_code,
                message: LAST_STDERR.with(|s| s.borrow_mut().take()),
            },
            // break / tail-call exceptions do not escape a compiled main filter
            Err(exn) => MapError::Runtime {
                message: format!("internal jq exception: {exn:?}"),
            },
        },
    }
}
