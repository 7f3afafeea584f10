//! Config schemas derived from the config structs that read them, so that
//! a config's fields, defaults and descriptions are written once.
//!
//! A node's or connector's config is a serde struct; deriving
//! [`JsonSchema`] beside `Deserialize` gives its JSON Schema, with serde's
//! attributes honoured (`rename_all`, `default`, `deny_unknown_fields`) and
//! doc comments as descriptions. JSON object keys carry no order, so each
//! object schema also lists its properties as the struct declares them
//! under [`ORDER_KEYWORD`]: editors draw the fields in that order.

use schemars::{generate::SchemaSettings, JsonSchema, Schema};
use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::Value;

/// The keyword listing an object schema's properties in declared order
/// (`"x-order": ["formId", "recipients", …]`).
pub const ORDER_KEYWORD: &str = "x-order";

/// The JSON Schema of config struct `C`: JSON Schema 2020-12, subschemas
/// inline (no `$ref`, so an editor needs no resolver), properties listed in
/// declared order under [`ORDER_KEYWORD`].
///
/// ```
/// use concertmaster_core::node::config_schema;
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// #[derive(Deserialize, JsonSchema)]
/// #[serde(rename_all = "camelCase", deny_unknown_fields)]
/// struct ScoreConfig {
///     /// Lowest credit score that passes.
///     min_score: u32,
///     /// Where the score is read from (JSON pointer).
///     #[serde(default = "score_field")]
///     field: String,
/// }
///
/// fn score_field() -> String {
///     "/score".into()
/// }
///
/// let schema = config_schema::<ScoreConfig>();
/// assert_eq!(schema["required"], serde_json::json!(["minScore"]));
/// assert_eq!(schema["properties"]["field"]["default"], "/score");
/// assert_eq!(schema["additionalProperties"], false);
/// assert_eq!(schema["x-order"], serde_json::json!(["minScore", "field"]));
/// ```
pub fn config_schema<C: JsonSchema + DeserializeOwned>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<C>();
    // The root's title is the Rust type's name and its description the
    // struct's doc comment, written for developers: neither is for the
    // person filling the config in, whom the node's own description serves.
    if schema.get("title").and_then(Value::as_str) == Some(C::schema_name().as_ref()) {
        schema.remove("title");
    }
    schema.remove("description");
    declared_order::<C>(&mut schema);
    let mut schema = schema.to_value();
    type_choices(&mut schema);
    schema
}

/// Gives a choice among constants (an enum whose variants carry docs,
/// derived as `oneOf` of `const`s) the type its constants share, so that
/// a form draws it as one select rather than as alternatives to pick
/// between.
fn type_choices(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            if !object.contains_key("type") {
                let shared = ["oneOf", "anyOf"].into_iter().find_map(|key| {
                    let choices = object.get(key)?.as_array()?;
                    let first = choices.first()?.get("type")?;
                    choices
                        .iter()
                        .all(|c| c.get("const").is_some() && c.get("type") == Some(first))
                        .then(|| first.clone())
                });
                if let Some(shared) = shared {
                    object.insert("type".into(), shared);
                }
            }
            object.values_mut().for_each(type_choices);
        }
        Value::Array(values) => values.iter_mut().for_each(type_choices),
        _ => {}
    }
}

/// Lists the properties of `schema` in the order `T` declares its fields,
/// under [`ORDER_KEYWORD`]. [`config_schema`] does this for the config
/// struct itself; a struct nested in a config (the elements of a list of
/// cases, say) asks for it with
/// `#[schemars(transform = concertmaster_core::node::declared_order::<Self>)]`.
pub fn declared_order<T: DeserializeOwned>(schema: &mut Schema) {
    let Some(fields) = field_names::<T>() else {
        return;
    };
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let order: Vec<Value> = fields
        .iter()
        .filter(|name| properties.contains_key(**name))
        .map(|name| Value::from(*name))
        .collect();
    schema.insert(ORDER_KEYWORD.into(), Value::Array(order));
}

/// The field names a struct's `Deserialize` asks for, in declared order
/// and as serde spells them; `None` for anything that is not a plain struct
/// (a map, an enum, a struct with flattened fields).
fn field_names<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let mut names = FieldNames(None);
    // The deserializer refuses every value: it only records what the
    // struct asked for, so the outcome itself is always an error.
    let _ = T::deserialize(&mut names);
    names.0
}

struct FieldNames(Option<&'static [&'static str]>);

#[derive(Debug)]
struct Recorded;

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Recorded {}

impl de::Error for Recorded {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Recorded
    }
}

impl<'de> de::Deserializer<'de> for &mut FieldNames {
    type Error = Recorded;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Recorded> {
        Err(Recorded)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Recorded> {
        self.0 = Some(fields);
        Err(Recorded)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        zeta: String,
        #[serde(default)]
        alpha_one: bool,
        cases: Vec<Inner>,
        mode: Option<Mode>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[schemars(transform = declared_order::<Self>)]
    #[allow(dead_code)]
    struct Inner {
        port: String,
        condition: String,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    enum Mode {
        First,
        AllOfThem,
    }

    #[test]
    fn properties_keep_their_declared_order_at_every_level() {
        let schema = config_schema::<Outer>();
        assert_eq!(
            schema["x-order"],
            json!(["zeta", "alphaOne", "cases", "mode"])
        );
        assert_eq!(
            schema["properties"]["cases"]["items"]["x-order"],
            json!(["port", "condition"])
        );
        assert!(schema.get("title").is_none(), "{schema}");
        assert!(schema.get("description").is_none(), "{schema}");
        assert!(
            schema.get("$defs").is_none(),
            "subschemas are inline: {schema}"
        );
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn a_choice_among_documented_constants_is_typed_as_they_are() {
        #[derive(Deserialize, JsonSchema)]
        #[allow(dead_code)]
        struct Config {
            choice: Documented,
        }
        #[derive(Deserialize, JsonSchema)]
        #[allow(dead_code)]
        enum Documented {
            /// The first.
            First,
            /// The second.
            Second,
        }
        let schema = config_schema::<Config>();
        let choice = &schema["properties"]["choice"];
        assert_eq!(choice["type"], "string", "{schema}");
        assert_eq!(choice["oneOf"][0]["const"], "First", "{schema}");
        assert_eq!(choice["oneOf"][1]["description"], "The second.", "{schema}");
    }

    #[test]
    fn only_structs_have_an_order() {
        assert_eq!(field_names::<Mode>(), None);
        assert_eq!(
            field_names::<std::collections::BTreeMap<String, u32>>(),
            None
        );
        assert_eq!(field_names::<Inner>(), Some(&["port", "condition"][..]));
    }
}
