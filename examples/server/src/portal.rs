//! The form portal: `GET /f/{token}` renders the form of a link as plain
//! HTML from its JSON Schema (no script needed), `POST /f/{token}` submits
//! it. Invalid answers come back with an error under each field and what
//! was entered kept; an unknown, used or expired link gets a page saying
//! so, with the fitting status, never a 500.

use std::fmt::Write as _;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Path, RawForm, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use concertmaster_core::{FieldError, FormSchema, PII_KEYWORD};
use concertmaster_nodes::forms::{FormsError, Submission};
use serde_json::{Map, Value};

use crate::AppState;

/// Escapes text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        title = esc(title),
    );
    (status, Html(html)).into_response()
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;background:#f5f6f8;color:#1d2430;margin:0}\
main{max-width:640px;margin:32px auto;background:#fff;padding:24px 32px;border-radius:8px;box-shadow:0 1px 3px #0002}\
label{display:block;font-weight:600;margin-top:14px}.help{color:#6a7380;font-size:13px}\
input,select{font:inherit;padding:6px 8px;border:1px solid #b8c0cc;border-radius:4px;width:100%;box-sizing:border-box}\
input[type=checkbox],input[type=radio]{width:auto}fieldset{border:1px solid #d9dde3;border-radius:6px;margin-top:14px}\
.error{color:#b3261e;font-size:13px}.invalid input,.invalid select{border-color:#b3261e}\
button{margin-top:20px;font:inherit;padding:8px 18px;border:0;border-radius:4px;background:#1565c0;color:#fff}\
.summary{background:#fdecec;padding:8px 12px;border-radius:4px}\
.saved{background:#e8f5e9;padding:8px 12px;border-radius:4px}";

/// The form of a link.
pub(crate) async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.forms.open(&token).await {
        Ok(open) => {
            // A draft saved earlier, on this device or another, fills the form.
            let data = open
                .draft
                .map(|d| d.data)
                .unwrap_or_else(|| Value::Object(Map::new()));
            render(&token, &open.form, &data, &[], None)
        }
        Err(err) => link_problem(err),
    }
}

/// A submission through a link.
pub(crate) async fn submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let open = match state.forms.open(&token).await {
        Ok(open) => open,
        Err(err) => return link_problem(err),
    };
    let pairs: Vec<(String, String)> = form_urlencoded(&body);
    let data = answers(&open.form.schema, &pairs);
    if pairs
        .iter()
        .any(|(name, value)| name == "action" && value == "draft")
    {
        return match state.forms.save_draft(&token, data.clone()).await {
            Ok(_) => render(
                &token,
                &open.form,
                &data,
                &[],
                Some("Saved. Open this link again, on any device, to go on where you left off."),
            ),
            Err(FormsError::Invalid { errors, .. }) => {
                let mut response = render(&token, &open.form, &data, &errors, None);
                *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                response
            }
            Err(err) => link_problem(err),
        };
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let ip = client_address(peer, &headers, &state.trusted_proxies).map(|ip| ip.to_string());
    let submission = Submission::new(data.clone()).with_submitter(ip, agent);
    match state.forms.submit(&state.engine, &token, submission).await {
        Ok(_) => page(
            StatusCode::OK,
            "Thank you",
            &format!(
                "<h1>Thank you</h1><p>Your answers to <strong>{}</strong> were received.</p>",
                esc(&open.form.title)
            ),
        ),
        Err(FormsError::Invalid { errors, .. }) => {
            let mut response = render(&token, &open.form, &data, &errors, None);
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            response
        }
        Err(err) => link_problem(err),
    }
}

/// The client's address: the socket's peer, unless the peer is a trusted
/// proxy; then the last address of `X-Forwarded-For` that is not one (each
/// proxy appends the address it got the request from, so only the
/// entries our own proxies added can be believed; anything to their left
/// is whatever the client sent).
fn client_address(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in forwarded.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            // Not an address: nothing further left can be believed.
            Err(_) => break,
        }
    }
    Some(client)
}

fn link_problem(err: FormsError) -> Response {
    match err {
        FormsError::UnknownLink => page(
            StatusCode::NOT_FOUND,
            "Link not valid",
            &format!(
                "<h1>This link is not valid</h1><p>{}</p>",
                esc(&err.to_string())
            ),
        ),
        FormsError::LinkUsed => page(
            StatusCode::GONE,
            "Already answered",
            &format!("<h1>Already answered</h1><p>{}</p>", esc(&err.to_string())),
        ),
        FormsError::LinkExpired { .. } => page(
            StatusCode::GONE,
            "Link expired",
            &format!(
                "<h1>This link has expired</h1><p>{}</p>",
                esc(&err.to_string())
            ),
        ),
        FormsError::Withdrawn { .. } => page(
            StatusCode::GONE,
            "No longer needed",
            &format!(
                "<h1>This form is no longer needed</h1><p>{}</p>",
                esc(&err.to_string())
            ),
        ),
        FormsError::TooLarge { .. } => page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too large",
            &format!("<h1>Too large</h1><p>{}</p>", esc(&err.to_string())),
        ),
        FormsError::TooDeep { .. } => page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Too deep",
            &format!("<h1>Too deeply nested</h1><p>{}</p>", esc(&err.to_string())),
        ),
        other => {
            tracing::error!(error = %other, "form portal failed");
            page(StatusCode::SERVICE_UNAVAILABLE, "Please try again", "<h1>Please try again in a moment</h1><p>The form could not be handled just now; nothing was stored.</p>")
        }
    }
}

/// The form as HTML: fields from the schema in uiSchema order, values as
/// entered, each error under its field.
fn render(
    token: &str,
    form: &FormSchema,
    data: &Value,
    errors: &[FieldError],
    notice: Option<&str>,
) -> Response {
    let mut body = format!("<h1>{}</h1>", esc(&form.title));
    if let Some(notice) = notice {
        let _ = write!(
            body,
            "<p class=\"saved\" role=\"status\">{}</p>",
            esc(notice)
        );
    }
    if !errors.is_empty() {
        let _ = write!(
            body,
            "<p class=\"summary\" role=\"alert\">{} field(s) need your attention.</p>",
            errors.len()
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/f/{}\" novalidate>",
        esc(token)
    );
    fields(
        &mut body,
        &form.schema,
        form.ui_schema.get("ui:order"),
        "",
        data,
        errors,
        &form.ui_schema,
    );
    body.push_str(
        "<button type=\"submit\">Submit</button> \
         <button type=\"submit\" name=\"action\" value=\"draft\" formnovalidate>Save and continue later</button></form>",
    );
    page(StatusCode::OK, &form.title, &body)
}

fn property_order<'a>(schema: &'a Value, order: Option<&Value>) -> Vec<(&'a String, &'a Value)> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut listed: Vec<(&String, &Value)> = Vec::new();
    if let Some(order) = order.and_then(Value::as_array) {
        for name in order.iter().filter_map(Value::as_str) {
            if let Some((key, value)) = properties.get_key_value(name) {
                listed.push((key, value));
            }
        }
    }
    for (key, value) in properties {
        if !listed.iter().any(|(k, _)| *k == key) {
            listed.push((key, value));
        }
    }
    listed
}

fn fields(
    out: &mut String,
    schema: &Value,
    order: Option<&Value>,
    at: &str,
    data: &Value,
    errors: &[FieldError],
    ui: &Value,
) {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, property) in property_order(schema, order) {
        let pointer = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
        let title = property
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or(name);
        let value = data.pointer(&pointer);
        let field_ui = ui.get(name).cloned().unwrap_or(Value::Null);
        if property.get("type").and_then(Value::as_str) == Some("object") {
            let _ = write!(out, "<fieldset><legend>{}</legend>", esc(title));
            fields(
                out,
                property,
                field_ui.get("ui:order"),
                &pointer,
                data,
                errors,
                &field_ui,
            );
            out.push_str("</fieldset>");
            continue;
        }
        let mine: Vec<&FieldError> = errors.iter().filter(|e| e.pointer == pointer).collect();
        let id = format!("f{}", pointer.replace('/', "_"));
        let _ = write!(
            out,
            "<div class=\"field{}\">",
            if mine.is_empty() { "" } else { " invalid" }
        );
        let mark = if required.contains(&name.as_str()) {
            " *"
        } else {
            ""
        };
        let pii = if property.get(PII_KEYWORD) == Some(&Value::Bool(true)) {
            " <span class=\"help\">(personal data)</span>"
        } else {
            ""
        };
        let _ = write!(out, "<label for=\"{id}\">{}{mark}{pii}</label>", esc(title));
        input(out, &id, &pointer, property, value);
        if let Some(help) = field_ui.get("ui:help").and_then(Value::as_str) {
            let _ = write!(out, "<div class=\"help\">{}</div>", esc(help));
        }
        for error in mine {
            let _ = write!(
                out,
                "<div class=\"error\" data-field=\"{}\">{}</div>",
                esc(&pointer),
                esc(&error.message)
            );
        }
        out.push_str("</div>");
    }
}

fn input(out: &mut String, id: &str, name: &str, property: &Value, value: Option<&Value>) {
    let text = match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let kind = property
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    if let Some(options) = property.get("enum").and_then(Value::as_array) {
        let _ = write!(
            out,
            "<select id=\"{id}\" name=\"{}\"><option value=\"\"></option>",
            esc(name)
        );
        for option in options {
            let shown = option
                .as_str()
                .map_or_else(|| option.to_string(), str::to_string);
            let selected = if shown == text { " selected" } else { "" };
            let _ = write!(
                out,
                "<option{selected} value=\"{0}\">{0}</option>",
                esc(&shown)
            );
        }
        out.push_str("</select>");
        return;
    }
    if kind == "array" {
        let options = property
            .pointer("/items/enum")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let chosen: Vec<String> = value
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        for (i, option) in options.iter().filter_map(Value::as_str).enumerate() {
            let checked = if chosen.iter().any(|c| c == option) {
                " checked"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<label><input type=\"checkbox\" id=\"{id}_{i}\" name=\"{}\" value=\"{1}\"{checked}> {1}</label>",
                esc(name),
                esc(option)
            );
        }
        return;
    }
    if kind == "boolean" {
        let checked = if value == Some(&Value::Bool(true)) {
            " checked"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<input type=\"checkbox\" id=\"{id}\" name=\"{}\" value=\"true\"{checked}>",
            esc(name)
        );
        return;
    }
    let html_type = match (kind, property.get("format").and_then(Value::as_str)) {
        ("integer" | "number", _) => "number",
        (_, Some("date")) => "date",
        (_, Some("email")) => "email",
        (_, Some("uri")) => "url",
        _ => "text",
    };
    let step = if kind == "number" {
        " step=\"any\""
    } else {
        ""
    };
    let _ = write!(
        out,
        "<input type=\"{html_type}\"{step} id=\"{id}\" name=\"{}\" value=\"{}\">",
        esc(name),
        esc(&text)
    );
}

/// Decodes `application/x-www-form-urlencoded`.
fn form_urlencoded(body: &[u8]) -> Vec<(String, String)> {
    fn decode(part: &str) -> String {
        let bytes = part.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The answers as JSON, typed by the schema: numbers as numbers (or as
/// entered, so the check names the field), empty fields left out so that
/// "required" says what is missing.
fn answers(schema: &Value, pairs: &[(String, String)]) -> Value {
    let mut data = Value::Object(Map::new());
    for (pointer, text) in pairs {
        let Some(property) = property_at(schema, pointer) else {
            continue;
        };
        let kind = property
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string");
        if text.is_empty() {
            continue;
        }
        let value = match kind {
            "integer" => text
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(text.clone())),
            "number" => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(text.clone())),
            "boolean" => Value::Bool(text == "true"),
            _ => Value::String(text.clone()),
        };
        insert(&mut data, pointer, value, kind == "array");
    }
    data
}

fn property_at<'a>(schema: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut at = schema;
    for token in pointer.split('/').skip(1) {
        let key = token.replace("~1", "/").replace("~0", "~");
        at = at.get("properties")?.get(&key)?;
    }
    Some(at)
}

fn insert(data: &mut Value, pointer: &str, value: Value, many: bool) {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut at = data;
    for token in parents {
        if !at.get(token).is_some_and(Value::is_object) {
            if let Value::Object(map) = at {
                map.insert(token.clone(), Value::Object(Map::new()));
            }
        }
        let Some(next) = at.get_mut(token) else {
            return;
        };
        at = next;
    }
    if let Value::Object(map) = at {
        if many {
            let list = map
                .entry(last.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.push(value);
            }
        } else {
            map.insert(last.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn posted_fields_become_typed_answers() {
        let schema = json!({ "type": "object", "properties": {
            "company": { "type": "string" }, "employees": { "type": "integer" },
            "ratio": { "type": "number" }, "tags": { "type": "array", "items": { "enum": ["a", "b"] } },
            "contact": { "type": "object", "properties": { "email": { "type": "string" } } } } });
        let pairs = form_urlencoded(b"%2Fcompany=Acme+GmbH&%2Femployees=12&%2Fratio=0.5&%2Ftags=a&%2Ftags=b&%2Fcontact%2Femail=a%40b.example&%2Fignored=x&%2Femployees2=");
        assert_eq!(
            answers(&schema, &pairs),
            json!({ "company": "Acme GmbH", "employees": 12, "ratio": 0.5, "tags": ["a", "b"], "contact": { "email": "a@b.example" } })
        );
        let pairs = form_urlencoded(b"%2Femployees=twelve&%2Fcompany=");
        assert_eq!(answers(&schema, &pairs), json!({ "employees": "twelve" }));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc("<script>\"x\" & 'y'"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;"
        );
    }
}
