//! The form builder: fields as a form designer lays them out, turned into
//! a [`FormSchema`] (JSON Schema + uiSchema in react-jsonschema-form's
//! conventions), and submissions checked with the same validator the
//! server uses.

use std::collections::HashSet;

use concertmaster_core::{
    form::{FormId, FormSchema, PII_KEYWORD, RETENTION_KEYWORD},
    validate::FieldError,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::diagnostics::{Diagnostic, Severity};

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FieldKind {
    /// A line of text.
    Text,
    /// A number.
    Number,
    /// A calendar date (`YYYY-MM-DD`).
    Date,
    /// One of a list of options.
    Choice,
    /// Any of a list of options.
    MultiChoice,
    /// A reference to an uploaded file (a URL or the host's file id).
    File,
    /// Fields of their own, shown together.
    Group,
}

/// Show a field only when another field of the same group has a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VisibleWhen {
    /// The other field's name.
    pub field: String,
    /// The value it must have.
    pub equals: Value,
}

/// One field as the designer set it up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldDraft {
    /// The key in the submitted data (`companyName`).
    pub name: String,
    /// What it holds.
    pub kind: FieldKind,
    /// The label shown.
    #[serde(default)]
    pub label: String,
    /// Help text under the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Whether an answer is required.
    #[serde(default)]
    pub required: bool,
    /// A regular expression text must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Smallest number, shortest text, fewest choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest number, longest text, most choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The options of a choice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Whether it holds personal data (erased on request, kept no longer
    /// than its retention).
    #[serde(default)]
    pub pii: bool,
    /// Days this field is kept, when shorter than the form's retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Shown only when another field has a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_when: Option<VisibleWhen>,
    /// The fields of a group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDraft>,
}

/// A form as the designer set it up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FormDraft {
    /// The form's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Days answers are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Its fields, in order.
    pub fields: Vec<FieldDraft>,
}

/// The form a draft makes, and what is wrong with the draft (tied to JSON
/// pointers into it). The form is there whenever the draft's errors still
/// leave a usable schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuiltForm {
    /// The form schema, ready to publish.
    pub form: Option<FormSchema>,
    /// The draft's problems.
    pub diagnostics: Vec<Diagnostic>,
}

fn problem(pointer: String, kind: &str, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        kind: kind.into(),
        message,
        node_id: None,
        edge_id: None,
        pointer: Some(pointer),
        related: Vec::new(),
    }
}

/// The form schema of `draft`, checked: names, options, bounds, patterns,
/// conditions, and that the whole compiles as the server will compile it.
pub fn build(draft: &FormDraft) -> BuiltForm {
    let mut diagnostics = Vec::new();
    if draft.id.trim().is_empty() {
        diagnostics.push(problem(
            "/id".into(),
            "empty_id",
            "give the form an id".into(),
        ));
    }
    if draft.fields.is_empty() {
        diagnostics.push(problem("/fields".into(), "no_fields", "add a field".into()));
    }
    let (schema, ui) = group(&draft.fields, "/fields", &mut diagnostics);
    let mut schema = schema;
    if let Value::Object(map) = &mut schema {
        map.insert("title".into(), json!(draft.title));
    }
    let form = FormSchema {
        id: FormId::from(draft.id.as_str()),
        version: 0,
        title: draft.title.clone(),
        schema,
        ui_schema: ui,
        retention_days: draft.retention_days,
    };
    if let Err(err) = form.validator() {
        diagnostics.push(problem("/fields".into(), "invalid_schema", err.to_string()));
        return BuiltForm {
            form: None,
            diagnostics,
        };
    }
    BuiltForm {
        form: Some(form),
        diagnostics,
    }
}

/// The object schema and uiSchema of `fields`.
fn group(fields: &[FieldDraft], at: &str, diagnostics: &mut Vec<Diagnostic>) -> (Value, Value) {
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut conditional: Vec<Value> = Vec::new();
    let mut ui = Map::new();
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for (index, field) in fields.iter().enumerate() {
        let here = format!("{at}/{index}");
        let name = field.name.trim();
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            diagnostics.push(problem(
                format!("{here}/name"),
                "invalid_name",
                format!("field {}: name it with letters, digits, '_' or '-' (it is the key in the answers)", index + 1),
            ));
            continue;
        }
        if !seen.insert(name.to_string()) {
            diagnostics.push(problem(
                format!("{here}/name"),
                "duplicate_name",
                format!("two fields are named {name:?}"),
            ));
            continue;
        }
        let (schema, field_ui) = field_schema(field, &here, diagnostics);
        order.push(json!(name));
        if !field_ui.as_object().is_some_and(Map::is_empty) {
            ui.insert(name.to_string(), field_ui);
        }
        match &field.visible_when {
            None => {
                properties.insert(name.to_string(), schema);
                if field.required {
                    required.push(json!(name));
                }
            }
            Some(when) => {
                let known = fields[..index].iter().any(|f| f.name.trim() == when.field);
                if !known {
                    diagnostics.push(problem(
                        format!("{here}/visibleWhen/field"),
                        "unknown_condition_field",
                        format!("field {name} depends on {:?}, which is not a field above it in the same group", when.field),
                    ));
                    continue;
                }
                let mut then = json!({ "properties": { name: schema } });
                if field.required {
                    then["required"] = json!([name]);
                }
                conditional.push(json!({
                    "if": { "properties": { (when.field.clone()): { "const": when.equals } }, "required": [when.field] },
                    "then": then
                }));
            }
        }
    }
    let mut schema = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        schema["required"] = Value::Array(required);
    }
    if !conditional.is_empty() {
        schema["allOf"] = Value::Array(conditional);
    }
    if !order.is_empty() {
        order.push(json!("*"));
        ui.insert("ui:order".into(), Value::Array(order));
    }
    (schema, Value::Object(ui))
}

fn field_schema(field: &FieldDraft, at: &str, diagnostics: &mut Vec<Diagnostic>) -> (Value, Value) {
    let mut schema = Map::new();
    let mut ui = Map::new();
    if !field.label.is_empty() {
        schema.insert("title".into(), json!(field.label));
    }
    if let Some(help) = &field.help {
        ui.insert("ui:help".into(), json!(help));
    }
    if let (Some(min), Some(max)) = (field.min, field.max) {
        if min > max {
            diagnostics.push(problem(
                format!("{at}/min"),
                "invalid_bounds",
                format!("the smallest value {min} is above the largest {max}"),
            ));
        }
    }
    let count = |n: f64| {
        // Lengths and counts are whole and not negative.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = n.max(0.0).floor() as u64;
        json!(whole)
    };
    match field.kind {
        FieldKind::Text => {
            schema.insert("type".into(), json!("string"));
            if let Some(pattern) = &field.pattern {
                schema.insert("pattern".into(), json!(pattern));
            }
            if let Some(min) = field.min {
                schema.insert("minLength".into(), count(min));
            }
            if let Some(max) = field.max {
                schema.insert("maxLength".into(), count(max));
            }
        }
        FieldKind::Number => {
            schema.insert("type".into(), json!("number"));
            if let Some(min) = field.min {
                schema.insert("minimum".into(), json!(min));
            }
            if let Some(max) = field.max {
                schema.insert("maximum".into(), json!(max));
            }
        }
        FieldKind::Date => {
            schema.insert("type".into(), json!("string"));
            schema.insert("format".into(), json!("date"));
        }
        FieldKind::Choice | FieldKind::MultiChoice => {
            if field.options.is_empty() {
                diagnostics.push(problem(
                    format!("{at}/options"),
                    "no_options",
                    format!("field {}: list its options", field.name),
                ));
            }
            let options = json!(field.options);
            if field.kind == FieldKind::Choice {
                schema.insert("type".into(), json!("string"));
                if !field.options.is_empty() {
                    schema.insert("enum".into(), options);
                }
                if field.options.len() <= 4 {
                    ui.insert("ui:widget".into(), json!("radio"));
                }
            } else {
                schema.insert("type".into(), json!("array"));
                let mut items = json!({ "type": "string" });
                if !field.options.is_empty() {
                    items["enum"] = options;
                }
                schema.insert("items".into(), items);
                schema.insert("uniqueItems".into(), json!(true));
                if let Some(min) = field.min {
                    schema.insert("minItems".into(), count(min));
                }
                if let Some(max) = field.max {
                    schema.insert("maxItems".into(), count(max));
                }
                ui.insert("ui:widget".into(), json!("checkboxes"));
            }
        }
        FieldKind::File => {
            schema.insert("type".into(), json!("string"));
            schema.insert("format".into(), json!("uri-reference"));
            schema.insert("x-file".into(), json!(true));
            ui.insert(
                "ui:placeholder".into(),
                json!("link or file id of the upload"),
            );
        }
        FieldKind::Group => {
            if field.fields.is_empty() {
                diagnostics.push(problem(
                    format!("{at}/fields"),
                    "no_fields",
                    format!("group {}: add its fields", field.name),
                ));
            }
            let (group_schema, group_ui) =
                group(&field.fields, &format!("{at}/fields"), diagnostics);
            if let (Value::Object(inner), Value::Object(ui_inner)) = (group_schema, group_ui) {
                schema.extend(inner);
                ui.extend(ui_inner);
            }
        }
    }
    if field.pattern.is_some() && field.kind != FieldKind::Text {
        diagnostics.push(problem(
            format!("{at}/pattern"),
            "unused_pattern",
            format!("field {}: only text fields take a pattern", field.name),
        ));
    }
    if let Some(pattern) = &field.pattern {
        if concertmaster_core::validate::SchemaValidator::new(
            &json!({ "type": "string", "pattern": pattern }),
        )
        .is_err()
        {
            diagnostics.push(problem(
                format!("{at}/pattern"),
                "invalid_pattern",
                format!(
                    "field {}: {pattern:?} is not a regular expression",
                    field.name
                ),
            ));
            schema.remove("pattern");
        }
    }
    if field.pii {
        schema.insert(PII_KEYWORD.into(), json!(true));
    }
    if let Some(days) = field.retention_days {
        schema.insert(RETENTION_KEYWORD.into(), json!(days));
    }
    (Value::Object(schema), Value::Object(ui))
}

/// The field errors of `data` against `form`: what the server answers to a
/// submission, for a form preview.
pub fn check_submission(form: &FormSchema, data: &Value) -> Result<Vec<FieldError>, String> {
    match form.check(data) {
        Ok(Ok(())) => Ok(Vec::new()),
        Ok(Err(errors)) => Ok(errors),
        Err(err) => Err(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, kind: FieldKind) -> FieldDraft {
        FieldDraft {
            name: name.into(),
            kind,
            label: name.into(),
            help: None,
            required: false,
            pattern: None,
            min: None,
            max: None,
            options: Vec::new(),
            pii: false,
            retention_days: None,
            visible_when: None,
            fields: Vec::new(),
        }
    }

    fn supplier_form() -> FormDraft {
        FormDraft {
            id: "supplier".into(),
            title: "Supplier questionnaire".into(),
            retention_days: Some(365),
            fields: vec![
                FieldDraft {
                    required: true,
                    pattern: Some("^[A-Z].+".into()),
                    ..field("companyName", FieldKind::Text)
                },
                FieldDraft {
                    options: vec!["DE".into(), "CH".into()],
                    required: true,
                    ..field("country", FieldKind::Choice)
                },
                FieldDraft {
                    pii: true,
                    required: true,
                    visible_when: Some(VisibleWhen {
                        field: "country".into(),
                        equals: json!("DE"),
                    }),
                    ..field("vatId", FieldKind::Text)
                },
                FieldDraft {
                    min: Some(1.0),
                    max: Some(100_000.0),
                    ..field("employees", FieldKind::Number)
                },
                FieldDraft {
                    fields: vec![
                        FieldDraft {
                            pii: true,
                            ..field("email", FieldKind::Text)
                        },
                        field("since", FieldKind::Date),
                    ],
                    ..field("contact", FieldKind::Group)
                },
            ],
        }
    }

    #[test]
    fn a_draft_becomes_a_form_the_server_checks_the_same_way() {
        let built = build(&supplier_form());
        assert!(built.diagnostics.is_empty(), "{:?}", built.diagnostics);
        let form = built.form.unwrap();
        assert_eq!(form.schema["required"], json!(["companyName", "country"]));
        assert_eq!(
            form.schema["properties"]["country"]["enum"],
            json!(["DE", "CH"])
        );
        assert_eq!(
            form.schema["allOf"][0]["then"]["properties"]["vatId"][PII_KEYWORD],
            true
        );
        assert_eq!(
            form.ui_schema["ui:order"],
            json!([
                "companyName",
                "country",
                "vatId",
                "employees",
                "contact",
                "*"
            ])
        );
        assert_eq!(form.ui_schema["country"]["ui:widget"], "radio");
        let pii: Vec<String> = form.pii_fields().into_iter().map(|f| f.pointer).collect();
        assert_eq!(
            pii,
            ["/contact/email", "/vatId"],
            "conditional fields included"
        );

        let ok = json!({ "companyName": "Acme", "country": "CH", "employees": 12, "contact": { "email": "a@acme.example", "since": "2020-01-01" } });
        assert_eq!(check_submission(&form, &ok).unwrap(), vec![]);
        // Germany needs the VAT id: the condition applies.
        let missing_vat = json!({ "companyName": "Acme", "country": "DE" });
        let errors = check_submission(&form, &missing_vat).unwrap();
        assert!(
            errors.iter().any(|e| e.message.contains("vatId")),
            "{errors:?}"
        );
        let bad = json!({ "companyName": "acme", "country": "FR", "employees": 0 });
        let pointers: Vec<String> = check_submission(&form, &bad)
            .unwrap()
            .into_iter()
            .map(|e| e.pointer)
            .collect();
        assert!(
            pointers.contains(&"/companyName".into())
                && pointers.contains(&"/country".into())
                && pointers.contains(&"/employees".into()),
            "{pointers:?}"
        );
    }

    #[test]
    fn draft_mistakes_point_at_the_field_setting() {
        let mut draft = supplier_form();
        draft.fields[0].pattern = Some("([".into());
        draft.fields[1].options.clear();
        draft.fields[2].visible_when = Some(VisibleWhen {
            field: "region".into(),
            equals: json!("x"),
        });
        draft.fields[3].min = Some(10.0);
        draft.fields[3].max = Some(1.0);
        draft.fields[4].fields.push(field("email", FieldKind::Text));
        draft.fields.push(field("bad name", FieldKind::Text));
        let built = build(&draft);
        let pointers: Vec<&str> = built
            .diagnostics
            .iter()
            .filter_map(|d| d.pointer.as_deref())
            .collect();
        assert_eq!(
            pointers,
            [
                "/fields/0/pattern",
                "/fields/1/options",
                "/fields/2/visibleWhen/field",
                "/fields/3/min",
                "/fields/4/fields/2/name",
                "/fields/5/name"
            ]
        );
        assert!(built.form.is_some(), "what is left still makes a form");
    }
}
