//! Human-readable messages for jaq load (lex/parse) and compile errors,
//! which jaq-core does not format itself.

use jaq_core::compile::Undefined;
use jaq_core::load::{self, lex, parse, File};

/// Longest snippet of offending text quoted in a message.
const SNIPPET_CHARS: usize = 24;

/// Format lexer, parser and module-loading errors.
pub(super) fn load_errors(source: &str, errs: &load::Errors<&str, ()>) -> String {
    let mut msgs = Vec::new();
    for (file, err) in errs {
        match err {
            load::Error::Io(items) => {
                for (path, why) in items {
                    msgs.push(located(
                        source,
                        file,
                        path,
                        &format!("cannot load module {path:?}: {why}"),
                    ));
                }
            }
            load::Error::Lex(items) => {
                for (expect, rest) in items {
                    let what = match expect {
                        lex::Expect::Delim(open) => format!("closing delimiter for {open}"),
                        other => other.as_str().to_owned(),
                    };
                    msgs.push(located(source, file, rest, &format!("expected {what}")));
                }
            }
            load::Error::Parse(items) => {
                for (expect, found) in items {
                    msgs.push(located(
                        source,
                        file,
                        found,
                        &format!("expected {}", expect_str(expect)),
                    ));
                }
            }
        }
    }
    join(msgs)
}

fn expect_str<'a>(expect: &parse::Expect<&'a str>) -> &'a str {
    expect.as_str()
}

/// Format compile errors (undefined filters, variables, ...).
pub(super) fn compile_errors(source: &str, errs: &jaq_core::compile::Errors<&str, ()>) -> String {
    let mut msgs = Vec::new();
    for (file, items) in errs {
        for (name, undefined) in items {
            let what = match undefined {
                Undefined::Filter(arity) => format!("undefined filter {name}/{arity}"),
                other => format!("undefined {} {name}", other.as_str()),
            };
            msgs.push(located(source, file, name, &what));
        }
    }
    join(msgs)
}

fn join(msgs: Vec<String>) -> String {
    if msgs.is_empty() {
        "unknown error".to_owned()
    } else {
        msgs.join("; ")
    }
}

/// `at byte 7 (line 1, column 8), near "foo": <what>` if `part` lies in the
/// user's source, else just `<what>`.
fn located(source: &str, file: &File<&str, ()>, part: &str, what: &str) -> String {
    // `part` is a slice of `file.code`; only the main file is the user's source
    let Some(offset) = offset_in(source, file.code, part) else {
        return what.to_owned();
    };
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let near = snippet(part);
    if near.is_empty() {
        format!("at byte {offset} (line {line}, column {column}), at end of input: {what}")
    } else {
        format!("at byte {offset} (line {line}, column {column}), near {near:?}: {what}")
    }
}

fn offset_in(source: &str, code: &str, part: &str) -> Option<usize> {
    let start = source.as_ptr() as usize;
    let end = start + source.len();
    let code_start = code.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    // the error must come from the main file, whose code is `source` itself
    if code_start != start || p < start || p + part.len() > end {
        return None;
    }
    let offset = p - start;
    source.is_char_boundary(offset).then_some(offset)
}

/// The first line of `part`, at most [`SNIPPET_CHARS`] characters.
fn snippet(part: &str) -> String {
    let line = part.lines().next().unwrap_or("");
    let mut s: String = line.chars().take(SNIPPET_CHARS).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    s
}
