//! The node registry: node types by id, with their descriptors and factories.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::descriptor::{NodeCategory, NodeDescriptor};
use crate::node::{JsonSchema, Node};

/// Why a node config was refused: a message and the JSON pointer into the
/// config it concerns (`""` for the whole config).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", pointer_prefix(pointer))]
pub struct ConfigError {
    /// JSON pointer into the node's config, e.g. `/recipients/0/email`.
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

impl ConfigError {
    /// A problem with the config as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            pointer: String::new(),
            message: message.into(),
        }
    }

    /// Points the problem at `pointer` inside the config.
    pub fn at(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = pointer.into();
        self
    }
}

fn pointer_prefix(pointer: &str) -> String {
    if pointer.is_empty() {
        String::new()
    } else {
        format!("{pointer}: ")
    }
}

/// Why a node type could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Another type already has this id.
    #[error("node type {type_id:?} is already registered; pick another type id (custom nodes usually prefix theirs, e.g. \"acme.{type_id}\")")]
    DuplicateType {
        /// The id registered twice.
        type_id: String,
    },
    /// The descriptor's config schema is not a valid JSON Schema.
    #[error("node type {type_id:?}: its config schema is not a valid JSON Schema: {message}")]
    InvalidSchema {
        /// The type whose schema failed.
        type_id: String,
        /// What the schema compiler said.
        message: String,
    },
    /// The type id is empty or has whitespace.
    #[error("node type id {type_id:?} must be non-empty and free of whitespace")]
    InvalidTypeId {
        /// The id refused.
        type_id: String,
    },
}

type Factory = dyn Fn(&Value) -> Result<Arc<dyn Node>, ConfigError> + Send + Sync;

type Reader = dyn Fn(&Value) -> Result<(), ConfigError> + Send + Sync;

struct Registered {
    descriptor: NodeDescriptor,
    schema: crate::schema::SchemaValidator,
    factory: Arc<Factory>,
    /// Reads a config into the type's config struct and nothing more: what
    /// the schema must agree with. Only for types registered with one.
    reader: Option<Arc<Reader>>,
}

/// Node types by id: what the editor can offer and what a workflow can use.
///
/// ```
/// use async_trait::async_trait;
/// use concertmaster_core::{
///     Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
///     node::{ConfigError, NodeCategory},
/// };
/// use schemars::JsonSchema;
/// use serde::Deserialize;
/// use serde_json::json;
///
/// /// Its schema is derived from it.
/// #[derive(Deserialize, JsonSchema)]
/// struct TagConfig {
///     /// The tag every item gets.
///     tag: String,
/// }
///
/// struct Tag(TagConfig);
///
/// #[async_trait]
/// impl Node for Tag {
///     async fn execute(&self, _ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
///         let mut items = input.take("main");
///         for item in &mut items {
///             item.insert("tag".into(), self.0.tag.clone().into());
///         }
///         Ok(NodeOutcome::main(items))
///     }
/// }
///
/// let mut registry = NodeRegistry::new();
/// registry.register_with_config(
///     NodeDescriptor::new("acme.tag", NodeCategory::Transform),
///     |config: TagConfig| Ok(Tag(config)),
/// )?;
/// let schema = &registry.descriptor("acme.tag").unwrap().config_schema;
/// assert_eq!(schema["required"], json!(["tag"]));
/// # Ok::<(), concertmaster_core::node::RegistryError>(())
/// ```
#[derive(Default)]
pub struct NodeRegistry {
    types: BTreeMap<String, Registered>,
}

/// Reads a node's config into `C`, refusing it with the path of the
/// offending field: what [`NodeRegistry::register_with_config`] does before
/// it calls its factory, for nodes registered with
/// [`NodeRegistry::register`].
pub fn read_config<C: DeserializeOwned>(config: &Value) -> Result<C, ConfigError> {
    serde_path_to_error::deserialize(config).map_err(|err| {
        let pointer = path_to_pointer(&err.path().to_string());
        ConfigError::new(err.into_inner().to_string()).at(pointer)
    })
}

impl NodeRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a node type: `factory` builds a node from a config that
    /// already satisfies the descriptor's config schema, and may refuse it
    /// for reasons a schema cannot say (an expression that does not compile).
    /// It is called when a workflow is published, so such errors surface
    /// then, naming the node.
    pub fn register<N, F>(
        &mut self,
        descriptor: NodeDescriptor,
        factory: F,
    ) -> Result<(), RegistryError>
    where
        N: Node,
        F: Fn(&Value) -> Result<N, ConfigError> + Send + Sync + 'static,
    {
        let type_id = descriptor.type_id.clone();
        if type_id.is_empty() || type_id.chars().any(char::is_whitespace) {
            return Err(RegistryError::InvalidTypeId { type_id });
        }
        if self.types.contains_key(&type_id) {
            return Err(RegistryError::DuplicateType { type_id });
        }
        let schema = crate::schema::SchemaValidator::compiled(&descriptor.config_schema, false)
            .map_err(|message| RegistryError::InvalidSchema {
                type_id: type_id.clone(),
                message,
            })?;
        let factory: Arc<Factory> = Arc::new(move |config: &Value| {
            factory(config).map(|node| Arc::new(node) as Arc<dyn Node>)
        });
        self.types.insert(
            type_id,
            Registered {
                descriptor,
                schema,
                factory,
                reader: None,
            },
        );
        Ok(())
    }

    /// Registers a node type whose config deserializes into `C`; a config
    /// that does not is refused with the path of the offending field.
    ///
    /// The descriptor's config schema is `C`'s, derived with
    /// [`config_schema`](crate::node::config_schema): the struct is the one
    /// place its fields, defaults and descriptions are written.
    pub fn register_with_config<C, N, F>(
        &mut self,
        descriptor: NodeDescriptor,
        factory: F,
    ) -> Result<(), RegistryError>
    where
        C: DeserializeOwned + JsonSchema,
        N: Node,
        F: Fn(C) -> Result<N, ConfigError> + Send + Sync + 'static,
    {
        let descriptor = descriptor.config_schema(crate::node::config_schema::<C>());
        let type_id = descriptor.type_id.clone();
        self.register(descriptor, move |config: &Value| {
            factory(read_config(config)?)
        })?;
        if let Some(registered) = self.types.get_mut(&type_id) {
            registered.reader = Some(Arc::new(|config: &Value| {
                read_config::<C>(config).map(drop)
            }));
        }
        Ok(())
    }

    /// Registers a node type whose nodes need no config: one shared instance.
    pub fn register_node<N: Node>(
        &mut self,
        descriptor: NodeDescriptor,
        node: N,
    ) -> Result<(), RegistryError> {
        let node = Arc::new(node);
        self.register(descriptor, move |_: &Value| {
            Ok(SharedNode(Arc::clone(&node)))
        })
    }

    /// The descriptor of `type_id`.
    pub fn descriptor(&self, type_id: &str) -> Option<&NodeDescriptor> {
        self.types.get(type_id).map(|r| &r.descriptor)
    }

    /// All descriptors, ordered by type id: the editor palette.
    pub fn descriptors(&self) -> impl Iterator<Item = &NodeDescriptor> {
        self.types.values().map(|r| &r.descriptor)
    }

    /// Descriptors of one category, ordered by type id.
    pub fn descriptors_in(&self, category: NodeCategory) -> impl Iterator<Item = &NodeDescriptor> {
        self.descriptors().filter(move |d| d.category == category)
    }

    /// Whether `type_id` is registered.
    pub fn contains(&self, type_id: &str) -> bool {
        self.types.contains_key(type_id)
    }

    /// Type ids that look like `type_id`, to suggest a fix for a typo.
    pub(crate) fn similar(&self, type_id: &str) -> Vec<&str> {
        let wanted = normalise(type_id);
        self.types
            .keys()
            .filter(|known| {
                let known = normalise(known);
                known.contains(&wanted)
                    || wanted.contains(&known)
                    || edit_distance(&known, &wanted) <= 2
            })
            .map(String::as_str)
            .take(3)
            .collect()
    }

    /// Checks `config` against the schema of `type_id`: every violation with
    /// its JSON pointer. `None` when the type is unknown.
    pub(crate) fn schema_errors(&self, type_id: &str, config: &Value) -> Option<Vec<ConfigError>> {
        let registered = self.types.get(type_id)?;
        Some(
            registered
                .schema
                .violations(config)
                .into_iter()
                .map(|err| ConfigError::new(err.message).at(err.pointer))
                .collect(),
        )
    }

    /// Reads `config` into the config struct of `type_id`, building
    /// nothing. `None` when the type is unknown or was registered without
    /// a struct.
    #[cfg(feature = "testing")]
    pub(crate) fn read(&self, type_id: &str, config: &Value) -> Option<Result<(), ConfigError>> {
        self.types
            .get(type_id)?
            .reader
            .as_ref()
            .map(|read| read(config))
    }

    /// Builds the node for `config`. `None` when the type is unknown.
    pub(crate) fn build(
        &self,
        type_id: &str,
        config: &Value,
    ) -> Option<Result<Arc<dyn Node>, ConfigError>> {
        self.types.get(type_id).map(|r| (r.factory)(config))
    }
}

impl fmt::Debug for NodeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeRegistry")
            .field("types", &self.types.keys().collect::<Vec<_>>())
            .finish()
    }
}

struct SharedNode<N>(Arc<N>);

impl<N: Node> Node for SharedNode<N> {
    // Written out rather than through `#[async_trait]`, which would box a
    // second future around the shared node's own on every execution.
    fn execute<'node, 'ctx, 'fut>(
        &'node self,
        ctx: &'ctx crate::NodeContext,
        input: crate::Ports,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<crate::NodeOutcome, crate::NodeError>>
                + Send
                + 'fut,
        >,
    >
    where
        'node: 'fut,
        'ctx: 'fut,
        Self: 'fut,
    {
        self.0.execute(ctx, input)
    }

    fn output_ports(&self) -> Option<Vec<String>> {
        self.0.output_ports()
    }

    fn join(&self) -> crate::node::Join {
        self.0.join()
    }
}

fn normalise(id: &str) -> String {
    id.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Levenshtein distance, for typo suggestions on short ids.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `recipients[0].email` -> `/recipients/0/email`.
fn path_to_pointer(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let mut pointer = String::new();
    for segment in path.split('.') {
        for part in segment.split('[') {
            let part = part.trim_end_matches(']');
            if !part.is_empty() {
                pointer.push('/');
                pointer.push_str(&part.replace('~', "~0").replace('/', "~1"));
            }
        }
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeContext, NodeError, NodeOutcome, Ports};
    use serde_json::json;

    struct Noop;

    #[async_trait::async_trait]
    impl Node for Noop {
        async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
            Ok(NodeOutcome::Done(input))
        }
    }

    /// Starts on its first input, with ports of its own.
    struct FirstWins;

    #[async_trait::async_trait]
    impl Node for FirstWins {
        async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
            Ok(NodeOutcome::Done(input))
        }

        fn join(&self) -> crate::node::Join {
            crate::node::Join::First
        }

        fn output_ports(&self) -> Option<Vec<String>> {
            Some(vec!["winner".into()])
        }
    }

    #[test]
    fn a_shared_node_keeps_its_join_and_ports() {
        let mut registry = NodeRegistry::new();
        let descriptor = NodeDescriptor::new("first_wins", NodeCategory::Logic);
        assert_eq!(registry.register_node(descriptor, FirstWins), Ok(()));
        let node = match registry.build("first_wins", &json!({})) {
            Some(Ok(node)) => node,
            other => panic!("first_wins did not build: {:?}", other.map(|r| r.err())),
        };
        assert_eq!(node.join(), crate::node::Join::First);
        assert_eq!(node.output_ports(), Some(vec!["winner".to_string()]));
    }

    #[test]
    fn duplicate_type_ids_are_refused() {
        let mut registry = NodeRegistry::new();
        let descriptor = NodeDescriptor::new("noop", NodeCategory::Logic);
        assert_eq!(registry.register_node(descriptor.clone(), Noop), Ok(()));
        assert_eq!(
            registry.register_node(descriptor, Noop),
            Err(RegistryError::DuplicateType {
                type_id: "noop".into()
            })
        );
    }

    #[test]
    fn invalid_schemas_and_ids_are_refused() {
        let mut registry = NodeRegistry::new();
        let err = registry
            .register_node(
                NodeDescriptor::new("bad", NodeCategory::Logic).config_schema(json!({"type": 12})),
                Noop,
            )
            .expect_err("a schema with a numeric type is invalid");
        assert!(matches!(err, RegistryError::InvalidSchema { .. }), "{err}");
        let err = registry
            .register_node(NodeDescriptor::new("has space", NodeCategory::Logic), Noop)
            .expect_err("whitespace in a type id is refused");
        assert!(matches!(err, RegistryError::InvalidTypeId { .. }));
    }

    #[test]
    fn typed_configs_report_the_pointer() {
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Config {
            recipients: Vec<Recipient>,
        }
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Recipient {
            email: String,
        }
        let mut registry = NodeRegistry::new();
        registry
            .register_with_config(
                NodeDescriptor::new("send", NodeCategory::Collection),
                |_: Config| Ok(Noop),
            )
            .expect("registers");
        let err = registry
            .build("send", &json!({"recipients": [{"email": 5}]}))
            .and_then(Result::err)
            .expect("a numeric email is refused");
        assert_eq!(err.pointer, "/recipients/0/email");
    }

    #[test]
    fn schema_errors_carry_pointers() {
        let mut registry = NodeRegistry::new();
        registry
            .register_node(
                NodeDescriptor::new("t", NodeCategory::Logic).config_schema(json!({
                    "type": "object",
                    "properties": {"n": {"type": "integer"}},
                    "required": ["m"]
                })),
                Noop,
            )
            .expect("registers");
        let errors = registry
            .schema_errors("t", &json!({"n": "x"}))
            .expect("type is known");
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert!(pointers.contains(&"/n"), "{errors:?}");
        assert!(pointers.contains(&""), "{errors:?}");
    }

    #[test]
    fn similar_names_are_suggested() {
        let mut registry = NodeRegistry::new();
        registry
            .register_node(
                NodeDescriptor::new("send_form", NodeCategory::Collection),
                Noop,
            )
            .expect("registers");
        assert_eq!(registry.similar("sendform"), vec!["send_form"]);
        assert_eq!(registry.similar("snd_frm"), vec!["send_form"]);
        assert!(registry.similar("zzz").is_empty());
    }
}
