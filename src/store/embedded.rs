//! The store's migrations, embedded in the binary by `build.rs` (one entry per file of
//! `migrations/sqlite` and `migrations/postgres`), as sqlx `Migrator`s.
//!
//! sqlx's `migrate!` macro would do the same, but its proc-macro crate compiles sqlx and SQLite a
//! second time for the compiler; the build script reads the folders with no dependency at all.

use std::sync::LazyLock;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

pub(super) static SQLITE: LazyLock<Migrator> = LazyLock::new(|| migrator(generated::SQLITE));
pub(super) static POSTGRES: LazyLock<Migrator> = LazyLock::new(|| migrator(generated::POSTGRES));

fn migrator(files: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    // sqlx's own opt-out of the migration's transaction.
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// What sqlx's resolver (the one `migrate!` uses) makes of a folder: a store migrated by a
    /// build that used the macro must see the same versions and checksums, or it would refuse
    /// to start ("previously applied but has been modified").
    fn resolved_by_sqlx(backend: &str) -> Vec<(i64, String, Vec<u8>, bool)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut found: Vec<_> = sqlx::migrate::resolve_blocking(&dir)
            .expect("resolve")
            .into_iter()
            .map(|(m, _)| {
                (
                    m.version,
                    m.description.to_string(),
                    m.checksum.to_vec(),
                    m.no_tx,
                )
            })
            .collect();
        found.sort();
        found
    }

    fn embedded(m: &Migrator) -> Vec<(i64, String, Vec<u8>, bool)> {
        m.iter()
            .map(|m| {
                (
                    m.version,
                    m.description.to_string(),
                    m.checksum.to_vec(),
                    m.no_tx,
                )
            })
            .collect()
    }

    #[test]
    fn embedded_migrations_equal_what_sqlx_resolves_from_the_folders() {
        for (backend, migrator) in [("sqlite", &*SQLITE), ("postgres", &*POSTGRES)] {
            let want = resolved_by_sqlx(backend);
            assert!(want.len() >= 6, "{backend}: {} migrations", want.len());
            assert_eq!(embedded(migrator), want, "{backend}");
        }
    }
}
