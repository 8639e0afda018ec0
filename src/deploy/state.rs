//! The deploy state machine (ARCHITECTURE.md, "The deploy workflow"): where a deploy is
//! ([`DeployState`]), what can happen to it ([`Event`]) and the one transition function, [`next`].
//!
//! ```text
//! requested → locked → bump → plan → awaiting_approval → approved → apply → verify → succeeded
//!                              └─ no changes → cancelled
//! requested, locked, bump, plan, awaiting_approval ── cancel ──→ cancelled
//! requested and every working state ── a step or check fails ──→ failed
//! every working state ── its process died or shut down ──→ interrupted ── resolve ──→ succeeded | failed
//! ```
//!
//! The sets other modules ask about are defined here once, and all but the card's path follow
//! from [`next`]: *final* (no event moves it), *working* (a process owns it, so losing that
//! process interrupts it), *cancellable*. The store persists the states and refuses a write that
//! [`allowed`] does not permit; the workflow drives them; recovery, the card and `!deploy status`
//! read them.
//!
//! Pure and free of the rest of the crate (besides [`Step`]), so the store below the workflow can
//! name it. A new state is a variant, its name, its place in [`DeployState::PATH`] when the card
//! shows it, and its rows in [`next`]; the sets follow.
//!
//! `--when-idle` adds a side entrance: a deploy whose preflight is blocked only by DAG runs is
//! recorded `waiting_for_dags` with the lock (nobody owns it: whichever long-running process
//! finds the runs over takes it on, `LockTaken` → `locked`); its deadline or a precondition that
//! no longer holds ends it `blocked` (final), and `!deploy cancel` ends the wait.

use std::fmt;

use serde::Serialize;

use super::step::Step;

/// Where a deploy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployState {
    /// Recorded; nothing locked yet. (`!deploy` runs preflight before it records anything, and
    /// records the deploy together with its lock: a deploy that does not pass preflight does not
    /// exist.)
    Requested,
    /// `--when-idle`: preflight was blocked only by DAG runs; the deploy holds the lock and waits
    /// (resting: no process owns it) until the runs are over or its deadline passes.
    WaitingForDags,
    /// The target's lock is held; the bump is next.
    Locked,
    /// The bump step runs.
    Bump,
    /// The plan step runs.
    Plan,
    /// Resting: the plan waits for approvals, and no process owns the deploy.
    AwaitingApproval,
    /// Enough approvals of the plan's fingerprint; the approving process applies next.
    Approved,
    /// The apply step runs.
    Apply,
    /// Waiting for Airflow to report healthy.
    Verify,
    Succeeded,
    Failed,
    Cancelled,
    /// A waiting deploy that could not start: its deadline passed with DAG runs still active, or
    /// a precondition (release, image) no longer held when the runs were over. Nothing ran.
    Blocked,
    /// A step's outcome is unknown (its process died, or was killed at shutdown). The lock stays
    /// held until a maintainer checks reality and resolves it.
    Interrupted,
}

impl DeployState {
    pub const ALL: [DeployState; 14] = [
        DeployState::Requested,
        DeployState::WaitingForDags,
        DeployState::Locked,
        DeployState::Bump,
        DeployState::Plan,
        DeployState::AwaitingApproval,
        DeployState::Approved,
        DeployState::Apply,
        DeployState::Verify,
        DeployState::Succeeded,
        DeployState::Failed,
        DeployState::Cancelled,
        DeployState::Blocked,
        DeployState::Interrupted,
    ];

    /// The way to success, in order: what the status card draws. Each state leads to the next
    /// by one event (a test holds [`next`] to that).
    pub const PATH: [DeployState; 9] = [
        DeployState::Requested,
        DeployState::Locked,
        DeployState::Bump,
        DeployState::Plan,
        DeployState::AwaitingApproval,
        DeployState::Approved,
        DeployState::Apply,
        DeployState::Verify,
        DeployState::Succeeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeployState::Requested => "requested",
            DeployState::WaitingForDags => "waiting_for_dags",
            DeployState::Locked => "locked",
            DeployState::Bump => "bump",
            DeployState::Plan => "plan",
            DeployState::AwaitingApproval => "awaiting_approval",
            DeployState::Approved => "approved",
            DeployState::Apply => "apply",
            DeployState::Verify => "verify",
            DeployState::Succeeded => "succeeded",
            DeployState::Failed => "failed",
            DeployState::Cancelled => "cancelled",
            DeployState::Blocked => "blocked",
            DeployState::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<DeployState> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Finished for good: no event moves it again. An interrupted deploy is not final: it waits
    /// for a maintainer's `!deploy resolve`.
    pub fn is_final(self) -> bool {
        Event::ALL.into_iter().all(|e| next(self, e).is_none())
    }

    /// A process owns the deploy and works on it (a step or a check runs, or is about to), so
    /// that process dying interrupts it. Waiting for approval is resting: nobody owns it.
    pub fn is_working(self) -> bool {
        next(self, Event::OwnerLost).is_some()
    }

    /// `!deploy cancel` may end it: apply has not started.
    pub fn is_cancellable(self) -> bool {
        next(self, Event::Cancelled).is_some()
    }

    /// The step that runs (or waits) in this state; `None` for the states before the lock and
    /// after the end, whose step is the one they stopped at.
    pub fn step(self) -> Option<Step> {
        match self {
            DeployState::WaitingForDags => Some(Step::Wait),
            DeployState::Locked => Some(Step::Lock),
            DeployState::Bump => Some(Step::Bump),
            DeployState::Plan => Some(Step::Plan),
            DeployState::AwaitingApproval | DeployState::Approved => Some(Step::Approval),
            DeployState::Apply => Some(Step::Apply),
            DeployState::Verify => Some(Step::Verify),
            DeployState::Requested
            | DeployState::Succeeded
            | DeployState::Failed
            | DeployState::Cancelled
            | DeployState::Blocked
            | DeployState::Interrupted => None,
        }
    }

    /// The state a deploy was in while `step` ran: where a failed, cancelled or interrupted
    /// deploy stopped, for the card.
    pub fn running(step: Step) -> Option<DeployState> {
        match step {
            Step::Lock => Some(DeployState::Locked),
            Step::Bump => Some(DeployState::Bump),
            Step::Plan => Some(DeployState::Plan),
            Step::Approval => Some(DeployState::AwaitingApproval),
            // Runs once approved, before apply starts.
            Step::DryRun => Some(DeployState::Approved),
            Step::Apply => Some(DeployState::Apply),
            Step::Verify => Some(DeployState::Verify),
            Step::Wait => Some(DeployState::WaitingForDags),
            Step::InfraPr | Step::Resolve | Step::Unknown | Step::Pause => None,
        }
    }
}

impl fmt::Display for DeployState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// Preflight passed and the target's lock was taken (for a deploy waiting with the lock:
    /// the DAG runs are over and preflight passed again).
    LockTaken,
    /// The bump step starts.
    BumpStarted,
    /// The bump succeeded; the plan step starts.
    Bumped,
    /// The plan has changes and a fingerprint; approvals are awaited.
    Planned,
    /// The plan has no changes: there is nothing to apply.
    NothingToApply,
    /// Enough people other than the requester approved the plan's fingerprint.
    Approved,
    /// The apply step starts.
    ApplyStarted,
    /// Apply succeeded and answered only for the approved plan; verify starts.
    Applied,
    /// Airflow reported healthy.
    Verified,
    /// A step or a check failed.
    Failed,
    /// Someone cancelled it before apply.
    Cancelled,
    /// A waiting deploy gives up: its deadline passed, or a precondition no longer holds.
    GaveUp,
    /// The process working on it is gone (its pid died, or its lease ran out): what its step did
    /// is unknown.
    OwnerLost,
    /// The bot shut down before a step could start, or killed a running step after the grace.
    ShutDown,
    /// A maintainer checked reality: the interrupted deploy did succeed.
    ResolvedSucceeded,
    /// A maintainer checked reality: the interrupted deploy failed.
    ResolvedFailed,
}

impl Event {
    pub const ALL: [Event; 16] = [
        Event::LockTaken,
        Event::BumpStarted,
        Event::Bumped,
        Event::Planned,
        Event::NothingToApply,
        Event::Approved,
        Event::ApplyStarted,
        Event::Applied,
        Event::Verified,
        Event::Failed,
        Event::Cancelled,
        Event::GaveUp,
        Event::OwnerLost,
        Event::ShutDown,
        Event::ResolvedSucceeded,
        Event::ResolvedFailed,
    ];

    /// The state the event leads to, wherever it happens.
    pub fn target(self) -> DeployState {
        match self {
            Event::LockTaken => DeployState::Locked,
            Event::BumpStarted => DeployState::Bump,
            Event::Bumped => DeployState::Plan,
            Event::Planned => DeployState::AwaitingApproval,
            Event::NothingToApply | Event::Cancelled => DeployState::Cancelled,
            Event::Approved => DeployState::Approved,
            Event::ApplyStarted => DeployState::Apply,
            Event::Applied => DeployState::Verify,
            Event::Verified | Event::ResolvedSucceeded => DeployState::Succeeded,
            Event::Failed | Event::ResolvedFailed => DeployState::Failed,
            Event::OwnerLost | Event::ShutDown => DeployState::Interrupted,
            Event::GaveUp => DeployState::Blocked,
        }
    }

    /// Every state in which this event may happen (for a compare-and-set over all of them).
    pub fn sources(self) -> Vec<DeployState> {
        DeployState::ALL
            .into_iter()
            .filter(|s| next(*s, self).is_some())
            .collect()
    }
}

/// The transition function: where `event` takes a deploy that is `state`, or `None` when it
/// cannot happen there. Each event leads to one state ([`Event::target`]); what differs is where
/// it may happen.
pub fn next(state: DeployState, event: Event) -> Option<DeployState> {
    use DeployState as S;
    use Event as E;
    let happens = match event {
        E::LockTaken => matches!(state, S::Requested | S::WaitingForDags),
        E::BumpStarted => state == S::Locked,
        E::Bumped => state == S::Bump,
        E::Planned | E::NothingToApply => state == S::Plan,
        E::Approved => state == S::AwaitingApproval,
        E::ApplyStarted => state == S::Approved,
        E::Applied => state == S::Apply,
        E::Verified => state == S::Verify,
        // Once apply has started it runs to its end: nobody can stop it half-way.
        E::Cancelled => matches!(
            state,
            S::Requested | S::WaitingForDags | S::Locked | S::Bump | S::Plan | S::AwaitingApproval
        ),
        E::GaveUp => state == S::WaitingForDags,
        E::Failed => matches!(
            state,
            S::Requested | S::Locked | S::Bump | S::Plan | S::Approved | S::Apply | S::Verify
        ),
        // The working states: a process owns them. A requested deploy has no owner yet, and
        // one that waits for approval has none any more.
        E::OwnerLost | E::ShutDown => matches!(
            state,
            S::Locked | S::Bump | S::Plan | S::Approved | S::Apply | S::Verify
        ),
        E::ResolvedSucceeded | E::ResolvedFailed => state == S::Interrupted,
    };
    happens.then(|| event.target())
}

/// Whether some event moves a deploy from `from` to `to`: what the store checks before it writes
/// a transition.
pub fn allowed(from: DeployState, to: DeployState) -> bool {
    Event::ALL.into_iter().any(|e| next(from, e) == Some(to))
}

/// The step the journal names for `event` happening in `from`: the step of the state it enters,
/// or for an ending, the step it stopped at. `None` when the event cannot happen there.
pub fn journal_step(from: DeployState, event: Event) -> Option<Step> {
    let to = next(from, event)?;
    match event {
        Event::OwnerLost => Some(Step::Unknown),
        Event::ResolvedSucceeded | Event::ResolvedFailed => Some(Step::Resolve),
        _ => to.step().or(from.step()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeployState as S;
    use Event as E;

    /// Every transition there is. Any (state, event) pair not listed must be refused.
    const TABLE: &[(DeployState, Event, DeployState)] = &[
        (S::Requested, E::LockTaken, S::Locked),
        (S::Requested, E::Failed, S::Failed),
        (S::Requested, E::Cancelled, S::Cancelled),
        (S::WaitingForDags, E::LockTaken, S::Locked),
        (S::WaitingForDags, E::Cancelled, S::Cancelled),
        (S::WaitingForDags, E::GaveUp, S::Blocked),
        (S::Locked, E::BumpStarted, S::Bump),
        (S::Locked, E::Failed, S::Failed),
        (S::Locked, E::Cancelled, S::Cancelled),
        (S::Locked, E::OwnerLost, S::Interrupted),
        (S::Locked, E::ShutDown, S::Interrupted),
        (S::Bump, E::Bumped, S::Plan),
        (S::Bump, E::Failed, S::Failed),
        (S::Bump, E::Cancelled, S::Cancelled),
        (S::Bump, E::OwnerLost, S::Interrupted),
        (S::Bump, E::ShutDown, S::Interrupted),
        (S::Plan, E::Planned, S::AwaitingApproval),
        (S::Plan, E::NothingToApply, S::Cancelled),
        (S::Plan, E::Failed, S::Failed),
        (S::Plan, E::Cancelled, S::Cancelled),
        (S::Plan, E::OwnerLost, S::Interrupted),
        (S::Plan, E::ShutDown, S::Interrupted),
        (S::AwaitingApproval, E::Approved, S::Approved),
        (S::AwaitingApproval, E::Cancelled, S::Cancelled),
        (S::Approved, E::ApplyStarted, S::Apply),
        (S::Approved, E::Failed, S::Failed),
        (S::Approved, E::OwnerLost, S::Interrupted),
        (S::Approved, E::ShutDown, S::Interrupted),
        (S::Apply, E::Applied, S::Verify),
        (S::Apply, E::Failed, S::Failed),
        (S::Apply, E::OwnerLost, S::Interrupted),
        (S::Apply, E::ShutDown, S::Interrupted),
        (S::Verify, E::Verified, S::Succeeded),
        (S::Verify, E::Failed, S::Failed),
        (S::Verify, E::OwnerLost, S::Interrupted),
        (S::Verify, E::ShutDown, S::Interrupted),
        (S::Interrupted, E::ResolvedSucceeded, S::Succeeded),
        (S::Interrupted, E::ResolvedFailed, S::Failed),
    ];

    #[test]
    fn every_state_and_event_moves_exactly_as_the_table_says() {
        for state in DeployState::ALL {
            for event in Event::ALL {
                let want = TABLE
                    .iter()
                    .find(|(s, e, _)| *s == state && *e == event)
                    .map(|(_, _, to)| *to);
                assert_eq!(next(state, event), want, "{state} + {event:?}");
            }
        }
    }

    #[test]
    fn allowed_is_exactly_the_table_without_its_events() {
        for from in DeployState::ALL {
            for to in DeployState::ALL {
                let want = TABLE.iter().any(|(s, _, t)| *s == from && *t == to);
                assert_eq!(allowed(from, to), want, "{from} → {to}");
            }
        }
    }

    #[test]
    fn the_sets_are_the_ones_the_workflow_relies_on() {
        let set = |f: fn(DeployState) -> bool| -> Vec<DeployState> {
            DeployState::ALL.into_iter().filter(|s| f(*s)).collect()
        };
        assert_eq!(
            set(DeployState::is_final),
            [S::Succeeded, S::Failed, S::Cancelled, S::Blocked]
        );
        assert_eq!(
            set(DeployState::is_working),
            [
                S::Locked,
                S::Bump,
                S::Plan,
                S::Approved,
                S::Apply,
                S::Verify
            ]
        );
        assert_eq!(
            set(DeployState::is_cancellable),
            [
                S::Requested,
                S::WaitingForDags,
                S::Locked,
                S::Bump,
                S::Plan,
                S::AwaitingApproval
            ]
        );
        // Nothing final is still worked on or cancellable.
        for s in DeployState::ALL {
            assert!(
                !(s.is_final() && (s.is_working() || s.is_cancellable())),
                "{s}"
            );
        }
        assert_eq!(Event::ShutDown.sources(), Event::OwnerLost.sources());
        for e in Event::ALL {
            assert!(!e.sources().is_empty(), "{e:?} can happen somewhere");
        }
    }

    #[test]
    fn the_path_is_walked_by_one_event_per_step() {
        for pair in DeployState::PATH.windows(2) {
            assert!(
                Event::ALL
                    .into_iter()
                    .any(|e| next(pair[0], e) == Some(pair[1])),
                "{} → {}",
                pair[0],
                pair[1]
            );
        }
        assert!(DeployState::PATH.last().is_some_and(|s| s.is_final()));
    }

    #[test]
    fn states_round_trip_through_their_stored_names() {
        for s in DeployState::ALL {
            assert_eq!(DeployState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::String(s.as_str().into()))
            );
        }
        assert_eq!(DeployState::parse("preflight"), None);
    }

    #[test]
    fn the_journal_names_the_step_entered_or_stopped_at() {
        let cases = [
            (S::Locked, E::BumpStarted, Some(Step::Bump)),
            (S::Bump, E::Bumped, Some(Step::Plan)),
            (S::Plan, E::Planned, Some(Step::Approval)),
            (S::Plan, E::NothingToApply, Some(Step::Plan)),
            (S::AwaitingApproval, E::Approved, Some(Step::Approval)),
            (S::Approved, E::ApplyStarted, Some(Step::Apply)),
            (S::Apply, E::Applied, Some(Step::Verify)),
            (S::Verify, E::Verified, Some(Step::Verify)),
            (S::Bump, E::Failed, Some(Step::Bump)),
            (S::Apply, E::ShutDown, Some(Step::Apply)),
            (S::Apply, E::OwnerLost, Some(Step::Unknown)),
            (S::AwaitingApproval, E::Cancelled, Some(Step::Approval)),
            (S::Requested, E::Cancelled, None),
            (S::Interrupted, E::ResolvedFailed, Some(Step::Resolve)),
            (S::WaitingForDags, E::LockTaken, Some(Step::Lock)),
            (S::WaitingForDags, E::GaveUp, Some(Step::Wait)),
            (S::WaitingForDags, E::Cancelled, Some(Step::Wait)),
            (S::Succeeded, E::Failed, None),
        ];
        for (from, event, step) in cases {
            assert_eq!(journal_step(from, event), step, "{from} + {event:?}");
        }
        // A step's own state is where the card finds a deploy that stopped at it.
        for s in DeployState::ALL {
            if let Some(step) = s.step()
                && s != S::Approved
            {
                assert_eq!(DeployState::running(step), Some(s), "{s}");
            }
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn event() -> impl Strategy<Value = Event> {
            proptest::sample::select(Event::ALL.to_vec())
        }

        proptest! {
            /// Whatever happens in whatever order, a deploy only moves along the table: a final
            /// deploy never moves again, apply is never cancelled, only an interrupted deploy is
            /// resolved, and it never moves backwards along the path except to an ending.
            #[test]
            fn any_sequence_of_events_stays_on_the_diagram(events in proptest::collection::vec(event(), 0..40)) {
                let mut state = DeployState::Requested;
                let mut applied = false;
                for e in events {
                    let Some(to) = next(state, e) else {
                        continue;
                    };
                    prop_assert!(!state.is_final(), "{state} moved to {to}");
                    prop_assert!(allowed(state, to));
                    if applied {
                        prop_assert_ne!(to, DeployState::Cancelled, "cancelled after apply started");
                    }
                    if matches!(e, Event::ResolvedSucceeded | Event::ResolvedFailed) {
                        prop_assert_eq!(state, DeployState::Interrupted);
                    }
                    let pos = |s: DeployState| DeployState::PATH.iter().position(|p| *p == s);
                    if let (Some(a), Some(b)) = (pos(state), pos(to)) {
                        prop_assert!(b == a + 1, "{state} → {to} skips or goes back");
                    }
                    applied |= to == DeployState::Apply;
                    state = to;
                }
            }
        }
    }
}
