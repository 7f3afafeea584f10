//! The example service through HTTP: the API (keys, roles, tenants, audit,
//! runs) and the form portal.

mod api;
mod portal;
