//! The lines that say what happens: a resource's `# <address> <phrase>` header, its notes
//! (`# (moved from …)`, `# (imported from …)`), action invocations, and the `Plan:` line. The
//! phrases are Terraform's (`internal/command/jsonformat/plan.go`) and OpenTofu's, which prints
//! the same plan with a few other words.

use super::{Action, ActionInvocation, PlanSummary, ResourceChange};

/// The endings of `# <address> …` resource headers. When several match, the one ending last
/// wins, then the longest (`is tainted, so must be replaced` over `must be replaced`); a phrase
/// may be followed by more words (`will be replaced, as requested`, `will no longer be managed by
/// Terraform, but will not be destroyed`).
const PHRASES: [(&str, Action); 16] = [
    (" will be created", Action::Create),
    (" will be destroyed", Action::Destroy),
    (" will be updated in-place", Action::Update),
    (" is tainted, so must be replaced", Action::Replace),
    (" is tainted, so it must be replaced", Action::Replace),
    (" must be replaced", Action::Replace),
    (" will be replaced", Action::Replace),
    (
        " must be replaced, but the existing object will not be destroyed",
        Action::ReplaceKeepingOld,
    ),
    (" will be read during apply", Action::Read),
    (" will be imported", Action::Import),
    (" will no longer be managed by Terraform", Action::Forget),
    (" will be removed from Terraform state", Action::Forget),
    (" will be removed from the OpenTofu state", Action::Forget),
    (" will be forgotten", Action::Forget),
    (" has moved to ", Action::Move),
    // A drift report's header, never a planned change: recognised so that it is not mistaken for
    // one of the above when an address contains their words.
    (" has changed", Action::Update),
];

/// OpenTofu's addition to a replace header when `lifecycle.destroy = false` keeps the old object.
const KEEPS_OLD: &str = " - older instance will not be destroyed";

/// What a `# …` line announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Header {
    Resource(ResourceChange),
    /// A standalone action invocation (`terraform apply -invoke=…`, Terraform 1.14).
    Invocation(ActionInvocation),
}

/// `t` (a line without its indentation) as a header, or `None`.
pub(super) fn header(t: &str) -> Option<Header> {
    let rest = t.strip_prefix("# ")?;
    if let Some(at) = rest.find(" will be invoked") {
        let address = rest[..at].trim();
        let tail = rest[at + " will be invoked".len()..].trim();
        let when = tail
            .strip_prefix("(called from ")
            .and_then(|r| r.strip_suffix(')'))
            .map(|from| format!("called from {from}"));
        if is_address(address) && (tail.is_empty() || when.is_some()) {
            return Some(Header::Invocation(ActionInvocation {
                address: address.to_string(),
                when,
            }));
        }
    }
    let (rest, keeps_old) = match rest.find(KEEPS_OLD) {
        Some(at) => (&rest[..at], true),
        None => (rest, false),
    };
    let (at, phrase, mut action) = PHRASES
        .iter()
        .filter_map(|&(p, a)| rest.rfind(p).map(|at| (at, p, a)))
        .max_by_key(|(at, p, _)| (at + p.len(), p.len()))?;
    if phrase == " has changed" {
        return None;
    }
    if keeps_old && action == Action::Replace {
        action = Action::ReplaceKeepingOld;
    }
    let before = rest[..at].trim();
    let (address, moved_from) = if action == Action::Move {
        (rest[at + phrase.len()..].trim(), Some(before.to_string()))
    } else {
        (before, None)
    };
    if !is_address(address) || moved_from.as_deref().is_some_and(|f| !is_address(f)) {
        return None;
    }
    Some(Header::Resource(ResourceChange {
        address: address.to_string(),
        action,
        moved_from,
        importing: action == Action::Import,
    }))
}

/// Not empty and not a parenthesised note such as `(config refers to values not yet known)`.
fn is_address(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('(') && !s.contains('\n')
}

/// A note under a resource header, as Terraform prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Note {
    MovedFrom(String),
    Imported,
    /// `# Actions to be invoked before|after this change in order:`; the word is `before` or
    /// `after`.
    ActionsInvoked(&'static str),
    Other,
}

/// `t` (a line starting with `#`, without its indentation) as a note.
pub(super) fn note(t: &str) -> Note {
    let rest = t.trim_start_matches('#').trim_start();
    if let Some(from) = rest
        .strip_prefix("(moved from ")
        .and_then(|r| r.strip_suffix(')'))
    {
        return Note::MovedFrom(from.to_string());
    }
    if rest.starts_with("(imported from ")
        || rest == "(will be imported first)"
        || rest.starts_with("imported using resource identity")
    {
        return Note::Imported;
    }
    match rest {
        "Actions to be invoked before this change in order:" => Note::ActionsInvoked("before"),
        "Actions to be invoked after this change in order:" => Note::ActionsInvoked("after"),
        _ => Note::Other,
    }
}

/// After a `# Actions to be invoked … in order:` note, `# action.aws_lambda_invoke.notify` names
/// one invocation.
pub(super) fn invoked_action(t: &str) -> Option<&str> {
    let address = t.strip_prefix("# ")?.trim();
    (is_address(address) && !address.contains(' ')).then_some(address)
}

/// `Plan: [I to import, ]A to add, C to change, D to destroy[, F to forget].[ Actions: N to
/// invoke.]` → its counts. `None` for anything else, an unknown or repeated count included: a
/// count the bot cannot read must never be left out of what is approved.
pub(super) fn summary_line(t: &str) -> Option<PlanSummary> {
    let rest = t.strip_prefix("Plan: ")?;
    let (counts, tail) = rest.split_once('.')?;
    let mut s = PlanSummary::default();
    let mut seen = Vec::new();
    for item in counts.split(',') {
        let (n, verb) = count(item, "to")?;
        if seen.contains(&verb) {
            return None;
        }
        seen.push(verb);
        match verb {
            "add" => s.add = n,
            "change" => s.change = n,
            "destroy" => s.destroy = n,
            "import" => s.import = n,
            "forget" => s.forget = n,
            _ => return None,
        }
    }
    if !(seen.contains(&"add") && seen.contains(&"change") && seen.contains(&"destroy")) {
        return None;
    }
    let tail = tail.trim();
    if !tail.is_empty() {
        let actions = tail.strip_prefix("Actions: ")?.strip_suffix('.')?;
        let (n, "invoke") = count(actions, "to")? else {
            return None;
        };
        s.invoke = n;
    }
    Some(s)
}

/// `N <joiner> <verb>` (e.g. `3 to add`) → `(3, "add")`.
pub(super) fn count<'a>(item: &'a str, joiner: &str) -> Option<(u64, &'a str)> {
    let mut words = item.split_whitespace();
    let n = words.next()?;
    if !joiner.is_empty() && words.next()? != joiner {
        return None;
    }
    let verb = words.next()?;
    if words.next().is_some() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((n.parse().ok()?, verb))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(t: &str) -> Option<(String, Action, Option<String>)> {
        match header(t)? {
            Header::Resource(r) => Some((r.address, r.action, r.moved_from)),
            Header::Invocation(_) => None,
        }
    }

    #[test]
    fn every_header_phrase_of_terraform_and_opentofu_is_understood() {
        let cases = [
            (
                "# aws_instance.a will be created",
                "aws_instance.a",
                Action::Create,
            ),
            (
                "# aws_instance.b will be destroyed",
                "aws_instance.b",
                Action::Destroy,
            ),
            (
                "# aws_instance.c will be updated in-place",
                "aws_instance.c",
                Action::Update,
            ),
            (
                "# aws_instance.d must be replaced",
                "aws_instance.d",
                Action::Replace,
            ),
            (
                "# aws_instance.e is tainted, so must be replaced",
                "aws_instance.e",
                Action::Replace,
            ),
            (
                "# aws_instance.e is tainted, so it must be replaced",
                "aws_instance.e",
                Action::Replace,
            ),
            (
                "# aws_instance.f will be replaced, as requested",
                "aws_instance.f",
                Action::Replace,
            ),
            (
                "# aws_instance.g will be replaced due to changes in replace_triggered_by",
                "aws_instance.g",
                Action::Replace,
            ),
            (
                "# aws_instance.h must be replaced, but the existing object will not be destroyed",
                "aws_instance.h",
                Action::ReplaceKeepingOld,
            ),
            (
                "# aws_instance.h must be replaced - older instance will not be destroyed (lifecycle.destroy = false)",
                "aws_instance.h",
                Action::ReplaceKeepingOld,
            ),
            (
                "# data.aws_ami.i will be read during apply",
                "data.aws_ami.i",
                Action::Read,
            ),
            (
                "# aws_instance.j will be imported",
                "aws_instance.j",
                Action::Import,
            ),
            (
                "# aws_instance.k will no longer be managed by Terraform, but will not be destroyed",
                "aws_instance.k",
                Action::Forget,
            ),
            (
                "# aws_instance.k (deposed object 1a2b) will be removed from Terraform state, but will not be destroyed",
                "aws_instance.k (deposed object 1a2b)",
                Action::Forget,
            ),
            (
                "# aws_instance.k will be removed from the OpenTofu state but will not be destroyed",
                "aws_instance.k",
                Action::Forget,
            ),
            (
                "# aws_instance.l (deposed object 1a2b3c4d) will be destroyed",
                "aws_instance.l (deposed object 1a2b3c4d)",
                Action::Destroy,
            ),
            (
                "# aws_s3_bucket.m[\"a will be created\"] will be destroyed",
                "aws_s3_bucket.m[\"a will be created\"]",
                Action::Destroy,
            ),
        ];
        for (line, address, action) in cases {
            assert_eq!(
                resource(line),
                Some((address.to_string(), action, None)),
                "{line}"
            );
        }
        assert_eq!(
            resource("# a.first has moved to a.second"),
            Some(("a.second".into(), Action::Move, Some("a.first".into())))
        );
        for not in [
            "# (28 unchanged attributes hidden)",
            "# (config refers to values not yet known)",
            "# aws_instance.m has changed",
            "# aws_instance.m has been deleted",
            "# will be created",
            "#  will be created",
            "# (moved from a.b)",
            "aws_instance.a will be created",
        ] {
            assert_eq!(header(not), None, "{not}");
        }
    }

    #[test]
    fn action_invocation_headers_and_notes() {
        assert_eq!(
            header("# action.aws_lambda_invoke.notify will be invoked"),
            Some(Header::Invocation(ActionInvocation {
                address: "action.aws_lambda_invoke.notify".into(),
                when: None
            }))
        );
        assert_eq!(
            header("# action.local_command.echo will be invoked (called from terraform_data.x)"),
            Some(Header::Invocation(ActionInvocation {
                address: "action.local_command.echo".into(),
                when: Some("called from terraform_data.x".into())
            }))
        );
        assert_eq!(
            note("# Actions to be invoked after this change in order:"),
            Note::ActionsInvoked("after")
        );
        assert_eq!(
            note("# Actions to be invoked before this change in order:"),
            Note::ActionsInvoked("before")
        );
        assert_eq!(note("# (moved from a.b)"), Note::MovedFrom("a.b".into()));
        assert_eq!(note("# (imported from \"i-123\")"), Note::Imported);
        assert_eq!(note("# (will be imported first)"), Note::Imported);
        assert_eq!(note("# (config will be generated)"), Note::Other);
        assert_eq!(
            invoked_action("# action.aws_lambda_invoke.notify"),
            Some("action.aws_lambda_invoke.notify")
        );
        assert_eq!(invoked_action("# (1 unchanged attribute hidden)"), None);
    }

    #[test]
    fn summary_lines() {
        let s = summary_line;
        assert_eq!(
            s("Plan: 2 to import, 1 to add, 0 to change, 0 to destroy."),
            Some(PlanSummary {
                import: 2,
                add: 1,
                ..Default::default()
            })
        );
        assert_eq!(
            s("Plan: 0 to add, 0 to change, 0 to destroy, 3 to forget."),
            Some(PlanSummary {
                forget: 3,
                ..Default::default()
            })
        );
        assert_eq!(
            s("Plan: 0 to add, 1 to change, 0 to destroy. Actions: 1 to invoke."),
            Some(PlanSummary {
                change: 1,
                invoke: 1,
                ..Default::default()
            })
        );
        for bad in [
            "Plan: 1 to add, 1 to change.",
            "Plan: x to add, 1 to change, 1 to destroy.",
            "Plan: 1 to add, 1 to change, 1 to destroy, 1 to teleport.",
            "Plan: 1 to add, 1 to add, 1 to change, 1 to destroy.",
            "Plan: -1 to add, 1 to change, 1 to destroy.",
            "Plan: +1 to add, 1 to change, 1 to destroy.",
            "Plan: 99999999999999999999999 to add, 0 to change, 0 to destroy.",
            "Plan: 1 to add, 1 to change, 1 to destroy",
            "Plan: 1 to add, 1 to change, 1 to destroy (a: replace; b: update)",
            "Plan: 0 to add, 1 to change, 0 to destroy. Actions: 1 to invoke",
            "Plan: 0 to add, 1 to change, 0 to destroy. Actions: 1 to teleport.",
            "Plan: 0 to add, 1 to change, 0 to destroy. Also: more.",
            "Plan:",
        ] {
            assert_eq!(s(bad), None, "{bad}");
        }
    }
}
