//! Errors as the API answers them: a status and `{"error": {code, message}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error the API answers with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// A refusal with `status`, a stable `code` and what to do.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 404: nothing of that id for this tenant (whether or not another
    /// tenant has one).
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} does not exist"),
        )
    }

    /// 400: the request is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 500, logged; the caller gets no internals.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; the error is in its log",
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response()
    }
}

impl From<concertmaster_core::Error> for ApiError {
    fn from(err: concertmaster_core::Error) -> Self {
        use concertmaster_core::Error as E;
        match &err {
            E::RunNotFound { .. } | E::WorkflowNotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "not_found", err.to_string())
            }
            E::Validation(_)
            | E::Definition(_)
            | E::InvalidTrigger { .. }
            | E::NotATrigger { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", err.to_string())
            }
            E::CannotRerun { .. } | E::CannotMigrate { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", err.to_string())
            }
            E::ShutDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                err.to_string(),
            ),
            _ => Self::internal(err),
        }
    }
}

impl From<concertmaster_core::store::StoreError> for ApiError {
    fn from(err: concertmaster_core::store::StoreError) -> Self {
        Self::internal(err)
    }
}

impl From<concertmaster_nodes::forms::FormsError> for ApiError {
    fn from(err: concertmaster_nodes::forms::FormsError) -> Self {
        use concertmaster_nodes::forms::FormsError as F;
        match &err {
            F::FormNotFound { .. } | F::ResponseNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", err.to_string())
            }
            F::AlreadyReviewed(_) => Self::new(StatusCode::CONFLICT, "conflict", err.to_string()),
            F::Invalid { .. }
            | F::Form(_)
            | F::UndecidedReview
            | F::TooLarge { .. }
            | F::TooDeep { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", err.to_string())
            }
            F::UnknownLink | F::LinkUsed | F::LinkExpired { .. } | F::Withdrawn { .. } => {
                Self::new(StatusCode::GONE, "link", err.to_string())
            }
            _ => Self::internal(err),
        }
    }
}

impl From<concertmaster_erp::ConnectionError> for ApiError {
    fn from(err: concertmaster_erp::ConnectionError) -> Self {
        use concertmaster_erp::ConnectionError as C;
        match &err {
            C::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, "not_found", err.to_string()),
            C::AlreadyExists { .. } => Self::new(StatusCode::CONFLICT, "conflict", err.to_string()),
            C::InvalidId { .. }
            | C::UnknownKind { .. }
            | C::ConfigNotJson { .. }
            | C::Inactive { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", err.to_string())
            }
            C::Connector(concertmaster_core::connector::ConnectorError::Config { .. }) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", err.to_string())
            }
            C::Connector(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                "connection_failed",
                err.to_string(),
            ),
            _ => Self::internal(err),
        }
    }
}
