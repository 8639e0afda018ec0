//! `sqlx::migrate!` embeds the migration folders at compile time; tell cargo to rebuild when a
//! migration file is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
