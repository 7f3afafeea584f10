//! Forms: a JSON Schema with its uiSchema, versioned; which fields hold
//! personal data and how long answers are kept; checking a submission; the
//! stored responses, their review, and the links respondents get.
//!
//! For form services (the portal, review screens) and the nodes that send
//! forms; their storage is [`FormStore`](crate::store::FormStore).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{NodeId, RunId, TenantId};

pub use crate::ids::{FormId, ResponseId};
use crate::schema::{FieldError, SchemaValidator};
#[cfg(feature = "runtime")]
pub use crate::token::FormToken;

mod response;
pub use response::{FormLink, FormResponse, PreparedResponse, ResponseFilter};

/// The keyword that flags a schema property as personal data.
pub const PII_KEYWORD: &str = "x-pii";
/// The keyword that gives a property its own retention, in days.
pub const RETENTION_KEYWORD: &str = "x-retention-days";

/// A form as respondents see it: the JSON Schema of its data and the
/// uiSchema that lays it out, in the conventions react-jsonschema-form and
/// JSON Forms render.
///
/// Personal fields carry `"x-pii": true` in the schema and may carry
/// `"x-retention-days": N`; both keywords are ignored by the renderers.
///
/// ```
/// use concertmaster_core::form::FormSchema;
/// use serde_json::json;
///
/// let form = FormSchema::new("supplier-profile", "Supplier profile", json!({
///     "type": "object",
///     "properties": {
///         "company": { "type": "string", "minLength": 2 },
///         "contact": {
///             "type": "object",
///             "properties": {
///                 "email": { "type": "string", "format": "email", "x-pii": true, "x-retention-days": 365 }
///             },
///             "required": ["email"]
///         }
///     },
///     "required": ["company", "contact"]
/// }))
/// .with_retention_days(730);
///
/// let pii = form.pii_fields();
/// assert_eq!(pii[0].pointer, "/contact/email");
/// assert_eq!(pii[0].retention_days, Some(365));
///
/// let errors = form.check(&json!({ "company": "A", "contact": {} }))?.unwrap_err();
/// assert_eq!(errors.len(), 2);
/// # Ok::<(), concertmaster_core::form::FormError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FormSchema {
    /// The form's id.
    pub id: FormId,
    /// Assigned when stored: 1, 2, ... A stored version never changes.
    #[serde(default)]
    pub version: u32,
    /// Shown above the form.
    pub title: String,
    /// JSON Schema of the submitted data.
    pub schema: Value,
    /// Layout hints for the renderer (rjsf `uiSchema` / JSON Forms UI schema).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub ui_schema: Value,
    /// How long answers are kept, in days; `None` keeps them until erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

/// A property that holds personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PiiField {
    /// JSON pointer into the submitted data.
    pub pointer: String,
    /// Its own retention, when shorter than the form's.
    pub retention_days: Option<u32>,
}

/// Why a form cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    /// Its JSON Schema does not compile.
    #[error("form {form}: invalid JSON Schema: {message}")]
    InvalidSchema {
        /// The form.
        form: FormId,
        /// What the schema compiler said.
        message: String,
    },
    /// A property name the portal could not use safely as a field id.
    #[error(
        "form {form}: property name {name:?} at {pointer} is not allowed: use 1 to {max} letters, \
         digits, '_' or '-'",
        max = MAX_PROPERTY_NAME
    )]
    UnsafePropertyName {
        /// The form.
        form: FormId,
        /// JSON pointer to the property in the schema.
        pointer: String,
        /// The name as written.
        name: String,
    },
}

/// The longest property name a form may use.
pub const MAX_PROPERTY_NAME: usize = 64;

/// Schema keywords whose values are data, not subschemas: a `properties`
/// inside them names nothing.
const DATA_KEYWORDS: [&str; 4] = ["default", "const", "enum", "examples"];

/// The first property name under `schema` (at `pointer`) that is not
/// 1 to [`MAX_PROPERTY_NAME`] ASCII letters, digits, `_` or `-`, with its
/// pointer.
fn unsafe_property_name(schema: &Value, pointer: &str) -> Option<(String, String)> {
    let escape = |key: &str| key.replace('~', "~0").replace('/', "~1");
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                if DATA_KEYWORDS.contains(&key.as_str()) {
                    continue;
                }
                let here = format!("{pointer}/{}", escape(key));
                if key == "properties" {
                    if let Value::Object(properties) = value {
                        for (name, property) in properties {
                            let at = format!("{here}/{}", escape(name));
                            let safe = !name.is_empty()
                                && name.len() <= MAX_PROPERTY_NAME
                                && name
                                    .bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                            if !safe {
                                return Some((at, name.clone()));
                            }
                            if let Some(found) = unsafe_property_name(property, &at) {
                                return Some(found);
                            }
                        }
                        continue;
                    }
                }
                if let Some(found) = unsafe_property_name(value, &here) {
                    return Some(found);
                }
            }
            None
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| unsafe_property_name(item, &format!("{pointer}/{i}"))),
        _ => None,
    }
}

impl FormSchema {
    /// A form with `schema`, no uiSchema, kept until erased.
    pub fn new(id: impl Into<FormId>, title: impl Into<String>, schema: Value) -> Self {
        Self {
            id: id.into(),
            version: 0,
            title: title.into(),
            schema,
            ui_schema: Value::Null,
            retention_days: None,
        }
    }

    /// Sets the uiSchema.
    pub fn with_ui_schema(mut self, ui_schema: Value) -> Self {
        self.ui_schema = ui_schema;
        self
    }

    /// Keeps answers for `days` days.
    pub fn with_retention_days(mut self, days: u32) -> Self {
        self.retention_days = Some(days);
        self
    }

    /// Checks the form before it is published: its schema compiles, and
    /// every property name, at any depth (nested objects, array items,
    /// conditional branches), is 1 to [`MAX_PROPERTY_NAME`] ASCII letters,
    /// digits, `_` or `-`, since pages use it as a field's id.
    ///
    /// ```
    /// use concertmaster_core::form::{FormError, FormSchema};
    /// use serde_json::json;
    ///
    /// let form = FormSchema::new("f", "F", json!({
    ///     "type": "object",
    ///     "properties": { "contact": { "type": "object", "properties": { "e\"mail": {} } } }
    /// }));
    /// let Err(FormError::UnsafePropertyName { pointer, .. }) = form.check_definition() else {
    ///     panic!("refused");
    /// };
    /// assert_eq!(pointer, "/properties/contact/properties/e\"mail");
    /// ```
    pub fn check_definition(&self) -> Result<(), FormError> {
        self.validator()?;
        match unsafe_property_name(&self.schema, "") {
            Some((pointer, name)) => Err(FormError::UnsafePropertyName {
                form: self.id.clone(),
                pointer,
                name,
            }),
            None => Ok(()),
        }
    }

    /// Compiles the schema, for checking many submissions.
    pub fn validator(&self) -> Result<SchemaValidator, FormError> {
        SchemaValidator::new(&self.schema).map_err(|message| FormError::InvalidSchema {
            form: self.id.clone(),
            message,
        })
    }

    /// Checks `data`: `Ok(Ok(()))` when it may be stored, `Ok(Err(errors))`
    /// with every field error when not; `Err` when the form itself is broken.
    pub fn check(&self, data: &Value) -> Result<Result<(), Vec<FieldError>>, FormError> {
        Ok(none_or_all(self.validator()?.check(data)))
    }

    /// Checks a draft leniently: what it holds must be valid, but fields
    /// may be missing (the schema's `required`, at every level, is left
    /// out). `Ok(Err(errors))` with every field error otherwise.
    pub fn check_draft(&self, data: &Value) -> Result<Result<(), Vec<FieldError>>, FormError> {
        let mut lenient = self.schema.clone();
        drop_required(&mut lenient);
        let validator =
            SchemaValidator::new(&lenient).map_err(|message| FormError::InvalidSchema {
                form: self.id.clone(),
                message,
            })?;
        Ok(none_or_all(validator.check(data)))
    }

    /// Blanks every `x-pii` field of `data` (sets it to `null`, in every
    /// element of arrays); returns how many values were blanked.
    pub fn erase_pii(&self, data: &mut Value) -> usize {
        self.pii_fields()
            .iter()
            .map(|field| blank(data, &field.pointer))
            .sum()
    }

    /// The properties flagged `x-pii`, in schema order, with nested objects
    /// and the items of arrays of objects (pointer `/contacts/*/email`).
    pub fn pii_fields(&self) -> Vec<PiiField> {
        let mut found = Vec::new();
        collect_pii(&self.schema, "", &mut found);
        found
    }
}

fn collect_pii(schema: &Value, at: &str, found: &mut Vec<PiiField>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let pointer = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
            if property.get(PII_KEYWORD) == Some(&Value::Bool(true)) {
                found.push(PiiField {
                    pointer: pointer.clone(),
                    retention_days: property
                        .get(RETENTION_KEYWORD)
                        .and_then(Value::as_u64)
                        .and_then(|d| u32::try_from(d).ok()),
                });
            }
            collect_pii(property, &pointer, found);
        }
    }
    if let Some(items) = schema.get("items") {
        collect_pii(items, &format!("{at}/*"), found);
    }
    // Fields that exist under a condition (if/then, a choice of shapes)
    // hold personal data all the same.
    for key in ["allOf", "anyOf", "oneOf"] {
        for branch in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            collect_pii(branch, at, found);
        }
    }
    for key in ["then", "else"] {
        if let Some(branch) = schema.get(key) {
            collect_pii(branch, at, found);
        }
    }
    // A field flagged in two branches is one field.
    let mut seen = std::collections::HashSet::new();
    found.retain(|f| seen.insert(f.pointer.clone()));
}

/// Sets the value at `pointer` to null; `*` stands for every array element.
pub(crate) fn blank(data: &mut Value, pointer: &str) -> usize {
    fn walk(value: &mut Value, tokens: &[String]) -> usize {
        let Some((first, rest)) = tokens.split_first() else {
            if value.is_null() {
                return 0;
            }
            *value = Value::Null;
            return 1;
        };
        match value {
            Value::Array(items) if first == "*" => {
                items.iter_mut().map(|item| walk(item, rest)).sum()
            }
            Value::Object(map) => map.get_mut(first).map_or(0, |next| walk(next, rest)),
            _ => 0,
        }
    }
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    walk(data, &tokens)
}

/// Where a response is in its review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReviewStatus {
    /// Not reviewed yet.
    #[default]
    Pending,
    /// Accepted by a reviewer.
    Approved,
    /// Sent back by a reviewer.
    Rejected,
}

impl ReviewStatus {
    /// The lowercase name stored and used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }
}

/// A respondent's consent, as they gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Consent {
    /// Whether they agreed.
    pub given: bool,
    /// What they agreed to (the text, or its id and version).
    pub text: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Where a submission came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Submitter {
    /// Client IP address, as the host saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The browser's user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// A reviewer's decision on a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// [`ReviewStatus::Approved`] or [`ReviewStatus::Rejected`].
    pub status: ReviewStatus,
    /// Who decided.
    pub reviewer: String,
    /// Why, when they said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Answers saved part-way through a link, so that the respondent resumes
/// later, on any device that has the same link. Each save replaces the
/// link's draft; the link's submission removes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormDraft {
    /// The SHA-256 hash of the link's token.
    pub token_hash: String,
    /// The link's tenant.
    pub tenant: TenantId,
    /// The answers so far.
    pub data: Value,
    /// When they were saved.
    pub saved_at: DateTime<Utc>,
}

/// `Ok` without field errors, every one of them otherwise.
fn none_or_all(errors: Vec<FieldError>) -> Result<(), Vec<FieldError>> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Removes the `required` keyword from `schema` and every schema inside
/// it. Keywords whose values are schemas are walked; a property that
/// happens to be named `required` is a name under `properties`, not a
/// keyword, and stays.
fn drop_required(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    if map.get("required").is_some_and(Value::is_array) {
        map.remove("required");
    }
    for (keyword, value) in map.iter_mut() {
        match keyword.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                if let Value::Object(schemas) = value {
                    schemas.values_mut().for_each(drop_required);
                }
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                if let Value::Array(schemas) = value {
                    schemas.iter_mut().for_each(drop_required);
                }
            }
            "items"
            | "additionalProperties"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "unevaluatedProperties"
            | "unevaluatedItems"
            | "propertyNames" => match value {
                Value::Array(schemas) => schemas.iter_mut().for_each(drop_required),
                other => drop_required(other),
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_draft_may_lack_required_fields_at_any_level_but_not_hold_wrong_ones() {
        let form = FormSchema::new(
            "f",
            "F",
            json!({
                "type": "object",
                "properties": {
                    "company": { "type": "string", "minLength": 2 },
                    "required": { "type": "boolean" },
                    "contacts": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": { "email": { "type": "string", "format": "email" } },
                            "required": ["email"]
                        }
                    },
                    "address": {
                        "allOf": [{ "type": "object", "required": ["city"] }]
                    }
                },
                "required": ["company", "required", "contacts", "address"]
            }),
        );
        let partial = json!({ "contacts": [{}], "address": {} });
        assert!(form.check_draft(&partial).unwrap().is_ok());
        assert!(
            form.check(&partial).unwrap().is_err(),
            "a submission stays strict"
        );

        let wrong = json!({ "company": "A", "required": "yes", "contacts": [{ "email": 7 }] });
        let errors = form.check_draft(&wrong).unwrap().unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers.len(), 3, "{errors:?}");
        for pointer in ["/company", "/required", "/contacts/0/email"] {
            assert!(pointers.contains(&pointer), "{pointer} in {errors:?}");
        }
    }

    #[test]
    fn pii_fields_under_a_condition_are_found_and_erased() {
        let form = FormSchema::new(
            "f",
            "F",
            json!({
                "type": "object",
                "properties": { "country": { "type": "string" } },
                "allOf": [
                    { "if": { "properties": { "country": { "const": "DE" } } },
                      "then": { "properties": { "vatId": { "type": "string", "x-pii": true } } },
                      "else": { "properties": { "vatId": { "type": "string", "x-pii": true }, "taxRef": { "type": "string", "x-pii": true } } } }
                ]
            }),
        );
        let pointers: Vec<_> = form.pii_fields().into_iter().map(|f| f.pointer).collect();
        assert_eq!(pointers, vec!["/vatId", "/taxRef"]);
        let mut data = json!({ "country": "DE", "vatId": "DE123" });
        assert_eq!(form.erase_pii(&mut data), 1);
        assert_eq!(data, json!({ "country": "DE", "vatId": null }));
    }

    #[test]
    fn pii_fields_are_found_in_nested_objects_and_arrays() {
        let form = FormSchema::new(
            "f",
            "F",
            json!({
                "type": "object",
                "properties": {
                    "name": { "type": "string", "x-pii": true },
                    "vat": { "type": "string" },
                    "contacts": { "type": "array", "items": {
                        "type": "object",
                        "properties": { "phone": { "type": "string", "x-pii": true, "x-retention-days": 30 } }
                    } }
                }
            }),
        );
        let pointers: Vec<_> = form.pii_fields().into_iter().map(|f| f.pointer).collect();
        assert_eq!(pointers, vec!["/contacts/*/phone", "/name"]);
    }

    #[test]
    fn erasing_blanks_pii_fields_also_inside_arrays() {
        let form = FormSchema::new(
            "f",
            "F",
            json!({
                "type": "object",
                "properties": {
                    "name": { "type": "string", "x-pii": true },
                    "contacts": { "type": "array", "items": {
                        "type": "object",
                        "properties": { "phone": { "type": "string", "x-pii": true } }
                    } }
                }
            }),
        );
        let mut data =
            json!({"name": "Jane", "vat": "DE1", "contacts": [{"phone": "1"}, {"phone": "2"}, {}]});
        assert_eq!(form.erase_pii(&mut data), 3);
        assert_eq!(
            data,
            json!({"name": null, "vat": "DE1", "contacts": [{"phone": null}, {"phone": null}, {}]})
        );
        assert_eq!(
            form.erase_pii(&mut data),
            0,
            "erasing twice changes nothing"
        );
    }

    #[test]
    fn a_broken_schema_names_the_form() {
        let form = FormSchema::new("broken", "B", json!({ "type": 12 }));
        let err = form.check(&json!({})).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("form broken: invalid JSON Schema"),
            "{err}"
        );
    }

    #[test]
    fn forms_round_trip_as_camel_case_json() {
        let form = FormSchema::new("f", "F", json!({"type": "object"}))
            .with_ui_schema(json!({"ui:order": ["*"]}))
            .with_retention_days(90);
        let text = serde_json::to_value(&form).unwrap();
        assert_eq!(text["uiSchema"]["ui:order"], json!(["*"]));
        assert_eq!(text["retentionDays"], 90);
        let back: FormSchema = serde_json::from_value(text).unwrap();
        assert_eq!(back, form);
        let unknown = json!({"id": "f", "title": "F", "schema": {}, "retention": 3});
        assert!(serde_json::from_value::<FormSchema>(unknown).is_err());
    }
}
