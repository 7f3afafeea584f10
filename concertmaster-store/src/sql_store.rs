//! Statement helpers shared by the SQL backends; the shared store code
//! itself is `shared/`, included once per backend.

/// Prepared statements a connection keeps: the group commit's (each
/// kind of write, 1 to `GROUP_COMMIT_MAX` rows each) and every other query,
/// with room to spare. sqlx's default of 100 made the group commit prepare
/// its statements again and again. Only the connection the writer keeps
/// holds the group's statements.
pub(crate) const STATEMENT_CACHE: usize = 2048;

macro_rules! sql {
    ($path:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/queries/",
            $path,
            ".sql"
        ))
    };
}
pub(crate) use sql;
