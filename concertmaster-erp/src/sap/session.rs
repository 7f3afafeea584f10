//! The session with the service: OAuth2 tokens, the CSRF token with its
//! cookie, sending a call and reading its answer.

use super::*;

/// The CSRF token and the session cookies it belongs to.
pub(super) struct CsrfSession {
    pub(super) token: Secret<String>,
    pub(super) cookies: Secret<String>,
}

pub(super) struct AccessToken {
    pub(super) value: Secret<String>,
    pub(super) renew_at: Instant,
}

impl SapConnector {
    /// The `Authorization` header value, fetching a token when needed.
    pub(super) async fn authorization(&self) -> Result<Secret<String>, ConnectorError> {
        match &self.config.auth {
            SapAuth::Basic { username, password } => {
                use base64::Engine as _;
                let raw = Secret::new(format!("{username}:{}", password.expose()));
                Ok(Secret::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw.expose())
                )))
            }
            SapAuth::OAuth2ClientCredentials { .. } => {
                let mut token = self.token.lock().await;
                if let Some(current) = token.as_ref().filter(|t| Instant::now() < t.renew_at) {
                    return Ok(Secret::new(format!("Bearer {}", current.value.expose())));
                }
                let fresh = self.fetch_token().await?;
                let header = Secret::new(format!("Bearer {}", fresh.value.expose()));
                *token = Some(fresh);
                Ok(header)
            }
        }
    }

    pub(super) async fn fetch_token(&self) -> Result<AccessToken, ConnectorError> {
        let SapAuth::OAuth2ClientCredentials {
            client_id,
            client_secret,
            scope,
            ..
        } = &self.config.auth
        else {
            unreachable!("fetch_token is called for OAuth2 connections only")
        };
        let Some(token_url) = &self.token_url else {
            unreachable!("an OAuth2 connection has a checked token URL")
        };
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope.as_str()));
        }
        let started = Instant::now();
        let response = self
            .client
            .post(token_url.clone())
            .basic_auth(client_id, Some(client_secret.expose()))
            .header(ACCEPT, "application/json")
            .form(&form)
            .send()
            .instrument(tracing::debug_span!("sap.token", connection = %self.connection))
            .await
            .map_err(|err| http::unreachable(&self.connection, &err))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|err| http::unreachable(&self.connection, &err))?;
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: Secret<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        if !status.is_success() {
            // RFC 6749 errors: {"error": "invalid_client", "error_description": "..."}.
            let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let error = match parsed.get("error").and_then(Value::as_str) {
                Some(code) => ErpMessage {
                    status: Some(status.as_u16()),
                    code: Some(code.to_string()),
                    message: parsed
                        .get("error_description")
                        .and_then(Value::as_str)
                        .unwrap_or("the token endpoint refused the client")
                        .to_string(),
                    ..ErpMessage::default()
                },
                None => http::text_message(status.as_u16(), &body),
            };
            return Err(ConnectorError::Unauthorized {
                connection: self.connection.clone(),
                error: Box::new(error),
            });
        }
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| self.protocol(token_url, "the token response has no access_token"))?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(300));
        let margin = TOKEN_MARGIN.min(lifetime / 4);
        Ok(AccessToken {
            value: token.access_token,
            renew_at: started + lifetime - margin,
        })
    }

    /// Fetches a CSRF token and session cookie with a GET of the service
    /// root, which also proves the credentials.
    pub(super) async fn fetch_csrf(&self) -> Result<CsrfSession, ConnectorError> {
        let url = self.with_client_param(self.root.clone());
        let authorization = self.authorization().await?;
        let response = self
            .client
            .get(url.clone())
            .header("x-csrf-token", "Fetch")
            .header(ACCEPT, "application/json")
            .header(
                reqwest::header::AUTHORIZATION,
                header_value(&self.connection, authorization.expose())?,
            )
            .send()
            .instrument(tracing::debug_span!("sap.csrf_fetch", connection = %self.connection))
            .await
            .map_err(|err| http::unreachable(&self.connection, &err))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            if status == StatusCode::UNAUTHORIZED {
                self.token.lock().await.take();
            }
            return Err(self.err_erp(odata::error_message(status.as_u16(), &body)));
        }
        let token = response
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.eq_ignore_ascii_case("required"))
            .ok_or_else(|| self.protocol(&url, "the service did not hand out an x-csrf-token"))?
            .to_string();
        let cookies = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .map(str::trim)
            .filter(|pair| pair.contains('='))
            .collect::<Vec<_>>()
            .join("; ");
        Ok(CsrfSession {
            token: Secret::new(token),
            cookies: Secret::new(cookies),
        })
    }

    /// Sends `call` signed in; a modifying call carries the CSRF token and
    /// its session cookie. A 401 with a cached OAuth2 token and a 403
    /// "CSRF token validation failed" are each answered once by fetching
    /// the token again and repeating the call.
    pub(super) async fn send(&self, call: &Call) -> Result<reqwest::Response, ConnectorError> {
        let modifying = call.method != Method::GET;
        let mut token_retried = false;
        let mut csrf_retried = false;
        loop {
            let mut request = self
                .client
                .request(
                    call.method.clone(),
                    self.with_client_param(call.url.clone()),
                )
                .header(
                    reqwest::header::AUTHORIZATION,
                    header_value(&self.connection, self.authorization().await?.expose())?,
                );
            if !call
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("accept"))
            {
                request = request.header(ACCEPT, "application/json");
            }
            for (name, value) in &call.headers {
                request = request.header(*name, value);
            }
            if modifying {
                let mut csrf = self.csrf.lock().await;
                if csrf.is_none() {
                    *csrf = Some(self.fetch_csrf().await?);
                }
                if let Some(session) = csrf.as_ref() {
                    request = request.header(
                        "x-csrf-token",
                        header_value(&self.connection, session.token.expose())?,
                    );
                    if !session.cookies.expose().is_empty() {
                        request = request.header(
                            COOKIE,
                            header_value(&self.connection, session.cookies.expose())?,
                        );
                    }
                }
            }
            if let Some((content_type, body)) = &call.body {
                request = request
                    .header(CONTENT_TYPE, content_type.as_str())
                    .body(body.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|err| http::unreachable(&self.connection, &err))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED
                && !token_retried
                && matches!(self.config.auth, SapAuth::OAuth2ClientCredentials { .. })
            {
                token_retried = true;
                self.token.lock().await.take();
                continue;
            }
            if status == StatusCode::FORBIDDEN
                && modifying
                && !csrf_retried
                && csrf_required(response.headers())
            {
                csrf_retried = true;
                tracing::debug!(connection = %self.connection, "CSRF token refused; fetching a new one");
                self.csrf.lock().await.take();
                continue;
            }
            return Ok(response);
        }
    }

    /// Sends `call` and reads the answer: the status, the headers, and the
    /// body as JSON (`Null` when empty).
    pub(super) async fn exchange(
        &self,
        call: &Call,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ConnectorError> {
        let mut throttled = 0;
        loop {
            let response = self.send(call).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|err| http::unreachable(&self.connection, &err))?;
            if status != StatusCode::TOO_MANY_REQUESTS {
                return Ok((status, headers, body.to_vec()));
            }
            let asked = http::retry_after(&headers);
            let wait = asked.unwrap_or_else(|| Duration::from_millis(500) * 2u32.pow(throttled));
            if throttled == RATE_LIMIT_RETRIES || wait > MAX_RATE_LIMIT_WAIT {
                return Err(ConnectorError::RateLimited {
                    connection: self.connection.clone(),
                    retry_after: asked,
                });
            }
            tracing::info!(
                connection = %self.connection,
                throttled,
                wait_ms = wait.as_millis() as u64,
                "SAP is rate limiting; waiting before sending again"
            );
            tokio::time::sleep(wait).await;
            throttled += 1;
        }
    }
}

pub(super) fn csrf_required(headers: &HeaderMap) -> bool {
    headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("required"))
}

pub(super) fn header_value(connection: &str, value: &str) -> Result<HeaderValue, ConnectorError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| ConnectorError::Config {
        connection: connection.into(),
        message: "a credential holds characters HTTP headers cannot carry".into(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

pub(super) fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

pub(super) fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
