//! Reading NetSuite's answers (SuiteQL pages, error bodies, throttling)
//! and building what goes into a request (idempotency keys, record types
//! and ids in paths, SuiteQL conditions).

use super::*;

/// One page of a SuiteQL answer fetched at `offset`: its rows (without
/// their `links`) and, while `hasMore`, the offset of the next page.
pub(super) fn suiteql_page(body: &[u8], offset: u64) -> Result<Page, String> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|err| format!("the SuiteQL answer is not JSON: {err}"))?;
    let Some(items) = body.get("items").and_then(Value::as_array) else {
        return Err("the SuiteQL answer has no items array".into());
    };
    let records: Vec<Value> = items
        .iter()
        .map(|item| {
            // Rows carry their own `links`; they are not data.
            let mut item = item.clone();
            if let Some(map) = item.as_object_mut() {
                map.remove("links");
            }
            item
        })
        .collect();
    let has_more = body
        .get("hasMore")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let next = (has_more && !records.is_empty())
        .then(|| offset.saturating_add(records.len() as u64).to_string());
    Ok(Page { records, next })
}

/// NetSuite signals throttling with 429, and with 400/403 bodies whose
/// code names the concurrency or request limit.
pub(super) fn is_throttled(status: StatusCode, body: &[u8]) -> bool {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return true;
    }
    if !status.is_client_error() {
        return false;
    }
    let code = error_message(status.as_u16(), body)
        .code
        .unwrap_or_default();
    matches!(
        code.as_str(),
        "CONCURRENCY_LIMIT_EXCEEDED" | "REQUEST_LIMIT_EXCEEDED" | "SSS_REQUEST_LIMIT_EXCEEDED"
    )
}

/// NetSuite's error body: `{"title", "status", "o:errorDetails": [{"detail",
/// "o:errorCode", "o:errorPath"}]}`. The first detail is the message; the
/// others are its details.
pub(super) fn error_message(status: u16, body: &[u8]) -> ErpMessage {
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return http::text_message(status, body);
    };
    let one = |detail: &Value| ErpMessage {
        status: None,
        code: detail
            .get("o:errorCode")
            .and_then(Value::as_str)
            .map(str::to_string),
        message: detail
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or("no detail")
            .to_string(),
        target: detail
            .get("o:errorPath")
            .or_else(|| detail.get("o:errorQueryParam"))
            .or_else(|| detail.get("o:errorHeader"))
            .and_then(Value::as_str)
            .map(str::to_string),
        details: Vec::new(),
    };
    let details: Vec<ErpMessage> = parsed
        .get("o:errorDetails")
        .and_then(Value::as_array)
        .map(|d| d.iter().map(one).collect())
        .unwrap_or_default();
    let mut details = details.into_iter();
    match details.next() {
        Some(first) => ErpMessage {
            status: Some(status),
            details: details.collect(),
            ..first
        },
        None => ErpMessage {
            status: Some(status),
            message: parsed
                .get("title")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| http::text_message(status, body).message),
            ..ErpMessage::default()
        },
    }
}

/// The idempotency key NetSuite is sent for a record: a UUID derived from
/// the record's own key, so the same record always sends the same one.
pub(super) fn idempotency_key(key: &str) -> String {
    let digest = Sha256::digest(format!("concertmaster/netsuite/{key}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// A record type: lowercase letters, digits and `_` (`vendor`,
/// `customrecord_cm_supplier`).
pub(super) fn is_record_type(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An id or `eid:...` as one path segment.
/// A SuiteQL condition that holds when every field of `fields` equals its
/// value: `companyname = 'O''Neil' AND email = 'a@b.example'`. Field names
/// must be identifiers; values strings, numbers or booleans.
pub(super) fn equality_condition(fields: &Map<String, Value>) -> Result<String, String> {
    if fields.is_empty() {
        return Err("no field to match on".into());
    }
    let mut terms = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        let identifier = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            return Err(format!("{name:?} is not a field name"));
        }
        let literal = match value {
            Value::String(text) => format!("'{}'", text.replace('\'', "''")),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => format!("'{}'", if *b { "T" } else { "F" }),
            _ => return Err(format!("{name} holds no value that can be matched")),
        };
        terms.push(format!("{name} = {literal}"));
    }
    Ok(terms.join(" AND "))
}

pub(super) fn encode_segment(id: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b':');
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}
