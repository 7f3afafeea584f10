//! The form portal: `GET /f/{token}` renders the form of a link as plain
//! HTML from its JSON Schema (no script needed), `POST /f/{token}` submits
//! it. Invalid answers come back with an error under each field and what
//! was entered kept; an unknown, used or expired link gets a page saying
//! so, with the fitting status, never a 500.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Path, RawForm, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use concertmaster_core::{form::FormSchema, validate::FieldError};
use concertmaster_nodes::forms::portal::{message_page, FormPage, PostedForm};
use concertmaster_nodes::forms::{FormsError, Submission};
use serde_json::{Map, Value};

use crate::limit::Refused;
use crate::AppState;

fn message(status: StatusCode, title: &str, heading: &str, text: &str) -> Response {
    (status, Html(message_page(title, heading, text))).into_response()
}

/// The form of a link.
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let client = client(&state, peer, &headers);
    if let Err(refused) = state.portal_limits.check(client, &token) {
        return too_many(refused);
    }
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
    let client = client(&state, peer, &headers);
    if let Err(refused) = state.portal_limits.check(client, &token) {
        return too_many(refused);
    }
    let open = match state.forms.open(&token).await {
        Ok(open) => open,
        Err(err) => return link_problem(err),
    };
    let PostedForm {
        answers: data,
        save_draft,
    } = PostedForm::parse(&open.form.schema, &body);
    if save_draft {
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
    let ip = client.map(|ip| ip.to_string());
    let submission = Submission::new(data.clone()).with_submitter(ip, agent);
    match state.forms.submit(&state.engine, &token, submission).await {
        Ok(_) => message(
            StatusCode::OK,
            "Thank you",
            "Thank you",
            &format!("Your answers to {} were received.", open.form.title),
        ),
        Err(FormsError::Invalid { errors, .. }) => {
            let mut response = render(&token, &open.form, &data, &errors, None);
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            response
        }
        Err(err) => link_problem(err),
    }
}

/// The address of the client behind `peer`.
fn client(
    state: &AppState,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    client_address(peer, headers, &state.trusted_proxies)
}

/// `429 Too Many Requests`, saying when to come back.
fn too_many(refused: Refused) -> Response {
    let (by, wait) = match refused {
        Refused::Client(wait) => ("client", wait),
        Refused::Link(wait) => ("link", wait),
    };
    metrics::counter!("concertmaster_portal_rate_limited_total", "by" => by).increment(1);
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        "Please wait a moment",
        &format!(
            "This form had more requests than it takes just now. Try again in {seconds} s: \
             nothing was stored, and going back keeps what you entered."
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, seconds.into());
    response
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
    let (status, title, heading) = match &err {
        FormsError::UnknownLink => (
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This link is not valid",
        ),
        FormsError::LinkUsed => (StatusCode::GONE, "Already answered", "Already answered"),
        FormsError::LinkExpired { .. } => {
            (StatusCode::GONE, "Link expired", "This link has expired")
        }
        FormsError::Withdrawn { .. } => (
            StatusCode::GONE,
            "No longer needed",
            "This form is no longer needed",
        ),
        FormsError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "Too large", "Too large"),
        FormsError::TooDeep { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Too deep",
            "Too deeply nested",
        ),
        other => {
            tracing::error!(error = %other, "form portal failed");
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "Please try again in a moment",
                "The form could not be handled just now; nothing was stored.",
            );
        }
    };
    message(status, title, heading, &err.to_string())
}

/// The form of a link as a page: `data` as entered, each of `errors` under
/// its field.
fn render(
    token: &str,
    form: &FormSchema,
    data: &Value,
    errors: &[FieldError],
    notice: Option<&str>,
) -> Response {
    let action = format!("/f/{token}");
    let mut page = FormPage::new(form, &action)
        .with_data(data)
        .with_errors(errors);
    if let Some(notice) = notice {
        page = page.with_notice(notice);
    }
    (StatusCode::OK, Html(page.render())).into_response()
}
