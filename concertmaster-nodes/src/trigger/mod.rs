//! Trigger nodes: where runs start.

pub(crate) mod form_submission;
pub(crate) mod manual;
pub(crate) mod schedule;

use concertmaster_core::{node::RegistryError, NodeRegistry};

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    manual::register(registry)?;
    schedule::register(registry)
}
