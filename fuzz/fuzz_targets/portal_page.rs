//! A form and answers (split at the first NUL byte) rendered as the form
//! portal renders them, with the answers' errors under their fields, then
//! read back by an HTML parser: the page holds no element and no attribute
//! the portal does not write, and every field it draws names a property of
//! the schema, whatever the schema's titles, labels and names or the
//! answers hold.
#![no_main]

use concertmaster_core::form::FormSchema;
use concertmaster_nodes::forms::portal::FormPage;
use libfuzzer_sys::fuzz_target;
use scraper::{ElementRef, Html};
use serde_json::Value;

/// The elements a portal page may hold, each with the attributes it may
/// carry.
const ALLOWED: &[(&str, &[&str])] = &[
    ("html", &["lang"]),
    ("head", &[]),
    ("meta", &["charset", "name", "content"]),
    ("title", &[]),
    ("style", &[]),
    ("body", &[]),
    ("main", &[]),
    ("h1", &[]),
    ("p", &["class", "role"]),
    ("form", &["method", "action", "novalidate"]),
    ("fieldset", &[]),
    ("legend", &[]),
    ("div", &["class", "data-field"]),
    ("label", &["for"]),
    ("span", &["class"]),
    ("input", &["type", "step", "id", "name", "value", "checked"]),
    ("select", &["id", "name"]),
    ("option", &["value", "selected"]),
    ("button", &["type", "name", "value", "formnovalidate"]),
];

/// The property `pointer` names in `schema`, through nested `properties`.
fn property<'a>(schema: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut at = schema;
    for token in pointer.strip_prefix('/')?.split('/') {
        let key = token.replace("~1", "/").replace("~0", "~");
        at = at.get("properties")?.get(&key)?;
    }
    Some(at)
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let title: String = String::from_utf8_lossy(&data[..split])
        .chars()
        .take(64)
        .collect();
    let title = title.as_str();
    let (Ok(schema), Ok(answers)) = (
        serde_json::from_slice::<Value>(&data[..split]),
        serde_json::from_slice::<Value>(&data[split + 1..]),
    ) else {
        return;
    };
    // The schema's own text doubles as the form's title.
    let form = FormSchema::new("fuzzed", title, schema.clone())
        .with_ui_schema(schema.get("ui").cloned().unwrap_or(Value::Null));
    let errors = match form.check(&answers) {
        Ok(Err(errors)) => errors,
        _ => Vec::new(),
    };
    let page = FormPage::new(&form, "/f/token")
        .with_data(&answers)
        .with_errors(&errors)
        .with_notice(title)
        .render();
    let html = Html::parse_document(&page);
    let mut forms = 0;
    for el in html.root_element().descendants().filter_map(ElementRef::wrap) {
        let name = el.value().name();
        let Some((_, attrs)) = ALLOWED.iter().find(|(allowed, _)| *allowed == name) else {
            panic!("element <{name}> in\n{page}");
        };
        for (attr, value) in el.value().attrs() {
            assert!(attrs.contains(&attr), "attribute {attr} on <{name}> in\n{page}");
            if attr == "name" && matches!(name, "input" | "select") {
                assert!(property(&schema, value).is_some(), "field {value:?} is not in the schema");
            }
        }
        forms += usize::from(name == "form");
    }
    assert_eq!(forms, 1, "one form in\n{page}");
});
