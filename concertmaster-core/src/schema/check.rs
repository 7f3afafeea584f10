//! Walks a value through a [`Compiled`] schema.

use std::cell::Cell;
use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

use super::compile::{escape, kind_of, Compiled, Items, Keywords, Schema, Slot, Types};

/// One failed assertion: where in the value, which keyword, and why.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Violation {
    /// JSON pointer to the value that failed.
    pub(super) path: String,
    /// The keyword that failed (`required`, `pattern`, ...).
    pub(super) keyword: &'static str,
    /// For `required` and `dependentRequired`: the missing property.
    pub(super) property: Option<String>,
    pub(super) message: String,
}

/// Where failures go: collected, or only counted as "invalid" (the
/// first failure ends the walk).
pub(super) struct Walk<'c> {
    compiled: &'c Compiled,
    out: Option<Vec<Violation>>,
    /// Subschema visits left for this check, shared with the quiet walks
    /// of `anyOf`, `not`, `if`, ... (see [`MAX_VISITS`]).
    budget: &'c Cell<u32>,
}

/// Most subschemas one check visits. Alternatives that refer back to
/// themselves (`anyOf` of two `$ref`s to the same schema) grow
/// exponentially with the value's depth; a form schema comes from a
/// tenant's users, so its cost is bounded and the value refused beyond.
const MAX_VISITS: u32 = 1_000_000;

/// How deep references may nest before a schema is taken to loop
/// without consuming the value (`{"$ref": "#"}`).
const MAX_DEPTH: usize = 256;

impl<'c> Walk<'c> {
    /// Every violation of `value`, in document order.
    pub(super) fn collect(compiled: &'c Compiled, value: &Value) -> Vec<Violation> {
        let budget = Cell::new(MAX_VISITS);
        let mut walk = Walk {
            compiled,
            out: Some(Vec::new()),
            budget: &budget,
        };
        let mut path = String::new();
        walk.check(compiled.root, value, &mut path, 0);
        if budget.get() == 0 {
            // What failed past the bound failed for want of budget.
            return vec![Violation {
                path: String::new(),
                keyword: "$ref",
                property: None,
                message: "the schema is too complex to check this value".into(),
            }];
        }
        walk.out.unwrap_or_default()
    }

    /// Whether `value` passes, stopping at the first failure.
    pub(super) fn passes(compiled: &'c Compiled, value: &Value) -> bool {
        let budget = Cell::new(MAX_VISITS);
        Walk {
            compiled,
            out: None,
            budget: &budget,
        }
        .valid(compiled.root, value, 0)
    }

    fn valid(&self, slot: Slot, value: &Value, depth: usize) -> bool {
        let mut quiet = Walk {
            compiled: self.compiled,
            out: None,
            budget: self.budget,
        };
        let mut path = String::new();
        quiet.check(slot, value, &mut path, depth)
    }

    fn fail(
        &mut self,
        path: &str,
        keyword: &'static str,
        message: impl FnOnce() -> String,
    ) -> bool {
        if let Some(out) = &mut self.out {
            out.push(Violation {
                path: path.to_string(),
                keyword,
                property: None,
                message: message(),
            });
        }
        false
    }

    fn missing(&mut self, path: &str, keyword: &'static str, property: &str, message: String) {
        if let Some(out) = &mut self.out {
            out.push(Violation {
                path: path.to_string(),
                keyword,
                property: Some(property.to_string()),
                message,
            });
        }
    }

    fn collecting(&self) -> bool {
        self.out.is_some()
    }

    /// Checks `value` (found at `path`) against the schema in `slot`.
    fn check(&mut self, slot: Slot, value: &Value, path: &mut String, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return self.fail(path, "$ref", || {
                "the schema refers to itself without end at this value".into()
            });
        }
        match self.budget.get() {
            0 => {
                return self.fail(path, "$ref", || {
                    "the schema is too complex to check this value".into()
                })
            }
            left => self.budget.set(left - 1),
        }
        let keywords = match &self.compiled.schemas[slot] {
            Schema::Bool(true) => return true,
            Schema::Bool(false) => {
                return self.fail(path, "false", || "is not allowed here".into());
            }
            Schema::Object(keywords) => keywords,
        };
        let mut ok = true;
        macro_rules! step {
            ($e:expr) => {
                if !$e {
                    ok = false;
                    if !self.collecting() {
                        return false;
                    }
                }
            };
        }
        step!(self.generic(keywords, value, path));
        match value {
            Value::Number(n) => step!(self.number(keywords, n, path)),
            Value::String(s) => step!(self.string(keywords, s, path)),
            Value::Array(items) => step!(self.array(keywords, items, path, depth)),
            Value::Object(map) => step!(self.object(keywords, value, map, path, depth)),
            Value::Null | Value::Bool(_) => {}
        }
        step!(self.applicators(keywords, value, path, depth));
        ok
    }

    fn generic(&mut self, k: &Keywords, value: &Value, path: &str) -> bool {
        let mut ok = true;
        if let Some(types) = k.types {
            if !has_type(value, types) {
                ok = self.fail(path, "type", || {
                    let names: Vec<_> = types.names().map(article).collect();
                    format!("must be {}, not {}", names.join(" or "), kind_of(value))
                });
                if !self.collecting() {
                    return false;
                }
            }
        }
        if let Some(allowed) = &k.enumeration {
            if !allowed.iter().any(|a| equal(a, value)) {
                ok = self.fail(path, "enum", || {
                    if allowed.len() <= 12 {
                        let shown: Vec<String> = allowed.iter().map(Value::to_string).collect();
                        format!("must be one of {}", shown.join(", "))
                    } else {
                        "must be one of the allowed values".into()
                    }
                });
                if !self.collecting() {
                    return false;
                }
            }
        }
        if let Some(constant) = &k.constant {
            if !equal(constant, value) {
                ok = self.fail(path, "const", || format!("must be {constant}"));
            }
        }
        ok
    }

    fn number(&mut self, k: &Keywords, n: &Number, path: &str) -> bool {
        let mut ok = true;
        let checks: [Bound<'_>; 4] = [
            (&k.maximum, "maximum", |o| o != Ordering::Greater, "at most"),
            (
                &k.exclusive_maximum,
                "exclusiveMaximum",
                |o| o == Ordering::Less,
                "less than",
            ),
            (&k.minimum, "minimum", |o| o != Ordering::Less, "at least"),
            (
                &k.exclusive_minimum,
                "exclusiveMinimum",
                |o| o == Ordering::Greater,
                "more than",
            ),
        ];
        for (bound, keyword, holds, words) in checks {
            if let Some(bound) = bound {
                if !compare(n, bound).is_some_and(holds) {
                    ok = self.fail(path, keyword, || format!("must be {words} {bound}"));
                    if !self.collecting() {
                        return false;
                    }
                }
            }
        }
        if let Some(m) = &k.multiple_of {
            if !multiple_of(n, m) {
                ok = self.fail(path, "multipleOf", || format!("must be a multiple of {m}"));
            }
        }
        ok
    }

    fn string(&mut self, k: &Keywords, s: &str, path: &str) -> bool {
        let mut ok = true;
        if k.max_length.is_some() || k.min_length.is_some() {
            let length = s.chars().count() as u64;
            if let Some(max) = k.max_length.filter(|max| length > *max) {
                ok = self.fail(path, "maxLength", || {
                    format!("must be at most {max} character{} long", plural(max))
                });
            }
            if let Some(min) = k.min_length.filter(|min| length < *min) {
                ok = self.fail(path, "minLength", || {
                    if min == 1 {
                        "must not be empty".into()
                    } else {
                        format!("must be at least {min} characters long")
                    }
                });
            }
            if !ok && !self.collecting() {
                return false;
            }
        }
        if let Some(pattern) = &k.pattern {
            if !pattern.regex.is_match(s) {
                ok = self.fail(path, "pattern", || {
                    format!("does not match the pattern {}", pattern.source)
                });
                if !self.collecting() {
                    return false;
                }
            }
        }
        if let Some(format) = k.format {
            if !format.holds(s) {
                ok = self.fail(path, "format", || format!("is not {}", format.described()));
            }
        }
        ok
    }

    fn array(&mut self, k: &Keywords, items: &[Value], path: &mut String, depth: usize) -> bool {
        let mut ok = true;
        let len = items.len() as u64;
        if let Some(max) = k.max_items.filter(|max| len > *max) {
            ok = self.fail(path, "maxItems", || {
                format!("must have at most {max} item{}", plural(max))
            });
        }
        if let Some(min) = k.min_items.filter(|min| len < *min) {
            ok = self.fail(path, "minItems", || {
                format!("must have at least {min} item{}", plural(min))
            });
        }
        if !ok && !self.collecting() {
            return false;
        }
        if k.unique_items {
            if let Some((first, second)) = repeated(items) {
                ok = self.fail(path, "uniqueItems", || {
                    format!("must not repeat an item (items {first} and {second} are equal)")
                });
                if !self.collecting() {
                    return false;
                }
            }
        }
        let (prefix, rest): (&[Slot], Option<Slot>) = match &k.items {
            Items::None => (&k.prefix_items, None),
            Items::All(slot) => (&k.prefix_items, Some(*slot)),
            Items::Tuple(slots, rest) => (slots, *rest),
        };
        for (i, item) in items.iter().enumerate() {
            let Some(slot) = prefix
                .get(i)
                .copied()
                .or(if i >= prefix.len() { rest } else { None })
            else {
                continue;
            };
            let len = path.len();
            path.push('/');
            path.push_str(&i.to_string());
            let passed = self.check(slot, item, path, depth + 1);
            path.truncate(len);
            if !passed {
                ok = false;
                if !self.collecting() {
                    return false;
                }
            }
        }
        if let Some(contains) = k.contains {
            let matching = items
                .iter()
                .filter(|item| self.valid(contains, item, depth + 1))
                .count() as u64;
            let min = k.min_contains.unwrap_or(1);
            if matching < min {
                ok = self.fail(path, "contains", || {
                    format!("must contain at least {min} matching item{}", plural(min))
                });
            }
            if let Some(max) = k.max_contains.filter(|max| matching > *max) {
                ok = self.fail(path, "maxContains", || {
                    format!("must contain at most {max} matching item{}", plural(max))
                });
            }
        }
        ok
    }

    fn object(
        &mut self,
        k: &Keywords,
        whole: &Value,
        map: &Map<String, Value>,
        path: &mut String,
        depth: usize,
    ) -> bool {
        let mut ok = true;
        let len = map.len() as u64;
        if let Some(max) = k.max_properties.filter(|max| len > *max) {
            ok = self.fail(path, "maxProperties", || {
                format!(
                    "must have at most {max} propert{}",
                    if max == 1 { "y" } else { "ies" }
                )
            });
        }
        if let Some(min) = k.min_properties.filter(|min| len < *min) {
            ok = self.fail(path, "minProperties", || {
                format!(
                    "must have at least {min} propert{}",
                    if min == 1 { "y" } else { "ies" }
                )
            });
        }
        for name in &k.required {
            if !map.contains_key(name) {
                ok = false;
                if !self.collecting() {
                    return false;
                }
                self.missing(path, "required", name, format!("{name:?} is required"));
            }
        }
        for (name, needs) in &k.dependent_required {
            if !map.contains_key(name) {
                continue;
            }
            for need in needs {
                if !map.contains_key(need) {
                    ok = false;
                    if !self.collecting() {
                        return false;
                    }
                    self.missing(
                        path,
                        "dependentRequired",
                        need,
                        format!("{need:?} is required when {name:?} is given"),
                    );
                }
            }
        }
        if !ok && !self.collecting() {
            return false;
        }
        for (name, value) in map {
            if let Some(names) = k.property_names {
                if !self.valid(names, &Value::String(name.clone()), depth + 1) {
                    ok = self.fail(path, "propertyNames", || {
                        format!("has a property name that is not allowed: {name:?}")
                    });
                    if !self.collecting() {
                        return false;
                    }
                }
            }
            let declared = k
                .properties
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| *s);
            let mut matched = declared.is_some();
            let len = path.len();
            path.push('/');
            path.push_str(&escape(name));
            if let Some(slot) = declared {
                if !self.check(slot, value, path, depth + 1) {
                    ok = false;
                }
            }
            for (pattern, slot) in &k.pattern_properties {
                if pattern.regex.is_match(name) {
                    matched = true;
                    if !self.check(*slot, value, path, depth + 1) {
                        ok = false;
                    }
                }
            }
            if !matched {
                if let Some(slot) = k.additional_properties {
                    let closed = matches!(self.compiled.schemas[slot], Schema::Bool(false));
                    if closed {
                        path.truncate(len);
                        ok = self.fail(path, "additionalProperties", || {
                            format!("has a property that is not expected here: {name:?}")
                        });
                    } else if !self.check(slot, value, path, depth + 1) {
                        ok = false;
                    }
                }
            }
            path.truncate(len);
            if !ok && !self.collecting() {
                return false;
            }
        }
        for (name, slot) in &k.dependent_schemas {
            if map.contains_key(name) && !self.check(*slot, whole, path, depth + 1) {
                ok = false;
                if !self.collecting() {
                    return false;
                }
            }
        }
        ok
    }

    fn applicators(
        &mut self,
        k: &Keywords,
        value: &Value,
        path: &mut String,
        depth: usize,
    ) -> bool {
        let mut ok = true;
        if let Some(target) = k.reference {
            if !self.check(target, value, path, depth + 1) {
                ok = false;
                if !self.collecting() {
                    return false;
                }
            }
        }
        for slot in &k.all_of {
            if !self.check(*slot, value, path, depth + 1) {
                ok = false;
                if !self.collecting() {
                    return false;
                }
            }
        }
        if !k.any_of.is_empty() && !k.any_of.iter().any(|s| self.valid(*s, value, depth + 1)) {
            ok = self.fail(path, "anyOf", || {
                "does not match any of the allowed forms".into()
            });
            if !self.collecting() {
                return false;
            }
        }
        if !k.one_of.is_empty() {
            let matching = k
                .one_of
                .iter()
                .filter(|s| self.valid(**s, value, depth + 1))
                .take(2)
                .count();
            if matching != 1 {
                ok = self.fail(path, "oneOf", || {
                    if matching == 0 {
                        "does not match any of the allowed forms".into()
                    } else {
                        "matches more than one of the forms of which exactly one is allowed".into()
                    }
                });
                if !self.collecting() {
                    return false;
                }
            }
        }
        if let Some(not) = k.not {
            if self.valid(not, value, depth + 1) {
                ok = self.fail(path, "not", || "matches a form that is not allowed".into());
                if !self.collecting() {
                    return false;
                }
            }
        }
        if let Some(condition) = &k.condition {
            let branch = if self.valid(condition.test, value, depth + 1) {
                condition.then
            } else {
                condition.otherwise
            };
            if let Some(branch) = branch {
                if !self.check(branch, value, path, depth + 1) {
                    ok = false;
                }
            }
        }
        ok
    }
}

/// A numeric bound: its value, keyword, test of `value.cmp(bound)`,
/// and words for the message.
type Bound<'k> = (
    &'k Option<Number>,
    &'static str,
    fn(Ordering) -> bool,
    &'static str,
);

fn has_type(value: &Value, types: Types) -> bool {
    let bit = match value {
        Value::Null => Types::NULL,
        Value::Bool(_) => Types::BOOLEAN,
        Value::Object(_) => Types::OBJECT,
        Value::Array(_) => Types::ARRAY,
        Value::String(_) => Types::STRING,
        Value::Number(n) => {
            if types.0 & Types::NUMBER != 0 {
                return true;
            }
            return types.0 & Types::INTEGER != 0 && is_integer(n);
        }
    };
    types.0 & bit != 0
}

fn is_integer(n: &Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

fn article(name: &'static str) -> &'static str {
    match name {
        "null" => "null",
        "boolean" => "true or false",
        "object" => "an object",
        "array" => "a list",
        "number" => "a number",
        "string" => "a text",
        "integer" => "a whole number",
        other => other,
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Orders two JSON numbers exactly when both are integers.
pub(super) fn compare(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    // One is a u64 above i64's range and the other a negative i64.
    if a.is_u64() && b.as_i64().is_some_and(|y| y < 0) {
        return Some(Ordering::Greater);
    }
    if b.is_u64() && a.as_i64().is_some_and(|x| x < 0) {
        return Some(Ordering::Less);
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

fn multiple_of(n: &Number, m: &Number) -> bool {
    if let (Some(x), Some(y)) = (n.as_i64(), m.as_i64()) {
        return y != 0 && x % y == 0;
    }
    if let (Some(x), Some(y)) = (n.as_u64(), m.as_u64()) {
        return y != 0 && x % y == 0;
    }
    let (Some(x), Some(y)) = (n.as_f64(), m.as_f64()) else {
        return false;
    };
    let quotient = x / y;
    if !quotient.is_finite() {
        return false;
    }
    // Decimal fractions are not exact in binary: 0.0075 / 0.0001 is
    // 74.99999999999999.
    (quotient - quotient.round()).abs() <= 1e-9 * quotient.abs().max(1.0)
}

/// JSON equality: numbers by value (`1` equals `1.0`), objects without
/// regard to key order.
pub(super) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

/// The first two positions holding equal items (by [`equal`]): by a
/// canonical key per item, so that a long list submitted to a form costs
/// its length, not its length squared.
fn repeated(items: &[Value]) -> Option<(usize, usize)> {
    let mut seen: std::collections::HashMap<String, usize> =
        std::collections::HashMap::with_capacity(items.len());
    for (j, item) in items.iter().enumerate() {
        let mut key = String::new();
        canonical(item, &mut key);
        if let Some(&i) = seen.get(&key) {
            return Some((i, j));
        }
        seen.insert(key, j);
    }
    None
}

/// A text equal for values [`equal`] calls equal: object keys sorted,
/// numbers by value (`1`, `1.0` and `1e0` alike).
fn canonical(value: &Value, out: &mut String) {
    use std::fmt::Write;
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "n{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "n{u}");
            } else if let Some(f) = n.as_f64() {
                // A whole float within i64 is that integer.
                if f.fract() == 0.0 && f.abs() < 9.0e18 {
                    let _ = write!(out, "n{}", f as i64);
                } else {
                    let _ = write!(out, "n{f:?}");
                }
            }
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for key in keys {
                let _ = write!(out, "{key:?}:");
                canonical(&map[key], out);
                out.push(',');
            }
            out.push('}');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}
