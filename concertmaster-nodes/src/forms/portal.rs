//! The pages of a form portal: a form link's form as plain HTML (no script
//! needed), the answers a browser posts back as JSON typed by the schema,
//! and the short pages for a link that cannot be answered.
//!
//! Every page is built with [maud](https://maud.lambda.xyz/), whose
//! templates escape each value they splice in; markup cannot be assembled
//! from strings here, so a schema's titles, help texts, enum labels or a
//! respondent's answers are always text, never elements or attributes.
//! maud rather than askama: a form is a recursive walk over nested
//! objects, which in maud is a Rust function calling itself, checked by
//! the compiler with the rest of the crate; askama would need template
//! files and recursive includes for the same. Both escape by default; in
//! maud the one way out, `PreEscaped`, is a name to search for (used once,
//! for the page's own stylesheet).

use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::{Map, Value};

use concertmaster_core::{
    form::{FormSchema, PII_KEYWORD},
    validate::{FieldError, SchemaValidator},
};

/// The stylesheet of every portal page. It styles only the page's own
/// elements: the page is the portal's alone.
const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;background:#f5f6f8;color:#1d2430;margin:0}\
main{max-width:640px;margin:32px auto;background:#fff;padding:24px 32px;border-radius:8px;box-shadow:0 1px 3px #0002}\
label{display:block;font-weight:600;margin-top:14px}.help{color:#6a7380;font-size:13px}\
input,select{font:inherit;padding:6px 8px;border:1px solid #b8c0cc;border-radius:4px;width:100%;box-sizing:border-box}\
input[type=checkbox],input[type=radio]{width:auto}fieldset{border:1px solid #d9dde3;border-radius:6px;margin-top:14px}\
.error{color:#b3261e;font-size:13px}.invalid input,.invalid select{border-color:#b3261e}\
button{margin-top:20px;font:inherit;padding:8px 18px;border:0;border-radius:4px;background:#1565c0;color:#fff}\
.summary{background:#fdecec;padding:8px 12px;border-radius:4px}\
.saved{background:#e8f5e9;padding:8px 12px;border-radius:4px}";

/// A form link's page: the form, the answers so far, what is wrong with
/// them.
#[derive(Debug, Clone, Copy)]
pub struct FormPage<'a> {
    /// The form version the link asks for.
    pub form: &'a FormSchema,
    /// Where the form posts to: the link's own URL path.
    pub action: &'a str,
    /// The answers to show: a saved draft, or a submission sent back.
    pub data: &'a Value,
    /// What is wrong with `data`, each shown under its field.
    pub errors: &'a [FieldError],
    /// A line above the form, such as "Saved.".
    pub notice: Option<&'a str>,
}

impl<'a> FormPage<'a> {
    /// The empty form of `form`, posting to `action`.
    pub fn new(form: &'a FormSchema, action: &'a str) -> Self {
        const EMPTY: &Value = &Value::Null;
        Self {
            form,
            action,
            data: EMPTY,
            errors: &[],
            notice: None,
        }
    }

    /// The form filled with `data`.
    pub fn with_data(mut self, data: &'a Value) -> Self {
        self.data = data;
        self
    }

    /// The form with `errors` shown under their fields.
    pub fn with_errors(mut self, errors: &'a [FieldError]) -> Self {
        self.errors = errors;
        self
    }

    /// The form with `notice` above it.
    pub fn with_notice(mut self, notice: &'a str) -> Self {
        self.notice = Some(notice);
        self
    }

    /// The page as an HTML document: the schema's fields in the uiSchema's
    /// `ui:order` (the rest after, in schema order), objects as fieldsets,
    /// each error under its field.
    pub fn render(&self) -> String {
        let form = self.form;
        let body = html! {
            h1 { (form.title) }
            @if let Some(notice) = self.notice {
                p.saved role="status" { (notice) }
            }
            @if !self.errors.is_empty() {
                p.summary role="alert" { (self.errors.len()) " field(s) need your attention." }
            }
            form method="post" action=(self.action) novalidate {
                (fields(&Level {
                    schema: &form.schema,
                    ui: &form.ui_schema,
                    at: "",
                }, self))
                button type="submit" { "Submit" }
                " "
                button type="submit" name="action" value="draft" formnovalidate { "Save and continue later" }
            }
        };
        document(&form.title, body)
    }
}

/// A page with one message: why a link cannot be answered, or thanks for
/// answering it.
pub fn message_page(title: &str, heading: &str, text: &str) -> String {
    document(
        title,
        html! {
            h1 { (heading) }
            p { (text) }
        },
    )
}

fn document(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                // Our own constant: the one splice not escaped.
                style { (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    }
    .into_string()
}

/// One object of the schema, with its part of the uiSchema, at a JSON
/// pointer.
struct Level<'a> {
    schema: &'a Value,
    ui: &'a Value,
    at: &'a str,
}

fn fields(level: &Level<'_>, page: &FormPage<'_>) -> Markup {
    let shown = shown_fields(
        level.schema,
        page.data.pointer(level.at),
        level.at,
        page.errors,
    );
    let required: Vec<&str> = shown
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    html! {
        @for (name, property) in property_order(&shown, level.ui.get("ui:order")) {
            @let pointer = format!("{}/{}", level.at, name.replace('~', "~0").replace('/', "~1"));
            @let title = property.get("title").and_then(Value::as_str).unwrap_or(name);
            @let ui = level.ui.get(name).unwrap_or(&Value::Null);
            @if property.get("type").and_then(Value::as_str) == Some("object") {
                fieldset {
                    legend { (title) }
                    (fields(&Level { schema: property, ui, at: &pointer }, page))
                }
            } @else {
                @let mine: Vec<&FieldError> = page.errors.iter().filter(|e| e.pointer == pointer).collect();
                @let id = field_id(&pointer);
                div.field.invalid[!mine.is_empty()] {
                    label for=(id) {
                        (title)
                        @if required.contains(&name.as_str()) { " *" }
                        @if property.get(PII_KEYWORD) == Some(&Value::Bool(true)) {
                            " " span.help { "(personal data)" }
                        }
                    }
                    (input(&id, &pointer, property, page.data.pointer(&pointer)))
                    @if let Some(help) = ui.get("ui:help").and_then(Value::as_str) {
                        div.help { (help) }
                    }
                    @for error in mine {
                        div.error data-field=(pointer) { (error.message) }
                    }
                }
            }
        }
    }
}

/// The fields of one object to draw, as `{properties, required}`: its own
/// properties, and those of each conditional branch (`if`/`then`/`else`,
/// also inside `allOf`, as the form builder writes a "shown when" field)
/// whose condition holds for `data`, with that branch's `required`. A
/// field with an error is drawn whatever its condition says: an answer
/// is never refused for a field the respondent cannot see.
fn shown_fields(schema: &Value, data: Option<&Value>, at: &str, errors: &[FieldError]) -> Value {
    let mut properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut required: Vec<Value> = schema
        .get("required")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let empty = Value::Object(Map::new());
    // No answers yet is an empty object: `if` keywords such as `required`
    // pass for anything that is not one.
    let data = data.filter(|d| d.is_object()).unwrap_or(&empty);
    for (branch, applies) in branches(schema, data) {
        let Some(extra) = branch.get("properties").and_then(Value::as_object) else {
            continue;
        };
        for (name, property) in extra {
            let pointer = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
            let wrong = errors.iter().any(|e| {
                e.pointer == pointer
                    || e.pointer
                        .strip_prefix(pointer.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            });
            if (applies || wrong) && !properties.contains_key(name) {
                properties.insert(name.clone(), property.clone());
            }
        }
        if applies {
            if let Some(more) = branch.get("required").and_then(Value::as_array) {
                required.extend(more.iter().cloned());
            }
        }
    }
    serde_json::json!({ "properties": properties, "required": required })
}

/// The conditional branches of `schema` (its own `if`, and those in its
/// `allOf`), each with whether it applies to `data`.
fn branches<'a>(schema: &'a Value, data: &Value) -> Vec<(&'a Value, bool)> {
    let mut found = Vec::new();
    let own = std::iter::once(schema);
    let all = schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for part in own.chain(all) {
        let Some(condition) = part.get("if") else {
            continue;
        };
        // A condition that does not compile holds for nothing.
        let holds = SchemaValidator::new(condition).is_ok_and(|v| v.is_valid(data));
        if let Some(then) = part.get("then") {
            found.push((then, holds));
        }
        if let Some(otherwise) = part.get("else") {
            found.push((otherwise, !holds));
        }
    }
    found
}

/// The property `key` of `schema`: its own, or one a conditional branch
/// adds.
fn property_of<'a>(schema: &'a Value, key: &str) -> Option<&'a Value> {
    if let Some(own) = schema.get("properties").and_then(|p| p.get(key)) {
        return Some(own);
    }
    let empty = Value::Null;
    branches(schema, &empty)
        .into_iter()
        .find_map(|(branch, _)| branch.get("properties").and_then(|p| p.get(key)))
}

/// The element id of the field at `pointer`: the pointer's tokens joined by
/// `.`, which no published property name holds, so two fields never share
/// one.
fn field_id(pointer: &str) -> String {
    format!("f{}", pointer.replace('/', "."))
}

fn property_order<'a>(schema: &'a Value, order: Option<&Value>) -> Vec<(&'a String, &'a Value)> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut listed: Vec<(&String, &Value)> = Vec::new();
    if let Some(order) = order.and_then(Value::as_array) {
        for name in order.iter().filter_map(Value::as_str) {
            if let Some((key, value)) = properties.get_key_value(name) {
                if !listed.iter().any(|(k, _)| *k == key) {
                    listed.push((key, value));
                }
            }
        }
    }
    for (key, value) in properties {
        if !listed.iter().any(|(k, _)| *k == key) {
            listed.push((key, value));
        }
    }
    listed
}

fn input(id: &str, name: &str, property: &Value, value: Option<&Value>) -> Markup {
    let text = match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let kind = property
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    if let Some(options) = property.get("enum").and_then(Value::as_array) {
        return html! {
            select id=(id) name=(name) {
                option value="" {}
                @for option in options {
                    @let shown = option.as_str().map_or_else(|| option.to_string(), str::to_string);
                    option selected[shown == text] value=(shown) { (shown) }
                }
            }
        };
    }
    if kind == "array" {
        let options = property
            .pointer("/items/enum")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let chosen: Vec<&str> = value
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        return html! {
            @for (i, option) in options.iter().filter_map(Value::as_str).enumerate() {
                label {
                    input type="checkbox" id=(format!("{id}.{i}")) name=(name) value=(option) checked[chosen.contains(&option)];
                    " " (option)
                }
            }
        };
    }
    if kind == "boolean" {
        return html! {
            input type="checkbox" id=(id) name=(name) value="true" checked[value == Some(&Value::Bool(true))];
        };
    }
    let html_type = match (kind, property.get("format").and_then(Value::as_str)) {
        ("integer" | "number", _) => "number",
        (_, Some("date")) => "date",
        (_, Some("email")) => "email",
        (_, Some("uri")) => "url",
        _ => "text",
    };
    let step = (kind == "number").then_some("any");
    html! {
        input type=(html_type) step=[step] id=(id) name=(name) value=(text);
    }
}

/// What a browser posted to a form page.
#[derive(Debug, Clone, PartialEq)]
pub struct PostedForm {
    /// The answers as JSON, typed by the schema: numbers as numbers (or as
    /// entered, so the check names the field), empty fields left out so
    /// that `required` says what is missing, fields the schema does not
    /// have dropped.
    pub answers: Value,
    /// The respondent asked to save a draft rather than submit.
    pub save_draft: bool,
}

impl PostedForm {
    /// Reads an `application/x-www-form-urlencoded` body posted by a
    /// [`FormPage`] of a form with `schema`.
    pub fn parse(schema: &Value, body: &[u8]) -> Self {
        let pairs = form_urlencoded(body);
        let save_draft = pairs
            .iter()
            .any(|(name, value)| name == "action" && value == "draft");
        Self {
            answers: answers(schema, &pairs),
            save_draft,
        }
    }
}

fn form_urlencoded(body: &[u8]) -> Vec<(String, String)> {
    fn decode(part: &str) -> String {
        let bytes = part.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn answers(schema: &Value, pairs: &[(String, String)]) -> Value {
    let mut data = Value::Object(Map::new());
    for (pointer, text) in pairs {
        let Some(property) = property_at(schema, pointer) else {
            continue;
        };
        let kind = property
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string");
        if text.is_empty() {
            continue;
        }
        let value = match kind {
            "integer" => text
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(text.clone())),
            "number" => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(text.clone())),
            "boolean" => Value::Bool(text == "true"),
            _ => Value::String(text.clone()),
        };
        insert(&mut data, pointer, value, kind == "array");
    }
    data
}

fn property_at<'a>(schema: &'a Value, pointer: &str) -> Option<&'a Value> {
    // Only a pointer to a field the page drew: "" or "x" is none.
    let rest = pointer.strip_prefix('/')?;
    let mut at = schema;
    for token in rest.split('/') {
        let key = token.replace("~1", "/").replace("~0", "~");
        at = property_of(at, &key)?;
    }
    Some(at)
}

fn insert(data: &mut Value, pointer: &str, value: Value, many: bool) {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut at = data;
    for token in parents {
        if !at.get(token).is_some_and(Value::is_object) {
            if let Value::Object(map) = at {
                map.insert(token.clone(), Value::Object(Map::new()));
            }
        }
        let Some(next) = at.get_mut(token) else {
            return;
        };
        at = next;
    }
    if let Value::Object(map) = at {
        if many {
            let list = map
                .entry(last.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.push(value);
            }
        } else {
            map.insert(last.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn posted_fields_become_typed_answers() {
        let schema = json!({ "type": "object", "properties": {
            "company": { "type": "string" }, "employees": { "type": "integer" },
            "ratio": { "type": "number" }, "tags": { "type": "array", "items": { "enum": ["a", "b"] } },
            "contact": { "type": "object", "properties": { "email": { "type": "string" } } } } });
        let posted = PostedForm::parse(&schema, b"%2Fcompany=Acme+GmbH&%2Femployees=12&%2Fratio=0.5&%2Ftags=a&%2Ftags=b&%2Fcontact%2Femail=a%40b.example&%2Fignored=x&%2Femployees2=&company=x");
        assert_eq!(
            posted.answers,
            json!({ "company": "Acme GmbH", "employees": 12, "ratio": 0.5, "tags": ["a", "b"], "contact": { "email": "a@b.example" } })
        );
        assert!(!posted.save_draft);
        let posted = PostedForm::parse(&schema, b"%2Femployees=twelve&%2Fcompany=&action=draft");
        assert_eq!(posted.answers, json!({ "employees": "twelve" }));
        assert!(posted.save_draft);
    }

    #[test]
    fn nested_fields_get_ids_no_other_field_has() {
        assert_eq!(field_id("/a_b"), "f.a_b");
        assert_eq!(field_id("/a/b"), "f.a.b");
    }
}
