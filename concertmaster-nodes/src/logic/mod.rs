//! Logic nodes: route, filter, join and delay items.

pub(crate) mod delay;
pub(crate) mod filter;
pub(crate) mod if_node;
pub(crate) mod merge;
pub(crate) mod sub_workflow;
pub(crate) mod switch;

use concertmaster_core::{node::RegistryError, NodeRegistry};

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    if_node::register(registry)?;
    switch::register(registry)?;
    filter::register(registry)?;
    merge::register(registry)?;
    delay::register(registry)
}
