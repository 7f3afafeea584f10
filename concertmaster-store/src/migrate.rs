//! Embedded, versioned migrations, applied on connect.

/// One schema change: its number, what it does, and its SQL per backend.
/// A backend whose SQL is empty has nothing to change at that version; the
/// version is still recorded, so every backend's ledger counts the same.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) sqlite: &'static str,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) postgres: &'static str,
}

/// Every migration, in order. Append only: a released migration never changes.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "workflows, runs, node executions, waits, audit log",
        sqlite: include_str!("../migrations/sqlite/0001_engine.sql"),
        postgres: include_str!("../migrations/postgres/0001_engine.sql"),
    },
    Migration {
        version: 2,
        description: "form schemas, form responses, connections",
        sqlite: include_str!("../migrations/sqlite/0002_forms_connections.sql"),
        postgres: include_str!("../migrations/postgres/0002_forms_connections.sql"),
    },
    Migration {
        version: 3,
        description: "run leases",
        sqlite: include_str!("../migrations/sqlite/0003_run_leases.sql"),
        postgres: include_str!("../migrations/postgres/0003_run_leases.sql"),
    },
    Migration {
        version: 4,
        description: "form links; response node, respondent and erasure",
        sqlite: include_str!("../migrations/sqlite/0004_form_links.sql"),
        postgres: include_str!("../migrations/postgres/0004_form_links.sql"),
    },
    Migration {
        version: 5,
        description: "datasets",
        sqlite: include_str!("../migrations/sqlite/0005_datasets.sql"),
        postgres: include_str!("../migrations/postgres/0005_datasets.sql"),
    },
    Migration {
        version: 6,
        description: "run origin (re-runs)",
        sqlite: include_str!("../migrations/sqlite/0006_run_origin.sql"),
        postgres: include_str!("../migrations/postgres/0006_run_origin.sql"),
    },
    Migration {
        version: 7,
        description: "run parent (sub-workflows)",
        sqlite: include_str!("../migrations/sqlite/0007_run_parent.sql"),
        postgres: include_str!("../migrations/postgres/0007_run_parent.sql"),
    },
    Migration {
        version: 8,
        description: "form drafts",
        sqlite: include_str!("../migrations/sqlite/0008_form_drafts.sql"),
        postgres: include_str!("../migrations/postgres/0008_form_drafts.sql"),
    },
    Migration {
        version: 9,
        description: "content chunks",
        sqlite: include_str!("../migrations/sqlite/0009_content.sql"),
        postgres: include_str!("../migrations/postgres/0009_content.sql"),
    },
    Migration {
        version: 10,
        description: "views that start and settle runs in one statement (SQLite)",
        sqlite: include_str!("../migrations/sqlite/0010_run_writes.sql"),
        // A Postgres statement writes several tables at once (WITH ...
        // INSERT), so Postgres needs no views; see version 11.
        postgres: "",
    },
    Migration {
        version: 11,
        description: "a function that refuses a statement whole (Postgres)",
        // SQLite's views refuse with RAISE in their triggers.
        sqlite: "",
        postgres: include_str!("../migrations/postgres/0011_refuse.sql"),
    },
    Migration {
        version: 12,
        description: "lease epochs (fencing); given-up leases keep their row",
        sqlite: include_str!("../migrations/sqlite/0012_lease_epochs.sql"),
        postgres: include_str!("../migrations/postgres/0012_lease_epochs.sql"),
    },
    Migration {
        version: 13,
        description: "wake-ups held for a key no node waited on yet",
        sqlite: include_str!("../migrations/sqlite/0013_held_wakeups.sql"),
        postgres: include_str!("../migrations/postgres/0013_held_wakeups.sql"),
    },
    Migration {
        version: 14,
        description: "content chunks keyed by tenant",
        sqlite: include_str!("../migrations/sqlite/0014_content_tenant_key.sql"),
        postgres: include_str!("../migrations/postgres/0014_content_tenant_key.sql"),
    },
];

/// The newest version this build knows.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// The table recording applied migrations, the same on every backend.
pub(crate) const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS concertmaster_migrations (
    version     BIGINT PRIMARY KEY,
    description TEXT   NOT NULL
)";
