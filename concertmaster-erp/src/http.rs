//! What the HTTP connectors share: config parsing that never echoes a
//! secret, transport errors without credentials, `Retry-After`.

use std::time::Duration;

use concertmaster_core::connector::{ConnectorError, ErpMessage};
use serde::de::DeserializeOwned;

/// Longest error body text kept in an error message.
const MAX_ERROR_TEXT: usize = 300;

/// Parses a connection config, naming the offending field on failure.
/// serde's messages can quote the input, which holds secrets; quoted
/// values are cut out of them.
pub(crate) fn parse_config<T: DeserializeOwned>(
    connection: &str,
    config: &[u8],
) -> Result<T, ConnectorError> {
    let mut de = serde_json::Deserializer::from_slice(config);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        ConnectorError::Config {
            connection: connection.into(),
            message: format!("at {path}: {}", redact(&err.into_inner().to_string())),
        }
    })
}

/// serde's message with quoted input values replaced by `…`; the expected
/// forms (`expected one of ...`) stay, as they are what to fix.
fn redact(message: &str) -> String {
    let (head, tail) = match message.find(", expected") {
        Some(at) => message.split_at(at),
        None => (message, ""),
    };
    let mut out = String::with_capacity(message.len());
    let mut quoted = None;
    for c in head.chars() {
        match quoted {
            Some(close) if c == close => {
                out.push('…');
                out.push(c);
                quoted = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    quoted = Some(c);
                }
            }
        }
    }
    // Drop serde_json's position suffix: it is about the JSON text.
    let tail = tail.split(" at line ").next().unwrap_or_default();
    out.push_str(tail);
    out
}

/// An HTTP client for `connection`: rustls, the timeout, no redirects (a
/// redirect from an ERP API is a login page or a misconfigured URL, and
/// following it could carry credentials elsewhere).
pub(crate) fn client(
    connection: &str,
    timeout: Duration,
) -> Result<reqwest::Client, ConnectorError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ConcertMaster/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| ConnectorError::Config {
            connection: connection.into(),
            message: format!("the HTTP client could not be built: {err}"),
        })
}

/// A transport failure, naming the URL without query or credentials.
pub(crate) fn unreachable(connection: &str, err: &reqwest::Error) -> ConnectorError {
    let url = err.url().map(display_url).unwrap_or_default();
    // The error's own text repeats the URL; its source says why.
    let mut message = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ConnectorError::Unreachable {
        connection: connection.into(),
        url,
        message,
    }
}

/// `url` as errors show it: scheme, host, port and path only.
pub(crate) fn display_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// Checks a configured base URL: http(s), a host, no credentials in it.
pub(crate) fn base_url(
    connection: &str,
    field: &str,
    url: &str,
) -> Result<reqwest::Url, ConnectorError> {
    let invalid = |message: String| ConnectorError::Config {
        connection: connection.into(),
        message: format!("at {field}: {message}"),
    };
    let parsed = reqwest::Url::parse(url).map_err(|err| invalid(format!("not a URL: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "use http or https, not {}",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "the URL holds credentials; put them in the auth section, which is kept secret".into(),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid(
            "the URL has a query or fragment; give the service root only".into(),
        ));
    }
    Ok(parsed)
}

/// The wait a `Retry-After` header asks for now (seconds or an HTTP
/// date); `None` without one, or with a value that is neither.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    concertmaster_core::connector::retry_after(value, std::time::SystemTime::now())
}

/// A non-JSON error body as a message: its start, on one line.
pub(crate) fn text_message(status: u16, body: &[u8]) -> ErpMessage {
    let text = String::from_utf8_lossy(body);
    let mut text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() > MAX_ERROR_TEXT {
        let mut cut = MAX_ERROR_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    if text.is_empty() {
        text = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no message")
            .to_string();
    }
    ErpMessage {
        status: Some(status),
        ..ErpMessage::new(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_field_and_never_quote_the_value() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Config {
            retries: u32,
            mode: Mode,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(rename_all = "lowercase")]
        enum Mode {
            Basic,
        }
        let err = parse_config::<Config>("c1", br#"{"retries": "hunter2", "mode": "basic"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("at retries") && !err.contains("hunter2"),
            "{err}"
        );
        let err = parse_config::<Config>("c1", br#"{"retries": 1, "mode": "hunter2"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("at mode") && err.contains("`basic`") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn base_urls_without_credentials_only() {
        assert!(base_url("c", "serviceUrl", "https://h.example/sap/opu/odata/sap/API").is_ok());
        let err = base_url("c", "serviceUrl", "https://u:pw@h.example/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("credentials") && !err.contains("pw@"), "{err}");
        assert!(base_url("c", "serviceUrl", "ftp://h.example/").is_err());
        assert!(base_url("c", "serviceUrl", "https://h.example/x?sap-client=100").is_err());
    }

    #[test]
    fn long_error_bodies_are_cut() {
        let message = text_message(500, "x ".repeat(1000).as_bytes());
        assert!(message.message.len() <= MAX_ERROR_TEXT + 3);
        assert_eq!(text_message(502, b"").message, "Bad Gateway");
    }
}
