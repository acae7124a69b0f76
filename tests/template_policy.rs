//! The SAM template (`template.yaml`) against the code, with no network and no AWS:
//!
//! - the DynamoDB and Secrets Manager actions granted to the function's role are exactly the
//!   operations the code calls on the request path (found by scanning `src/store/dynamodb/` and
//!   `src/secrets/` for SDK calls), with `TransactWriteItems` mapped to the item actions IAM
//!   checks for it (one per kind of item in the transaction);
//! - no IAM statement anywhere in the template grants those services on a `*` resource, or uses
//!   a wildcard action;
//! - the operator policy reaches, by `dynamodb:LeadingKeys`, the delivery records and externalId
//!   items and the index's `OPEN` partition only: never the panel token or its lease;
//! - the table matches the adapter (keys, TTL, the sparse GSI) and the function's environment
//!   matches the variables the code reads.
//!
//! Excluded from the code scan, on purpose, each checked below to stay true:
//! - `src/store/dynamodb/table.rs` (`create_table`: CreateTable, DescribeTable,
//!   DescribeTimeToLive, UpdateTimeToLive): used by tests and local set-up only; in AWS the
//!   template creates the table. Nothing under `src/` outside the store calls it.
//! - `fn pending` of the DynamoDB delivery store (Query on the index): only the operator command
//!   `payout-bridge pending` calls it, with the operator's credentials (the template's
//!   `OperatorPolicy`), never the function. Nothing under `src/` outside `src/cli/` calls it.
//! - `#[cfg(test)]` modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use payout_bridge::store::dynamodb::{OPEN_ATTR, OPEN_AT_ATTR, OPEN_INDEX, PK, TTL_ATTR};

// ------------------------------------------------------------------------------------------------
// The template
// ------------------------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `template.yaml` with CloudFormation's short-form tags (`!Ref X`, `!GetAtt A.B`, `!Sub s`,
/// `!If [...]`, ...), which serde_yaml_ng parses as `Value::Tagged`, rewritten to the long form
/// (`{Ref: X}`, `{"Fn::GetAtt": [A, B]}`, `{"Fn::Sub": s}`, ...), so the rest sees one form.
fn template() -> Value {
    template_from(&read(&root().join("template.yaml")))
}

fn template_from(text: &str) -> Value {
    let raw: Value = serde_yaml_ng::from_str(text).expect("template.yaml is YAML");
    long_form(raw)
}

fn long_form(v: Value) -> Value {
    match v {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = long_form(tagged.value);
            let (key, inner) = match name {
                "Ref" => ("Ref".to_string(), inner),
                "Condition" => ("Condition".to_string(), inner),
                "GetAtt" => {
                    let inner = match inner {
                        Value::String(s) => {
                            let (res, attr) = s.split_once('.').expect("!GetAtt Resource.Attr");
                            Value::Sequence(vec![res.into(), attr.into()])
                        }
                        other => other,
                    };
                    ("Fn::GetAtt".to_string(), inner)
                }
                other => (format!("Fn::{other}"), inner),
            };
            let mut m = Mapping::new();
            m.insert(Value::String(key), inner);
            Value::Mapping(m)
        }
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(long_form).collect()),
        Value::Mapping(m) => {
            Value::Mapping(m.into_iter().map(|(k, v)| (k, long_form(v))).collect())
        }
        other => other,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping()?.get(key)
}

fn resources(t: &Value) -> &Mapping {
    get(t, "Resources")
        .and_then(Value::as_mapping)
        .expect("template has Resources")
}

fn resource<'a>(t: &'a Value, name: &str) -> &'a Value {
    resources(t)
        .get(name)
        .unwrap_or_else(|| panic!("template has no resource {name}"))
}

fn of_type<'a>(t: &'a Value, ty: &str) -> Vec<(String, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| get(r, "Type").and_then(Value::as_str) == Some(ty))
        .map(|(k, r)| (k.as_str().unwrap_or_default().to_string(), r))
        .collect()
}

fn props(r: &Value) -> &Value {
    get(r, "Properties").expect("resource has Properties")
}

/// `{"Fn::If": [cond, a, b]}` → both branches; `{Ref: AWS::NoValue}` → nothing; else itself.
fn branches(v: &Value) -> Vec<&Value> {
    if let Some(Value::Sequence(args)) = get(v, "Fn::If") {
        assert_eq!(args.len(), 3, "Fn::If takes [condition, then, else]");
        return args[1..].iter().flat_map(branches).collect();
    }
    if get(v, "Ref").and_then(Value::as_str) == Some("AWS::NoValue") {
        return vec![];
    }
    vec![v]
}

/// A list that may be one value, a sequence, or either inside `Fn::If`.
fn items(v: &Value) -> Vec<&Value> {
    branches(v)
        .into_iter()
        .flat_map(|b| match b {
            Value::Sequence(s) => s.iter().flat_map(branches).collect::<Vec<_>>(),
            other => vec![other],
        })
        .collect()
}

/// One IAM statement, with where it came from.
struct Statement<'a> {
    origin: String,
    body: &'a Value,
}

impl Statement<'_> {
    fn allows(&self) -> bool {
        get(self.body, "Effect").and_then(Value::as_str) == Some("Allow")
    }

    fn actions(&self) -> Vec<String> {
        assert!(
            get(self.body, "NotAction").is_none(),
            "{}: NotAction grants everything else; list actions instead",
            self.origin
        );
        let a = get(self.body, "Action").unwrap_or_else(|| panic!("{}: no Action", self.origin));
        items(a)
            .into_iter()
            .map(|v| {
                v.as_str()
                    .unwrap_or_else(|| panic!("{}: an action is not a string: {v:?}", self.origin))
                    .to_string()
            })
            .collect()
    }

    fn resources(&self) -> Vec<&Value> {
        assert!(
            get(self.body, "NotResource").is_none(),
            "{}: NotResource means every other resource",
            self.origin
        );
        items(get(self.body, "Resource").unwrap_or_else(|| panic!("{}: no Resource", self.origin)))
    }
}

fn statements_of<'a>(origin: &str, document: &'a Value) -> Vec<Statement<'a>> {
    let st = get(document, "Statement").unwrap_or_else(|| panic!("{origin}: no Statement"));
    items(st)
        .into_iter()
        .map(|body| Statement {
            origin: format!(
                "{origin}/{}",
                get(body, "Sid")
                    .and_then(Value::as_str)
                    .unwrap_or("(no Sid)")
            ),
            body,
        })
        .collect()
}

/// The function resource (there must be exactly one).
fn function(t: &Value) -> (String, &Value) {
    let mut fns = of_type(t, "AWS::Serverless::Function");
    fns.extend(of_type(t, "AWS::Lambda::Function"));
    assert_eq!(
        fns.len(),
        1,
        "expected exactly one function in the template"
    );
    fns.remove(0)
}

/// Every statement that applies to the function's role: its inline policies, and any
/// AWS::IAM::Policy / ManagedPolicy resource attached to it with `Roles`. The role may not use
/// `ManagedPolicyArns` (grants this test could not see), nor the function SAM `Policies`.
fn function_statements(t: &Value) -> Vec<Statement<'_>> {
    let (fname, f) = function(t);
    let p = props(f);
    assert!(
        get(p, "Policies").is_none(),
        "{fname}: use the explicit role, not SAM Policies"
    );
    let role_name = get(p, "Role")
        .and_then(|r| get(r, "Fn::GetAtt"))
        .and_then(Value::as_sequence)
        .and_then(|s| s.first())
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{fname}: Role must be !GetAtt <role in this template>.Arn"))
        .to_string();
    let role = resource(t, &role_name);
    assert_eq!(
        get(role, "Type").and_then(Value::as_str),
        Some("AWS::IAM::Role")
    );
    let rp = props(role);
    assert!(
        get(rp, "ManagedPolicyArns").is_none(),
        "{role_name}: ManagedPolicyArns would grant actions this test cannot see"
    );
    let mut out = Vec::new();
    if let Some(policies) = get(rp, "Policies") {
        for policy in items(policies) {
            let name = get(policy, "PolicyName")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let doc = get(policy, "PolicyDocument").expect("inline policy has a PolicyDocument");
            out.extend(statements_of(&format!("{role_name}/{name}"), doc));
        }
    }
    for ty in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"] {
        for (name, r) in of_type(t, ty) {
            let attached = get(props(r), "Roles").is_some_and(|roles| {
                items(roles)
                    .iter()
                    .any(|v| get(v, "Ref").and_then(Value::as_str) == Some(role_name.as_str()))
            });
            if attached {
                out.extend(statements_of(
                    &name,
                    get(props(r), "PolicyDocument").unwrap(),
                ));
            }
        }
    }
    out
}

/// Every IAM statement in the template (roles, policies, managed policies).
fn all_statements(t: &Value) -> Vec<Statement<'_>> {
    let mut out = Vec::new();
    for (name, r) in of_type(t, "AWS::IAM::Role") {
        if let Some(policies) = get(props(r), "Policies") {
            for policy in items(policies) {
                let doc = get(policy, "PolicyDocument").unwrap();
                out.extend(statements_of(&name, doc));
            }
        }
    }
    for ty in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"] {
        for (name, r) in of_type(t, ty) {
            out.extend(statements_of(
                &name,
                get(props(r), "PolicyDocument").unwrap(),
            ));
        }
    }
    out
}

const SERVICES: [&str; 2] = ["dynamodb:", "secretsmanager:"];

fn watched(action: &str) -> bool {
    SERVICES.iter().any(|s| action.starts_with(s))
}

/// The dynamodb:/secretsmanager: actions the template's statements allow.
fn granted(statements: &[Statement]) -> BTreeSet<String> {
    statements
        .iter()
        .filter(|s| s.allows())
        .flat_map(|s| s.actions())
        .filter(|a| watched(a))
        .collect()
}

/// Every literal string inside a resource value (a plain ARN, a `Fn::Sub` template, the pieces
/// of a `Fn::Join`), where a `*` would show.
fn literal_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(s) => s.iter().for_each(|x| literal_strings(x, out)),
        Value::Mapping(m) => {
            for (k, x) in m {
                // `Ref`/`Fn::GetAtt` name resources; their strings are names, not ARNs.
                if matches!(k.as_str(), Some("Ref") | Some("Fn::GetAtt")) {
                    continue;
                }
                literal_strings(x, out);
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------------------------------------------
// The code
// ------------------------------------------------------------------------------------------------

/// Rust source with comments removed and the contents of string and char literals blanked
/// (kept as `""` / `' '`), so braces, calls and names can be found by plain text search.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        // line comment
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        // block comment (nested)
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
            continue;
        }
        // raw string r"..." / r#"..."# (also br"...")
        if c == b'r'
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
            && matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) == Some(&b'"') {
                j += 1;
                loop {
                    assert!(j < b.len(), "unterminated raw string");
                    if b[j] == b'"'
                        && b[j + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&h| h == b'#')
                            .count()
                            == hashes
                    {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
                continue;
            }
        }
        // string
        if c == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                if b[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j + 1;
            continue;
        }
        // char literal ('x', '\n', '\'', '\u{..}') vs lifetime ('a)
        if c == b'\'' {
            let close = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&x| x == b'\'')
                    .map(|p| i + 2 + p)
            } else {
                // one (possibly multi-byte) character, then a quote
                let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch_len) == Some(&b'\'')).then_some(i + 1 + ch_len)
            };
            if let Some(end) = close {
                out.push_str("' '");
                i = end + 1;
                continue;
            }
        }
        let ch = src[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Index of the `}` matching the `{` at `open`.
fn matching_brace(code: &str, open: usize) -> usize {
    let mut depth = 0usize;
    for (i, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + i;
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces")
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Byte ranges of the bodies of `fn <name>` (with a body) and of `#[cfg(test)]` items.
fn excluded_ranges(code: &str, fns: &[&str]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for name in fns {
        let needle = format!("fn {name}");
        let mut from = 0;
        while let Some(p) = code[from..].find(&needle) {
            let start = from + p;
            from = start + needle.len();
            if code
                .as_bytes()
                .get(from)
                .copied()
                .is_some_and(is_ident_byte)
            {
                continue; // `fn pending_x`
            }
            // the body opens at the first `{` unless a `;` (a declaration) comes first
            let rest = &code[from..];
            match (rest.find('{'), rest.find(';')) {
                (Some(o), semi) if semi.is_none_or(|s| o < s) => {
                    let open = from + o;
                    out.push((start, matching_brace(code, open)));
                }
                _ => {}
            }
        }
    }
    let mut from = 0;
    while let Some(p) = code[from..].find("#[cfg(test)]") {
        let start = from + p;
        let open = start + code[start..].find('{').expect("cfg(test) item has a body");
        let end = matching_brace(code, open);
        out.push((start, end));
        from = end;
    }
    out
}

/// What the SDK method `op` of `service` needs in IAM. `None`: derived elsewhere (transactions).
fn iam_actions(service: &str, op: &str) -> Option<Vec<String>> {
    let one = |a: &str| Some(vec![format!("{service}:{a}")]);
    match (service, op) {
        ("dynamodb", "get_item") => one("GetItem"),
        ("dynamodb", "put_item") => one("PutItem"),
        ("dynamodb", "update_item") => one("UpdateItem"),
        ("dynamodb", "delete_item") => one("DeleteItem"),
        ("dynamodb", "query") => one("Query"),
        ("dynamodb", "scan") => one("Scan"),
        ("dynamodb", "batch_get_item") => one("BatchGetItem"),
        ("dynamodb", "batch_write_item") => one("BatchWriteItem"),
        // IAM has no TransactWriteItems / TransactGetItems action: it authorizes each item
        // (Put → PutItem, Update → UpdateItem, Delete → DeleteItem, ConditionCheck →
        // ConditionCheckItem, Get → GetItem). See transaction_item_actions().
        ("dynamodb", "transact_write_items") => None,
        ("dynamodb", "transact_get_items") => one("GetItem"),
        ("dynamodb", "describe_table") => one("DescribeTable"),
        ("dynamodb", "create_table") => one("CreateTable"),
        ("dynamodb", "update_table") => one("UpdateTable"),
        ("dynamodb", "delete_table") => one("DeleteTable"),
        ("dynamodb", "describe_time_to_live") => one("DescribeTimeToLive"),
        ("dynamodb", "update_time_to_live") => one("UpdateTimeToLive"),
        ("dynamodb", "list_tables") => one("ListTables"),
        ("secretsmanager", "get_secret_value") => one("GetSecretValue"),
        ("secretsmanager", "batch_get_secret_value") => Some(vec![
            "secretsmanager:BatchGetSecretValue".into(),
            "secretsmanager:GetSecretValue".into(),
        ]),
        ("secretsmanager", "describe_secret") => one("DescribeSecret"),
        ("secretsmanager", "list_secrets") => one("ListSecrets"),
        ("secretsmanager", "put_secret_value") => one("PutSecretValue"),
        ("secretsmanager", "create_secret") => one("CreateSecret"),
        ("secretsmanager", "update_secret") => one("UpdateSecret"),
        ("secretsmanager", "delete_secret") => one("DeleteSecret"),
        ("secretsmanager", "get_random_password") => one("GetRandomPassword"),
        _ => panic!(
            "{service}: the code calls the SDK operation `{op}`, which this test cannot map to \
             IAM actions yet: add it to iam_actions() and grant it in template.yaml"
        ),
    }
}

/// SDK operations known by name (counted whatever the receiver is called).
const DYNAMODB_OPS: &[&str] = &[
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "batch_get_item",
    "batch_write_item",
    "transact_write_items",
    "transact_get_items",
    "describe_table",
    "create_table",
    "update_table",
    "delete_table",
    "describe_time_to_live",
    "update_time_to_live",
    "list_tables",
    "execute_statement",
    "batch_execute_statement",
    "execute_transaction",
];
const SECRETS_OPS: &[&str] = &[
    "get_secret_value",
    "batch_get_secret_value",
    "describe_secret",
    "list_secrets",
    "put_secret_value",
    "create_secret",
    "update_secret",
    "delete_secret",
    "get_random_password",
];
/// Methods of an SDK client that are not operations.
const CLIENT_NON_OPS: &[&str] = &["clone", "config", "as_ref", "from_conf"];

/// `.ident(` calls in `code` outside `excluded`, with the receiver's last identifier.
fn calls(code: &str, excluded: &[(usize, usize)]) -> Vec<(String, String)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    for (dot, _) in code.match_indices('.') {
        if excluded.iter().any(|&(s, e)| dot >= s && dot <= e) {
            continue;
        }
        let mut j = dot + 1;
        while j < b.len() && is_ident_byte(b[j]) {
            j += 1;
        }
        if j == dot + 1 || b.get(j) != Some(&b'(') {
            continue;
        }
        let name = &code[dot + 1..j];
        // the receiver: skip whitespace back, take the identifier before the dot
        let mut k = dot;
        while k > 0 && b[k - 1].is_ascii_whitespace() {
            k -= 1;
        }
        let end = k;
        while k > 0 && is_ident_byte(b[k - 1]) {
            k -= 1;
        }
        out.push((code[k..end].to_string(), name.to_string()));
    }
    out
}

/// The item actions of the transactions built in `code`: `TransactWriteItem::builder().put(..)`
/// → PutItem, `.update(..)` → UpdateItem, `.delete(..)` → DeleteItem, `.condition_check(..)` →
/// ConditionCheckItem.
fn transaction_item_actions(code: &str, file: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (p, _) in code.match_indices("TransactWriteItem::builder()") {
        let rest = code[p + "TransactWriteItem::builder()".len()..].trim_start();
        let rest = rest.strip_prefix('.').unwrap_or_else(|| {
            panic!("{}: TransactWriteItem::builder() not followed by .put/.update/.delete/.condition_check", file.display())
        });
        let kind: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let action = match kind.as_str() {
            "put" => "dynamodb:PutItem",
            "update" => "dynamodb:UpdateItem",
            "delete" => "dynamodb:DeleteItem",
            "condition_check" => "dynamodb:ConditionCheckItem",
            other => panic!(
                "{}: unknown transaction item kind `{other}`",
                file.display()
            ),
        };
        out.insert(action.to_string());
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Files excluded from the scan, relative to the crate root.
const EXCLUDED_FILES: &[&str] = &["src/store/dynamodb/table.rs"];
/// Functions (in the scanned directories) excluded from the scan.
const EXCLUDED_FNS: &[&str] = &["pending"];

/// The IAM actions the code under `dir` needs, from its SDK calls.
fn code_actions_in(service: &str, dir: &Path, excluded_fns: &[&str]) -> BTreeSet<String> {
    let ops: &[&str] = if service == "dynamodb" {
        DYNAMODB_OPS
    } else {
        SECRETS_OPS
    };
    let mut out = BTreeSet::new();
    for file in rust_files(dir) {
        let rel = file
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if EXCLUDED_FILES.contains(&rel.as_str()) {
            continue;
        }
        let code = code_only(&read(&file));
        let excluded = excluded_ranges(&code, excluded_fns);
        let mut transact = false;
        for (receiver, op) in calls(&code, &excluded) {
            let on_client = receiver.ends_with("client");
            if ops.contains(&op.as_str()) {
                match iam_actions(service, &op) {
                    Some(actions) => out.extend(actions),
                    None => transact = true,
                }
            } else if on_client && !CLIENT_NON_OPS.contains(&op.as_str()) {
                // An operation this test does not know: refuse rather than miss a permission.
                iam_actions(service, &op);
            }
        }
        if transact {
            let items = transaction_item_actions(&code, &file);
            assert!(
                !items.is_empty(),
                "{rel}: calls transact_write_items but builds no TransactWriteItem this test can see"
            );
            out.extend(items);
        }
    }
    out
}

fn code_actions(excluded_fns: &[&str]) -> BTreeSet<String> {
    let mut out = code_actions_in("dynamodb", &root().join("src/store/dynamodb"), excluded_fns);
    out.extend(code_actions_in(
        "secretsmanager",
        &root().join("src/secrets"),
        excluded_fns,
    ));
    out
}

/// Files under `src/` (outside `allowed` prefixes) whose code contains `needle`.
fn callers_outside(needle: &str, allowed: &[&str]) -> Vec<String> {
    rust_files(&root().join("src"))
        .into_iter()
        .filter_map(|f| {
            let rel = f
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if allowed.iter().any(|a| rel.starts_with(a)) {
                return None;
            }
            code_only(&read(&f)).contains(needle).then_some(rel)
        })
        .collect()
}

fn diff(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Vec<String> {
    a.difference(b).cloned().collect()
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

#[test]
fn function_role_grants_exactly_what_the_code_calls() {
    let t = template();
    let granted = granted(&function_statements(&t));
    let needed = code_actions(EXCLUDED_FNS);
    assert!(
        needed.contains("dynamodb:GetItem") && needed.contains("secretsmanager:GetSecretValue"),
        "the code scan found too little ({needed:?}): is the scanner broken?"
    );
    assert!(
        granted == needed,
        "the function role and the code disagree.\n  granted but never called: {:?}\n  called but not granted: {:?}\n  granted: {granted:?}\n  called:  {needed:?}",
        diff(&granted, &needed),
        diff(&needed, &granted),
    );
}

#[test]
fn the_scan_exclusions_hold() {
    // create_table (tests / local set-up): nothing in the binary's own code calls it.
    let callers = callers_outside("create_table(", &["src/store/"]);
    assert!(
        callers.is_empty(),
        "create_table is called from {callers:?}: the function would need CreateTable, \
         UpdateTimeToLive, ... (and should not: the template creates the table)"
    );
    // pending (Query on the index): only the operator's commands (app::operator, run by the CLI).
    let callers = callers_outside(
        ".pending(",
        &["src/store/", "src/cli/", "src/app/operator.rs"],
    );
    assert!(
        callers.is_empty(),
        "`.pending(` is called from {callers:?}: if the function lists pending deliveries, its \
         role needs dynamodb:Query on the index; remove `pending` from EXCLUDED_FNS"
    );
    // ... and the operator's view is only ever built for the CLI.
    let callers = callers_outside(
        "Operator::new(",
        &["src/app/operator.rs", "src/service/environment.rs"],
    );
    assert!(
        callers.is_empty(),
        "Operator::new is called from {callers:?}"
    );
    // The excluded function still exists where we think it is (else the exclusion is stale).
    let delivery = code_only(&read(&root().join("src/store/dynamodb/delivery.rs")));
    assert!(
        delivery.contains("fn pending("),
        "DynamoDeliveryStore::pending moved?"
    );
    let with_pending = code_actions(&[]);
    assert!(
        with_pending.contains("dynamodb:Query"),
        "pending no longer queries the index: drop the exclusion and OperatorPolicy's Query"
    );
}

#[test]
fn no_wildcards_for_state_and_secrets() {
    let t = template();
    let statements = all_statements(&t);
    assert!(!statements.is_empty());
    for s in &statements {
        let actions = s.actions();
        for a in &actions {
            if SERVICES.iter().any(|p| a.starts_with(p)) || a == "*" {
                assert!(!a.contains('*'), "{}: wildcard action {a}", s.origin);
            }
        }
        if !actions.iter().any(|a| watched(a)) {
            continue;
        }
        for r in s.resources() {
            let mut strings = Vec::new();
            literal_strings(r, &mut strings);
            for text in strings {
                assert!(
                    !text.contains('*'),
                    "{}: grants {actions:?} on a wildcard resource `{text}`",
                    s.origin
                );
            }
        }
    }
}

#[test]
fn operator_policy_covers_pending_and_resolve_only() {
    let t = template();
    let op = resource(&t, "OperatorPolicy");
    let statements = statements_of("OperatorPolicy", get(props(op), "PolicyDocument").unwrap());
    let granted = granted(&statements);
    let all = code_actions(&[]);
    assert!(
        granted.is_subset(&all),
        "OperatorPolicy grants actions the code never calls: {:?}",
        diff(&granted, &all)
    );
    for needed in [
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
    ] {
        assert!(granted.contains(needed), "OperatorPolicy lacks {needed}");
    }
    // Query is granted on the index the code queries, and nowhere else.
    for s in statements
        .iter()
        .filter(|s| s.actions().iter().any(|a| a == "dynamodb:Query"))
    {
        let mut strings = Vec::new();
        s.resources()
            .iter()
            .for_each(|r| literal_strings(r, &mut strings));
        assert!(
            strings
                .iter()
                .any(|x| x.ends_with(&format!("/index/{OPEN_INDEX}"))),
            "{}: Query must be on the {OPEN_INDEX} index ({strings:?})",
            s.origin
        );
    }
}

/// IAM's `StringLike`: `*` any run of characters, `?` any one; everything else literal.
fn iam_like(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    // match[i][j]: p[..i] matches v[..j]
    let mut m = vec![vec![false; v.len() + 1]; p.len() + 1];
    m[0][0] = true;
    for i in 1..=p.len() {
        m[i][0] = m[i - 1][0] && p[i - 1] == '*';
        for j in 1..=v.len() {
            m[i][j] = match p[i - 1] {
                '*' => m[i - 1][j] || m[i][j - 1],
                '?' => m[i - 1][j - 1],
                c => m[i - 1][j - 1] && c == v[j - 1],
            };
        }
    }
    m[p.len()][v.len()]
}

/// The `dynamodb:LeadingKeys` values a statement allows: (operator, patterns). Panics unless
/// the condition is there, with a `ForAllValues:` operator (IAM's requirement for this
/// multi-valued key) of `StringLike` or `StringEquals`.
fn leading_keys(s: &Statement) -> (String, Vec<String>) {
    let condition = get(s.body, "Condition")
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("{}: no Condition: every table item is reachable", s.origin));
    let mut found = Vec::new();
    for (op, keys) in condition {
        let op = op.as_str().unwrap_or_default();
        if let Some(values) = get(keys, "dynamodb:LeadingKeys") {
            let patterns = items(values)
                .into_iter()
                .map(|v| {
                    v.as_str()
                        .unwrap_or_else(|| panic!("{}: a key pattern is not a string", s.origin))
                        .to_string()
                })
                .collect::<Vec<_>>();
            found.push((op.to_string(), patterns));
        }
    }
    assert_eq!(
        found.len(),
        1,
        "{}: expected one dynamodb:LeadingKeys condition, found {found:?}",
        s.origin
    );
    let (op, patterns) = found.remove(0);
    assert!(
        op == "ForAllValues:StringLike" || op == "ForAllValues:StringEquals",
        "{}: dynamodb:LeadingKeys under {op}; it needs ForAllValues:StringLike / StringEquals",
        s.origin
    );
    assert!(!patterns.is_empty(), "{}: no key pattern", s.origin);
    (op, patterns)
}

/// `pub(crate) const NAME: &str = "VALUE";` in the store's item module.
fn store_const(name: &str) -> String {
    let item = read(&root().join("src/store/dynamodb/item.rs"));
    let needle = format!("const {name}: &str = \"");
    let start = item
        .find(&needle)
        .unwrap_or_else(|| panic!("src/store/dynamodb/item.rs no longer defines {name}"))
        + needle.len();
    let end = start + item[start..].find('"').expect("closing quote");
    item[start..end].to_string()
}

#[test]
fn operator_policy_reaches_delivery_and_external_items_and_the_open_index_only() {
    let t = template();
    let op = resource(&t, "OperatorPolicy");
    let statements = statements_of("OperatorPolicy", get(props(op), "PolicyDocument").unwrap());
    // The partition keys as the store writes them (src/store/dynamodb/item.rs).
    let item = read(&root().join("src/store/dynamodb/item.rs"));
    assert!(
        item.contains("push_str(\"DELIVERY#\")") && item.contains("format!(\"EXTERNAL#{"),
        "the store's delivery / externalId keys changed: update OperatorPolicy and this test"
    );
    let open = store_const("OPEN_VALUE");
    let forbidden = [store_const("TOKEN_PK"), store_const("LEASE_PK")];
    assert_eq!(forbidden, ["TOKEN#panel", "LEASE#token"]);
    let samples = [
        "DELIVERY#payouts#ext:pay-1",
        "DELIVERY#payroll#whid:msg_1#3",
        "EXTERNAL#pay-1",
    ];

    let mut table_patterns = BTreeSet::new();
    let mut index_patterns = BTreeSet::new();
    for s in statements.iter().filter(|s| s.allows()) {
        if !s.actions().iter().any(|a| a.starts_with("dynamodb:")) {
            continue;
        }
        let (_, patterns) = leading_keys(s);
        for p in &patterns {
            for key in &forbidden {
                assert!(
                    !iam_like(p, key),
                    "{}: pattern {p:?} reaches {key} (the live panel token / its lease)",
                    s.origin
                );
            }
        }
        let mut strings = Vec::new();
        s.resources()
            .iter()
            .for_each(|r| literal_strings(r, &mut strings));
        let on_index = strings
            .iter()
            .any(|x| x.ends_with(&format!("/index/{OPEN_INDEX}")));
        if on_index {
            index_patterns.extend(patterns);
        } else {
            table_patterns.extend(patterns);
        }
    }
    // Exactly the two item families on the table, exactly the OPEN partition on the index.
    assert_eq!(
        table_patterns,
        BTreeSet::from(["DELIVERY#*".to_string(), "EXTERNAL#*".to_string()]),
        "OperatorPolicy's table statements"
    );
    assert_eq!(
        index_patterns,
        BTreeSet::from([open.clone()]),
        "OperatorPolicy's {OPEN_INDEX} statement"
    );
    for key in samples {
        assert!(
            table_patterns.iter().any(|p| iam_like(p, key)),
            "{key} is out of the operator's reach"
        );
    }
    assert!(index_patterns.iter().all(|p| iam_like(p, &open)));
}

#[test]
fn iam_like_matches_as_iam_does() {
    assert!(iam_like("DELIVERY#*", "DELIVERY#payouts#ext:1"));
    assert!(iam_like("DELIVERY#*", "DELIVERY#"));
    assert!(!iam_like("DELIVERY#*", "TOKEN#panel"));
    assert!(!iam_like("DELIVERY#*", "delivery#x"));
    assert!(iam_like("*", "TOKEN#panel"));
    assert!(iam_like("?OKEN#*", "TOKEN#panel"));
    assert!(iam_like("OPEN", "OPEN"));
    assert!(!iam_like("OPEN", "OPENED"));
    assert!(iam_like("*#token", "LEASE#token"));
}

#[test]
fn table_matches_the_adapter() {
    let t = template();
    let tables = of_type(&t, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table");
    let p = props(tables[0].1);
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    assert_eq!(s(get(p, "BillingMode")).as_deref(), Some("PAY_PER_REQUEST"));

    let keys = |v: &Value| -> Vec<(String, String)> {
        items(v)
            .iter()
            .map(|k| {
                (
                    s(get(k, "AttributeName")).unwrap(),
                    s(get(k, "KeyType")).unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        keys(get(p, "KeySchema").unwrap()),
        vec![(PK.to_string(), "HASH".to_string())],
        "partition key only"
    );
    let defs: BTreeMap<String, String> = items(get(p, "AttributeDefinitions").unwrap())
        .iter()
        .map(|d| {
            (
                s(get(d, "AttributeName")).unwrap(),
                s(get(d, "AttributeType")).unwrap(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = [(PK, "S"), (OPEN_ATTR, "S"), (OPEN_AT_ATTR, "N")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(defs, expected);

    let ttl = get(p, "TimeToLiveSpecification").expect("TTL");
    assert_eq!(s(get(ttl, "AttributeName")).as_deref(), Some(TTL_ATTR));
    assert_eq!(get(ttl, "Enabled").and_then(Value::as_bool), Some(true));

    let gsis = items(get(p, "GlobalSecondaryIndexes").expect("the GSI"));
    assert_eq!(gsis.len(), 1);
    let gsi = gsis[0];
    assert_eq!(s(get(gsi, "IndexName")).as_deref(), Some(OPEN_INDEX));
    assert_eq!(
        keys(get(gsi, "KeySchema").unwrap()),
        vec![
            (OPEN_ATTR.to_string(), "HASH".to_string()),
            (OPEN_AT_ATTR.to_string(), "RANGE".to_string())
        ]
    );
    assert_eq!(
        s(get(get(gsi, "Projection").unwrap(), "ProjectionType")).as_deref(),
        Some("ALL")
    );
    let pitr = get(p, "PointInTimeRecoverySpecification").expect("PITR");
    assert_eq!(
        get(pitr, "PointInTimeRecoveryEnabled").and_then(Value::as_bool),
        Some(true)
    );
}

#[test]
fn environment_matches_the_code() {
    let t = template();
    let (_, f) = function(&t);
    let p = props(f);
    let vars = get(p, "Environment")
        .and_then(|e| get(e, "Variables"))
        .and_then(Value::as_mapping)
        .expect("Environment.Variables");
    // Every variable the template sets is read somewhere in src/ (a renamed variable would be
    // silently ignored). RUST_LOG is read by tracing's EnvFilter.
    let all_src: String = rust_files(&root().join("src"))
        .iter()
        .map(|f| read(f))
        .collect();
    for (k, _) in vars {
        let name = k.as_str().unwrap();
        if name == "RUST_LOG" {
            continue;
        }
        assert!(
            all_src.contains(&format!("\"{name}\"")),
            "template sets {name}, which nothing in src/ reads"
        );
    }
    for required in [
        "PANEL_URL",
        "PANEL_PASSWORD_SECRET_ID",
        "BRIDGE_TABLE",
        "BRIDGE_CONFIG",
    ] {
        assert!(
            vars.contains_key(required),
            "template does not set {required}"
        );
    }
    let num = |v: Option<&Value>| -> i64 {
        match v {
            Some(Value::Number(n)) => n.as_i64().unwrap(),
            Some(Value::String(s)) => s.parse().unwrap(),
            other => panic!("not a number: {other:?}"),
        }
    };
    let timeout = num(get(p, "Timeout"));
    let in_progress = num(vars.get("BRIDGE_IN_PROGRESS_TIMEOUT_SECS"));
    let request_ms = num(vars.get("PANEL_REQUEST_TIMEOUT_MS"));
    assert!(
        timeout <= 29,
        "HTTP APIs wait at most 30 s for the function"
    );
    assert!(
        in_progress > timeout,
        "BRIDGE_IN_PROGRESS_TIMEOUT_SECS ({in_progress}) must exceed the function timeout ({timeout})"
    );
    assert!(
        timeout * 1000 > 2 * request_ms,
        "the function timeout must leave room for a login and a panel call"
    );
    assert_eq!(
        vars.get("BRIDGE_METRICS").and_then(Value::as_str),
        Some("emf")
    );
}

// --- the scanner itself -------------------------------------------------------------------------

#[test]
fn scanner_sees_calls_transactions_and_exclusions() {
    let src = r##"
        // self.client.scan() in a comment is not a call
        fn begin(&self) { self.client.put_item().condition_expression("a.delete_item()").send(); }
        fn finish(&self) {
            let u = TransactWriteItem::builder().update(x).build();
            let c = TransactWriteItem::builder().condition_check(y).build();
            self.client.transact_write_items().send();
            let s = r#"self.client.batch_write_item()"#; let q = '{';
        }
        fn pending(&self) { self.client.query().index_name(I); }
        #[cfg(test)]
        mod tests { fn t() { client.delete_table(); } }
    "##;
    let code = code_only(src);
    let excluded = excluded_ranges(&code, &["pending"]);
    let found: BTreeSet<String> = calls(&code, &excluded)
        .into_iter()
        .filter(|(_, op)| DYNAMODB_OPS.contains(&op.as_str()))
        .map(|(_, op)| op)
        .collect();
    let expect: BTreeSet<String> = ["put_item", "transact_write_items"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, expect);
    let items = transaction_item_actions(&code, Path::new("snippet"));
    assert_eq!(
        items.into_iter().collect::<Vec<_>>(),
        vec!["dynamodb:ConditionCheckItem", "dynamodb:UpdateItem"]
    );
}

#[test]
fn short_form_tags_become_long_form() {
    let t = template_from(
        "Resources:\n  R:\n    Type: X\n    Properties:\n      A: !GetAtt T.Arn\n      B: !Sub \"${T.Arn}/index/*\"\n      C: !If [C, !Ref P, !Ref AWS::NoValue]\n",
    );
    let p = props(resource(&t, "R"));
    assert_eq!(
        get(get(p, "A").unwrap(), "Fn::GetAtt").unwrap(),
        &Value::Sequence(vec!["T".into(), "Arn".into()])
    );
    assert_eq!(
        get(get(p, "B").unwrap(), "Fn::Sub").and_then(Value::as_str),
        Some("${T.Arn}/index/*")
    );
    let c = branches(get(p, "C").unwrap());
    assert_eq!(c.len(), 1);
    assert_eq!(get(c[0], "Ref").and_then(Value::as_str), Some("P"));
}
