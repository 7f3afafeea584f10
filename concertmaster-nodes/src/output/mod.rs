//! Output nodes: deliver data to other systems, or keep it for the host.

pub(crate) mod collect;

#[cfg(feature = "http")]
pub(crate) mod guard;
#[cfg(feature = "http")]
pub(crate) mod http_request;
#[cfg(feature = "http")]
pub(crate) mod proxy;
