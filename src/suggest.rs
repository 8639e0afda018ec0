//! "Did you mean …?": the one way the bot picks, among the names it knows, the likely target of a
//! typo — for command words and subcommands, deploy targets, config keys and permission names,
//! and DAG ids.
//!
//! The measure is the Damerau-Levenshtein distance (`strsim`), case-insensitively: typos are
//! mostly one dropped, doubled, replaced or swapped character (`deplyo`, `catalgo`, `strat`). A
//! candidate is offered only within a distance that grows with its length, so a short word is
//! never "corrected" into an unrelated one and long junk is never a typo of anything.

/// A known name close to what was typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suggestion<'c> {
    pub candidate: &'c str,
    /// Edits between the typed text and the candidate (ignoring case).
    pub distance: usize,
}

/// How many edits still read as a typo of `candidate`: one for short names (`dag`, `api`), two
/// for words such as `deploy`, three for long names such as `flickr_workflow`.
fn allowance(candidate_chars: usize) -> usize {
    match candidate_chars {
        0..=3 => 1,
        4..=6 => 2,
        _ => 3,
    }
}

/// Every candidate close enough to `typed` to be a likely typo, closest first; among equally
/// close ones the earlier candidate comes first, so callers order candidates by preference.
/// An exact match (ignoring case) has distance 0.
pub fn ranked<'c>(
    typed: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Vec<Suggestion<'c>> {
    let typed = typed.to_lowercase();
    let typed_chars = typed.chars().count();
    let mut found: Vec<Suggestion<'c>> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let chars = candidate.chars().count();
            let allowed = allowance(chars);
            // The length difference is a lower bound of the distance: skipping on it keeps long
            // input (a pasted paragraph) from costing a quadratic comparison per candidate.
            if typed_chars.abs_diff(chars) > allowed {
                return None;
            }
            let distance = strsim::damerau_levenshtein(&typed, &candidate.to_lowercase());
            (distance <= allowed).then_some(Suggestion {
                candidate,
                distance,
            })
        })
        .collect();
    // Stable: ties keep the callers' order.
    found.sort_by_key(|s| s.distance);
    found
}

/// The closest candidate, if any is close enough (see [`ranked`]).
pub fn closest<'c>(
    typed: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<Suggestion<'c>> {
    ranked(typed, candidates).into_iter().next()
}

/// The closest candidate's name, for a "did you mean" sentence.
pub fn did_you_mean<'c>(
    typed: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    closest(typed, candidates).map(|s| s.candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_of_command_words_targets_and_keys_are_found() {
        let words = ["help", "deploy", "locks", "dag-sync", "dags", "dag"];
        assert_eq!(did_you_mean("deplyo", words), Some("deploy"));
        assert_eq!(did_you_mean("lock", words), Some("locks"));
        assert_eq!(did_you_mean("DEPLOY", words), Some("deploy"));
        assert_eq!(did_you_mean("frobnicate", words), None);
        assert_eq!(did_you_mean("catalgo", ["catalog"]), Some("catalog"));
        assert_eq!(did_you_mean("api", ["catalog"]), None);
        assert_eq!(did_you_mean("prefx", ["prefix"]), Some("prefix"));
        assert_eq!(did_you_mean("Prefix", ["prefix"]), Some("prefix"));
        assert_eq!(did_you_mean("zzz", ["prefix"]), None);
        assert_eq!(
            did_you_mean("deploy.strat", ["deploy.check", "deploy.start"]),
            Some("deploy.start")
        );
        assert_eq!(
            did_you_mean("permision", ["permissions"]),
            Some("permissions")
        );
    }

    #[test]
    fn the_allowance_grows_with_the_length_of_the_name() {
        // One edit for a three-letter name, two for six letters, three beyond.
        assert_eq!(did_you_mean("ab", ["abc"]), Some("abc"));
        assert_eq!(did_you_mean("a", ["abc"]), None);
        assert_eq!(did_you_mean("dpeloy", ["deploy"]), Some("deploy"));
        assert_eq!(did_you_mean("xxploy", ["deploy"]), Some("deploy"));
        assert_eq!(did_you_mean("xxxloy", ["deploy"]), None);
        assert_eq!(
            did_you_mean("flikr_wrkflw", ["flickr_workflow"]),
            Some("flickr_workflow")
        );
    }

    #[test]
    fn ranking_is_by_distance_then_by_the_callers_order() {
        let ids = [
            "flickr_workflow",
            "freesound_workflow",
            "flickr_workflows",
            "europeana_workflow",
        ];
        let found: Vec<&str> = ranked("flikr_workflow", ids)
            .iter()
            .map(|s| s.candidate)
            .collect();
        assert_eq!(found, ["flickr_workflow", "flickr_workflows"]);
        assert_eq!(ranked("zzz", ids), []);
        assert_eq!(
            closest("stats", ["start", "status"]),
            Some(Suggestion {
                candidate: "status",
                distance: 1
            })
        );
        // Equally close: the first offered wins.
        assert_eq!(did_you_mean("bat", ["cat", "hat"]), Some("cat"));
        assert_eq!(did_you_mean("bat", ["hat", "cat"]), Some("hat"));
    }

    #[test]
    fn long_input_is_never_a_typo_and_costs_little() {
        let pasted = "x".repeat(100_000);
        assert_eq!(ranked(&pasted, ["deploy", "catalog"]), []);
        let long_id = "d".repeat(250);
        assert_eq!(
            did_you_mean(&format!("{long_id}x"), [long_id.as_str()]),
            Some(long_id.as_str())
        );
    }
}
