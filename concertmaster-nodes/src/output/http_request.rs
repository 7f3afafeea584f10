//! `http_request` (feature `http`): one HTTP request per item, to a URL
//! the SSRF guard allows; the response becomes the item.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use concertmaster_core::{
    connector::{retry_after, url_without_password},
    node::{ConfigError, NodeCategory, RegistryError, MAIN_PORT},
    Item, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::guard::{GuardedResolver, HttpGuard};
use super::proxy::{within, Answer, Failure, HttpProxy, Outgoing, Tunnel};
use crate::expr::Expr;
use crate::support::{compile_at, expr_failed, item_value};

/// Most redirects followed.
const MAX_REDIRECTS: usize = 5;
/// Largest response body kept, in bytes.
const MAX_BODY: usize = 10 * 1024 * 1024;

/// Config of an `http_request` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"method": "POST", "url": "https://api.example.com/suppliers", "timeoutSeconds": 30}))]
struct HttpConfig {
    /// The HTTP method.
    #[serde(default)]
    method: Method,
    /// The URL, the same for every item…
    #[schemars(example = "https://api.example.com/suppliers")]
    url: Option<String>,
    /// …or jq giving it from each item.
    url_expression: Option<String>,
    /// Headers sent with every request.
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// jq giving the JSON body from each item; POST, PUT and PATCH send
    /// the item itself without it.
    body_expression: Option<String>,
    /// How long a request may take, in seconds.
    #[serde(default = "thirty")]
    #[schemars(range(min = 1, max = 600))]
    timeout_seconds: u64,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
enum Method {
    #[default]
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl From<Method> for reqwest::Method {
    fn from(method: Method) -> Self {
        match method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

fn thirty() -> u64 {
    30
}

enum Target {
    Fixed(reqwest::Url),
    PerItem(Expr),
}

/// How requests leave: directly, or through the host's proxy.
enum Transport {
    Direct(reqwest::Client),
    Proxy(Tunnel),
}

struct HttpRequest {
    transport: Transport,
    timeout: Duration,
    guard: Arc<HttpGuard>,
    method: reqwest::Method,
    target: Target,
    headers: reqwest::header::HeaderMap,
    body: Option<Expr>,
}

impl HttpRequest {
    async fn send(&self, ctx: &NodeContext, i: usize, item: &Item) -> Result<Item, NodeError> {
        let value = item_value(item);
        let url = match &self.target {
            Target::Fixed(url) => url.clone(),
            Target::PerItem(expr) => {
                let text = expr
                    .eval_one(&value)
                    .map_err(|err| expr_failed(i, expr, err))?;
                let text = text.as_str().unwrap_or_default().to_string();
                reqwest::Url::parse(&text).map_err(|err| {
                    let text = url_without_password(&text);
                    NodeError::fatal(format!("item {i}: {text:?} is not a URL: {err}"))
                })?
            }
        };
        self.guard
            .check_url(&url)
            .map_err(|why| NodeError::fatal(format!("item {i}: {why}")))?;
        // Messages name the URL; a password in it stays in the request.
        let shown = url_without_password(url.as_str());
        let mut headers = self.headers.clone();
        let key = reqwest::header::HeaderValue::from_str(&ctx.item_key(i))
            .map_err(|err| NodeError::fatal(format!("item {i}: idempotency key: {err}")))?;
        headers.insert("idempotency-key", key);
        let sends_body = matches!(
            self.method,
            reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH
        );
        let body = match &self.body {
            Some(expr) => Some(
                expr.eval_one(&value)
                    .map_err(|err| expr_failed(i, expr, err))?,
            ),
            None if sends_body => Some(value),
            None => None,
        };
        let body = body.map(|body| body.to_string().into_bytes());
        // JSON, unless the node's own headers name a type (`application/vnd.api+json`).
        if body.is_some() && !headers.contains_key(reqwest::header::CONTENT_TYPE) {
            headers.insert(
                reqwest::header::CONTENT_TYPE,
                reqwest::header::HeaderValue::from_static("application/json"),
            );
        }
        let outgoing = Outgoing {
            method: self.method.clone(),
            url,
            headers,
            body,
        };
        let answer = match &self.transport {
            Transport::Direct(client) => direct(client, outgoing).await,
            Transport::Proxy(tunnel) => {
                within(self.timeout, tunnel.send(&self.guard, outgoing)).await
            }
        }
        .map_err(|failure| {
            let message = format!("item {i}: {} {shown}: {}", self.method, failure.message);
            if failure.fatal {
                NodeError::fatal(message)
            } else {
                NodeError::retryable(message)
            }
        })?;
        let status = answer.status;
        let asked = answer
            .headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| retry_after(value, std::time::SystemTime::now()));
        let bytes = answer.body;
        let body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            let failed = NodeError::retryable(format!("item {i}: {shown} answered {status}"))
                .with_details(json!({ "item": i, "status": status.as_u16(), "body": body }));
            return Err(match asked {
                Some(wait) => failed.with_retry_after(wait),
                None => failed,
            });
        }
        if !status.is_success() {
            return Err(
                NodeError::fatal(format!("item {i}: {shown} answered {status}"))
                    .with_details(json!({ "item": i, "status": status.as_u16(), "body": body })),
            );
        }
        let mut out = Item::new();
        out.insert("status".into(), json!(status.as_u16()));
        out.insert("body".into(), body);
        Ok(out)
    }
}

/// Sends `request` with reqwest, whose resolver is the guard's; reads at
/// most `MAX_BODY` bytes of the answer.
async fn direct(client: &reqwest::Client, request: Outgoing) -> Result<Answer, Failure> {
    let mut builder = client
        .request(request.method, request.url)
        .headers(request.headers);
    if let Some(body) = request.body {
        builder = builder.body(body);
    }
    let mut response = builder.send().await.map_err(|err| {
        // The guard's refusal surfaces as a connect error; it is final.
        let refused = format!("{err:?}").contains("workflows may not call it");
        let fatal = refused || err.is_builder() || err.is_redirect();
        Failure {
            message: error_chain(&err),
            fatal,
        }
    })?;
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    // Read piece by piece: an answer larger than the cap is never held.
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|err| Failure {
        message: format!("reading the body: {}", error_chain(&err)),
        fatal: false,
    })? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(Failure {
                message: format!("the answer is larger than {MAX_BODY} bytes"),
                fatal: true,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        body: body.into(),
    })
}

/// An error with its causes, which is where the guard's reason is.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait]
impl Node for HttpRequest {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let items = input.take(MAIN_PORT);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(self.send(ctx, i, item).await?);
        }
        Ok(NodeOutcome::main(out))
    }
}

fn build(
    guard: &Arc<HttpGuard>,
    proxy: Option<&HttpProxy>,
    config: HttpConfig,
) -> Result<HttpRequest, ConfigError> {
    let method = reqwest::Method::from(config.method);
    let target = match (config.url, config.url_expression) {
        (Some(url), None) => {
            let url = reqwest::Url::parse(&url).map_err(|err| {
                let url = url_without_password(&url);
                ConfigError::new(format!("{url:?} is not a URL: {err}")).at("/url")
            })?;
            guard
                .check_url(&url)
                .map_err(|why| ConfigError::new(why).at("/url"))?;
            Target::Fixed(url)
        }
        (None, Some(code)) => Target::PerItem(compile_at(&code, "/urlExpression")?),
        _ => {
            return Err(ConfigError::new(
                "give exactly one of `url` and `urlExpression`",
            ))
        }
    };
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &config.headers {
        let at = format!("/headers/{name}");
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|err| ConfigError::new(err.to_string()).at(at.clone()))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|err| ConfigError::new(err.to_string()).at(at))?;
        headers.insert(name, value);
    }
    let body = config
        .body_expression
        .map(|code| compile_at(&code, "/bodyExpression"))
        .transpose()?;
    let timeout = Duration::from_secs(config.timeout_seconds.clamp(1, 600));
    let transport = match proxy {
        Some(proxy) => Transport::Proxy(Tunnel::new(proxy, MAX_BODY, MAX_REDIRECTS)),
        None => Transport::Direct(direct_client(guard, timeout)?),
    };
    Ok(HttpRequest {
        transport,
        timeout,
        guard: Arc::clone(guard),
        method,
        target,
        headers,
        body,
    })
}

/// The client of direct requests: no proxy, the guard's resolver, each
/// redirect checked.
fn direct_client(
    guard: &Arc<HttpGuard>,
    timeout: Duration,
) -> Result<reqwest::Client, ConfigError> {
    let redirect_guard = Arc::clone(guard);
    reqwest::Client::builder()
        // A proxy (HTTP_PROXY and the like, read by default) resolves the
        // target's name itself, where the guard never sees the address.
        .no_proxy()
        .timeout(timeout)
        .dns_resolver(Arc::new(GuardedResolver {
            guard: Arc::clone(guard),
        }))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match redirect_guard.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(why) => attempt.error(why),
            }
        }))
        .build()
        .map_err(|err| ConfigError::new(format!("the HTTP client cannot be built: {err}")))
}

pub(crate) fn register(
    registry: &mut NodeRegistry,
    guard: &HttpGuard,
    proxy: Option<&HttpProxy>,
) -> Result<(), RegistryError> {
    let guard = Arc::new(guard.clone());
    let proxy = proxy.cloned();
    registry.register_with_config(
        NodeDescriptor::new("http_request", NodeCategory::Output)
            .with_side_effects()
            .label("HTTP request")
            .icon("globe")
            .description(
                "Sends one HTTP request per item (the item as JSON body for POST, PUT and \
                 PATCH, or a jq body) with an Idempotency-Key header; the item becomes \
                 {status, body}. 5xx, 429 and timeouts are retried, no sooner than a \
                 Retry-After asks (up to the retry policy's maxBackoffMs). Loopback, private and \
                 link-local targets are refused unless the host allows them.",
            ),
        move |config: HttpConfig| build(&guard, proxy.as_ref(), config),
    )
}
