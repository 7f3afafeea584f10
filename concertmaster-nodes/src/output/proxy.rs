//! `http_request` through the host's forward proxy, without giving the SSRF
//! guard's check away.
//!
//! A proxy asked for `CONNECT erp.example.com:443` resolves the name
//! itself, where the guard never sees the address: a name that resolves
//! to a public address for the guard and to 10.0.0.5 for the proxy (DNS
//! rebinding, or a split-horizon resolver) would lead into the host's
//! network. So the guard resolves and checks the name first, and the
//! tunnel is opened to the checked address (`CONNECT 93.184.216.34:443`);
//! TLS inside the tunnel still names and verifies the host
//! (`erp.example.com`), and the request carries it as `Host`. Every
//! request, `http` or `https`, goes through such a tunnel, and so does
//! every redirect, checked again.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::guard::HttpGuard;

/// Largest `CONNECT` answer head read from the proxy, in bytes.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// The host's forward proxy, which `http_request` sends every request
/// through (see [`Builtins::http_proxy`](crate::Builtins::http_proxy)).
///
/// ```
/// use concertmaster_nodes::HttpProxy;
///
/// let proxy = HttpProxy::new("http://proxy.internal:3128")?
///     .with_basic_auth("concertmaster", "s3cret");
/// # Ok::<(), concertmaster_nodes::HttpProxyError>(())
/// ```
#[derive(Clone)]
pub struct HttpProxy {
    /// `host:port` of the proxy.
    authority: String,
    /// `Proxy-Authorization` value; never shown.
    authorization: Option<String>,
    roots: rustls::RootCertStore,
}

impl std::fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProxy")
            .field("authority", &self.authority)
            .field("authorization", &self.authorization.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// Why a proxy setting was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpProxyError {
    /// The proxy's URL is not `http://host:port`.
    #[error("proxy URL {url:?}: {reason}")]
    Url {
        /// The URL given, any password in it hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A root certificate could not be read.
    #[error("root certificate: {0}")]
    Certificate(String),
}

impl HttpProxy {
    /// The proxy at `url` (`http://proxy.internal:3128`), trusting the
    /// public web's certificate authorities (Mozilla's list) for the
    /// targets' TLS.
    pub fn new(url: &str) -> Result<Self, HttpProxyError> {
        let refuse = |reason: &str| HttpProxyError::Url {
            url: concertmaster_core::connector::url_without_password(url),
            reason: reason.into(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|err| refuse(&err.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(refuse(
                "use http://host:port (the tunnel's TLS is the target's own)",
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(refuse(
                "give credentials with with_basic_auth, not in the URL",
            ));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| refuse("it names no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Ok(Self {
            authority: format!("{host}:{port}"),
            authorization: None,
            roots,
        })
    }

    /// Authenticates to the proxy with `user` and `password` (HTTP Basic).
    pub fn with_basic_auth(mut self, user: &str, password: &str) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.authorization = Some(format!("Basic {token}"));
        self
    }

    /// Also trusts the certificate authorities in `pem` for the targets'
    /// TLS (a company's own CA).
    pub fn with_root_certificates(mut self, pem: &[u8]) -> Result<Self, HttpProxyError> {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|err| HttpProxyError::Certificate(err.to_string()))?;
            self.roots
                .add(cert)
                .map_err(|err| HttpProxyError::Certificate(err.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(HttpProxyError::Certificate(
                "no PEM certificate found".into(),
            ));
        }
        Ok(self)
    }

    pub(crate) fn tls(&self) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            // ring supports every default protocol version.
            .unwrap_or_else(|_| unreachable!("ring lacks a default TLS version"))
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// A request to send.
pub(crate) struct Outgoing {
    pub(crate) method: Method,
    pub(crate) url: reqwest::Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Vec<u8>>,
}

/// A response, its body read.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Why a request failed, and whether trying again may help.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) fatal: bool,
}

impl Failure {
    fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            fatal: true,
        }
    }

    fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            fatal: false,
        }
    }
}

/// The proxy with what one node's requests share.
pub(crate) struct Tunnel {
    pub(crate) proxy: HttpProxy,
    pub(crate) tls: tokio_rustls::TlsConnector,
    pub(crate) max_body: usize,
    pub(crate) max_redirects: usize,
}

impl Tunnel {
    pub(crate) fn new(proxy: &HttpProxy, max_body: usize, max_redirects: usize) -> Self {
        Self {
            tls: tokio_rustls::TlsConnector::from(proxy.tls()),
            proxy: proxy.clone(),
            max_body,
            max_redirects,
        }
    }

    /// Sends `request`, following redirects, each hop checked by `guard`.
    pub(crate) async fn send(
        &self,
        guard: &HttpGuard,
        mut request: Outgoing,
    ) -> Result<Answer, Failure> {
        for _ in 0..=self.max_redirects {
            guard.check_url(&request.url).map_err(Failure::fatal)?;
            let addresses = checked_addresses(guard, &request.url).await?;
            let answer = self.exchange(&addresses, &request).await?;
            let location = answer
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok());
            let next = match (answer.status.as_u16(), location) {
                (301 | 302 | 303 | 307 | 308, Some(location)) => request
                    .url
                    .join(location)
                    .map_err(|err| Failure::fatal(format!("redirect to {location:?}: {err}")))?,
                _ => return Ok(answer),
            };
            // As browsers do: 303, and 301/302 after a POST, go on as a GET.
            let status = answer.status.as_u16();
            if status == 303 && request.method != Method::HEAD
                || matches!(status, 301 | 302) && request.method == Method::POST
            {
                request.method = Method::GET;
                request.body = None;
                request.headers.remove(header::CONTENT_TYPE);
            }
            // Credentials meant for one origin are not handed to another.
            if next.origin() != request.url.origin() {
                request.headers.remove(header::AUTHORIZATION);
                request.headers.remove(header::COOKIE);
            }
            request.url = next;
        }
        Err(Failure::fatal(format!(
            "more than {} redirects",
            self.max_redirects
        )))
    }

    /// One request over a tunnel to the first of `addresses` the proxy
    /// reaches.
    async fn exchange(
        &self,
        addresses: &[SocketAddr],
        request: &Outgoing,
    ) -> Result<Answer, Failure> {
        let mut last = None;
        for address in addresses {
            let stream = match self.connect(*address).await {
                Ok(stream) => stream,
                Err(failure) if failure.fatal => return Err(failure),
                Err(failure) => {
                    last = Some(failure);
                    continue;
                }
            };
            let host = host_of(&request.url);
            return if request.url.scheme() == "https" {
                let name = ServerName::try_from(host.to_string()).map_err(|err| {
                    Failure::fatal(format!("{host} is not a TLS server name: {err}"))
                })?;
                let tls = self
                    .tls
                    .connect(name, stream)
                    .await
                    .map_err(|err| Failure::retryable(format!("TLS with {host}: {err}")))?;
                self.over(tls, request).await
            } else {
                self.over(stream, request).await
            };
        }
        Err(last.unwrap_or_else(|| Failure::retryable("the name resolved to no address")))
    }

    /// A tunnel through the proxy to `target`.
    async fn connect(&self, target: SocketAddr) -> Result<TcpStream, Failure> {
        let proxy = &self.proxy.authority;
        let mut stream = TcpStream::connect(proxy)
            .await
            .map_err(|err| Failure::retryable(format!("proxy {proxy}: {err}")))?;
        let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(authorization) = &self.proxy.authorization {
            head.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|err| Failure::retryable(format!("proxy {proxy}: {err}")))?;
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        // Byte by byte: whatever follows the head belongs to the tunnel.
        while !answer.ends_with(b"\r\n\r\n") {
            if answer.len() >= MAX_CONNECT_HEAD {
                return Err(Failure::retryable(format!(
                    "proxy {proxy}: its answer to CONNECT is longer than {MAX_CONNECT_HEAD} bytes"
                )));
            }
            let n = stream
                .read(&mut byte)
                .await
                .map_err(|err| Failure::retryable(format!("proxy {proxy}: {err}")))?;
            if n == 0 {
                return Err(Failure::retryable(format!(
                    "proxy {proxy} closed the connection before answering CONNECT {target}"
                )));
            }
            answer.push(byte[0]);
        }
        let status_line = String::from_utf8_lossy(&answer);
        let status_line = status_line.lines().next().unwrap_or_default();
        let code = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok());
        match code {
            Some(200..=299) => Ok(stream),
            // Refused by policy or for credentials: no retry changes that.
            Some(code @ (403 | 407)) => Err(Failure::fatal(format!(
                "proxy {proxy} refused CONNECT {target}: {code}"
            ))),
            _ => Err(Failure::retryable(format!(
                "proxy {proxy} could not open a tunnel to {target}: {status_line}"
            ))),
        }
    }

    /// Sends `request` over `io` (HTTP/1.1) and reads the answer.
    async fn over<S>(&self, io: S, request: &Outgoing) -> Result<Answer, Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let host = host_of(&request.url);
        let failed = |what: &str, err: &dyn std::fmt::Display| {
            Failure::retryable(format!("{what} {host}: {err}"))
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|err| failed("connecting to", &err))?;
        // Ends when the answer is read and `sender` dropped.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut path = request.url.path().to_string();
        if let Some(query) = request.url.query() {
            path.push('?');
            path.push_str(query);
        }
        let authority = match request.url.port() {
            Some(port) => format!("{}:{port}", request.url.host_str().unwrap_or_default()),
            None => request.url.host_str().unwrap_or_default().to_string(),
        };
        let mut builder = Request::builder()
            .method(request.method.clone())
            .uri(path)
            .header(header::HOST, authority);
        if let Some(headers) = builder.headers_mut() {
            for (name, value) in &request.headers {
                headers.append(name, value.clone());
            }
        }
        let body = Full::new(Bytes::from(request.body.clone().unwrap_or_default()));
        let outgoing = builder
            .body(body)
            .map_err(|err| Failure::fatal(format!("request to {host}: {err}")))?;
        let response = sender
            .send_request(outgoing)
            .await
            .map_err(|err| failed("sending to", &err))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, self.max_body)
            .collect()
            .await
            .map_err(|err| {
                if err.is::<http_body_util::LengthLimitError>() {
                    Failure::fatal(format!("{host} answered more than {} bytes", self.max_body))
                } else {
                    failed("reading the answer of", &err)
                }
            })?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// The URL's host without IPv6 brackets.
fn host_of(url: &reqwest::Url) -> &str {
    url.host_str().unwrap_or_default().trim_matches(['[', ']'])
}

/// The addresses `url`'s host resolves to, each checked by `guard`: one
/// refused address refuses the name.
async fn checked_addresses(
    guard: &HttpGuard,
    url: &reqwest::Url,
) -> Result<Vec<SocketAddr>, Failure> {
    let host = host_of(url);
    let port = url.port_or_known_default().unwrap_or(80);
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => guard
            .lookup(host, port)
            .await
            .map_err(|err| Failure::retryable(format!("resolving {host}: {err}")))?,
    };
    if let Some(why) = addresses.iter().find_map(|a| guard.refusal(host, a.ip())) {
        return Err(Failure::fatal(why));
    }
    Ok(addresses)
}

/// A deadline over a whole exchange, redirects included.
pub(crate) async fn within<T>(
    limit: Duration,
    what: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout(limit, what)
        .await
        .unwrap_or_else(|_| Err(Failure::retryable(format!("no answer within {limit:?}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_is_http_host_and_port_with_credentials_given_apart() {
        let proxy = HttpProxy::new("http://proxy.internal:3128").unwrap();
        assert_eq!(proxy.authority, "proxy.internal:3128");
        assert_eq!(
            HttpProxy::new("http://proxy.internal").unwrap().authority,
            "proxy.internal:80"
        );
        for wrong in [
            "https://proxy:3128",
            "http://u:p@proxy:3128",
            "proxy:3128",
            "socks5://p:1080",
        ] {
            let err = HttpProxy::new(wrong).unwrap_err().to_string();
            assert!(!err.contains(":p@"), "{err}");
            assert!(err.starts_with("proxy URL"), "{err}");
        }
        let proxy = proxy.with_basic_auth("cm", "s3cret");
        assert_eq!(proxy.authorization.as_deref(), Some("Basic Y206czNjcmV0"));
        assert!(!format!("{proxy:?}").contains("Y206"), "{proxy:?}");
        assert!(proxy.clone().with_root_certificates(b"not pem").is_err());
    }
}
