//! Items, the JSON objects that flow between nodes, grouped by port.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
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
///
/// Cloning is cheap: the ports and each port's items are shared until
/// someone changes them, so handing one node's output to the next and
/// committing both to the store copies no item and allocates nothing.
/// A port fed by many edges (a join) holds each edge's items shared, and
/// copies them into one list only when read as a slice ([`get`](Self::get));
/// [`items`](Self::items) reads it without copying.
/// Serialized as a JSON object of arrays, ports in name order.
#[derive(Debug, Clone, Default)]
pub struct Ports {
    /// Sorted by port name; at most one entry per name. `None` until a
    /// port is taken, so that empty ports allocate nothing. A slice rather
    /// than a `Vec`: one allocation for the common one-port output, and
    /// ports are taken far less often than items are added.
    entries: Option<Arc<[Entry]>>,
}

type Entry = (Arc<str>, Items);

/// One port's items: a list of its own, or the shared lists of the edges
/// that feed it, in edge order.
#[derive(Clone)]
enum Items {
    One(Arc<Vec<Item>>),
    Joined(Arc<Joined>),
}

struct Joined {
    /// Never empty lists, at least two of them.
    parts: Vec<Arc<Vec<Item>>>,
    len: usize,
    /// The parts in one list, made on the first read as a slice.
    flat: OnceLock<Vec<Item>>,
}

impl Items {
    fn empty() -> Self {
        Self::One(Arc::new(Vec::new()))
    }

    fn len(&self) -> usize {
        match self {
            Self::One(items) => items.len(),
            Self::Joined(joined) => joined.len,
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shared lists, in order.
    fn parts(&self) -> &[Arc<Vec<Item>>] {
        match self {
            Self::One(items) => std::slice::from_ref(items),
            Self::Joined(joined) => &joined.parts,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Item> {
        self.parts().iter().flat_map(|part| part.iter())
    }

    fn as_slice(&self) -> &[Item] {
        match self {
            Self::One(items) => items,
            Self::Joined(joined) => joined.flat.get_or_init(|| joined.flatten()),
        }
    }

    /// The items as one list of this holder's own, to change.
    fn make_mut(&mut self) -> &mut Vec<Item> {
        match self {
            Self::One(items) => Arc::make_mut(items),
            Self::Joined(_) => {
                let joined = std::mem::replace(self, Self::empty());
                *self = Self::One(Arc::new(joined.into_vec()));
                self.make_mut()
            }
        }
    }

    /// The items, copied only where they are shared.
    fn into_vec(self) -> Vec<Item> {
        let joined = match self {
            Self::One(items) => return Arc::try_unwrap(items).unwrap_or_else(|s| (*s).clone()),
            Self::Joined(joined) => joined,
        };
        match Arc::try_unwrap(joined) {
            Ok(Joined { parts, len, flat }) => flat.into_inner().unwrap_or_else(|| {
                let mut items = Vec::with_capacity(len);
                for part in parts {
                    match Arc::try_unwrap(part) {
                        Ok(part) => items.extend(part),
                        Err(shared) => items.extend(shared.iter().cloned()),
                    }
                }
                items
            }),
            Err(shared) => shared.to_vec(),
        }
    }

    /// Appends `more`, sharing it.
    fn append_shared(&mut self, more: &Arc<Vec<Item>>) {
        if more.is_empty() {
            return;
        }
        if self.is_empty() {
            *self = Self::One(Arc::clone(more));
            return;
        }
        if let Self::Joined(joined) = self {
            if let Some(joined) = Arc::get_mut(joined) {
                joined.parts.push(Arc::clone(more));
                joined.len += more.len();
                joined.flat = OnceLock::new();
                return;
            }
        }
        let mut parts = Vec::with_capacity(self.parts().len() + 1);
        parts.extend(self.parts().iter().cloned());
        parts.push(Arc::clone(more));
        *self = Self::Joined(Arc::new(Joined {
            len: self.len() + more.len(),
            parts,
            flat: OnceLock::new(),
        }));
    }

    /// The same items, with a joined list's copy made for this holder
    /// alone, so that what it reads is dropped with it.
    fn unshared_copy(&self) -> Self {
        match self {
            Self::One(items) => Self::One(Arc::clone(items)),
            Self::Joined(joined) => Self::Joined(Arc::new(Joined {
                parts: joined.parts.clone(),
                len: joined.len,
                flat: OnceLock::new(),
            })),
        }
    }
}

impl Joined {
    /// The parts copied into one new list.
    fn flatten(&self) -> Vec<Item> {
        let mut flat = Vec::with_capacity(self.len);
        for part in &self.parts {
            flat.extend(part.iter().cloned());
        }
        flat
    }

    fn to_vec(&self) -> Vec<Item> {
        match self.flat.get() {
            Some(flat) => flat.clone(),
            None => self.flatten(),
        }
    }
}

impl PartialEq for Items {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Items {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Ports {
    fn eq(&self, other: &Self) -> bool {
        self.entries() == other.entries()
    }
}

impl Ports {
    /// No ports taken.
    pub fn new() -> Self {
        Self::default()
    }

    /// `items` on the `main` port.
    pub fn main(items: Vec<Item>) -> Self {
        Self {
            entries: Some(
                std::iter::once((port_name(MAIN_PORT), Items::One(Arc::new(items)))).collect(),
            ),
        }
    }

    /// Adds `items` on `port` (appending to items already there).
    pub fn with(mut self, port: impl AsRef<str>, items: Vec<Item>) -> Self {
        self.extend(port, items);
        self
    }

    /// Appends `items` to `port`, taking the port if it was not taken.
    pub fn extend(&mut self, port: impl AsRef<str>, items: Vec<Item>) {
        let port = port.as_ref();
        match self.position(port) {
            Ok(i) => {
                let slot = &mut self.entries_mut()[i].1;
                if slot.is_empty() {
                    *slot = Items::One(Arc::new(items));
                } else {
                    slot.make_mut().extend(items);
                }
            }
            Err(i) => self.insert(i, port, Items::One(Arc::new(items))),
        }
    }

    /// Appends one item to `port`.
    pub fn push(&mut self, port: impl AsRef<str>, item: Item) {
        self.slot(port.as_ref()).make_mut().push(item);
    }

    /// The items on `port`; empty when the port is not taken.
    ///
    /// A port fed by several edges is copied into one list on the first
    /// call; [`items`](Self::items) reads it without that copy.
    pub fn get(&self, port: &str) -> &[Item] {
        match self.position(port) {
            Ok(i) => self.entries()[i].1.as_slice(),
            Err(_) => &[],
        }
    }

    /// The items on `port`, in order, read where they are: for a port fed
    /// by many edges (a join of a fan-out), nothing is copied.
    pub fn items(&self, port: &str) -> impl Iterator<Item = &Item> {
        let items = self.position(port).ok().map(|i| &self.entries()[i].1);
        items.into_iter().flat_map(Items::iter)
    }

    /// The items on the `main` port.
    pub fn main_items(&self) -> &[Item] {
        self.get(MAIN_PORT)
    }

    /// Removes and returns the items on `port`, copying them only if they
    /// are shared with another holder.
    pub fn take(&mut self, port: &str) -> Vec<Item> {
        let Ok(i) = self.position(port) else {
            return Vec::new();
        };
        let entries = self.entries();
        let items = entries[i].1.clone();
        // Replaced before unwrapping, so that these entries no longer
        // hold the items; taking the only port allocates nothing.
        self.entries = (entries.len() > 1).then(|| {
            entries[..i]
                .iter()
                .chain(&entries[i + 1..])
                .cloned()
                .collect()
        });
        items.into_vec()
    }

    /// Whether `port` is taken.
    pub fn is_taken(&self, port: &str) -> bool {
        self.position(port).is_ok()
    }

    /// The names of the taken ports, in order.
    pub fn port_names(&self) -> impl Iterator<Item = &str> {
        self.entries().iter().map(|(name, _)| &**name)
    }

    /// Ports with their items, in port-name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Item])> {
        self.entries()
            .iter()
            .map(|(name, items)| (&**name, items.as_slice()))
    }

    /// Number of items over all ports.
    pub fn item_count(&self) -> usize {
        self.entries().iter().map(|(_, items)| items.len()).sum()
    }

    /// The port with the most items and their number; `None` when no
    /// port is taken. Counts a joined port without copying it.
    pub(crate) fn largest_port(&self) -> Option<(&str, usize)> {
        self.entries()
            .iter()
            .map(|(name, items)| (&**name, items.len()))
            .max_by_key(|&(_, n)| n)
    }

    /// Whether no port is taken.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// Adds the items of `from_port` of `other` to `port`, sharing them:
    /// nothing is copied, also when several edges feed one port.
    pub(crate) fn extend_shared(&mut self, port: &str, other: &Ports, from_port: &str) {
        let Ok(j) = other.position(from_port) else {
            return;
        };
        let items = &other.entries()[j].1;
        // The common case, one edge into a port: share the other's ports
        // outright when they are exactly this one.
        if self.entries.is_none() && port == from_port && other.entries().len() == 1 {
            self.entries = other.entries.clone();
            return;
        }
        match self.position(port) {
            Ok(i) => {
                let slot = &mut self.entries_mut()[i].1;
                for part in items.parts() {
                    slot.append_shared(part);
                }
            }
            Err(i) => self.insert(i, port, items.clone()),
        }
    }

    /// The same ports, where a joined port's one-list copy, once made, is
    /// this holder's alone: a node's input, so that the copy goes with the
    /// execution instead of staying in the stored record.
    pub(crate) fn unshared_joins(&self) -> Ports {
        let entries = self.entries();
        if !entries
            .iter()
            .any(|(_, items)| matches!(items, Items::Joined(_)))
        {
            return self.clone();
        }
        Ports {
            entries: Some(
                entries
                    .iter()
                    .map(|(name, items)| (Arc::clone(name), items.unshared_copy()))
                    .collect(),
            ),
        }
    }

    fn entries(&self) -> &[Entry] {
        self.entries.as_deref().unwrap_or(&[])
    }

    /// The entries to change, copied first if they are shared (their
    /// items are not).
    fn entries_mut(&mut self) -> &mut [Entry] {
        match &mut self.entries {
            Some(entries) => Arc::make_mut(entries),
            None => &mut [],
        }
    }

    /// Takes `port` at position `i` with `items`.
    fn insert(&mut self, i: usize, port: &str, items: Items) {
        let entries = self.entries();
        // Exact-size iterators: the new entries are one allocation.
        let inserted: Arc<[Entry]> = entries[..i]
            .iter()
            .cloned()
            .chain(std::iter::once((port_name(port), items)))
            .chain(entries[i..].iter().cloned())
            .collect();
        self.entries = Some(inserted);
    }

    fn position(&self, port: &str) -> Result<usize, usize> {
        self.entries()
            .binary_search_by(|(name, _)| (**name).cmp(port))
    }

    fn slot(&mut self, port: &str) -> &mut Items {
        let i = match self.position(port) {
            Ok(i) => i,
            Err(i) => {
                self.insert(i, port, Items::empty());
                i
            }
        };
        &mut self.entries_mut()[i].1
    }
}

/// The shared name of `port`: `main` and `error`, on nearly every node's
/// output, are made once rather than once per node execution.
fn port_name(port: &str) -> Arc<str> {
    static COMMON: std::sync::OnceLock<[Arc<str>; 2]> = std::sync::OnceLock::new();
    let common = COMMON.get_or_init(|| [Arc::from(MAIN_PORT), Arc::from(ERROR_PORT)]);
    common
        .iter()
        .find(|name| ***name == *port)
        .cloned()
        .unwrap_or_else(|| Arc::from(port))
}

impl Serialize for Ports {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries().len()))?;
        for (name, items) in self.entries() {
            map.serialize_entry(&**name, &SerializeItems(items))?;
        }
        map.end()
    }
}

/// A port's items as a JSON array, read where they are.
struct SerializeItems<'a>(&'a Items);

impl Serialize for SerializeItems<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for Ports {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, Vec<Item>>::deserialize(deserializer)?;
        let entries: Arc<[Entry]> = map
            .into_iter()
            .map(|(name, items)| (port_name(&name), Items::One(Arc::new(items))))
            .collect();
        Ok(Self {
            entries: (!entries.is_empty()).then_some(entries),
        })
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
    fn shared_items_are_copied_only_when_changed() {
        let out = Ports::main(vec![item(json!({"a": 1}))]);
        let mut input = Ports::new();
        input.extend_shared("left", &out, MAIN_PORT);
        input.extend_shared("left", &out, MAIN_PORT);
        assert_eq!(input.get("left").len(), 2);
        let mut copy = out.clone();
        copy.push(MAIN_PORT, item(json!({"a": 2})));
        assert_eq!(out.main_items().len(), 1, "the original is untouched");
        let back: Ports =
            serde_json::from_value(json!({"z": [], "a": [{"k": 1}]})).expect("ports parse");
        assert_eq!(back.port_names().collect::<Vec<_>>(), ["a", "z"]);
    }

    #[test]
    fn taking_and_adding_ports_keeps_the_others_in_order() {
        let mut ports = Ports::main(vec![item(json!({"m": 1}))])
            .with("z", vec![item(json!({"z": 1}))])
            .with("a", vec![]);
        assert_eq!(ports.port_names().collect::<Vec<_>>(), ["a", "main", "z"]);
        let shared = ports.clone();
        ports.push("a", item(json!({"a": 1})));
        assert_eq!(shared.get("a").len(), 0, "the clone is untouched");
        assert_eq!(ports.take("main").len(), 1);
        assert_eq!(ports.port_names().collect::<Vec<_>>(), ["a", "z"]);
        assert_eq!(shared.main_items().len(), 1, "taking copies what is shared");
        assert!(ports.take("main").is_empty(), "a port is taken once");
        ports.take("a");
        ports.take("z");
        assert!(ports.is_empty());
        assert_eq!(ports, Ports::new());
    }

    fn joined_flat_is_made(ports: &Ports, port: &str) -> bool {
        match ports.position(port).map(|i| &ports.entries()[i].1) {
            Ok(Items::Joined(joined)) => joined.flat.get().is_some(),
            _ => false,
        }
    }

    #[test]
    fn a_port_fed_by_many_edges_shares_their_items_until_read_as_one_list() {
        let outputs: Vec<Ports> = (0..3)
            .map(|n| Ports::main(vec![item(json!({"n": n})), item(json!({"n": n + 10}))]))
            .collect();
        let mut input = Ports::new();
        input.extend_shared(MAIN_PORT, &Ports::new().with(MAIN_PORT, vec![]), MAIN_PORT);
        for output in &outputs {
            input.extend_shared(MAIN_PORT, output, MAIN_PORT);
        }
        input.extend_shared("other", &outputs[0], MAIN_PORT);
        let numbers = |items: Vec<&Item>| -> Vec<i64> {
            items
                .iter()
                .filter_map(|i| i.get("n").and_then(Value::as_i64))
                .collect()
        };
        let want = vec![0, 10, 1, 11, 2, 12];
        assert_eq!(input.item_count(), 8);
        assert_eq!(numbers(input.items(MAIN_PORT).collect()), want);
        assert!(
            !joined_flat_is_made(&input, MAIN_PORT),
            "reading items copies nothing"
        );
        assert_eq!(
            serde_json::to_value(&input).ok(),
            Some(
                json!({"main": [{"n": 0}, {"n": 10}, {"n": 1}, {"n": 11}, {"n": 2}, {"n": 12}],
                        "other": [{"n": 0}, {"n": 10}]})
            )
        );
        let flat = Ports::main(input.items(MAIN_PORT).cloned().collect())
            .with("other", input.get("other").to_vec());
        assert_eq!(input, flat, "equal to the same items held in one list");

        // A node's copy reads the port as one list; the stored record's
        // ports stay as they were.
        let for_node = input.unshared_joins();
        assert_eq!(numbers(for_node.main_items().iter().collect()), want);
        assert!(joined_flat_is_made(&for_node, MAIN_PORT));
        assert!(!joined_flat_is_made(&input, MAIN_PORT));

        let mut changed = input.clone();
        changed.push(MAIN_PORT, item(json!({"n": 99})));
        assert_eq!(changed.get(MAIN_PORT).len(), 7);
        assert_eq!(input.get(MAIN_PORT).len(), 6, "the original is untouched");
        assert_eq!(
            numbers(changed.take(MAIN_PORT).iter().collect())[..6],
            want[..]
        );
        let mut input = input;
        drop(for_node);
        assert_eq!(numbers(input.take(MAIN_PORT).iter().collect()), want);
        assert_eq!(
            outputs[2].main_items().len(),
            2,
            "the outputs are untouched"
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
