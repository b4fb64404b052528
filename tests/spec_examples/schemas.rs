//! The JSON schemas: they parse, the examples agree with them, and their
//! rules match the code (a small validator of the draft 2020-12 subset the
//! schemas use).

use super::*;

// ---------------------------------------------------------------- schemas

fn schema(kind: &str) -> Value {
    let p = spec_dir()
        .join("schemas")
        .join(format!("{kind}.schema.json"));
    let s = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

#[test]
fn every_schema_parses_and_declares_draft_2020_12() {
    let dir = spec_dir().join("schemas");
    let mut n = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let s = fs::read_to_string(&p).unwrap();
        let v: Value =
            serde_json::from_str(&s).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
        assert_eq!(
            v["$schema"],
            "https://json-schema.org/draft/2020-12/schema",
            "{}",
            p.display()
        );
        n += 1;
    }
    assert!(n >= 4, "expected the four schemas, found {n}");
    for k in ["task", "outbox", "inbox", "peer"] {
        schema(k);
    }
}

/// A validator for the subset of draft 2020-12 the schemas use. An unknown
/// keyword fails loudly, so the subset cannot silently fall behind.
fn validate(root: &Value, s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let Some(obj) = s.as_object() else {
        if s == &Value::Bool(false) {
            errs.push(format!("{at}: not allowed"));
        }
        return;
    };
    for (k, kw) in obj {
        match k.as_str() {
            "$schema" | "$id" | "$comment" | "$defs" | "title" | "description" | "default"
            | "format" | "examples" => {}
            "then" => {}
            "$ref" => {
                let r = kw.as_str().unwrap();
                let ptr = r
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("only local $ref supported: {r}"));
                let target = root
                    .pointer(ptr)
                    .unwrap_or_else(|| panic!("dangling $ref {r}"));
                validate(root, target, v, at, errs);
            }
            "type" => {
                let types: Vec<&str> = match kw {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
                    _ => panic!("bad type keyword"),
                };
                let ok = types.iter().any(|t| match *t {
                    "null" => v.is_null(),
                    "boolean" => v.is_boolean(),
                    "object" => v.is_object(),
                    "array" => v.is_array(),
                    "string" => v.is_string(),
                    "number" => v.is_number(),
                    "integer" => {
                        v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
                    }
                    t => panic!("unknown type {t}"),
                });
                if !ok {
                    errs.push(format!("{at}: not of type {types:?}"));
                }
            }
            "enum" => {
                if !kw.as_array().unwrap().contains(v) {
                    errs.push(format!("{at}: not one of {kw}"));
                }
            }
            "const" => {
                if kw != v {
                    errs.push(format!("{at}: not {kw}"));
                }
            }
            "anyOf" => {
                let any = kw.as_array().unwrap().iter().any(|sub| {
                    let mut e = vec![];
                    validate(root, sub, v, at, &mut e);
                    e.is_empty()
                });
                if !any {
                    errs.push(format!("{at}: matches no anyOf branch"));
                }
            }
            "if" => {
                let mut e = vec![];
                validate(root, kw, v, at, &mut e);
                if e.is_empty() {
                    if let Some(then) = obj.get("then") {
                        validate(root, then, v, at, errs);
                    }
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for r in kw.as_array().unwrap() {
                        if !o.contains_key(r.as_str().unwrap()) {
                            errs.push(format!("{at}: missing {r}"));
                        }
                    }
                }
            }
            "properties" | "additionalProperties" | "propertyNames" => {
                let Some(o) = v.as_object() else { continue };
                let props = obj.get("properties").and_then(Value::as_object);
                for (name, val) in o {
                    let here = format!("{at}/{name}");
                    match k.as_str() {
                        "properties" => {
                            if let Some(sub) = props.and_then(|p| p.get(name)) {
                                validate(root, sub, val, &here, errs);
                            }
                        }
                        "additionalProperties" => {
                            if !props.is_some_and(|p| p.contains_key(name)) {
                                validate(root, kw, val, &here, errs);
                            }
                        }
                        _ => validate(
                            root,
                            kw,
                            &Value::String(name.clone()),
                            &format!("{here} (name)"),
                            errs,
                        ),
                    }
                }
            }
            "pattern" => {
                if let Some(s) = v.as_str() {
                    if !pattern_matches(kw.as_str().unwrap(), s) {
                        errs.push(format!("{at}: does not match {kw}"));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let Some(s) = v.as_str() {
                    let n = s.chars().count() as u64;
                    let lim = kw.as_u64().unwrap();
                    if (k == "minLength" && n < lim) || (k == "maxLength" && n > lim) {
                        errs.push(format!("{at}: length {n} violates {k} {lim}"));
                    }
                }
            }
            "minItems" => {
                if v.as_array()
                    .is_some_and(|a| (a.len() as u64) < kw.as_u64().unwrap())
                {
                    errs.push(format!("{at}: too few items"));
                }
            }
            "prefixItems" | "items" => {
                if let Some(a) = v.as_array() {
                    let pre = obj
                        .get("prefixItems")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    for (i, item) in a.iter().enumerate() {
                        let here = format!("{at}/{i}");
                        if k == "prefixItems" && i < pre {
                            validate(root, &kw[i], item, &here, errs);
                        } else if k == "items" && i >= pre {
                            validate(root, kw, item, &here, errs);
                        }
                    }
                }
            }
            "minimum" => {
                if let (Some(x), Some(m)) = (v.as_f64(), kw.as_f64()) {
                    if x < m {
                        errs.push(format!("{at}: {x} < {m}"));
                    }
                }
            }
            "exclusiveMinimum" => {
                if let (Some(x), Some(m)) = (v.as_f64(), kw.as_f64()) {
                    if x <= m {
                        errs.push(format!("{at}: {x} <= {m}"));
                    }
                }
            }
            other => panic!("schema keyword {other:?} is not supported by this test's validator"),
        }
    }
}

/// JSON Schema patterns are unanchored searches, like `Regex::is_match`.
fn pattern_matches(pattern: &str, s: &str) -> bool {
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, regex::Regex>>,
    > = std::sync::OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).expect("schema pattern compiles"))
        .is_match(s)
}

fn schema_errors(schema: &Value, v: &Value) -> Vec<String> {
    let mut e = vec![];
    validate(schema, schema, v, "", &mut e);
    e
}

#[test]
fn examples_agree_with_the_schemas() {
    let mut failures = vec![];
    for kind in KINDS {
        let s = schema(kind);
        for f in example_files(kind, "valid") {
            let v: Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
            let e = schema_errors(&s, &v);
            if !e.is_empty() {
                failures.push(format!(
                    "{kind}/valid/{}: schema rejects it: {e:?}",
                    file_name(&f)
                ));
            }
        }
        for f in example_files(kind, "invalid") {
            let name = file_name(&f);
            let exempt =
                SCHEMA_CANNOT_EXPRESS.contains(&name.as_str()) || name.starts_with("self-send");
            // Not JSON (or too deep for serde_json): nothing to validate.
            let Ok(v) = serde_json::from_slice::<Value>(&fs::read(&f).unwrap()) else {
                continue;
            };
            if !exempt && schema_errors(&s, &v).is_empty() {
                failures.push(format!("{kind}/invalid/{name}: the schema accepts it"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn inbox_example_roundtrips_through_the_code_and_the_schema() {
    let s = schema("inbox");
    for f in example_files("inbox", "valid") {
        let bytes = fs::read(&f).unwrap();
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            schema_errors(&s, &raw),
            Vec::<String>::new(),
            "{}",
            f.display()
        );
        let msg = peerspool::queue::format::parse_inbox(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let back = serde_json::to_value(&msg).unwrap();
        assert_eq!(
            schema_errors(&s, &back),
            Vec::<String>::new(),
            "what the daemon writes must match the schema"
        );
    }
}

/// The schemas' patterns and limits are exactly the code's rules.
#[test]
fn schema_rules_match_the_code() {
    let task = schema("task");
    let defs = &task["$defs"];
    assert_eq!(defs["name"]["pattern"], "^[a-z0-9][a-z0-9_-]{0,62}$");
    assert_eq!(
        defs["address"]["pattern"],
        "^[a-z0-9][a-z0-9_-]{0,62}(@[a-z0-9][a-z0-9_-]{0,62})?$"
    );
    assert_eq!(
        defs["topic"]["maxLength"],
        peerspool::queue::format::MAX_TOPIC_CHARS as u64
    );
    assert_eq!(
        defs["id"]["maxLength"],
        peerspool::queue::format::MAX_ID_CHARS as u64
    );
    for k in ["outbox", "inbox"] {
        assert_eq!(
            &schema(k)["$defs"],
            defs,
            "{k} must share the task schema's $defs"
        );
    }
    assert_eq!(task["additionalProperties"], true);
    assert_eq!(schema("outbox")["additionalProperties"], true);
    assert_eq!(schema("peer")["additionalProperties"], false);

    let name = |s: &str| schema_errors(&defs["name"], &Value::String(s.into())).is_empty();
    let address = |s: &str| schema_errors(&defs["address"], &Value::String(s.into())).is_empty();
    let id = |s: &str| schema_errors(&defs["id"], &Value::String(s.into())).is_empty();
    let text = |s: &str| schema_errors(&defs["text"], &Value::String(s.into())).is_empty();

    let mut samples: Vec<String> = vec![
        "".into(),
        "a".into(),
        "0".into(),
        "alice".into(),
        "a-b_c".into(),
        "-a".into(),
        "_a".into(),
        "A".into(),
        "a\n".into(),
        "\na".into(),
        "a b".into(),
        "../x".into(),
        "é".into(),
        "x".repeat(63),
        "x".repeat(64),
        "i".repeat(200),
        "i".repeat(201),
        "é".repeat(200),
        "é".repeat(201),
        " x ".into(),
        "a/b".into(),
        "a@h1".into(),
        "a@".into(),
        "@h1".into(),
        "a@b@c".into(),
        "a@H1".into(),
        "a@-h".into(),
        format!("{}@{}", "x".repeat(63), "y".repeat(63)),
        format!("a@{}", "y".repeat(64)),
    ];
    // Every character up to U+3100 covers all of Unicode White_Space and Cc.
    samples.extend(
        (0u32..0x3100)
            .chain([0xfeff, 0xffff, 0x1_0000, 0x10_ffff])
            .filter_map(char::from_u32)
            .map(String::from),
    );
    for s in &samples {
        assert_eq!(
            name(s),
            peerspool::queue::names::is_valid(s),
            "name pattern vs names::is_valid on {s:?}"
        );
        assert_eq!(
            address(s),
            peerspool::queue::names::is_address(s),
            "address pattern vs names::is_address on {s:?}"
        );
        assert_eq!(
            id(s),
            peerspool::queue::format::valid_id(s),
            "id rule vs format::valid_id on {s:?}"
        );
        assert_eq!(
            text(s),
            !s.trim().is_empty(),
            "text rule vs empty-text on {s:?}"
        );
    }
}
