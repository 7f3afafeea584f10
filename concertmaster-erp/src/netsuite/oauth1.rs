//! OAuth 1.0a request signing with HMAC-SHA256 (RFC 5849), as NetSuite's
//! token-based authentication wants it: realm = account id.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Url;
use sha2::Sha256;
use zeroize::Zeroizing;

/// RFC 5849 3.6: everything but ALPHA, DIGIT, `-`, `.`, `_` and `~`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// Who signs: the integration (consumer) and the access token.
pub(crate) struct Credentials<'a> {
    pub(crate) realm: &'a str,
    pub(crate) consumer_key: &'a str,
    pub(crate) consumer_secret: &'a str,
    pub(crate) token_id: &'a str,
    pub(crate) token_secret: &'a str,
}

/// The protocol parameters of one request, in the order the header lists
/// them.
fn oauth_params<'a>(
    credentials: &'a Credentials<'_>,
    nonce: &'a str,
    timestamp: &'a str,
) -> [(&'static str, &'a str); 6] {
    [
        ("oauth_nonce", nonce),
        ("oauth_timestamp", timestamp),
        ("oauth_version", "1.0"),
        ("oauth_signature_method", "HMAC-SHA256"),
        ("oauth_consumer_key", credentials.consumer_key),
        ("oauth_token", credentials.token_id),
    ]
}

/// The signature base string (RFC 5849 3.4.1): method, base URI and the
/// sorted, encoded parameters of the query and the protocol. A JSON body
/// is not part of it.
pub(crate) fn base_string(
    method: &str,
    url: &Url,
    credentials: &Credentials<'_>,
    nonce: &str,
    timestamp: &str,
) -> String {
    // Url already lowercases scheme and host and drops a default port.
    let mut base_uri = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        base_uri.push_str(&format!(":{port}"));
    }
    base_uri.push_str(url.path());

    let mut params: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (encode(&k), encode(&v)))
        .chain(
            oauth_params(credentials, nonce, timestamp)
                .iter()
                .map(|(k, v)| (encode(k), encode(v))),
        )
        .collect();
    params.sort();
    let normalized = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(&base_uri),
        encode(&normalized)
    )
}

/// HMAC-SHA256 of `base` under `consumer secret & token secret`, base64.
pub(crate) fn sign(base: &str, credentials: &Credentials<'_>) -> String {
    let key = Zeroizing::new(format!(
        "{}&{}",
        encode(credentials.consumer_secret),
        encode(credentials.token_secret)
    ));
    // HMAC takes keys of any length.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(base.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `Authorization` header of a request.
pub(crate) fn authorization(
    method: &str,
    url: &Url,
    credentials: &Credentials<'_>,
    nonce: &str,
    timestamp: &str,
) -> String {
    let signature = sign(
        &base_string(method, url, credentials, nonce, timestamp),
        credentials,
    );
    let mut header = format!("OAuth realm=\"{}\"", encode(credentials.realm));
    for (name, value) in oauth_params(credentials, nonce, timestamp) {
        header.push_str(&format!(", {name}=\"{}\"", encode(value)));
    }
    header.push_str(&format!(", oauth_signature=\"{}\"", encode(&signature)));
    header
}

/// A fresh nonce: 32 random alphanumeric characters.
pub(crate) fn nonce() -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    // The modulo bias is harmless: a nonce only has to be unique.
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Vector {
        method: String,
        url: String,
        realm: String,
        consumer_key: String,
        consumer_secret: String,
        token_id: String,
        token_secret: String,
        nonce: String,
        timestamp: String,
        base_string: String,
        signature: String,
        authorization: String,
    }

    /// The vectors oauthlib made (tests/netsuite-server/vectors.py); the
    /// integration tests also regenerate them and compare.
    #[test]
    fn base_strings_signatures_and_headers_match_oauthlib() {
        let vectors: Vec<Vector> = serde_json::from_str(include_str!(
            "../../tests/data/netsuite-oauth1-vectors.json"
        ))
        .unwrap();
        assert!(vectors.len() >= 5);
        for v in vectors {
            let url = Url::parse(&v.url).unwrap();
            let credentials = Credentials {
                realm: &v.realm,
                consumer_key: &v.consumer_key,
                consumer_secret: &v.consumer_secret,
                token_id: &v.token_id,
                token_secret: &v.token_secret,
            };
            assert_eq!(
                base_string(&v.method, &url, &credentials, &v.nonce, &v.timestamp),
                v.base_string,
                "{}",
                v.url
            );
            assert_eq!(sign(&v.base_string, &credentials), v.signature, "{}", v.url);
            assert_eq!(
                authorization(&v.method, &url, &credentials, &v.nonce, &v.timestamp),
                v.authorization,
                "{}",
                v.url
            );
        }
    }

    #[test]
    fn nonces_are_fresh_and_alphanumeric() {
        let (a, b) = (nonce().unwrap(), nonce().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
