//! The house's import rules (docs/ARCHITECTURE.md, "Layers"), checked from the source so they
//! stay true: every `crate::…` and `super::…` path in `src/` is read and each module may import
//! only its own layer or the ones below it.
//!
//! Cheap on purpose: no parsing crate, no build of anything; a tokenizer that drops comments,
//! strings and character literals, then follows paths (including `use crate::{a, b::{c, d}}`
//! groups and `super::` from inline modules). The binary's wiring (`main.rs` and the modules it
//! declares) and `lib.rs` may import anything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module imports only modules of a lower rank, or of its own
/// top-level module; ground-floor modules may also import each other (pure types and ports that
/// know no I/O: a cycle there costs nothing). Longer prefixes win (`deploy::state` is ground floor,
/// the rest of `deploy` is not).
const LAYERS: &[(&str, u8, &str)] = &[
    ("config", 0, "ground floor"),
    ("command", 0, "ground floor"),
    ("policy", 0, "ground floor"),
    ("conversation", 0, "ground floor"),
    ("version", 0, "ground floor"),
    ("timefmt", 0, "ground floor"),
    ("redact", 0, "ground floor"),
    ("reply", 0, "ground floor"),
    ("backfill", 0, "ground floor"),
    ("links", 0, "ground floor"),
    ("coalesce", 0, "ground floor"),
    ("metrics", 0, "ground floor"),
    ("shutdown", 0, "ground floor"),
    ("suggest", 0, "ground floor"),
    ("auth_memory", 0, "ground floor"),
    // The deploy's vocabulary: pure, so the store below the workflow can persist it.
    ("deploy::state", 0, "ground floor"),
    ("deploy::step", 0, "ground floor"),
    ("store", 1, "storage"),
    ("integrations", 1, "the outside world"),
    ("leader", 2, "storage"),
    ("context", 3, "the work"),
    ("deploy", 4, "the work"),
    ("handlers", 5, "the work"),
    ("watch", 5, "the work"),
    ("engine", 6, "the work"),
    ("chat", 7, "the front ends"),
    ("server", 7, "the front ends"),
    ("sandbox", 7, "the front ends"),
];

/// Imports forbidden although the ranks would allow them, with the reason.
const FORBIDDEN: &[(&str, &str, &str)] = &[(
    "integrations",
    "command",
    "the clients of the outside world know nothing of the chat grammar",
)];

/// One import that breaks a rule, as the failure reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    file: String,
    imports: String,
    why: String,
}

/// The layer of a module path (`["deploy", "state", …]`): its rank, the prefix that matched and
/// the layer's name.
fn layer_of(path: &[String]) -> Option<(u8, &'static str, &'static str)> {
    LAYERS
        .iter()
        .filter(|(prefix, _, _)| {
            let parts: Vec<&str> = prefix.split("::").collect();
            parts.len() <= path.len() && parts.iter().zip(path).all(|(a, b)| a == b)
        })
        .max_by_key(|(prefix, _, _)| prefix.len())
        .map(|(prefix, rank, name)| (*rank, *prefix, *name))
}

/// Checks the imports `targets` of the module `module` (defined in `file`).
fn check(file: &str, module: &[String], targets: &BTreeSet<Vec<String>>) -> Vec<Violation> {
    let Some((rank, own, own_name)) = layer_of(module) else {
        return vec![Violation {
            file: file.into(),
            imports: String::new(),
            why: format!(
                "module `{}` has no layer: add it to LAYERS in src/layers.rs",
                module.join("::")
            ),
        }];
    };
    let mut out = Vec::new();
    for target in targets {
        let Some((to_rank, to, to_name)) = layer_of(target) else {
            continue; // a crate-level item (`crate::Engine`) or a module of the wiring
        };
        // Within one room (one entry of LAYERS) anything goes.
        let allowed = to == own || to_rank < rank || (rank == 0 && to_rank == 0);
        let mut why = Vec::new();
        if !allowed {
            why.push(format!(
                "`{to}` ({to_name}) does not stand below `{own}` ({own_name}); layers import \
                 only downward"
            ));
        }
        if target.first().map(String::as_str) == Some("chat")
            && module.first().map(String::as_str) != Some("chat")
        {
            why.push(
                "only the front ends in src/chat/ import `chat`; the port is \
                 `crate::conversation`"
                    .into(),
            );
        }
        for (from, forbidden, reason) in FORBIDDEN {
            if module.first().map(String::as_str) == Some(*from)
                && target.first().map(String::as_str) == Some(*forbidden)
            {
                why.push(format!("`{from}` must not import `{forbidden}`: {reason}"));
            }
        }
        if !why.is_empty() {
            out.push(Violation {
                file: file.into(),
                imports: format!("crate::{}", target.join("::")),
                why: why.join("; "),
            });
        }
    }
    out
}

/// The source with comments, strings and character literals blanked out (lengths and line
/// breaks kept), so that only code is searched for paths and braces.
fn code_only(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&b, i) {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < b.len() {
                if b[j] == '"' && (1..=hashes).all(|k| b.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &b[i..j.min(b.len())] {
                blank(&mut out, ch);
            }
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                j += if b[j] == '\\' { 2 } else { 1 };
            }
            for &ch in &b[i..(j + 1).min(b.len())] {
                blank(&mut out, ch);
            }
            i = j + 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{1b}'), not a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..b.len()).find(|&k| b[k] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    for &ch in &b[i..=e] {
                        blank(&mut out, ch);
                    }
                    i = e + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every module path a file's code names from `crate::` or `super::`, resolved against the file's
/// module path (`super` inside inline modules, such as `mod tests`, counts them). Only the leading
/// segments that name modules are kept; the file's own module is left out.
fn imports(module: &[String], code: &str) -> BTreeSet<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut found = BTreeSet::new();
    // The inline modules (`mod x {`) open at each brace depth.
    let mut braces: Vec<Option<String>> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            let before: String = chars[i.saturating_sub(80)..i].iter().collect();
            let words: Vec<&str> = before.split_whitespace().rev().take(2).collect();
            let inline = (words.len() == 2 && words[1] == "mod").then(|| words[0].to_string());
            braces.push(inline);
            i += 1;
            continue;
        }
        if c == '}' {
            braces.pop();
            i += 1;
            continue;
        }
        if ident_before(&chars, i) {
            i += 1;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 7)].iter().collect();
        let base: Option<(Vec<String>, usize)> = if rest.starts_with("crate::") {
            Some((Vec::new(), 7))
        } else if rest.starts_with("super::") {
            let mut here: Vec<String> = module.to_vec();
            here.extend(braces.iter().flatten().cloned());
            let mut j = i;
            while chars[j..].iter().take(7).collect::<String>() == "super::" {
                here.pop();
                j += 7;
            }
            Some((here, j - i))
        } else {
            None
        };
        let Some((prefix, skip)) = base else {
            i += 1;
            continue;
        };
        let end = collect_paths(&chars, i + skip, &prefix, &mut found);
        i = end.max(i + 1);
    }
    found.retain(|p| !p.is_empty() && !p.starts_with(module));
    found
}

/// Reads the path (or `{…}` group of paths) at `at`, adding each path's module segments to
/// `found`; returns where it ended.
fn collect_paths(
    chars: &[char],
    mut at: usize,
    prefix: &[String],
    found: &mut BTreeSet<Vec<String>>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        while chars.get(at).is_some_and(|c| c.is_whitespace()) {
            at += 1;
        }
        if chars.get(at) == Some(&'{') {
            at += 1;
            loop {
                at = collect_paths(chars, at, &path, found);
                while chars
                    .get(at)
                    .is_some_and(|c| c.is_whitespace() || *c == ',')
                {
                    at += 1;
                }
                if chars.get(at) == Some(&'}') || at >= chars.len() {
                    return at + 1;
                }
            }
        }
        let start = at;
        while chars.get(at).is_some_and(|c| is_ident(*c)) {
            at += 1;
        }
        let word: String = chars[start..at].iter().collect();
        // Module names are lower case; a type, a trait, a constant or `*` ends the path.
        let is_module = word
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && word != "self";
        if is_module {
            path.push(word);
        }
        if is_module && chars[at..].iter().take(2).collect::<String>() == "::" {
            at += 2;
            continue;
        }
        // A function or a macro is not a module: `crate::metrics::step_finished(…)`.
        if is_module && chars.get(at).is_some_and(|c| *c == '(' || *c == '!') {
            path.pop();
        }
        found.insert(path);
        return at;
    }
}

/// The module path of a file in `src/` (`src/deploy/state.rs` → `deploy::state`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs").to_string();
        if stem != "mod" {
            parts.push(stem);
        }
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every violation in `src/`, for the whole crate.
fn violations(src: &Path) -> Vec<Violation> {
    let main = std::fs::read_to_string(src.join("main.rs")).unwrap_or_default();
    let wiring: BTreeSet<String> = code_only(&main)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod "))
        .map(|m| format!("{}.rs", m.trim_end_matches(';').trim()))
        .chain(["main.rs".to_string(), "lib.rs".to_string()])
        .collect();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let Ok(rel) = f.strip_prefix(src) else {
            continue;
        };
        let name = rel.to_string_lossy().into_owned();
        if wiring.contains(&name) || name == "layers.rs" {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let module = module_of(rel);
        let found = imports(&module, &code_only(&text));
        out.extend(check(&format!("src/{name}"), &module, &found));
    }
    out
}

#[test]
fn layers_import_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "{} import(s) break the house's rules (docs/ARCHITECTURE.md, \"Layers\"):\n{}",
        found.len(),
        found
            .iter()
            .map(|v| format!("  {}: {} — {}", v.file, v.imports, v.why))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str) -> Vec<String> {
        path.split("::").map(str::to_string).collect()
    }

    fn broken(file_module: &str, source: &str) -> Vec<String> {
        let m = module(file_module);
        check("f.rs", &m, &imports(&m, &code_only(source)))
            .into_iter()
            .map(|v| v.imports)
            .collect()
    }

    #[test]
    fn paths_are_found_in_uses_groups_and_expressions_and_not_in_comments_or_strings() {
        let src = r#"
            //! [`crate::engine`] in a doc comment is no import.
            use crate::{config::Config, deploy::{state::DeployState, step}};
            use crate::integrations::infra::{self, PromptAnswer};
            fn f() {
                let s = "crate::server::page_url";
                let c = '{';
                crate::metrics::step_finished("x");
                /* crate::chat::Transcript */
            }
            mod tests {
                use super::*;
                use super::super::workflow::Flow;
            }
        "#;
        let found: Vec<String> = imports(&module("deploy::journal"), &code_only(src))
            .into_iter()
            .map(|p| p.join("::"))
            .collect();
        assert_eq!(
            found,
            [
                "config",
                "deploy::state",
                "deploy::step",
                "deploy::workflow",
                "integrations::infra",
                "metrics"
            ]
        );
    }

    #[test]
    fn an_upward_import_is_caught_and_a_downward_one_is_not() {
        assert_eq!(
            broken("deploy::workflow", "use crate::engine::Ctx;"),
            ["crate::engine"]
        );
        assert_eq!(
            broken("store::deploys", "use crate::deploy::workflow::Workflow;"),
            ["crate::deploy::workflow"]
        );
        assert!(broken("store::deploys", "use crate::deploy::state::DeployState;").is_empty());
        assert_eq!(
            broken("watch::announcer", "use crate::handlers::dags::Backfill;"),
            ["crate::handlers::dags"],
            "siblings of one layer do not import each other"
        );
        assert_eq!(
            broken("server::pages", "use crate::chat::Transcript;"),
            ["crate::chat"],
            "only chat imports chat"
        );
        assert_eq!(
            broken("integrations::infra", "use crate::command::Version;"),
            ["crate::command"]
        );
        assert_eq!(
            broken("deploy::state", "use crate::store::Deploy;"),
            ["crate::store"],
            "the state machine stays pure"
        );
        assert!(broken("handlers::dags", "use crate::deploy::preflight;").is_empty());
        assert_eq!(
            broken("newroom", "use crate::config;"),
            [""],
            "unknown rooms fail"
        );
    }
}
