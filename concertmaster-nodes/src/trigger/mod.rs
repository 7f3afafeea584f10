//! Trigger nodes: where runs start.

pub(crate) mod form_submission;
pub(crate) mod manual;
pub(crate) mod schedule;

use concertmaster_core::{NodeRegistry, RegistryError};

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    manual::register(registry)?;
    schedule::register(registry)
}
