//! The built example editor, served from its `dist/` directory.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// `/editor/`: the editor's page.
pub(crate) async fn editor_index(state: State<AppState>) -> Response {
    editor_asset(state, Path("index.html".into())).await
}

/// A file of the built editor. Paths stay inside its directory.
pub(crate) async fn editor_asset(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Response {
    let Some(dir) = state.editor_dir.as_deref() else {
        return (
            StatusCode::NOT_FOUND,
            "the editor is not built: run scripts/build-ui-wasm, then `npm ci && npm run build` in examples/editor, and start the server with --editor examples/editor/dist",
        )
            .into_response();
    };
    let safe = !path.is_empty()
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != ".." && part != "." && !part.contains('\\'));
    if !safe {
        return StatusCode::NOT_FOUND.into_response();
    }
    let content_type = match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript",
        Some("css") => "text/css",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    match tokio::fs::read(dir.join(&path)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
