//! SQL stores of ConcertMaster: [`SqliteStore`] and [`PostgresStore`].
//!
//! Both implement `concertmaster_core::Store` with the same statements
//! (`queries/`), apply their embedded, versioned migrations on connect, and
//! pass the store conformance suite shipped by `concertmaster-core`
//! unchanged.
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use concertmaster_core::Engine;
//! use concertmaster_store::SqliteStore;
//!
//! let dir = std::env::temp_dir().join(format!("concertmaster-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let store = SqliteStore::open(dir.join("workflows.db")).await?;
//! let engine = Engine::builder().store(store).build().await?;
//! # drop(engine);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))]
//! # fn main() {}
//! ```
//!
//! # Features
//!
//! | feature    | default | store |
//! |------------|---------|-------|
//! | `sqlite`   | yes     | [`SqliteStore`]: one file, WAL mode, bundled SQLite |
//! | `postgres` | no      | [`PostgresStore`]: a PostgreSQL database, shared by several engines |

/// The README's examples are compiled (and the embedding one run) as doc
/// tests here, where both stores are at hand.
#[cfg(all(doctest, feature = "sqlite", feature = "postgres"))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

mod codec;
mod error;
mod migrate;
#[cfg(feature = "postgres")]
mod postgres;
mod sql_store;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use error::Error;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SqliteStore};
