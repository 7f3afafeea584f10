//! Forms: a JSON Schema with its uiSchema, versioned; which fields hold
//! personal data and how long answers are kept; checking a submission.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::FormId;
use crate::schema::{FieldError, SchemaValidator};

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
/// use concertmaster_core::FormSchema;
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
/// # Ok::<(), concertmaster_core::FormError>(())
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
        let errors = self.validator()?.check(data);
        Ok(if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
