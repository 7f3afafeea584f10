//! JSON Schema checks with every failure as a field error: for form
//! submissions and the `validate` node.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One field that failed its schema: where (a JSON pointer into the
/// checked value, `""` for the whole value) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON pointer to the field, e.g. `/contact/email`.
    pub pointer: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.message)
    }
}

/// A compiled JSON Schema.
///
/// ```
/// use concertmaster_core::validate::SchemaValidator;
/// use serde_json::json;
///
/// let schema = SchemaValidator::new(&json!({
///     "type": "object",
///     "properties": { "email": { "type": "string", "format": "email" } },
///     "required": ["email", "name"]
/// }))?;
/// let errors = schema.check(&json!({ "email": 42 }));
/// assert_eq!(errors.len(), 2);
/// assert!(errors.iter().any(|e| e.pointer == "/email"));
/// # Ok::<(), String>(())
/// ```
pub struct SchemaValidator {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for SchemaValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaValidator").finish_non_exhaustive()
    }
}

impl SchemaValidator {
    /// Compiles `schema`; formats (`email`, `date`, ...) are checked.
    pub fn new(schema: &Value) -> Result<Self, String> {
        jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .map(|validator| Self { validator })
            .map_err(|err| err.to_string())
    }

    /// Every failure of `value`, in document order; empty when it passes.
    pub fn check(&self, value: &Value) -> Vec<FieldError> {
        self.validator
            .iter_errors(value)
            .map(|err| {
                let mut pointer = err.instance_path().as_str().to_string();
                // A missing property is that property's error, so a form
                // shows it under the field, not above the whole form.
                if let jsonschema::error::ValidationErrorKind::Required { property } = err.kind() {
                    if let Some(name) = property.as_str() {
                        pointer =
                            format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"));
                    }
                }
                FieldError {
                    pointer,
                    message: err.to_string(),
                }
            })
            .collect()
    }

    /// Whether `value` passes.
    pub fn is_valid(&self, value: &Value) -> bool {
        self.validator.is_valid(value)
    }
}
