//! Replays the fuzz corpora (`fuzz/corpus/<target>/`) and the inputs that once broke a property
//! (`fuzz/regressions/<target>/`) through the same checks the libFuzzer targets run (the fuzz
//! crate's properties, `fuzz/src/lib.rs`, included here as a module so that the bot's library
//! holds only what the bot runs), on stable, as part of `cargo test`. A property that no longer
//! holds for any kept input fails here, naming the file.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/lib.rs"]
mod fuzzing;

/// Every file in `fuzz/<kind>/<target>/`, sorted; an absent directory yields none.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `property` on every corpus and regression input of `target`; fails listing each input
/// that breaks it, and fails when the corpus is missing or tiny so that the replay cannot pass
/// by checking nothing.
fn replay(target: &str, property: fn(&[u8]), min_corpus: usize) {
    let corpus = inputs("corpus", target);
    assert!(
        corpus.len() >= min_corpus,
        "fuzz/corpus/{target} holds {} files, expected at least {min_corpus}: the corpus is \
         missing (run `cargo +nightly fuzz cmin {target}` in fuzz/, see docs/RELIABILITY.md)",
        corpus.len()
    );
    let regressions = inputs("regressions", target);
    let mut failures = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = fs::read(path).expect("a readable corpus file");
        if let Err(payload) = panic::catch_unwind(|| property(&data)) {
            let why = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failures.push(format!("{}: {why}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs break the {target} property:\n{}",
        failures.len(),
        corpus.len() + regressions.len(),
        failures.join("\n")
    );
}

#[test]
fn grammar_corpus_holds() {
    replay("grammar", fuzzing::grammar, 50);
}

#[test]
fn fingerprint_corpus_holds() {
    replay("fingerprint", fuzzing::fingerprint, 10);
}

/// The replay is only worth something if a breaking input makes it fail.
#[test]
#[should_panic(expected = "inputs break the grammar property")]
fn a_breaking_input_fails_the_replay() {
    replay(
        "grammar",
        // Stands in for a parser broken on every input.
        |data| panic!("refused {} bytes", data.len()),
        1,
    );
}

#[test]
#[should_panic(expected = "the corpus is missing")]
fn a_missing_corpus_fails_the_replay() {
    replay("no-such-target", fuzzing::grammar, 1);
}
