//! JSON Schema checks with every failure as a field error: for form
//! submissions, node configs and the `validate` node.
//!
//! The validator is ConcertMaster's own, small enough to ship in the
//! editor's WebAssembly model, so that the editor, the portal and the
//! engine give the same verdict on the same value. It implements draft
//! 2020-12 (and the draft 4 to 2019-09 spellings of the same keywords)
//! except `unevaluatedProperties`, `unevaluatedItems`, `$dynamicRef` and
//! references outside the document, which it refuses when compiling.
//! `pattern` is a Rust regular expression (`regex` crate syntax: no
//! look-around or back-references); the official JSON Schema test suite
//! runs against it in this crate's tests.

mod check;
mod compile;
mod format;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use check::Walk;
use compile::{compile, Compiled};

/// One field that failed its schema: where (a JSON pointer into the
/// checked value, `""` for the whole value) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON pointer to the field, e.g. `/contact/email`.
    pub pointer: String,
    /// What is wrong with it.
    pub message: String,
    /// The keyword of the rule it broke (`required`, `pattern`,
    /// `minLength`, `format`, ...), for hosts that word their own
    /// message per rule. Empty for errors that are not a schema's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyword: String,
}

impl FieldError {
    /// An error of the host's own (no schema keyword) at `pointer`.
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
            keyword: String::new(),
        }
    }
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
    compiled: Compiled,
}

impl std::fmt::Debug for SchemaValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaValidator").finish_non_exhaustive()
    }
}

impl SchemaValidator {
    /// Compiles `schema`; formats (`email`, `date`, ...) are checked.
    /// The error names the place in the schema that does not compile.
    pub fn new(schema: &Value) -> Result<Self, String> {
        Self::compiled(schema, true)
    }

    /// Compiles `schema`, with `format` checked or only annotating (as
    /// node config schemas use it: a config value may be an expression
    /// that becomes a URI only when the node runs).
    pub(crate) fn compiled(schema: &Value, formats: bool) -> Result<Self, String> {
        compile(schema, formats).map(|compiled| Self { compiled })
    }

    /// Every failure of `value`, in document order; empty when it passes.
    /// A missing property is that property's error, so that a form shows
    /// it under the field, not above the whole form.
    pub fn check(&self, value: &Value) -> Vec<FieldError> {
        Walk::collect(&self.compiled, value)
            .into_iter()
            .map(|v| {
                let pointer = match &v.property {
                    Some(name) => format!("{}/{}", v.path, compile::escape(name)),
                    None => v.path,
                };
                FieldError {
                    pointer,
                    message: v.message,
                    keyword: v.keyword.to_string(),
                }
            })
            .collect()
    }

    /// Every failure of `value` where it was found: a missing property
    /// is reported at the object that lacks it (as config diagnostics
    /// point at the node's config).
    pub(crate) fn violations(&self, value: &Value) -> Vec<FieldError> {
        Walk::collect(&self.compiled, value)
            .into_iter()
            .map(|v| FieldError {
                pointer: v.path,
                message: v.message,
                keyword: v.keyword.to_string(),
            })
            .collect()
    }

    /// Whether `value` passes.
    pub fn is_valid(&self, value: &Value) -> bool {
        Walk::passes(&self.compiled, value)
    }
}

#[cfg(test)]
mod tests;
