//! Transform nodes: reshape, check and anonymise items.

pub(crate) mod anonymize;
pub(crate) mod jq;
pub(crate) mod map_fields;
pub(crate) mod validate;

use concertmaster_core::{node::RegistryError, NodeRegistry};

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    map_fields::register(registry)?;
    jq::register(registry)?;
    validate::register(registry)?;
    anonymize::register(registry)
}
