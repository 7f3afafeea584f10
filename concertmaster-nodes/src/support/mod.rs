//! What the built-in nodes share: compiling expressions from configs,
//! reading items as JSON values, JSON pointer writes, per-item errors.

use concertmaster_core::{node::ConfigError, Item, NodeError};
use serde_json::Value;

use crate::expr::{Expr, ExprError};

pub(crate) mod duration;

/// Compiles the expression at `pointer` of a node's config.
pub(crate) fn compile_at(code: &str, pointer: &str) -> Result<Expr, ConfigError> {
    Expr::compile(code).map_err(|err| ConfigError::new(err.to_string()).at(pointer))
}

/// An item as the JSON object it is.
pub(crate) fn item_value(item: &Item) -> Value {
    Value::Object(item.clone())
}

/// A value as an item: objects as they are, anything else under `value`.
pub(crate) fn value_item(value: Value) -> Item {
    match value {
        Value::Object(map) => map,
        other => {
            let mut item = Item::new();
            item.insert("value".into(), other);
            item
        }
    }
}

/// The failure of an expression on one item.
pub(crate) fn expr_failed(index: usize, expr: &Expr, err: ExprError) -> NodeError {
    NodeError::fatal(format!("item {index}: {err}")).with_details(serde_json::json!({
        "item": index,
        "expression": expr.code(),
    }))
}

/// Whether `condition` holds for item `index`; a failing evaluation fails
/// the node, naming the item.
pub(crate) fn holds(condition: &Expr, index: usize, item: &Item) -> Result<bool, NodeError> {
    condition
        .test(&item_value(item))
        .map_err(|err| expr_failed(index, condition, err))
}

/// Checks that `pointer` is a JSON pointer naming a field (`/a/b`).
pub(crate) fn check_pointer(pointer: &str, at: &str) -> Result<(), ConfigError> {
    if pointer.starts_with('/') && pointer.len() > 1 {
        Ok(())
    } else {
        Err(ConfigError::new(format!(
            "{pointer:?} is not a JSON pointer to a field; write it like \"/contact/email\""
        ))
        .at(at))
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Writes `value` at `pointer` in `target`, creating objects on the way;
/// an array or scalar in the way is replaced by an object.
pub(crate) fn set_pointer(target: &mut Item, pointer: &str, value: Value) {
    let mut tokens: Vec<String> = pointer.split('/').skip(1).map(unescape).collect();
    let Some(last) = tokens.pop() else {
        return;
    };
    let mut map = target;
    for token in tokens {
        let slot = map
            .entry(token)
            .or_insert_with(|| Value::Object(Default::default()));
        if !slot.is_object() {
            *slot = Value::Object(Default::default());
        }
        let Value::Object(next) = slot else {
            return;
        };
        map = next;
    }
    map.insert(last, value);
}

/// Removes the field at `pointer`; returns what was there.
pub(crate) fn remove_pointer(target: &mut Item, pointer: &str) -> Option<Value> {
    let mut tokens: Vec<String> = pointer.split('/').skip(1).map(unescape).collect();
    let last = tokens.pop()?;
    let mut map = target;
    for token in tokens {
        match map.get_mut(&token) {
            Some(Value::Object(next)) => map = next,
            _ => return None,
        }
    }
    map.remove(&last)
}

/// The value at `pointer` in an item.
pub(crate) fn get_pointer<'a>(item: &'a Item, pointer: &str) -> Option<&'a Value> {
    let (first, rest) = match pointer.strip_prefix('/')?.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (pointer.strip_prefix('/')?, None),
    };
    let value = item.get(&unescape(first))?;
    match rest {
        None => Some(value),
        Some(rest) => value.pointer(&format!("/{rest}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(value: Value) -> Item {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn pointers_read_write_and_remove_nested_fields() {
        let mut it = item(json!({"a": {"b": 1}, "c": [10, 20], "x~y": {"p/q": 2}}));
        assert_eq!(get_pointer(&it, "/a/b"), Some(&json!(1)));
        assert_eq!(get_pointer(&it, "/c/1"), Some(&json!(20)));
        assert_eq!(get_pointer(&it, "/x~0y/p~1q"), Some(&json!(2)));
        set_pointer(&mut it, "/d/e/f", json!("new"));
        assert_eq!(it["d"], json!({"e": {"f": "new"}}));
        set_pointer(&mut it, "/a/b/z", json!(3));
        assert_eq!(it["a"], json!({"b": {"z": 3}}));
        assert_eq!(remove_pointer(&mut it, "/d/e/f"), Some(json!("new")));
        assert_eq!(remove_pointer(&mut it, "/nope/x"), None);
    }
}
