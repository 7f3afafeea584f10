use serde_json::json;

use super::*;

fn errors(schema: Value, value: Value) -> Vec<FieldError> {
    SchemaValidator::new(&schema)
        .expect("the schema compiles")
        .check(&value)
}

#[test]
fn a_missing_field_is_reported_under_the_field_with_its_rule() {
    let found = errors(
        json!({ "type": "object", "required": ["vat/id"], "properties": { "name": { "type": "string" } } }),
        json!({ "name": 3 }),
    );
    assert_eq!(
        found,
        vec![
            FieldError {
                pointer: "/vat~1id".into(),
                message: "\"vat/id\" is required".into(),
                keyword: "required".into(),
            },
            FieldError {
                pointer: "/name".into(),
                message: "must be a text, not a number".into(),
                keyword: "type".into(),
            },
        ]
    );
}

#[test]
fn messages_say_what_to_fix_in_plain_words() {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "minLength": 1, "maxLength": 3 },
            "email": { "type": "string", "format": "email" },
            "count": { "type": "integer", "minimum": 1, "exclusiveMaximum": 10, "multipleOf": 2 },
            "kind": { "enum": ["a", "b"] },
            "tags": { "type": "array", "uniqueItems": true, "maxItems": 2 }
        },
        "additionalProperties": false
    });
    let found = errors(
        schema,
        json!({ "name": "", "email": "nobody", "count": 10, "kind": "c", "tags": [1, 1.0, 2], "x": 1 }),
    );
    let said: Vec<(String, String)> = found.into_iter().map(|e| (e.pointer, e.message)).collect();
    let expected = [
        ("/count", "must be less than 10"),
        ("/email", "is not an e-mail address"),
        ("/kind", "must be one of \"a\", \"b\""),
        ("/name", "must not be empty"),
        ("/tags", "must have at most 2 items"),
        ("/tags", "must not repeat an item (items 0 and 1 are equal)"),
        ("", "has a property that is not expected here: \"x\""),
    ];
    for (pointer, message) in expected {
        assert!(
            said.iter().any(|(p, m)| p == pointer && m == message),
            "{pointer}: {message} not in {said:#?}"
        );
    }
    assert_eq!(said.len(), expected.len(), "{said:#?}");
}

#[test]
fn is_valid_agrees_with_check() {
    let validator = SchemaValidator::new(&json!({
        "type": "object",
        "properties": { "a": { "oneOf": [{ "type": "integer" }, { "minimum": 2 }] } },
        "if": { "properties": { "country": { "const": "DE" } }, "required": ["country"] },
        "then": { "required": ["vatId"] },
        "else": { "properties": { "vatId": false } }
    }))
    .expect("compiles");
    for (value, valid) in [
        (json!({ "a": 1 }), true),
        (json!({ "a": 1.5 }), false),
        (json!({ "a": 3 }), false),
        (json!({ "country": "DE" }), false),
        (json!({ "country": "DE", "vatId": "DE123" }), true),
        (json!({ "country": "FR", "vatId": "x" }), false),
    ] {
        assert_eq!(validator.is_valid(&value), valid, "{value}");
        assert_eq!(validator.check(&value).is_empty(), valid, "{value}");
    }
}

#[test]
fn recursive_references_resolve_and_self_loops_end() {
    let tree = SchemaValidator::new(&json!({
        "$defs": { "node": {
            "type": "object",
            "properties": { "children": { "type": "array", "items": { "$ref": "#/$defs/node" } } },
            "required": ["name"]
        } },
        "$ref": "#/$defs/node"
    }))
    .expect("compiles");
    assert!(tree.is_valid(&json!({ "name": "a", "children": [{ "name": "b", "children": [] }] })));
    let errors = tree.check(&json!({ "name": "a", "children": [{ "children": [] }] }));
    assert_eq!(errors[0].pointer, "/children/0/name");

    let endless = SchemaValidator::new(&json!({ "$ref": "#" })).expect("compiles");
    assert!(!endless.is_valid(&json!(1)));
}

#[test]
fn schemas_that_cannot_be_checked_are_refused_with_their_place() {
    for (schema, said) in [
        (json!({ "type": "text" }), "/type: type must be"),
        (
            json!({ "properties": { "a": { "pattern": "(" } } }),
            "/properties/a/pattern",
        ),
        (
            json!({ "unevaluatedProperties": false }),
            "unevaluatedProperties is not supported",
        ),
        (
            json!({ "$ref": "https://example.com/s.json" }),
            "only references within this schema",
        ),
        (json!({ "$ref": "#/$defs/none" }), "nothing at /$defs/none"),
        (
            json!({ "minLength": -1 }),
            "/minLength: minLength must be a whole number",
        ),
        (
            json!({ "anyOf": [] }),
            "/anyOf: anyOf must be a non-empty array",
        ),
    ] {
        let err = SchemaValidator::new(&schema).expect_err("refused");
        assert!(err.contains(said), "{schema}: {err}");
    }
}

#[test]
fn node_configs_annotate_formats_and_report_missing_fields_at_the_object() {
    let schema = json!({
        "type": "object",
        "properties": { "url": { "type": "string", "format": "uri" } },
        "required": ["method"]
    });
    let config = SchemaValidator::compiled(&schema, false).expect("compiles");
    let found = config.violations(&json!({ "url": "{{ $json.url }}" }));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].pointer, "");
    assert_eq!(found[0].keyword, "required");
    let strict = SchemaValidator::new(&schema).expect("compiles");
    assert_eq!(strict.check(&json!({ "url": "{{ $json.url }}" })).len(), 2);
}

#[test]
fn formats() {
    use format::Format;
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "date",
            &["2026-02-28", "2024-02-29"],
            &["2026-02-29", "2026-2-1", "20260101"],
        ),
        (
            "date-time",
            &[
                "2026-12-07T10:00:00Z",
                "2026-12-07t10:00:00.5+01:00",
                "1998-12-31T23:59:60Z",
            ],
            &[
                "2026-12-07 10:00:00Z",
                "2026-12-07T10:00:00",
                "2026-12-07T22:59:60Z",
            ],
        ),
        (
            "email",
            &["a.b@example.com", "x+y@[127.0.0.1]"],
            &["a@", "@b.com", "a..b@c.de", "a b@c.de"],
        ),
        (
            "uri",
            &["https://example.com/a?b#c", "urn:isbn:1"],
            &["/relative", "http://a b", "http://[::1"],
        ),
        (
            "uri-reference",
            &["/relative", "#frag", ""],
            &["\\\\share", "a b"],
        ),
        ("ipv4", &["192.168.0.1"], &["192.168.0.01", "256.1.1.1"]),
        (
            "uuid",
            &["01a252af-70ca-766c-92f3-20d572bc7c8a"],
            &["01a252af70ca766c92f320d572bc7c8a"],
        ),
        (
            "duration",
            &["P3D", "PT1H30M", "P1Y2M", "P2W"],
            &["P", "PT", "P1D2Y", "3D", "P1W2D"],
        ),
        ("json-pointer", &["", "/a~1b/0"], &["a", "/a~2"]),
        ("hostname", &["erp.example.com"], &["-x.com", "a_b.com"]),
    ];
    for (name, good, bad) in cases {
        let format = Format::named(name).expect("known");
        for s in *good {
            assert!(format.holds(s), "{name}: {s:?} should pass");
        }
        for s in *bad {
            assert!(!format.holds(s), "{name}: {s:?} should fail");
        }
    }
}

#[test]
fn alternatives_that_recurse_cannot_take_forever() {
    // Each level tries the first alternative all the way down before it
    // fails at `not`, then the second: 2^depth visits without a bound.
    let schema = json!({
        "$defs": { "a": { "anyOf": [
            { "type": "array", "items": { "$ref": "#/$defs/a" }, "not": {} },
            { "type": "array", "items": { "$ref": "#/$defs/a" } }
        ] } },
        "$ref": "#/$defs/a"
    });
    let validator = SchemaValidator::new(&schema).expect("compiles");
    let mut value = json!([]);
    for _ in 0..60 {
        value = json!([value]);
    }
    let found = validator.check(&value);
    assert!(!validator.is_valid(&value));
    assert!(
        found.iter().any(|e| e.message.contains("too complex")),
        "{found:?}"
    );
    // Shallow values still pass.
    assert!(validator.is_valid(&json!([[[]]])));
}

#[test]
fn unique_items_are_found_in_a_long_list_at_once() {
    let validator = SchemaValidator::new(&json!({ "uniqueItems": true })).expect("compiles");
    let mut items: Vec<Value> = (0..50_000)
        .map(|i| json!({ "n": i, "tags": ["a", i] }))
        .collect();
    assert!(validator.is_valid(&Value::Array(items.clone())));
    // Equal by value, whatever the key order and number spelling.
    items.push(json!({ "tags": ["a", 7.0], "n": 7 }));
    let errors = validator.check(&Value::Array(items));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].message.contains("items 7 and 50000"),
        "{errors:?}"
    );
    assert!(!validator.is_valid(&json!([1, 1.0])));
    assert!(validator.is_valid(&json!([1, "1", [1], {"1": 1}, true, null])));
}
