//! The SAM template (`template.yaml`) against the code, with no network and no AWS:
//!
//! - the DynamoDB and Secrets Manager actions granted to each function's role (the HTTP function
//!   and the queue worker) are exactly the operations the code calls on the request path (found
//!   by scanning `src/store/dynamodb/` and `src/secrets/` for SDK calls), with
//!   `TransactWriteItems` mapped to the item actions IAM checks for it (one per kind of item in
//!   the transaction);
//! - the SQS actions of each role are exactly the calls of `src/queue/sqs.rs` on its path: the
//!   HTTP function sends, the worker receives / deletes / changes visibility (plus
//!   GetQueueAttributes, which the event source mapping needs), the operator's policy has the
//!   rest (the dead-letter queue and the message-move task); the queue, its dead-letter queue
//!   and the worker are wired as docs/DEPLOY.md says;
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

/// The HTTP function and the queue worker: exactly these two functions.
const HTTP_FUNCTION: &str = "BridgeFunction";
const WORKER_FUNCTION: &str = "WorkerFunction";

fn functions(t: &Value) -> Vec<(String, &Value)> {
    let mut fns = of_type(t, "AWS::Serverless::Function");
    fns.extend(of_type(t, "AWS::Lambda::Function"));
    let mut names: Vec<&str> = fns.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec![HTTP_FUNCTION, WORKER_FUNCTION],
        "expected the HTTP function and the worker"
    );
    fns
}

/// The HTTP function.
fn function(t: &Value) -> (String, &Value) {
    functions(t)
        .into_iter()
        .find(|(n, _)| n == HTTP_FUNCTION)
        .unwrap()
}

/// Every statement that applies to the function's role: its inline policies, and any
/// AWS::IAM::Policy / ManagedPolicy resource attached to it with `Roles`. The role may not use
/// `ManagedPolicyArns` (grants this test could not see), nor the function SAM `Policies`.
fn function_statements<'a>(t: &'a Value, fname: &str) -> Vec<Statement<'a>> {
    let f = resource(t, fname);
    let fname = fname.to_string();
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

const SERVICES: [&str; 3] = ["dynamodb:", "secretsmanager:", "sqs:"];

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
        // SendMessageBatch is authorized as sqs:SendMessage.
        ("sqs", "send_message") | ("sqs", "send_message_batch") => one("SendMessage"),
        ("sqs", "receive_message") => one("ReceiveMessage"),
        ("sqs", "delete_message") | ("sqs", "delete_message_batch") => one("DeleteMessage"),
        ("sqs", "change_message_visibility") | ("sqs", "change_message_visibility_batch") => {
            one("ChangeMessageVisibility")
        }
        ("sqs", "get_queue_attributes") => one("GetQueueAttributes"),
        ("sqs", "get_queue_url") => one("GetQueueUrl"),
        ("sqs", "start_message_move_task") => one("StartMessageMoveTask"),
        ("sqs", "list_message_move_tasks") => one("ListMessageMoveTasks"),
        ("sqs", "purge_queue") => one("PurgeQueue"),
        ("sqs", "create_queue") => one("CreateQueue"),
        ("sqs", "delete_queue") => one("DeleteQueue"),
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
const SQS_OPS: &[&str] = &[
    "send_message",
    "send_message_batch",
    "receive_message",
    "delete_message",
    "delete_message_batch",
    "change_message_visibility",
    "change_message_visibility_batch",
    "get_queue_attributes",
    "get_queue_url",
    "start_message_move_task",
    "list_message_move_tasks",
    "purge_queue",
    "create_queue",
    "delete_queue",
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
    let ops: &[&str] = match service {
        "dynamodb" => DYNAMODB_OPS,
        "sqs" => SQS_OPS,
        _ => SECRETS_OPS,
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

/// The SQS adapter's functions by path: the HTTP function's (accept: send), the worker's
/// (receive, delete, change visibility), and the operator's own (the queue ARNs and the
/// message-move task).
const SQS_SEND_FNS: &[&str] = &["send"];
const SQS_WORKER_FNS: &[&str] = &["receive", "delete", "change_visibility"];
const SQS_OPERATOR_FNS: &[&str] = &["arn", "start_redrive_all"];

/// The SQS actions of the code of `src/queue/` in the functions `only`.
fn sqs_actions(only: &[&str]) -> BTreeSet<String> {
    let all: Vec<&str> = SQS_SEND_FNS
        .iter()
        .chain(SQS_WORKER_FNS)
        .chain(SQS_OPERATOR_FNS)
        .copied()
        .collect();
    let excluded: Vec<&str> = all.into_iter().filter(|f| !only.contains(f)).collect();
    code_actions_in("sqs", &root().join("src/queue"), &excluded)
}

fn only_service(actions: BTreeSet<String>, prefix: &str) -> BTreeSet<String> {
    actions
        .into_iter()
        .filter(|a| a.starts_with(prefix))
        .collect()
}

/// The resources (as `Fn::GetAtt` targets) statements granting `action` name.
fn resources_of(statements: &[Statement], action: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in statements
        .iter()
        .filter(|s| s.allows() && s.actions().iter().any(|a| a == action))
    {
        for r in s.resources() {
            let target = get(r, "Fn::GetAtt")
                .and_then(Value::as_sequence)
                .and_then(|v| v.first())
                .and_then(Value::as_str)
                .unwrap_or("?");
            out.insert(target.to_string());
        }
    }
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
    for fname in [HTTP_FUNCTION, WORKER_FUNCTION] {
        let all = granted(&function_statements(&t, fname));
        let granted: BTreeSet<String> =
            all.into_iter().filter(|a| !a.starts_with("sqs:")).collect();
        let needed = code_actions(EXCLUDED_FNS);
        assert!(
            needed.contains("dynamodb:GetItem") && needed.contains("secretsmanager:GetSecretValue"),
            "the code scan found too little ({needed:?}): is the scanner broken?"
        );
        assert!(
            granted == needed,
            "{fname}: the role and the code disagree.\n  granted but never called: {:?}\n  called but not granted: {:?}\n  granted: {granted:?}\n  called:  {needed:?}",
            diff(&granted, &needed),
            diff(&needed, &granted),
        );
    }
}

#[test]
fn queue_permissions_match_each_path() {
    let t = template();
    let sends = sqs_actions(SQS_SEND_FNS);
    assert_eq!(sends, BTreeSet::from(["sqs:SendMessage".to_string()]));
    let http = function_statements(&t, HTTP_FUNCTION);
    assert_eq!(
        only_service(granted(&http), "sqs:"),
        sends,
        "{HTTP_FUNCTION}"
    );
    assert_eq!(
        resources_of(&http, "sqs:SendMessage"),
        BTreeSet::from(["WorkQueue".to_string()])
    );

    // The event source mapping polls with the worker's role: ReceiveMessage, DeleteMessage and
    // GetQueueAttributes; the worker itself receives, deletes and sets backoffs.
    let mut worker_needs = sqs_actions(SQS_WORKER_FNS);
    assert!(
        worker_needs.contains("sqs:ChangeMessageVisibility"),
        "{worker_needs:?}"
    );
    worker_needs.insert("sqs:GetQueueAttributes".into());
    let worker = function_statements(&t, WORKER_FUNCTION);
    assert_eq!(
        only_service(granted(&worker), "sqs:"),
        worker_needs,
        "{WORKER_FUNCTION}"
    );
    for action in &worker_needs {
        assert_eq!(
            resources_of(&worker, action),
            BTreeSet::from(["WorkQueue".to_string()]),
            "{WORKER_FUNCTION}: {action} only on the work queue"
        );
    }

    // The operator: everything the adapter calls, on the dead-letter queue, and sending (and
    // the ARN) on the work queue.
    let op = resource(&t, "OperatorPolicy");
    let statements = statements_of("OperatorPolicy", get(props(op), "PolicyDocument").unwrap());
    let all_sqs = sqs_actions(
        &SQS_SEND_FNS
            .iter()
            .chain(SQS_WORKER_FNS)
            .chain(SQS_OPERATOR_FNS)
            .copied()
            .collect::<Vec<_>>(),
    );
    assert_eq!(only_service(granted(&statements), "sqs:"), all_sqs);
    assert_eq!(
        resources_of(&statements, "sqs:StartMessageMoveTask"),
        BTreeSet::from(["DeadLetterQueue".to_string()])
    );
    assert_eq!(
        resources_of(&statements, "sqs:SendMessage"),
        BTreeSet::from(["WorkQueue".to_string()])
    );
}

#[test]
fn the_queue_and_the_worker_are_wired_as_documented() {
    let t = template();
    let worker = resource(&t, WORKER_FUNCTION);
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let num = |v: Option<&Value>| -> i64 {
        match v {
            Some(Value::Number(n)) => n.as_i64().unwrap(),
            Some(Value::String(s)) => s.parse().unwrap(),
            other => panic!("not a number: {other:?}"),
        }
    };
    let reference = |v: Option<&Value>| s(v.and_then(|v| get(v, "Ref")));
    // SAM's Rust builder reads the binary's name here (a `BinaryName` key is ignored).
    let meta = get(worker, "Metadata").expect("Metadata");
    assert_eq!(
        s(get(meta, "BuildMethod")).as_deref(),
        Some("rust-cargolambda")
    );
    assert_eq!(
        s(get(get(meta, "BuildProperties").unwrap(), "Binary")).as_deref(),
        Some("payout-bridge")
    );
    assert!(get(meta, "BinaryName").is_none());

    let p = props(worker);
    let timeout = num(get(p, "Timeout"));
    let events = get(p, "Events").and_then(Value::as_mapping).unwrap();
    assert_eq!(events.len(), 1, "the worker has one event: the queue");
    let (_, event) = events.iter().next().unwrap();
    assert_eq!(s(get(event, "Type")).as_deref(), Some("SQS"));
    let ep = props(event);
    let queue_target = get(ep, "Queue")
        .and_then(|q| get(q, "Fn::GetAtt"))
        .and_then(Value::as_sequence)
        .and_then(|v| v.first())
        .and_then(Value::as_str);
    assert_eq!(queue_target, Some("WorkQueue"));
    let response_types: Vec<&Value> = items(get(ep, "FunctionResponseTypes").unwrap());
    assert_eq!(
        response_types,
        vec![&Value::from("ReportBatchItemFailures")]
    );
    assert_eq!(
        reference(get(ep, "BatchSize")).as_deref(),
        Some("WorkerBatchSize")
    );
    assert_eq!(
        reference(get(ep, "ScalingConfig").and_then(|c| get(c, "MaximumConcurrency"))).as_deref(),
        Some("WorkerMaximumConcurrency")
    );

    let vars = get(p, "Environment")
        .and_then(|e| get(e, "Variables"))
        .and_then(Value::as_mapping)
        .unwrap();
    assert_eq!(
        reference(vars.get("BRIDGE_QUEUE_URL")).as_deref(),
        Some("WorkQueue")
    );
    assert!(
        num(vars.get("BRIDGE_IN_PROGRESS_TIMEOUT_SECS")) > timeout,
        "the worker's in-progress timeout must exceed its function timeout"
    );
    let all_src: String = rust_files(&root().join("src"))
        .iter()
        .map(|f| read(f))
        .collect();
    for (k, _) in vars {
        let name = k.as_str().unwrap();
        assert!(
            all_src.contains(&format!("\"{name}\"")),
            "the worker sets {name}, which nothing in src/ reads"
        );
    }

    let queue = props(resource(&t, "WorkQueue"));
    assert!(
        num(get(queue, "VisibilityTimeout")) >= 6 * timeout,
        "the queue's visibility timeout must be at least 6 x the worker's timeout"
    );
    let dlq = props(resource(&t, "DeadLetterQueue"));
    for q in [queue, dlq] {
        assert_eq!(num(get(q, "MessageRetentionPeriod")), 14 * 86_400);
    }
    let redrive = get(queue, "RedrivePolicy").unwrap();
    assert_eq!(
        reference(get(redrive, "maxReceiveCount")).as_deref(),
        Some("MaxReceiveCount")
    );
    assert_eq!(
        get(redrive, "deadLetterTargetArn").and_then(|v| get(v, "Fn::GetAtt")),
        Some(&Value::Sequence(vec![
            "DeadLetterQueue".into(),
            "Arn".into()
        ]))
    );

    // Alarms on the dead letters and on the age of the oldest queued command.
    let alarms = of_type(&t, "AWS::CloudWatch::Alarm");
    let watches = |metric: &str, queue: &str| {
        alarms.iter().any(|(_, a)| {
            let ap = props(a);
            s(get(ap, "MetricName")).as_deref() == Some(metric)
                && items(get(ap, "Dimensions").unwrap_or(&Value::Null))
                    .iter()
                    .any(|d| {
                        get(d, "Value")
                            .and_then(|v| get(v, "Fn::GetAtt"))
                            .and_then(Value::as_sequence)
                            .and_then(|v| v.first())
                            .and_then(Value::as_str)
                            == Some(queue)
                    })
        })
    };
    assert!(watches(
        "ApproximateNumberOfMessagesVisible",
        "DeadLetterQueue"
    ));
    assert!(watches("ApproximateAgeOfOldestMessage", "WorkQueue"));
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
    let mut all = code_actions(&[]);
    all.extend(sqs_actions(
        &SQS_SEND_FNS
            .iter()
            .chain(SQS_WORKER_FNS)
            .chain(SQS_OPERATOR_FNS)
            .copied()
            .collect::<Vec<_>>(),
    ));
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
    // silently ignored); RUST_LOG too (src/telemetry.rs).
    let all_src: String = rust_files(&root().join("src"))
        .iter()
        .map(|f| read(f))
        .collect();
    for (k, _) in vars {
        let name = k.as_str().unwrap();
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
