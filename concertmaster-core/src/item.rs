//! Items, the JSON objects that flow between nodes, grouped by port.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One unit of data between nodes: a JSON object.
///
/// A form sent to 200 suppliers yields 200 items; a node receives and emits
/// lists of items per port, so an ERP export can batch them.
pub type Item = serde_json::Map<String, Value>;

/// The port every node reads from and writes to unless it names another.
pub const MAIN_PORT: &str = "main";

/// The output port a failed node routes its failure to, when an edge leaves it.
pub const ERROR_PORT: &str = "error";

/// Items per named port: a node's input, or the output it emits.
///
/// A port that is present, even with no items, is *taken*: the edges leaving
/// it carry data. A port that is absent is not taken, and nodes reachable only
/// through it are skipped. That is how a branch node chooses a path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ports(BTreeMap<String, Vec<Item>>);

impl Ports {
    /// No ports taken.
    pub fn new() -> Self {
        Self::default()
    }

    /// `items` on the `main` port.
    pub fn main(items: Vec<Item>) -> Self {
        Self::new().with(MAIN_PORT, items)
    }

    /// Adds `items` on `port` (appending to items already there).
    pub fn with(mut self, port: impl Into<String>, items: Vec<Item>) -> Self {
        self.extend(port, items);
        self
    }

    /// Appends `items` to `port`, taking the port if it was not taken.
    pub fn extend(&mut self, port: impl Into<String>, items: Vec<Item>) {
        self.0.entry(port.into()).or_default().extend(items);
    }

    /// Appends one item to `port`.
    pub fn push(&mut self, port: impl Into<String>, item: Item) {
        self.0.entry(port.into()).or_default().push(item);
    }

    /// The items on `port`; empty when the port is not taken.
    pub fn get(&self, port: &str) -> &[Item] {
        self.0.get(port).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The items on the `main` port.
    pub fn main_items(&self) -> &[Item] {
        self.get(MAIN_PORT)
    }

    /// Removes and returns the items on `port`.
    pub fn take(&mut self, port: &str) -> Vec<Item> {
        self.0.remove(port).unwrap_or_default()
    }

    /// Whether `port` is taken.
    pub fn is_taken(&self, port: &str) -> bool {
        self.0.contains_key(port)
    }

    /// The names of the taken ports, in order.
    pub fn port_names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Ports with their items, in port-name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Item])> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Number of items over all ports.
    pub fn item_count(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    /// Whether no port is taken.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Turns a JSON value into items: an object is one item, an array of objects
/// is one item each. Anything else is refused with what was found.
pub(crate) fn items_from_value(value: Value) -> Result<Vec<Item>, String> {
    match value {
        Value::Object(map) => Ok(vec![map]),
        Value::Array(values) => values
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(map) => Ok(map),
                other => Err(format!("[{i}] is {}, not an object", kind_of(&other))),
            })
            .collect(),
        other => Err(format!(
            "{}, not an object or an array of objects",
            kind_of(&other)
        )),
    }
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: Value) -> Item {
        match v {
            Value::Object(m) => m,
            _ => Item::new(),
        }
    }

    #[test]
    fn an_empty_port_is_still_taken() {
        let ports = Ports::new().with("true", vec![]);
        assert!(ports.is_taken("true"));
        assert!(!ports.is_taken("false"));
        assert!(ports.get("false").is_empty());
    }

    #[test]
    fn items_append_per_port() {
        let mut ports = Ports::main(vec![item(json!({"a": 1}))]);
        ports.push(MAIN_PORT, item(json!({"a": 2})));
        assert_eq!(ports.main_items().len(), 2);
        assert_eq!(ports.item_count(), 2);
        assert_eq!(
            serde_json::to_value(&ports).ok(),
            Some(json!({"main": [{"a": 1}, {"a": 2}]}))
        );
    }

    #[test]
    fn trigger_values_become_items_or_a_clear_refusal() {
        assert_eq!(items_from_value(json!({"a": 1})).map(|v| v.len()), Ok(1));
        assert_eq!(
            items_from_value(json!([{"a": 1}, {"b": 2}])).map(|v| v.len()),
            Ok(2)
        );
        assert_eq!(
            items_from_value(json!([{"a": 1}, 3])),
            Err("[1] is a number, not an object".to_string())
        );
        assert_eq!(
            items_from_value(json!("x")),
            Err("a string, not an object or an array of objects".to_string())
        );
    }
}
