//! The official JSON Schema test suite (draft 2020-12, the keywords the
//! validator implements and the formats it asserts), copied into
//! `tests/json-schema-suite` from json-schema-org/JSON-Schema-Test-Suite
//! at 44401e0c (MIT licence beside it), run against `SchemaValidator`.

use std::path::{Path, PathBuf};

use concertmaster_core::validate::SchemaValidator;
use serde_json::Value;

/// Test groups this validator refuses when compiling, by design: each
/// names what it needs that the validator does not implement. A group
/// not listed here must compile, and every one of its cases must pass.
const REFUSED: &[(&str, &str)] = &[
    // References outside the document: here, to the meta-schema.
    ("ref.json", "remote ref, containing refs itself"),
    // `unevaluatedProperties`.
    (
        "not.json",
        "collect annotations inside a 'not', even if collection is disabled",
    ),
    (
        "ref.json",
        "ref creates new scope when adjacent to keywords",
    ),
];

/// Groups where the validator, by design, accepts some values the suite
/// calls invalid (never the other way round), with the reason.
const LENIENT: &[(&str, &str, &str)] = &[(
    "hostname.json",
    "validation of A-label (punycode) host names",
    "an A-label is checked as a host name label; its Punycode is not decoded",
)];

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/json-schema-suite")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the suite's directory reads") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            found.extend(files(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn the_official_suite_passes() {
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut refused_seen = Vec::new();
    let mut tolerated = 0;
    for path in files(&suite()) {
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_string();
        let text = std::fs::read_to_string(&path).expect("a suite file reads");
        let groups: Vec<Value> = serde_json::from_str(&text).expect("a suite file is JSON");
        for group in groups {
            let description = group["description"].as_str().unwrap_or_default();
            let refused = REFUSED.iter().any(|(f, d)| *f == file && *d == description);
            let lenient = LENIENT
                .iter()
                .any(|(f, d, _)| *f == file && *d == description);
            let validator = match SchemaValidator::new(&group["schema"]) {
                Ok(validator) => validator,
                Err(err) => {
                    if refused {
                        refused_seen.push((file.clone(), description.to_string()));
                    } else {
                        failures.push(format!("{file}: {description}: refused: {err}"));
                    }
                    continue;
                }
            };
            if refused {
                failures.push(format!(
                    "{file}: {description}: compiles, but is listed as refused"
                ));
            }
            for case in group["tests"].as_array().into_iter().flatten() {
                cases += 1;
                let said = case["description"].as_str().unwrap_or_default();
                let expected = case["valid"].as_bool().expect("each case says valid");
                let data = &case["data"];
                let valid = validator.is_valid(data);
                let errors = validator.check(data);
                if valid && errors.is_empty() && !expected && lenient {
                    tolerated += 1;
                    continue;
                }
                if valid != expected || errors.is_empty() != expected {
                    failures.push(format!(
                        "{file}: {description}: {said}: expected {expected}, is_valid {valid}, errors {errors:?}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases > 1_000, "only {cases} cases ran");
    assert_eq!(
        refused_seen.len(),
        REFUSED.len(),
        "refused: {refused_seen:?}"
    );
    // The A-label cases the suite has, at most: more means a regression.
    assert!(tolerated <= 25, "{tolerated} invalid host names accepted");
}
