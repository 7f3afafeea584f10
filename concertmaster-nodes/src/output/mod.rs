//! Output nodes: deliver data to other systems.

#[cfg(feature = "http")]
pub(crate) mod guard;
#[cfg(feature = "http")]
pub(crate) mod http_request;
