//! OData V2 and V4 payloads: envelopes, ETags, keys and error objects.

use concertmaster_core::connector::ErpMessage;
use serde_json::{Map, Value};

use super::ODataVersion;
use crate::http::text_message;

/// The entity in a single-entity response: V2 wraps it in `d`.
pub(crate) fn entity(version: ODataVersion, body: Value) -> Value {
    match (version, body) {
        (ODataVersion::V2, Value::Object(mut map)) if map.contains_key("d") => {
            map.remove("d").unwrap_or(Value::Null)
        }
        (_, body) => body,
    }
}

/// The records and the server's next link of a collection response: V4's
/// `value` and `@odata.nextLink`, V2's `d.results` and `d.__next` (or a
/// bare `d` array from older services).
pub(crate) fn collection(
    version: ODataVersion,
    body: Value,
) -> Result<(Vec<Value>, Option<String>), &'static str> {
    let Value::Object(mut map) = body else {
        return Err("the body is not a JSON object");
    };
    let (records, next) = match version {
        ODataVersion::V4 => (map.remove("value"), map.remove("@odata.nextLink")),
        ODataVersion::V2 => match map.remove("d") {
            Some(Value::Array(records)) => (Some(Value::Array(records)), None),
            Some(Value::Object(mut d)) => (d.remove("results"), d.remove("__next")),
            _ => return Err("the body has no `d` object"),
        },
    };
    let Some(Value::Array(records)) = records else {
        return Err(match version {
            ODataVersion::V4 => "the body has no `value` array",
            ODataVersion::V2 => "the body has no `d.results` array",
        });
    };
    let next = match next {
        Some(Value::String(link)) if !link.is_empty() => Some(link),
        _ => None,
    };
    Ok((records, next))
}

/// The ETag an entity in a body carries: V4's `@odata.etag`, V2's
/// `__metadata.etag`.
pub(crate) fn etag_of(entity: &Value) -> Option<String> {
    entity
        .get("@odata.etag")
        .or_else(|| entity.get("__metadata").and_then(|m| m.get("etag")))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The URL an entity in a body names itself by: V4's `@odata.id`
/// (with full metadata), V2's `__metadata.uri`.
pub(crate) fn entity_url_of(entity: &Value) -> Option<&str> {
    entity
        .get("@odata.id")
        .or_else(|| entity.get("__metadata").and_then(|m| m.get("uri")))
        .and_then(Value::as_str)
}

/// An OData `$filter` that holds when every field of `fields` equals its
/// value: `Name eq 'O''Neil' and Category eq '2'`. Field names must be
/// identifiers; values strings, numbers, booleans or null.
pub(crate) fn equality_filter(fields: &Map<String, Value>) -> Result<String, String> {
    if fields.is_empty() {
        return Err("no field to match on".into());
    }
    let mut terms = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        if !is_identifier(name) {
            return Err(format!("{name:?} is not a field name"));
        }
        let literal = match value {
            Value::String(text) => format!("'{}'", text.replace('\'', "''")),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => "null".into(),
            _ => {
                return Err(format!(
                    "{name} holds an object or array, which cannot be matched"
                ))
            }
        };
        terms.push(format!("{name} eq {literal}"));
    }
    Ok(terms.join(" and "))
}

/// The key inside the last `(...)` of an entity URL (a `Location`
/// header): `A_BusinessPartner('10')` is `10`.
pub(crate) fn key_of_location(location: &str) -> Option<String> {
    let open = location.rfind('(')?;
    let inner = location[open + 1..].strip_suffix(')')?;
    let inner = percent_decode(inner);
    match inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        Some(quoted) => Some(quoted.replace("''", "'")),
        None => Some(inner),
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// An OData error body as a message: `{"error": {code, message, target,
/// details}}` in V4, with `message: {lang, value}` and
/// `innererror.errordetails` in V2. A body that is not one becomes its text.
pub(crate) fn error_message(status: u16, body: &[u8]) -> ErpMessage {
    let Ok(Value::Object(mut root)) = serde_json::from_slice::<Value>(body) else {
        return text_message(status, body);
    };
    let Some(Value::Object(error)) = root.remove("error") else {
        return text_message(status, body);
    };
    let mut message = one_error(&error);
    message.status = Some(status);
    let mut details: Vec<ErpMessage> = error
        .get("details")
        .and_then(Value::as_array)
        .or_else(|| {
            error
                .get("innererror")
                .and_then(|inner| inner.get("errordetails"))
                .and_then(Value::as_array)
        })
        .map(|details| {
            details
                .iter()
                .filter_map(Value::as_object)
                .map(one_error)
                .collect()
        })
        .unwrap_or_default();
    // Gateway repeats the main message as the first detail.
    details.retain(|d| {
        d.message != message.message || d.code != message.code || d.target != message.target
    });
    message.details = details;
    message
}

fn one_error(error: &Map<String, Value>) -> ErpMessage {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("value").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    let message = error
        .get("message")
        .and_then(text)
        .unwrap_or_else(|| "no message".into());
    let code = error.get("code").and_then(|c| match c {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let target = error
        .get("target")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    ErpMessage {
        status: None,
        code,
        message,
        target,
        details: Vec::new(),
    }
}

/// An entity set name: an OData identifier, so it cannot change the path.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// A string key as it goes into a URL: quoted, quotes doubled, and
/// percent-encoded so `/`, `?` and `#` stay inside the key.
pub(crate) fn key_segment(key: &str) -> String {
    const KEY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'\'');
    let quoted = format!("'{}'", key.replace('\'', "''"));
    format!("({})", percent_encoding::utf8_percent_encode(&quoted, KEY))
}

/// A query string of system query options, spaces as `%20` (OData does
/// not read `+` as a space).
pub(crate) fn query(pairs: &[(&str, String)]) -> String {
    const VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'$')
        .remove(b'\'')
        .remove(b',')
        .remove(b'(')
        .remove(b')');
    pairs
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                percent_encoding::utf8_percent_encode(name, VALUE),
                percent_encoding::utf8_percent_encode(value, VALUE)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v2_and_v4_collections_and_their_next_links() {
        let v4 = json!({"value": [{"a": 1}], "@odata.nextLink": "E?$skiptoken=5"});
        assert_eq!(
            collection(ODataVersion::V4, v4).unwrap(),
            (vec![json!({"a": 1})], Some("E?$skiptoken=5".into()))
        );
        let v2 = json!({"d": {"results": [{"a": 1}], "__next": "http://h/E?$skiptoken=5"}});
        assert_eq!(
            collection(ODataVersion::V2, v2).unwrap().1.as_deref(),
            Some("http://h/E?$skiptoken=5")
        );
        assert_eq!(
            collection(ODataVersion::V2, json!({"d": [{"a": 1}]}))
                .unwrap()
                .0
                .len(),
            1
        );
        assert!(collection(ODataVersion::V4, json!({"d": []})).is_err());
        assert_eq!(
            entity(ODataVersion::V2, json!({"d": {"a": 1}})),
            json!({"a": 1})
        );
    }

    #[test]
    fn v4_errors_keep_code_target_and_details() {
        let body = br#"{"error":{"message":"Multiple errors occurred","code":"MULTIPLE_ERRORS","details":[
            {"code":"ASSERT_ENUM","message":"Enter one of the allowed values: 1, 2.","target":"BusinessPartnerCategory"}]}}"#;
        let m = error_message(400, body);
        assert_eq!(m.code.as_deref(), Some("MULTIPLE_ERRORS"));
        assert_eq!(
            m.details[0].target.as_deref(),
            Some("BusinessPartnerCategory")
        );
        assert_eq!(m.status, Some(400));
    }

    #[test]
    fn v2_errors_read_lang_value_messages_and_errordetails() {
        let body = br#"{"error":{"code":"/IWBEP/CM_MGW_RT/022","message":{"lang":"en","value":"Entity already exists"},
            "innererror":{"errordetails":[
              {"code":"/IWBEP/CM_MGW_RT/022","message":"Entity already exists","target":"","severity":"error"},
              {"code":"R1/145","message":"Business partner 17100001 already exists","target":"BusinessPartner","severity":"error"}]}}}"#;
        let m = error_message(400, body);
        assert_eq!(m.message, "Entity already exists");
        assert_eq!(m.details.len(), 1, "{m:?}");
        assert_eq!(m.details[0].target.as_deref(), Some("BusinessPartner"));
        assert_eq!(
            error_message(403, b"CSRF token validation failed").message,
            "CSRF token validation failed"
        );
    }

    #[test]
    fn query_options_encode_spaces_as_percent_20() {
        let q = query(&[
            ("$filter", "SearchTerm1 eq 'A&B'".into()),
            ("$top", "5".into()),
        ]);
        assert_eq!(q, "$filter=SearchTerm1%20eq%20'A%26B'&$top=5");
    }

    #[test]
    fn keys_stay_inside_their_segment() {
        assert_eq!(key_segment("10"), "('10')");
        assert_eq!(key_segment("O'Neil/1?x#"), "('O''Neil%2F1%3Fx%23')");
        assert_eq!(
            key_of_location("A_BusinessPartner('10')").as_deref(),
            Some("10")
        );
        assert_eq!(
            key_of_location("http://h/x/A_BusinessPartner('O''Neil')").as_deref(),
            Some("O'Neil")
        );
        assert!(is_identifier("A_BusinessPartner"));
        assert!(!is_identifier("A_BusinessPartner('1')/x"));
        assert!(!is_identifier("../admin"));
    }
}
