//! Turns a JSON Schema document into the tree [`check`](super::check)
//! walks: every subschema once, in an arena, references resolved to
//! arena slots (so recursive schemas are cycles of indices, not of
//! boxes), patterns compiled once.

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Number, Value};

use super::format::Format;
pub(super) use crate::item::kind_of;

/// A slot in [`Compiled::schemas`].
pub(super) type Slot = usize;

/// A compiled schema document.
#[derive(Debug)]
pub(super) struct Compiled {
    pub(super) schemas: Vec<Schema>,
    pub(super) root: Slot,
}

/// One subschema.
#[derive(Debug)]
pub(super) enum Schema {
    /// `true` (anything) or `false` (nothing).
    Bool(bool),
    Object(Box<Keywords>),
}

/// JSON types, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Types(pub(super) u8);

impl Types {
    pub(super) const NULL: u8 = 1;
    pub(super) const BOOLEAN: u8 = 2;
    pub(super) const OBJECT: u8 = 4;
    pub(super) const ARRAY: u8 = 8;
    pub(super) const NUMBER: u8 = 16;
    pub(super) const STRING: u8 = 32;
    pub(super) const INTEGER: u8 = 64;

    const NAMES: [(&'static str, u8); 7] = [
        ("null", Self::NULL),
        ("boolean", Self::BOOLEAN),
        ("object", Self::OBJECT),
        ("array", Self::ARRAY),
        ("number", Self::NUMBER),
        ("string", Self::STRING),
        ("integer", Self::INTEGER),
    ];

    fn bit(name: &str) -> Option<u8> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bit)| *bit)
    }

    /// The names in the set, in the order JSON Schema lists them.
    pub(super) fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .iter()
            .filter(move |(_, bit)| self.0 & bit != 0)
            .map(|(name, _)| *name)
    }
}

/// A regular expression and the text it was compiled from.
#[derive(Debug)]
pub(super) struct Pattern {
    pub(super) regex: Regex,
    pub(super) source: String,
}

/// What `items` says.
#[derive(Debug, Default)]
pub(super) enum Items {
    #[default]
    None,
    /// One schema for every item (after `prefixItems`).
    All(Slot),
    /// One schema per position (the form before draft 2020-12), then
    /// `additionalItems` for the rest.
    Tuple(Vec<Slot>, Option<Slot>),
}

/// The keywords of an object schema that assert something. Keywords
/// that only annotate (`title`, `description`, `default`, `examples`,
/// `readOnly`, ...) and unknown keywords are not kept.
#[derive(Debug, Default)]
pub(super) struct Keywords {
    pub(super) types: Option<Types>,
    pub(super) enumeration: Option<Vec<Value>>,
    pub(super) constant: Option<Value>,

    pub(super) multiple_of: Option<Number>,
    pub(super) maximum: Option<Number>,
    pub(super) exclusive_maximum: Option<Number>,
    pub(super) minimum: Option<Number>,
    pub(super) exclusive_minimum: Option<Number>,

    pub(super) max_length: Option<u64>,
    pub(super) min_length: Option<u64>,
    pub(super) pattern: Option<Pattern>,
    pub(super) format: Option<Format>,

    pub(super) prefix_items: Vec<Slot>,
    pub(super) items: Items,
    pub(super) contains: Option<Slot>,
    pub(super) min_contains: Option<u64>,
    pub(super) max_contains: Option<u64>,
    pub(super) max_items: Option<u64>,
    pub(super) min_items: Option<u64>,
    pub(super) unique_items: bool,

    pub(super) max_properties: Option<u64>,
    pub(super) min_properties: Option<u64>,
    pub(super) required: Vec<String>,
    pub(super) properties: Vec<(String, Slot)>,
    pub(super) pattern_properties: Vec<(Pattern, Slot)>,
    pub(super) additional_properties: Option<Slot>,
    pub(super) property_names: Option<Slot>,
    pub(super) dependent_required: Vec<(String, Vec<String>)>,
    pub(super) dependent_schemas: Vec<(String, Slot)>,

    pub(super) all_of: Vec<Slot>,
    pub(super) any_of: Vec<Slot>,
    pub(super) one_of: Vec<Slot>,
    pub(super) not: Option<Slot>,
    pub(super) condition: Option<Condition>,
    pub(super) reference: Option<Slot>,
}

/// `if`, `then`, `else`.
#[derive(Debug)]
pub(super) struct Condition {
    pub(super) test: Slot,
    pub(super) then: Option<Slot>,
    pub(super) otherwise: Option<Slot>,
}

/// Keywords whose meaning this validator does not implement: a schema
/// that uses one is refused rather than half-checked.
const UNSUPPORTED: [&str; 5] = [
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
    "$recursiveRef",
    "$vocabulary",
];

/// Compiles `document`; the error says which keyword at which place
/// (a JSON pointer into the schema) is wrong.
pub(super) fn compile(document: &Value, formats: bool) -> Result<Compiled, String> {
    let mut compiler = Compiler {
        document,
        formats,
        schemas: Vec::new(),
        at: HashMap::new(),
        ids: HashMap::new(),
        bases: HashMap::new(),
        pending: Vec::new(),
    };
    compiler.index_ids(document, "", "");
    let root = compiler.subschema(document, String::new())?;
    // A reference may point at a place no keyword compiled (under an
    // unknown keyword): compile it there, which may find more.
    while let Some((slot, pointer, target)) = compiler.pending.pop() {
        let resolved = compiler.resolve(&target, &pointer)?;
        if let Schema::Object(keywords) = &mut compiler.schemas[slot] {
            keywords.reference = Some(resolved);
        }
    }
    Ok(Compiled {
        schemas: compiler.schemas,
        root,
    })
}

struct Compiler<'d> {
    document: &'d Value,
    formats: bool,
    schemas: Vec<Schema>,
    /// The slot of each subschema compiled, by its JSON pointer.
    at: HashMap<String, Slot>,
    /// JSON pointers of subschemas named by `$id` or `$anchor`, by
    /// absolute URI (`base#anchor` for anchors).
    ids: HashMap<String, String>,
    /// The base URI each subschema with an `$id` sets, by its pointer.
    bases: HashMap<String, String>,
    /// Slots whose `$ref` is still to be resolved: the slot, its pointer
    /// and the reference.
    pending: Vec<(Slot, String, String)>,
}

impl Compiler<'_> {
    /// Records every `$id` and `$anchor` of the document, so that a
    /// reference by name resolves to a place.
    fn index_ids(&mut self, value: &Value, pointer: &str, base: &str) {
        match value {
            Value::Object(map) => {
                let mut base = base.to_string();
                if let Some(Value::String(id)) = map.get("$id") {
                    base = join(&base, id.trim_end_matches('#'));
                    self.ids.insert(base.clone(), pointer.to_string());
                    self.bases.insert(pointer.to_string(), base.clone());
                }
                if let Some(Value::String(anchor)) = map.get("$anchor") {
                    self.ids
                        .insert(format!("{base}#{anchor}"), pointer.to_string());
                }
                for (key, child) in map {
                    // Values of these are data, not schemas.
                    if matches!(key.as_str(), "enum" | "const" | "default" | "examples") {
                        continue;
                    }
                    self.index_ids(child, &format!("{pointer}/{}", escape(key)), &base);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    self.index_ids(child, &format!("{pointer}/{i}"), base);
                }
            }
            _ => {}
        }
    }

    /// The base URI in force at `pointer`: the nearest enclosing `$id`.
    fn base_at(&self, pointer: &str) -> String {
        let mut at = pointer;
        loop {
            if let Some(base) = self.bases.get(at) {
                return base.clone();
            }
            match at.rfind('/') {
                Some(cut) => at = &at[..cut],
                None => return String::new(),
            }
        }
    }

    fn subschema(&mut self, value: &Value, pointer: String) -> Result<Slot, String> {
        if let Some(slot) = self.at.get(&pointer) {
            return Ok(*slot);
        }
        let slot = self.schemas.len();
        self.schemas.push(Schema::Bool(true));
        self.at.insert(pointer.clone(), slot);
        let schema = match value {
            Value::Bool(b) => Schema::Bool(*b),
            Value::Object(map) => Schema::Object(Box::new(self.keywords(map, &pointer, slot)?)),
            other => {
                return Err(format!(
                    "{}: a schema must be an object or a boolean, not {}",
                    shown(&pointer),
                    kind_of(other)
                ))
            }
        };
        self.schemas[slot] = schema;
        Ok(slot)
    }

    fn keywords(
        &mut self,
        map: &Map<String, Value>,
        pointer: &str,
        slot: Slot,
    ) -> Result<Keywords, String> {
        let mut k = Keywords::default();
        let at = |key: &str| format!("{pointer}/{}", escape(key));
        let bad = |key: &str, what: &str| format!("{}: {key} must be {what}", shown(&at(key)));

        for key in UNSUPPORTED {
            if map.contains_key(key) {
                return Err(format!(
                    "{}: the keyword {key} is not supported; describe the data without it",
                    shown(&at(key))
                ));
            }
        }

        if let Some(types) = map.get("type") {
            let names: Vec<&Value> = match types {
                Value::Array(names) => names.iter().collect(),
                one => vec![one],
            };
            let mut set = 0;
            for name in names {
                let bit = name
                    .as_str()
                    .and_then(Types::bit)
                    .ok_or_else(|| bad("type", "a JSON type name or a list of them"))?;
                set |= bit;
            }
            k.types = Some(Types(set));
        }
        if let Some(values) = map.get("enum") {
            let values = values.as_array().ok_or_else(|| bad("enum", "an array"))?;
            k.enumeration = Some(values.clone());
        }
        k.constant = map.get("const").cloned();

        let number = |key: &str| -> Result<Option<Number>, String> {
            match map.get(key) {
                None => Ok(None),
                Some(Value::Number(n)) => Ok(Some(n.clone())),
                Some(_) => Err(bad(key, "a number")),
            }
        };
        k.multiple_of = number("multipleOf")?;
        if k.multiple_of
            .as_ref()
            .and_then(Number::as_f64)
            .is_some_and(|m| m <= 0.0)
        {
            return Err(bad("multipleOf", "greater than 0"));
        }
        k.maximum = number("maximum")?;
        k.minimum = number("minimum")?;
        // Draft 4 wrote exclusiveness as a flag beside the bound.
        match map.get("exclusiveMaximum") {
            Some(Value::Bool(true)) => k.exclusive_maximum = k.maximum.take(),
            Some(Value::Bool(false)) | None => {}
            Some(_) => k.exclusive_maximum = number("exclusiveMaximum")?,
        }
        match map.get("exclusiveMinimum") {
            Some(Value::Bool(true)) => k.exclusive_minimum = k.minimum.take(),
            Some(Value::Bool(false)) | None => {}
            Some(_) => k.exclusive_minimum = number("exclusiveMinimum")?,
        }

        let count = |key: &str| -> Result<Option<u64>, String> {
            match map.get(key) {
                None => Ok(None),
                Some(Value::Number(n)) => n
                    .as_u64()
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                            .map(|f| f as u64)
                    })
                    .map(Some)
                    .ok_or_else(|| bad(key, "a whole number, 0 or more")),
                Some(_) => Err(bad(key, "a whole number, 0 or more")),
            }
        };
        k.max_length = count("maxLength")?;
        k.min_length = count("minLength")?;
        k.max_items = count("maxItems")?;
        k.min_items = count("minItems")?;
        k.max_properties = count("maxProperties")?;
        k.min_properties = count("minProperties")?;
        k.min_contains = count("minContains")?;
        k.max_contains = count("maxContains")?;
        k.unique_items = match map.get("uniqueItems") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("uniqueItems", "true or false")),
        };

        if let Some(source) = map.get("pattern") {
            let source = source.as_str().ok_or_else(|| bad("pattern", "a string"))?;
            k.pattern = Some(pattern(source, &at("pattern"))?);
        }
        if self.formats {
            if let Some(Value::String(name)) = map.get("format") {
                k.format = Format::named(name);
            }
        }

        let strings = |key: &str, value: &Value| -> Result<Vec<String>, String> {
            value
                .as_array()
                .and_then(|names| {
                    names
                        .iter()
                        .map(|n| n.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| bad(key, "an array of property names"))
        };
        if let Some(required) = map.get("required") {
            // Draft 3 wrote `required: true` on the property itself; it
            // asserts nothing here.
            if !required.is_boolean() {
                k.required = strings("required", required)?;
            }
        }

        // Subschemas.
        let object = |key: &str| -> Result<Option<&Map<String, Value>>, String> {
            match map.get(key) {
                None => Ok(None),
                Some(Value::Object(entries)) => Ok(Some(entries)),
                Some(_) => Err(bad(key, "an object")),
            }
        };
        for (key, into) in [
            ("properties", 0),
            ("patternProperties", 1),
            ("dependentSchemas", 2),
        ] {
            let Some(entries) = object(key)? else {
                continue;
            };
            for (name, sub) in entries {
                let child = self.subschema(sub, format!("{}/{}", at(key), escape(name)))?;
                match into {
                    0 => k.properties.push((name.clone(), child)),
                    1 => k.pattern_properties.push((pattern(name, &at(key))?, child)),
                    _ => k.dependent_schemas.push((name.clone(), child)),
                }
            }
        }
        if let Some(entries) = object("dependentRequired")? {
            for (name, needs) in entries {
                k.dependent_required
                    .push((name.clone(), strings("dependentRequired", needs)?));
            }
        }
        // Draft 7's `dependencies` holds both kinds.
        if let Some(entries) = object("dependencies")? {
            for (name, needs) in entries {
                if needs.is_array() {
                    k.dependent_required
                        .push((name.clone(), strings("dependencies", needs)?));
                } else {
                    let child =
                        self.subschema(needs, format!("{}/{}", at("dependencies"), escape(name)))?;
                    k.dependent_schemas.push((name.clone(), child));
                }
            }
        }
        for (key, into) in [
            ("additionalProperties", 0),
            ("propertyNames", 1),
            ("contains", 2),
            ("not", 3),
        ] {
            if let Some(sub) = map.get(key) {
                let child = self.subschema(sub, at(key))?;
                match into {
                    0 => k.additional_properties = Some(child),
                    1 => k.property_names = Some(child),
                    2 => k.contains = Some(child),
                    _ => k.not = Some(child),
                }
            }
        }
        for (key, into) in [("allOf", 0), ("anyOf", 1), ("oneOf", 2), ("prefixItems", 3)] {
            let Some(subs) = map.get(key) else {
                continue;
            };
            let subs = subs
                .as_array()
                .filter(|s| !s.is_empty() || key == "prefixItems")
                .ok_or_else(|| bad(key, "a non-empty array of schemas"))?;
            let mut slots = Vec::with_capacity(subs.len());
            for (i, sub) in subs.iter().enumerate() {
                slots.push(self.subschema(sub, format!("{}/{i}", at(key)))?);
            }
            match into {
                0 => k.all_of = slots,
                1 => k.any_of = slots,
                2 => k.one_of = slots,
                _ => k.prefix_items = slots,
            }
        }
        match map.get("items") {
            None => {}
            Some(Value::Array(subs)) => {
                let mut slots = Vec::with_capacity(subs.len());
                for (i, sub) in subs.iter().enumerate() {
                    slots.push(self.subschema(sub, format!("{}/{i}", at("items")))?);
                }
                let rest = match map.get("additionalItems") {
                    Some(sub) => Some(self.subschema(sub, at("additionalItems"))?),
                    None => None,
                };
                k.items = Items::Tuple(slots, rest);
            }
            Some(sub) => k.items = Items::All(self.subschema(sub, at("items"))?),
        }
        if let Some(test) = map.get("if") {
            let test = self.subschema(test, at("if"))?;
            let then = match map.get("then") {
                Some(sub) => Some(self.subschema(sub, at("then"))?),
                None => None,
            };
            let otherwise = match map.get("else") {
                Some(sub) => Some(self.subschema(sub, at("else"))?),
                None => None,
            };
            k.condition = Some(Condition {
                test,
                then,
                otherwise,
            });
        }
        // Definitions are compiled where they stand, so that a reference
        // to one finds it compiled.
        for key in ["$defs", "definitions"] {
            if let Some(Value::Object(entries)) = map.get(key) {
                for (name, sub) in entries {
                    self.subschema(sub, format!("{}/{}", at(key), escape(name)))?;
                }
            }
        }
        if let Some(target) = map.get("$ref") {
            let target = target.as_str().ok_or_else(|| bad("$ref", "a string"))?;
            self.pending
                .push((slot, pointer.to_string(), target.to_string()));
        }
        Ok(k)
    }

    /// The slot a `$ref` found at `from` names: a JSON pointer
    /// (`#/$defs/x`), an anchor (`#name`), or an `$id` of this document
    /// (resolved against the enclosing `$id`s), with either after it.
    fn resolve(&mut self, target: &str, from: &str) -> Result<Slot, String> {
        let (reference, fragment) = target.split_once('#').unwrap_or((target, ""));
        let base = join(&self.base_at(from), reference);
        let document = if base.is_empty() {
            String::new()
        } else {
            self.ids.get(&base).cloned().ok_or_else(|| {
                format!(
                    "$ref {target:?}: only references within this schema are supported \
                     (a JSON pointer such as #/$defs/name, an $anchor or an $id it declares)"
                )
            })?
        };
        let pointer = if !fragment.is_empty() && !fragment.starts_with('/') {
            self.ids
                .get(&format!("{base}#{fragment}"))
                .cloned()
                .ok_or_else(|| format!("$ref {target:?}: no $anchor {fragment:?} in this schema"))?
        } else {
            document + &percent_decode(fragment)
        };
        let value = self.document.pointer(&pointer).ok_or_else(|| {
            format!(
                "$ref {target:?}: nothing at {} in this schema",
                shown(&pointer)
            )
        })?;
        self.subschema(value, pointer)
    }
}

/// Resolves `reference` against `base` (RFC 3986, section 5.2, without
/// the rarer cases): an absolute reference stands alone, `//host/...`
/// keeps the scheme, `/path` the authority, anything else replaces the
/// last segment of the base's path.
fn join(base: &str, reference: &str) -> String {
    let has_scheme = |s: &str| {
        s.split_once(':').is_some_and(|(scheme, _)| {
            scheme
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        })
    };
    if reference.is_empty() {
        return base.to_string();
    }
    if base.is_empty() || has_scheme(reference) {
        return reference.to_string();
    }
    let Some((scheme, rest)) = base.split_once(':') else {
        return reference.to_string();
    };
    if let Some(network) = reference.strip_prefix("//") {
        return format!("{scheme}://{network}");
    }
    let Some(after) = rest.strip_prefix("//") else {
        // A base without an authority (`urn:...`) has no path to join.
        return reference.to_string();
    };
    let authority_end = after.find('/').unwrap_or(after.len());
    let (authority, path) = after.split_at(authority_end);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let joined = if reference.starts_with('/') {
        reference.to_string()
    } else {
        let dir = path.rfind('/').map_or("/", |cut| &path[..=cut]);
        format!("{dir}{reference}")
    };
    let mut segments: Vec<&str> = Vec::new();
    for segment in joined.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    format!("{scheme}://{authority}/{}", segments.join("/"))
}

/// Compiles a `pattern` (or a `patternProperties` name).
fn pattern(source: &str, at: &str) -> Result<Pattern, String> {
    let regex = regex::RegexBuilder::new(source)
        .size_limit(1 << 20)
        .build()
        .map_err(|err| {
            format!(
                "{}: the pattern {source:?} does not compile: {err}",
                shown(at)
            )
        })?;
    Ok(Pattern {
        regex,
        source: source.to_string(),
    })
}

/// A JSON pointer token for `key`.
pub(super) fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Decodes `%XX` escapes in a reference's fragment.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn shown(pointer: &str) -> &str {
    if pointer.is_empty() {
        "(schema root)"
    } else {
        pointer
    }
}
