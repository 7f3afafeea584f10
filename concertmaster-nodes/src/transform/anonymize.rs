//! `anonymize`: removes, redacts, masks or pseudonymises personal fields of
//! each item before data leaves for analytics or a wider audience.

use async_trait::async_trait;
use concertmaster_core::{
    node::{ConfigError, NodeCategory, RegistryError, MAIN_PORT},
    Item, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{check_pointer, get_pointer, remove_pointer, set_pointer};

/// What replaces a redacted value.
const REDACTED: &str = "[redacted]";

/// Config of an `anonymize` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"fields": [{"path": "/contact/email", "method": "hash"}, {"path": "/iban", "method": "mask", "keep": 4}], "salt": "onboarding"}))]
struct AnonymizeConfig {
    /// The fields to anonymize, each with its method.
    #[schemars(length(min = 1))]
    fields: Vec<FieldConfig>,
    /// Mixed into hashes, so that the same e-mail hashes differently in
    /// another workflow and cannot be looked up in a table of known hashes.
    #[serde(default)]
    salt: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = concertmaster_core::node::declared_order::<Self>)]
struct FieldConfig {
    /// The field (JSON pointer).
    #[schemars(example = "/contact/email")]
    path: String,
    /// What becomes of it.
    method: Method,
    /// `mask`: how many trailing characters stay readable.
    #[serde(default)]
    keep: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
enum Method {
    /// The field is deleted.
    Remove,
    /// The value becomes `[redacted]`.
    Redact,
    /// Every character but the last `keep` becomes `*`.
    Mask,
    /// The value becomes `sha256:<hex>` of the salted value: equal inputs
    /// stay equal (joins and counts still work), the value is not readable.
    Hash,
}

struct Anonymize {
    fields: Vec<FieldConfig>,
    salt: String,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Anonymize {
    fn apply(&self, item: &mut Item) {
        for field in &self.fields {
            let Some(value) = get_pointer(item, &field.path).cloned() else {
                continue;
            };
            let replaced = match field.method {
                Method::Remove => {
                    remove_pointer(item, &field.path);
                    continue;
                }
                Method::Redact => Value::String(REDACTED.into()),
                Method::Mask => {
                    let chars: Vec<char> = text(&value).chars().collect();
                    let keep = field.keep.min(chars.len());
                    let masked: String = std::iter::repeat_n('*', chars.len() - keep)
                        .chain(chars[chars.len() - keep..].iter().copied())
                        .collect();
                    Value::String(masked)
                }
                Method::Hash => {
                    let mut hasher = Sha256::new();
                    hasher.update(self.salt.as_bytes());
                    hasher.update([0]);
                    hasher.update(text(&value).as_bytes());
                    Value::String(format!("sha256:{}", hex::encode(hasher.finalize())))
                }
            };
            set_pointer(item, &field.path, replaced);
        }
    }
}

#[async_trait]
impl Node for Anonymize {
    async fn execute(
        &self,
        _ctx: &NodeContext,
        mut input: Ports,
    ) -> Result<NodeOutcome, NodeError> {
        let mut items = input.take(MAIN_PORT);
        for item in &mut items {
            self.apply(item);
        }
        Ok(NodeOutcome::main(items))
    }
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_with_config(
        NodeDescriptor::new("anonymize", NodeCategory::Transform)
            .label("Anonymize")
            .icon("eye-off")
            .description(
                "Removes, redacts, masks or hashes (salted SHA-256) the listed personal fields \
                 of each item; fields an item lacks are left alone.",
            ),
        |config: AnonymizeConfig| -> Result<Anonymize, ConfigError> {
            for (i, field) in config.fields.iter().enumerate() {
                check_pointer(&field.path, &format!("/fields/{i}/path"))?;
            }
            Ok(Anonymize {
                fields: config.fields,
                salt: config.salt,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::testkit::{out, run};
    use serde_json::json;

    #[tokio::test]
    async fn applies_each_method() {
        let config = json!({"salt": "s1", "fields": [
            {"path": "/contact/email", "method": "hash"},
            {"path": "/contact/phone", "method": "mask", "keep": 3},
            {"path": "/contact/name", "method": "redact"},
            {"path": "/birthDate", "method": "remove"},
            {"path": "/absent", "method": "redact"}
        ]});
        let detail = run(
            "anonymize",
            config,
            json!([
                {"contact": {"email": "jane@acme.test", "phone": "+4930123456", "name": "Jane"}, "birthDate": "1990-01-01", "vat": "DE1"},
                {"contact": {"email": "jane@acme.test"}}
            ]),
        )
        .await;
        let items = out(&detail, "main");
        let first = &items[0];
        assert_eq!(first["contact"]["phone"], "********456");
        assert_eq!(first["contact"]["name"], "[redacted]");
        assert!(first.get("birthDate").is_none());
        assert!(first.get("absent").is_none());
        assert_eq!(first["vat"], "DE1");
        let hash = first["contact"]["email"].as_str().unwrap();
        assert!(
            hash.starts_with("sha256:") && hash.len() == 7 + 64,
            "{hash}"
        );
        assert!(!hash.contains("jane"));
        assert_eq!(
            items[1]["contact"]["email"], first["contact"]["email"],
            "same input, same hash"
        );
    }

    #[tokio::test]
    async fn the_salt_changes_the_hash() {
        let hash = |salt: &'static str| async move {
            let config = json!({"salt": salt, "fields": [{"path": "/e", "method": "hash"}]});
            out(&run("anonymize", config, json!({"e": "x"})).await, "main")[0]["e"].clone()
        };
        assert_ne!(hash("a").await, hash("b").await);
    }
}
