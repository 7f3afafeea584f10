//! Who calls: an API key bound to a tenant and a role. Every `/api` route
//! goes through [`authenticate`], which scopes the request to the key's
//! tenant and names the key as the actor of what the engine audits.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use concertmaster_core::TenantId;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::AppState;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including connections, keys and the audit log.
    Admin,
    /// Workflows, forms and runs.
    Editor,
    /// Reads, and decides reviews.
    Reviewer,
    /// Reads; personal data masked.
    Viewer,
}

/// What a request does, checked against the caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read workflows, runs, forms.
    Read,
    /// Create, publish and validate workflows; publish forms.
    Design,
    /// Start and cancel runs.
    Operate,
    /// Decide reviews of form responses.
    Review,
    /// Read the personal data in responses unmasked.
    ReadPersonalData,
    /// Create and test connections, issue keys.
    Administer,
    /// Read the audit log.
    Audit,
}

impl Role {
    /// The name used in the key table and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Editor => "editor",
            Self::Reviewer => "reviewer",
            Self::Viewer => "viewer",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "admin" => Some(Self::Admin),
            "editor" => Some(Self::Editor),
            "reviewer" => Some(Self::Reviewer),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }

    /// Whether this role may do `action`.
    pub fn allows(self, action: Action) -> bool {
        use Action as A;
        match self {
            Self::Admin => true,
            Self::Editor => matches!(action, A::Read | A::Design | A::Operate),
            Self::Reviewer => matches!(action, A::Read | A::Review),
            Self::Viewer => action == A::Read,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant every call is scoped to.
    pub tenant: TenantId,
    /// The key's name: the actor in audit entries.
    pub name: String,
    /// What it may do.
    pub role: Role,
}

impl Caller {
    /// Refuses with 403 unless the role allows `action`.
    pub fn require(&self, action: Action, what: &str) -> Result<(), ApiError> {
        if self.role.allows(action) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("the {} role may not {what}", self.role.as_str()),
            ))
        }
    }
}

/// Whether two secrets are the same, compared in full, every byte of
/// their SHA-256 digests, so that the time taken says nothing of either.
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (given, expected) = (Sha256::digest(given), Sha256::digest(expected));
    given
        .iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// The token of `Authorization: Bearer <token>`, if the request has one.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Authenticates `Authorization: Bearer <key>`, then runs the request as
/// that key: its tenant, its role, its name on audit entries.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let key = bearer(request.headers()).map(str::to_string);
    let Some(key) = key else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send an API key: Authorization: Bearer <key>",
        )
        .into_response();
    };
    let record = match state.keys.verify(&key).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "the API key is not valid",
            )
            .into_response();
        }
        Err(err) => return ApiError::internal(err).into_response(),
    };
    let caller = Caller {
        tenant: TenantId::new(record.tenant),
        name: record.name.clone(),
        role: record.role,
    };
    request.extensions_mut().insert(caller);
    concertmaster_core::run::acting_as(record.name, next.run(request)).await
}
