use super::*;
use serde_json::json;

fn no_headers() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn run(filter: &str, input: Value) -> Result<Vec<Value>, MapError> {
    Filter::compile(filter)
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
        .run(input, &no_headers())
}

fn run_json(filter: &str, body: &str) -> Result<Vec<Value>, MapError> {
    Filter::compile(filter)
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
        .run_json(body.as_bytes(), &no_headers())
}

fn compile_message(filter: &str) -> String {
    match Filter::compile(filter) {
        Err(MapError::Compile { message }) => message,
        other => panic!("{filter}: expected a compile error, got {other:?}"),
    }
}

// ---- thread safety ------------------------------------------------------

#[test]
fn filter_is_send_sync_static() {
    // also asserted at compile time in mod.rs
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Filter>();
    assert_send_sync::<MapError>();

    let filter = Filter::compile(".a + $headers.x").unwrap();
    let headers = BTreeMap::from([("x".to_owned(), "!".to_owned())]);
    std::thread::scope(|s| {
        for i in 0..4 {
            let (filter, headers) = (&filter, &headers);
            s.spawn(move || {
                let out = filter.run(json!({"a": format!("t{i}")}), headers).unwrap();
                assert_eq!(out, vec![json!(format!("t{i}!"))]);
            });
        }
    });
}

// ---- identity -------------------------------------------------------------

#[test]
fn identity() {
    let input = json!({"a": [1, 2.5, "x", null, true], "b": {"c": u64::MAX}});
    let id = Filter::identity();
    assert!(id.is_identity());
    assert_eq!(id.source(), ".");
    assert_eq!(
        id.run(input.clone(), &no_headers()).unwrap(),
        vec![input.clone()]
    );

    let compiled = Filter::compile("  .\n").unwrap();
    assert!(compiled.is_identity());
    assert_eq!(compiled.source(), "  .\n");
    assert_eq!(
        compiled.run(input.clone(), &no_headers()).unwrap(),
        vec![input.clone()]
    );
    assert_eq!(
        compiled
            .run_json(input.to_string().as_bytes(), &no_headers())
            .unwrap(),
        vec![input.clone()]
    );

    // the same result through jaq (not the fast path)
    let through_jaq = Filter::compile(". | .").unwrap();
    assert!(!through_jaq.is_identity());
    assert_eq!(
        through_jaq.run(input.clone(), &no_headers()).unwrap(),
        vec![input]
    );
}

// ---- mapping ----------------------------------------------------------------

#[test]
fn pay_run_gives_one_command_per_payslip() {
    let input = json!({"payRun": {
        "id": "pr-7",
        "currency": "GBP",
        "payslips": [
            {"id": "a1", "net": 1234.56, "employee": {"name": "Ann", "iban": "GB00A"}},
            {"id": "b2", "net": 99, "employee": {"name": "Bob", "iban": "GB00B"}}
        ]
    }});
    let filter = r#".payRun as $r | $r.payslips[] | {
        amount: .net,
        currency: $r.currency,
        externalId: ("payslip-" + .id),
        beneficiary: {name: .employee.name, iban: .employee.iban},
        reference: "\($r.id)/\(.id)"
    }"#;
    let out = run(filter, input).unwrap();
    assert_eq!(
        out,
        vec![
            json!({"amount": 1234.56, "currency": "GBP", "externalId": "payslip-a1",
                   "beneficiary": {"name": "Ann", "iban": "GB00A"}, "reference": "pr-7/a1"}),
            json!({"amount": 99, "currency": "GBP", "externalId": "payslip-b2",
                   "beneficiary": {"name": "Bob", "iban": "GB00B"}, "reference": "pr-7/b2"}),
        ]
    );
}

#[test]
fn headers_variable() {
    let filter = Filter::compile(
        r#"{sender: $headers["x-sender"], missing: $headers["nope"], n: ($headers | length)}"#,
    )
    .unwrap();
    let headers = BTreeMap::from([
        ("x-sender".to_owned(), "acme".to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ]);
    assert_eq!(
        filter.run(json!({}), &headers).unwrap(),
        vec![json!({"sender": "acme", "missing": null, "n": 2})]
    );
    // empty headers: an empty object
    assert_eq!(run("$headers", json!(null)).unwrap(), vec![json!({})]);
}

#[test]
fn standard_library_is_available() {
    let input = json!({"Name": "ÉVE Smith", "n": "42", "tags": {"a": 1, "b": 2},
                       "list": [3, 1, 2], "when": "2024-03-01T10:00:00Z"});
    let cases = [
        (".n | tonumber", json!(42)),
        (".Name | ascii_downcase", json!("Éve smith")),
        (".list | map(. * 2)", json!([6, 2, 4])),
        ("[.list[] | select(. > 1)]", json!([3, 2])),
        (".tags | to_entries | map(.key)", json!(["a", "b"])),
        (".n | @base64", json!("NDI=")),
        (".n | @base64 | @base64d", json!("42")),
        (".list | sort", json!([1, 2, 3])),
        (".list | tostring", json!("[3,1,2]")),
        (".when | fromdateiso8601", json!(1709287200)),
        (
            r#".when | strptime("%Y-%m-%dT%H:%M:%SZ") | mktime"#,
            json!(1709287200),
        ),
        ("now | type", json!("number")),
        (r#".Name | test("smith"; "i")"#, json!(true)),
        (r#"[.Name | splits(" ")]"#, json!(["ÉVE", "Smith"])),
        ("[limit(2; .list[])]", json!([3, 1])),
        ("{a: 1} + {b: 2} | keys", json!(["a", "b"])),
        (r#"try error("x") catch ("caught " + .)"#, json!("caught x")),
        (".missing // \"default\"", json!("default")),
        ("def double: . * 2; .list | map(double)", json!([6, 2, 4])),
        ("[paths] | length", json!(10)),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            run(filter, input.clone()).unwrap(),
            vec![expected],
            "{filter}"
        );
    }
}

#[test]
fn empty_gives_no_output() {
    assert_eq!(run("empty", json!({"a": 1})).unwrap(), Vec::<Value>::new());
    assert_eq!(
        run(".items[]", json!({"items": []})).unwrap(),
        Vec::<Value>::new()
    );
    assert_eq!(
        run(".[] | select(.ok)", json!([{"ok": false}])).unwrap(),
        Vec::<Value>::new()
    );
}

// ---- errors -----------------------------------------------------------------

#[test]
fn compile_error_shows_position_and_text() {
    let msg = compile_message(".a | foo");
    assert!(msg.contains("byte 5"), "{msg}");
    assert!(msg.contains("line 1, column 6"), "{msg}");
    assert!(msg.contains("\"foo\""), "{msg}");
    assert!(msg.contains("undefined filter foo/0"), "{msg}");

    let msg = compile_message(".a |\n  {x: $nope}");
    assert!(msg.contains("line 2, column 7"), "{msg}");
    assert!(msg.contains("undefined variable $nope"), "{msg}");

    // parse error
    let msg = compile_message(".a | | .b");
    assert!(msg.contains("byte 5 (line 1, column 6)"), "{msg}");
    assert!(msg.contains("expected term"), "{msg}");

    // lex error: unclosed delimiter
    let msg = compile_message("{a: (.b}");
    assert!(msg.contains("expected closing delimiter for ("), "{msg}");
    assert!(msg.contains("byte "), "{msg}");

    // end of input
    let msg = compile_message(".a |");
    assert!(msg.contains("at end of input"), "{msg}");
    assert!(msg.contains("byte 4"), "{msg}");

    // no module loading
    let msg = compile_message(r#"import "foo" as foo; ."#);
    assert!(msg.contains("cannot load module"), "{msg}");

    // the Display of the error
    let err = Filter::compile("foo(1)").unwrap_err();
    assert!(
        err.to_string().starts_with("invalid jq filter: at byte 0"),
        "{err}"
    );

    assert!(matches!(Filter::compile(""), Err(MapError::Compile { .. })));
}

#[test]
fn env_and_input_are_not_available() {
    assert!(compile_message("env").contains("undefined filter env/0"));
    assert!(compile_message("$ENV").contains("undefined variable $ENV"));
    assert!(compile_message("input").contains("undefined filter input/0"));
    assert!(compile_message("[inputs]").contains("undefined filter inputs/0"));
}

#[test]
fn runtime_error_message() {
    assert_eq!(
        run(
            r#"if (.employees | length) == 0 then error("no employees") else . end"#,
            json!({"employees": []})
        ),
        Err(MapError::Runtime {
            message: "no employees".to_owned()
        })
    );
    assert_eq!(
        run(r#"error({code: 7})"#, json!(null)),
        Err(MapError::Runtime {
            message: r#"{"code":7}"#.to_owned()
        })
    );
    let Err(MapError::Runtime { message }) = run(".a + 1", json!({"a": "x"})) else {
        panic!("expected a runtime error")
    };
    assert!(message.contains("cannot calculate"), "{message}");
    assert_eq!(
        MapError::Runtime {
            message: "no employees".to_owned()
        }
        .to_string(),
        "jq filter failed: no employees"
    );
}

#[test]
fn error_after_some_outputs_fails_the_whole_run() {
    assert_eq!(
        run(
            r#".[] | if . == 3 then error("bad item \(.)") else . end"#,
            json!([1, 2, 3, 4])
        ),
        Err(MapError::Runtime {
            message: "bad item 3".to_owned()
        })
    );
    assert_eq!(
        run("1, 2, (3 | halt_error)", json!(null)),
        Err(MapError::Halted {
            exit_code: 5,
            message: Some("3".to_owned())
        })
    );
}

#[test]
fn halt_does_not_exit_the_process() {
    assert_eq!(
        run("halt", json!(null)),
        Err(MapError::Halted {
            exit_code: 0,
            message: None
        })
    );
    assert_eq!(
        run(r#""stop here\n" | halt_error"#, json!(null)),
        Err(MapError::Halted {
            exit_code: 5,
            message: Some("stop here\n".to_owned())
        })
    );
    assert_eq!(
        run(r#"{reason: "x"} | halt_error(2)"#, json!(null)),
        Err(MapError::Halted {
            exit_code: 2,
            message: Some(r#"{"reason":"x"}"#.to_owned())
        })
    );
    // halt is not catchable, like in jq
    assert_eq!(
        run(r#"try halt_error(1) catch "caught""#, json!("m")),
        Err(MapError::Halted {
            exit_code: 1,
            message: Some("m".to_owned())
        })
    );
    // a stderr message from an earlier run does not leak into the next one
    let filter = Filter::compile("if . then stderr else halt end").unwrap();
    assert_eq!(
        filter.run(json!("noise"), &no_headers()).unwrap(),
        vec![json!("noise")]
    );
    assert_eq!(
        filter.run(json!(false), &no_headers()),
        Err(MapError::Halted {
            exit_code: 0,
            message: None
        })
    );
    let err = MapError::Halted {
        exit_code: 5,
        message: Some("stop here\n".to_owned()),
    };
    assert_eq!(
        err.to_string(),
        "jq filter halted with exit code 5: stop here"
    );
}

#[test]
fn infinite_generator_stops_at_the_limit() {
    assert_eq!(
        run("repeat(1)", json!(null)),
        Err(MapError::TooManyOutputs { limit: MAX_OUTPUTS })
    );
    assert_eq!(
        run("range(infinite)", json!(null)),
        Err(MapError::TooManyOutputs { limit: MAX_OUTPUTS })
    );
    // exactly at the limit is fine, one more is not
    assert_eq!(
        run(&format!("range({MAX_OUTPUTS})"), json!(null))
            .unwrap()
            .len(),
        MAX_OUTPUTS
    );
    assert_eq!(
        run(&format!("range({})", MAX_OUTPUTS + 1), json!(null)),
        Err(MapError::TooManyOutputs { limit: MAX_OUTPUTS })
    );
}

#[test]
fn invalid_outputs_are_errors() {
    let invalid = |filter: &str, input: Value| match run(filter, input) {
        Err(MapError::InvalidOutput { index, message }) => (index, message),
        other => panic!("{filter}: expected InvalidOutput, got {other:?}"),
    };
    let (index, message) = invalid("{amount: (.a / 0)}", json!({"a": 1}));
    assert_eq!(index, 0);
    assert!(
        message.contains("at .amount") && message.contains("Infinity"),
        "{message}"
    );

    let (index, message) = invalid("1, {x: [nan]}", json!(null));
    assert_eq!(index, 1);
    assert!(
        message.contains("at .x[0]") && message.contains("NaN"),
        "{message}"
    );

    let (_, message) = invalid("-infinite", json!(null));
    assert!(
        message.contains("at .:") && message.contains("-Infinity"),
        "{message}"
    );

    let (_, message) = invalid(r#"{"a b": ("x" | tobytes)}"#, json!(null));
    assert!(
        message.contains(r#"at ["a b"]"#) && message.contains("byte string"),
        "{message}"
    );

    let (_, message) = invalid("{(1): 2}", json!(null));
    assert!(
        message.contains("object key 1 is not a string"),
        "{message}"
    );

    let (_, message) = invalid("reduce range(200) as $i (0; [.])", json!(null));
    assert!(message.contains("nested deeper than 128"), "{message}");
    // 128 levels are fine
    assert_eq!(
        run(
            "reduce range(127) as $i (0; [.]) | [paths] | length",
            json!(null)
        )
        .unwrap(),
        vec![json!(127)]
    );
}

#[test]
fn invalid_json_body() {
    for body in [
        "",
        "{",
        "NaN",
        "{\"a\": 1} # comment",
        "[1] [2]",
        "{\"a\": b\"x\"}",
    ] {
        assert!(
            matches!(run_json(".", body), Err(MapError::InvalidInput { .. })),
            "{body}"
        );
        assert!(
            matches!(run_json(".a", body), Err(MapError::InvalidInput { .. })),
            "{body}"
        );
    }
    // nesting: 128 levels are fine, 129 are not; brackets in strings do not count
    let nested = |n: usize| "[".repeat(n) + &"]".repeat(n);
    assert_eq!(
        run_json("[paths] | length", &nested(128)).unwrap(),
        vec![json!(127)]
    );
    assert!(matches!(
        run_json("length", &nested(129)),
        Err(MapError::InvalidInput { .. })
    ));
    let in_string = format!("{{\"s\": \"{}\\\"\"}}", "[{".repeat(200));
    assert_eq!(
        run_json(".s | length", &in_string).unwrap(),
        vec![json!(401)]
    );
    let deep = nested(10_000);
    assert!(matches!(
        run_json(".", &deep),
        Err(MapError::InvalidInput { .. })
    ));
    assert!(matches!(
        run_json("length", &deep),
        Err(MapError::InvalidInput { .. })
    ));
}

// ---- numbers ----------------------------------------------------------------

#[test]
fn numbers_through_serde_json_value() {
    // serde_json (no arbitrary_precision) parses the body: decimals are f64
    let input: Value = serde_json::from_str(
        r#"{"a": 10.10, "b": 123456789012345678.01, "c": 9007199254740993,
            "d": 18446744073709551615, "e": -9223372036854775808, "f": 100000000000000000000,
            "g": 0.1, "h": 1e2, "i": 100.0}"#,
    )
    .unwrap();
    let out = run(".", input.clone()).unwrap(); // fast path
    assert_eq!(out, vec![input.clone()]);
    let out = run(". | .", input.clone()).unwrap(); // through jaq
    assert_eq!(out, vec![input.clone()]);
    let out = &out[0];
    assert_eq!(out["a"].to_string(), "10.1");
    // the nearest f64; this relies on serde_json's `float_roundtrip` feature
    // (enabled in Cargo.toml): without it serde_json's parser gives
    // 1.2345678901234566e17, one ULP (16) less
    assert_eq!(out["b"].to_string(), "1.2345678901234568e+17");
    assert_eq!(out["c"].to_string(), "9007199254740993"); // i64: exact
    assert_eq!(out["d"].to_string(), "18446744073709551615"); // u64: exact
    assert_eq!(out["e"].to_string(), "-9223372036854775808");
    assert_eq!(out["f"].to_string(), "1e+20"); // beyond u64: f64 already in serde_json
    assert_eq!(out["g"].to_string(), "0.1");
    assert_eq!(out["h"].to_string(), "100.0");
    assert_eq!(out["i"].to_string(), "100.0");

    // tostring sees the f64, not the original text
    let strings = run(
        "{a: .a | tostring, b: .b | tostring, c: .c | tostring, d: .d | tostring}",
        input,
    )
    .unwrap();
    assert_eq!(
        strings,
        vec![json!({"a": "10.1", "b": "1.2345678901234568e17",
                    "c": "9007199254740993", "d": "18446744073709551615"})]
    );
}

#[test]
fn numbers_through_raw_body_keep_decimal_text_as_strings() {
    let body = r#"{"a": 10.10, "b": 123456789012345678.01, "c": 9007199254740993,
                   "d": 18446744073709551615, "f": 100000000000000000000, "h": 1.5E+3,
                   "i": 100.0, "n": -0.50}"#;
    // as strings: exactly the text that was sent
    let out = run_json(
        "{a: .a | tostring, b: .b | tostring, c: .c | tostring, d: .d | tostring,
          f: .f | tostring, h: .h | tostring, i: .i | tojson, n: .n | tostring}",
        body,
    )
    .unwrap();
    assert_eq!(
        out,
        vec![
            json!({"a": "10.10", "b": "123456789012345678.01", "c": "9007199254740993",
                    "d": "18446744073709551615", "f": "100000000000000000000",
                    "h": "1.5E+3", "i": "100.0", "n": "-0.50"})
        ]
    );
    // as numbers: through f64, except integers within i64/u64
    let out = run_json("{a, b, c, d, f, h, i, n}", body).unwrap();
    let o = &out[0];
    assert_eq!(o["a"].to_string(), "10.1");
    assert_eq!(o["b"].to_string(), "1.2345678901234568e+17"); // nearest f64
    assert_eq!(o["c"].to_string(), "9007199254740993");
    assert_eq!(o["d"].to_string(), "18446744073709551615");
    assert_eq!(o["f"].to_string(), "1e+20"); // big integer beyond u64 → f64
    assert_eq!(o["h"].to_string(), "1500.0");
    assert_eq!(o["i"].to_string(), "100.0");
    assert_eq!(o["n"].to_string(), "-0.5");
    // computing on a decimal makes it f64
    assert_eq!(
        run_json(".a * 100 | tostring", body).unwrap(),
        vec![json!("1010.0")]
    );
    assert_eq!(
        run_json(".a + 0 | tostring", body).unwrap(),
        vec![json!("10.1")]
    );
    assert_eq!(
        run_json("-.n | tostring", body).unwrap(),
        vec![json!("0.50")]
    );
    // comparisons still work numerically
    assert_eq!(run_json(".a == 10.1", body).unwrap(), vec![json!(true)]);
}

#[test]
fn numbers_computed_in_the_filter() {
    let cases = [
        ("10.10", "10.1"),                    // literal decimal → f64 on output
        ("10.10 | tostring", "\"10.10\""),    // ... but its text as a string
        ("1 + 2", "3"),                       // integer arithmetic stays integer
        ("10 / 2", "5.0"),                    // division gives a float
        ("0.1 + 0.2", "0.30000000000000004"), // f64 arithmetic
        ("9223372036854775807 + 1", "9223372036854775808"), // BigInt within u64
        ("18446744073709551615 + 1", "1.8446744073709552e+19"), // BigInt beyond u64 → f64
        ("-9223372036854775808 - 1", "-9.223372036854776e+18"), // BigInt below i64 → f64
        ("\"12.34\" | tonumber | tostring", "\"12.34\""),
        ("1234.5 | floor", "1234"),
        ("1e1000 | tostring", "\"1e1000\""),
    ];
    for (filter, expected) in cases {
        let out = run(filter, json!(null)).unwrap();
        assert_eq!(out.len(), 1, "{filter}");
        assert_eq!(out[0].to_string(), expected, "{filter}");
    }
    // a decimal literal too large for f64 is not finite as a number
    assert!(matches!(
        run("1e1000", json!(null)),
        Err(MapError::InvalidOutput { .. })
    ));
}

// ---- forms -----------------------------------------------------------------

#[test]
fn form_to_json_cases() {
    assert_eq!(form_to_json(b""), json!({}));
    assert_eq!(
        form_to_json(b"amount=10.10&currency=GBP&name=Ann+Smith&note=a%26b%3Dc"),
        json!({"amount": "10.10", "currency": "GBP", "name": "Ann Smith", "note": "a&b=c"})
    );
    assert_eq!(
        form_to_json(b"id=1&id=2&x=y&id=3"),
        json!({"id": ["1", "2", "3"], "x": "y"})
    );
    assert_eq!(
        form_to_json(b"a[b]=1&a%5Bc%5D=2&list[]=x&list[]=y"),
        json!({"a[b]": "1", "a[c]": "2", "list[]": ["x", "y"]})
    );
    assert_eq!(
        form_to_json(b"flag&empty=&&=v"),
        json!({"flag": "", "empty": "", "": "v"})
    );
    assert_eq!(form_to_json(b"k=%FF%E2%82%AC"), json!({"k": "\u{FFFD}€"}));
    assert_eq!(form_to_json("k=é".as_bytes()), json!({"k": "é"}));

    // a form body through a filter
    let filter = Filter::compile("{amount: .amount, ids: [.id[]]}").unwrap();
    assert_eq!(
        filter
            .run(form_to_json(b"amount=12.50&id=a&id=b"), &no_headers())
            .unwrap(),
        vec![json!({"amount": "12.50", "ids": ["a", "b"]})]
    );
}

// ---- lazy compilation -----------------------------------------------------

#[test]
fn lazy_filter_compiles_on_first_run_once_for_all_clones() {
    let filter = Filter::lazy(".a | tostring");
    assert!(!filter.is_compiled());
    let clone = filter.clone();
    assert_eq!(
        clone.run(json!({"a": 1}), &no_headers()).unwrap(),
        vec![json!("1")]
    );
    // the clone shares the compiled filter
    assert!(filter.is_compiled() && clone.is_compiled());
    assert_eq!(
        filter.run_json(br#"{"a": 1.50}"#, &no_headers()).unwrap(),
        vec![json!("1.50")]
    );
    assert!(filter.compile_now().is_ok());
}

#[test]
fn identity_needs_no_compiling() {
    assert!(Filter::identity().is_compiled());
    assert!(Filter::lazy(" . ").is_compiled());
    assert!(Filter::lazy(" . ").is_identity());
}

#[test]
fn lazy_filter_that_does_not_compile_answers_the_compile_error_on_every_run() {
    let source = "{amount: .net | nosuchfilter}";
    let eager = compile_message(source);
    let filter = Filter::lazy(source);
    assert_eq!(filter.source(), source);
    let expected = MapError::Compile { message: eager };
    assert_eq!(Filter::check(source), Err(expected.clone()));
    for _ in 0..2 {
        assert_eq!(
            filter.run(json!({"net": 1}), &no_headers()),
            Err(expected.clone())
        );
        // the compile error wins over a body that is not JSON either
        assert_eq!(
            filter.run_json(b"not json", &no_headers()),
            Err(expected.clone())
        );
        assert_eq!(filter.compile_now(), Err(expected.clone()));
    }
    assert!(filter.is_compiled());
    // a syntax error too
    assert!(matches!(
        Filter::lazy("{a: ").run(json!({}), &no_headers()),
        Err(MapError::Compile { .. })
    ));
}

#[test]
fn lazy_filter_first_run_from_many_threads_compiles_once_and_answers_all() {
    let filter = Filter::lazy(".a + $headers.x");
    let headers = BTreeMap::from([("x".to_owned(), "!".to_owned())]);
    std::thread::scope(|s| {
        for i in 0..8 {
            let (filter, headers) = (&filter, &headers);
            s.spawn(move || {
                let out = filter.run(json!({"a": format!("t{i}")}), headers).unwrap();
                assert_eq!(out, vec![json!(format!("t{i}!"))]);
            });
        }
    });
    let broken = Filter::lazy("nosuchfilter");
    std::thread::scope(|s| {
        for _ in 0..8 {
            let broken = &broken;
            s.spawn(move || {
                assert!(matches!(
                    broken.run(json!({}), &BTreeMap::new()),
                    Err(MapError::Compile { .. })
                ));
            });
        }
    });
}
