//! `cube-definitions/schema.json` is generated from the format types: it must equal
//! `json_schema()` (regenerate with `UPDATE_SCHEMA=1 cargo test --release -p datakube-model`),
//! and every shipped definition file must satisfy it, so editors never flag valid files.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn definitions_dir() -> PathBuf {
    std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()))
        .join("../../cube-definitions")
}

#[test]
fn shipped_schema_is_current() {
    let path = definitions_dir().join("schema.json");
    let generated = datakube_model::json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).expect("write schema.json");
        return;
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == generated,
        "{} is out of date; regenerate it with UPDATE_SCHEMA=1 cargo test --release -p datakube-model",
        path.display()
    );
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn shipped_files_satisfy_the_schema() {
    let schema: Value = serde_json::from_str(&datakube_model::json_schema()).unwrap();
    let mut files = Vec::new();
    yaml_files(&definitions_dir(), &mut files);
    assert!(files.len() >= 10, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let value: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let mut errors = Vec::new();
        validate(&schema, &schema, &value, "", &mut errors);
        assert!(
            errors.is_empty(),
            "{} does not satisfy schema.json:\n{}",
            f.display(),
            errors.join("\n")
        );
    }
}

#[test]
fn the_schema_rejects_what_the_loader_rejects() {
    let schema: Value = serde_json::from_str(&datakube_model::json_schema()).unwrap();
    let bad = [
        "cubes: {}",
        "catalog: {name: FLIS, caption: {da: FLIS}}",
        "cube: {name: X, caption: {da: X, en: X}, source: {dataset: a}, security: {class: individual, row_scope_column: k}}",
        "cube: {name: X, caption: {da: X, en: X}, source: {path: p}, security: {class: open, row_scope_column: k}}",
        "dimension: {name: X, caption: {da: X, en: X}, hierarchies: [{name: H, caption: {da: H, en: H}, levels: [{name: L, caption: {da: L, en: L}, key_column: k, colour: red}]}]}",
    ];
    for text in bad {
        let value: Value = serde_saphyr::from_str(text).unwrap();
        let mut errors = Vec::new();
        validate(&schema, &schema, &value, "", &mut errors);
        assert!(!errors.is_empty(), "the schema accepts {text}");
    }
}

/// A small JSON Schema validator covering the keywords schemars emits for this format.
fn validate(root: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(s) = schema.as_object() else { return };
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix("#/")
            .unwrap_or(r)
            .split('/')
            .fold(root, |node, key| &node[key]);
        validate(root, target, v, at, errors);
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(x) => vec![x.as_str()],
            Value::Array(xs) => xs.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            _ => true,
        });
        if !ok {
            errors.push(format!("{at}: expected {types:?}, found {v}"));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array).filter(|e| !e.contains(v)) {
        errors.push(format!("{at}: {v} is not one of {e:?}"));
    }
    if let Some(c) = s.get("const").filter(|c| *c != v) {
        errors.push(format!("{at}: {v} is not {c}"));
    }
    for (key, want_exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let passing = alts
                .iter()
                .filter(|a| {
                    let mut e = Vec::new();
                    validate(root, a, v, at, &mut e);
                    e.is_empty()
                })
                .count();
            if (want_exactly_one && passing != 1) || passing == 0 {
                errors.push(format!("{at}: {passing} of the {key} alternatives match {v}"));
            }
        }
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for a in all {
            validate(root, a, v, at, errors);
        }
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(req) = s.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    errors.push(format!("{at}: missing required '{r}'"));
                }
            }
        }
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(root, ps, val, &format!("{at}/{k}"), errors),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{at}: unknown key '{k}'")),
                    Some(extra @ Value::Object(_)) => validate(root, extra, val, &format!("{at}/{k}"), errors),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(root, items, x, &format!("{at}/{i}"), errors);
        }
    }
}
