//! The store on real SQLite and real Postgres: migrations, the hash-chained audit log, atomic
//! locks and message claims.

use crate::support;

use catalog_chatops::deploy::Step;
use catalog_chatops::store::{DeployState, NewAuditEvent, NewDeploy, NewLock, Store, StoreError};
use support::all_backends;

fn event(actor: &str, n: usize) -> NewAuditEvent {
    NewAuditEvent {
        kind: "command".into(),
        source: "local".into(),
        actor: actor.into(),
        os_user: Some("tester".into()),
        roles: vec!["core-maintainer".into()],
        raw: Some(format!("!audit {n}")),
        command: Some(format!("!audit {n}")),
        decision: Some("allowed".into()),
        outcome: Some("ok".into()),
        target: None,
        deploy_id: None,
        detail: serde_json::json!({ "n": n, "text": "ünïcode ✅" }),
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_versions_match_across_backends() {
    let mut versions = Vec::new();
    for t in all_backends().await {
        // Already migrated by the helper: a second run applies nothing.
        assert_eq!(
            t.store.migrate().await.expect("migrate"),
            Vec::<i64>::new(),
            "{}",
            t.backend
        );
        let status = t.store.migration_status().await.expect("status");
        assert!(
            status.iter().all(|m| m.applied),
            "{}: {status:?}",
            t.backend
        );
        assert!(t.store.is_current().await.expect("current"));
        versions.push(status.iter().map(|m| m.version).collect::<Vec<_>>());
    }
    // Whatever backends ran, they agree on the versions.
    assert!(versions.windows(2).all(|w| w[0] == w[1]), "{versions:?}");
}

#[tokio::test]
async fn audit_chain_verifies_and_pages_in_order() {
    for t in all_backends().await {
        let empty = t.store.verify_audit().await.expect("verify empty");
        assert_eq!(
            (empty.events, empty.first_broken),
            (0, None),
            "{}",
            t.backend
        );
        // More than one verification page (1,000 rows) so paging is exercised.
        for n in 0..1_203 {
            t.store
                .append_audit(&event("alice", n))
                .await
                .expect("append");
        }
        let report = t.store.verify_audit().await.expect("verify");
        assert_eq!(report.events, 1_203, "{}", t.backend);
        assert_eq!(report.first_broken, None, "{}", t.backend);

        let newest = t.store.list_audit(3, None).await.expect("list");
        assert_eq!(
            newest.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1_203, 1_202, 1_201]
        );
        assert_eq!(newest[0].detail["text"], "ünïcode ✅");
        assert_eq!(newest[0].prev_hash, newest[1].hash);

        let mut seen = 0i64;
        let count = t
            .store
            .for_each_audit(|e| {
                seen += 1;
                assert_eq!(e.seq, seen);
                Ok(())
            })
            .await
            .expect("export");
        assert_eq!(count, 1_203);
    }
}

#[tokio::test]
async fn audit_log_refuses_updates_and_deletes() {
    for t in all_backends().await {
        t.store
            .append_audit(&event("alice", 1))
            .await
            .expect("append");
        let upd = sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
            .execute(t.store.pool())
            .await;
        assert!(upd.is_err(), "{}: update must be refused", t.backend);
        let del = sqlx::query("DELETE FROM audit_events WHERE seq = 1")
            .execute(t.store.pool())
            .await;
        assert!(del.is_err(), "{}: delete must be refused", t.backend);
    }
}

/// `events` audit events by alice, then the append-only guard dropped, as someone with database
/// access could.
async fn unguarded_log_of(store: &Store, backend: &str, events: usize) {
    for n in 0..events {
        store
            .append_audit(&event("alice", n))
            .await
            .expect("append");
    }
    drop_append_only_guard(store, backend).await;
}

/// Someone with database access can drop the trigger; the chain still names the altered event.
async fn drop_append_only_guard(store: &Store, backend: &str) {
    let stmts: &[&str] = if backend == "sqlite" {
        &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
        ]
    } else {
        &["DROP TRIGGER audit_events_no_update ON audit_events"]
    };
    for s in stmts {
        sqlx::query(*s)
            .execute(store.pool())
            .await
            .expect("drop trigger");
    }
}

#[tokio::test]
async fn audit_verify_names_the_first_tampered_event() {
    for t in all_backends().await {
        unguarded_log_of(&t.store, t.backend, 10).await;
        sqlx::query("UPDATE audit_events SET outcome = 'ok', decision = 'allowed', actor = 'mallory' WHERE seq = 4")
            .execute(t.store.pool())
            .await
            .expect("tamper");
        let report = t.store.verify_audit().await.expect("verify");
        let broken = report.first_broken.expect("tampering must be detected");
        assert_eq!(broken.seq, 4, "{}", t.backend);
        assert!(broken.reason.contains("altered"), "{}", broken.reason);
        assert_eq!(report.events, 3);
    }
}

#[tokio::test]
async fn audit_verify_detects_removed_events() {
    for t in all_backends().await {
        unguarded_log_of(&t.store, t.backend, 6).await;
        sqlx::query("DELETE FROM audit_events WHERE seq = 3")
            .execute(t.store.pool())
            .await
            .expect("delete middle");
        let broken = t
            .store
            .verify_audit()
            .await
            .expect("verify")
            .first_broken
            .expect("gap");
        assert_eq!(broken.seq, 4, "{}: {}", t.backend, broken.reason);
        assert!(
            broken.reason.contains("event 3 is missing"),
            "{}",
            broken.reason
        );

        sqlx::query("DELETE FROM audit_events WHERE seq >= 3")
            .execute(t.store.pool())
            .await
            .expect("truncate tail");
        let broken = t
            .store
            .verify_audit()
            .await
            .expect("verify")
            .first_broken
            .expect("tail");
        assert!(
            broken.reason.contains("removed from the end"),
            "{}",
            broken.reason
        );
    }
}

#[tokio::test]
async fn concurrent_appends_keep_one_unbroken_chain() {
    for t in all_backends().await {
        let mut tasks = Vec::new();
        for w in 0..16 {
            let store = t.store.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..25 {
                    store
                        .append_audit(&event(&format!("user{w}"), n))
                        .await
                        .expect("append");
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        // A second handle is a second pool: as good as another process for the database.
        let other = Store::open(&t.url).await.expect("reopen");
        let report = other.verify_audit().await.expect("verify");
        assert_eq!(report.events, 400, "{}", t.backend);
        assert_eq!(report.first_broken, None, "{}", t.backend);
        assert_eq!(other.count_audit("command").await.expect("count"), 400);
    }
}

#[tokio::test]
async fn twenty_concurrent_acquirers_one_winner() {
    for t in all_backends().await {
        let mut tasks = Vec::new();
        for i in 0..20 {
            // Separate pools so the contenders do not queue on one pool's connections.
            let url = t.url.clone();
            tasks.push(tokio::spawn(async move {
                let store = Store::open(&url).await.expect("open");
                let holder = format!("contender{i}");
                let got = store
                    .try_acquire_lock(&NewLock {
                        key: "catalog/prod",
                        holder: &holder,
                        deploy_id: Some(i),
                        reason: "deploy v1.2.3",
                    })
                    .await
                    .expect("acquire");
                store.close().await;
                got
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            match task.await.expect("task") {
                Ok(lock) => winners.push(lock),
                Err(held) => losers.push(held),
            }
        }
        assert_eq!(winners.len(), 1, "{}: exactly one winner", t.backend);
        assert_eq!(losers.len(), 19);
        // Every loser was told the real holder.
        assert!(
            losers
                .iter()
                .all(|l| l.holder == winners[0].holder && l.deploy_id == winners[0].deploy_id)
        );

        let locks = t.store.list_locks().await.expect("list");
        assert_eq!(locks.len(), 1);
        // Only the holder's deploy can release it.
        let wrong = winners[0].deploy_id.map(|d| d + 100);
        assert!(
            !t.store
                .release_lock("catalog/prod", wrong)
                .await
                .expect("release")
        );
        assert!(
            t.store
                .release_lock("catalog/prod", winners[0].deploy_id)
                .await
                .expect("release")
        );
        assert!(t.store.list_locks().await.expect("list").is_empty());
    }
}

#[tokio::test]
async fn a_message_is_claimed_once() {
    for t in all_backends().await {
        assert!(
            t.store
                .claim("discord:msg:42", "replica-a")
                .await
                .expect("claim")
        );
        assert!(
            !t.store
                .claim("discord:msg:42", "replica-b")
                .await
                .expect("claim")
        );
        assert!(
            t.store
                .claim("discord:msg:43", "replica-b")
                .await
                .expect("claim")
        );
    }
}

/// A requested deploy of catalog v1.5.3 by alice.
async fn catalog_v153(store: &Store) -> catalog_chatops::store::Deploy {
    store
        .create_deploy(&NewDeploy {
            target: "catalog",
            environment: "prod",
            version: "v1.5.3",
            requested_by: "alice",
            requested_by_id: "discord:111",
            force: false,
        })
        .await
        .expect("create")
}

/// An approval is one per person, whatever name they use: a renamed approver cannot add a
/// second one, while a different person who took the same name still can (the key is the
/// identity, not the name). The requester's identity is kept with the deploy.
#[tokio::test]
async fn an_approval_is_unique_per_identity_not_per_name() {
    for t in all_backends().await {
        let s = &t.store;
        let d = catalog_v153(s).await;
        assert_eq!(d.requested_by_id, "discord:111", "{}", t.backend);
        let approve = |id: &'static str, name: &'static str| async move {
            s.add_approval(d.id, id, name, "fp1")
                .await
                .unwrap_or_else(|e| panic!("{}: add_approval: {e}", t.backend))
        };
        assert!(approve("discord:222", "bob").await, "{}", t.backend);
        assert!(
            !approve("discord:222", "bob-renamed").await,
            "{}: the same person approved twice under two names",
            t.backend
        );
        assert!(approve("discord:333", "bob").await, "{}", t.backend);
        let rows: Vec<(String, String)> = s
            .approvals(d.id)
            .await
            .expect("approvals")
            .into_iter()
            .map(|a| (a.approver_id, a.approver))
            .collect();
        assert_eq!(
            rows,
            [
                ("discord:222".to_string(), "bob".to_string()),
                ("discord:333".to_string(), "bob".to_string())
            ],
            "{}",
            t.backend
        );
    }
}

#[tokio::test]
async fn deploys_are_journaled_and_listed() {
    for t in all_backends().await {
        let d = catalog_v153(&t.store).await;
        assert_eq!(d.state, DeployState::Requested);
        let moved = |from: DeployState| {
            let store = t.store.clone();
            async move {
                let event = NewAuditEvent {
                    kind: "deploy.transition".into(),
                    deploy_id: Some(d.id),
                    outcome: Some("failed".into()),
                    ..NewAuditEvent::default()
                };
                store
                    .transition(
                        d.id,
                        &[from],
                        DeployState::Failed,
                        Some(Step::Plan),
                        Some("exit 1"),
                        Some(&event),
                    )
                    .await
                    .expect("transition")
            }
        };
        assert!(moved(DeployState::Requested).await, "{}", t.backend);
        // Compare-and-set: a second mover that saw the old state loses, and writes nothing.
        assert!(!moved(DeployState::Requested).await, "{}", t.backend);
        assert_eq!(t.store.deploy_steps(d.id).await.expect("steps").len(), 1);
        // The journal row and its audit event commit together.
        assert_eq!(
            t.store
                .count_audit("deploy.transition")
                .await
                .expect("count"),
            1,
            "{}",
            t.backend
        );
        let report = t.store.verify_audit().await.expect("verify");
        assert_eq!(report.first_broken, None, "{}", t.backend);
        assert_eq!(report.events, 1, "{}", t.backend);
        let back = t
            .store
            .get_deploy(d.id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(back.state, DeployState::Failed);
        assert_eq!(back.step.as_deref(), Some("plan"));
        assert!(back.finished_ms.is_some());
        assert!(t.store.active_deploys().await.expect("active").is_empty());
        assert_eq!(
            t.store
                .list_deploys(Some("catalog"), 5)
                .await
                .expect("list")
                .len(),
            1
        );
        assert!(
            t.store
                .list_deploys(Some("other"), 5)
                .await
                .expect("list")
                .is_empty()
        );
    }
}

/// Regression: Postgres declared two millisecond columns 32-bit, so the first real timestamp
/// failed with "integer out of range" (found by the two-replica test: the announcer could not
/// record its seeding). Every store write that stamps a time must take a real Unix-ms time.
#[tokio::test]
async fn watcher_state_and_migration_requests_take_real_timestamps() {
    for t in support::all_backends().await {
        let s = &t.store;
        s.set_state("announcer.seeded", "1")
            .await
            .unwrap_or_else(|e| panic!("{}: set_state: {e}", t.backend));
        assert_eq!(
            s.state("announcer.seeded").await.expect("state").as_deref(),
            Some("1"),
            "{}",
            t.backend
        );
        assert!(
            s.request_migration("0042_add_index.sql", "discord:111", "alice")
                .await
                .unwrap_or_else(|e| panic!("{}: request_migration: {e}", t.backend))
        );
        let r = s
            .migration_request("0042_add_index.sql")
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(r.requested_by, "alice", "{}", t.backend);
        assert_eq!(r.requested_by_id, "discord:111", "{}", t.backend);
        assert!(
            r.requested_ms > i64::from(i32::MAX),
            "{}: {}",
            t.backend,
            r.requested_ms
        );
    }
}

/// A deploy transition and its audit event commit together: when the event cannot be written,
/// the state does not move either (a crash between two commits would have kept one without the
/// other). The audit head is taken away to make the append fail inside the transaction.
#[tokio::test]
async fn a_transition_whose_audit_event_fails_is_not_kept() {
    for t in all_backends().await {
        let d = catalog_v153(&t.store).await;
        sqlx::query("DELETE FROM audit_head")
            .execute(t.store.pool())
            .await
            .expect("remove the head");
        let event = NewAuditEvent {
            kind: "deploy.transition".into(),
            deploy_id: Some(d.id),
            ..NewAuditEvent::default()
        };
        let r = t
            .store
            .transition(
                d.id,
                &[DeployState::Requested],
                DeployState::Failed,
                Some(Step::Plan),
                None,
                Some(&event),
            )
            .await;
        assert!(
            r.is_err(),
            "{}: the append failed, so must the transition",
            t.backend
        );
        let back = t
            .store
            .get_deploy(d.id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(back.state, DeployState::Requested, "{}", t.backend);
        assert!(
            t.store.deploy_steps(d.id).await.expect("steps").is_empty(),
            "{}: no journal row without its audit event",
            t.backend
        );
    }
}

/// The store writes only moves the deploy state machine has: a caller asking to take a deploy
/// from `requested` straight to `succeeded`, or out of a final state, gets an error naming the
/// move, and nothing is written (no state, no journal row, no audit event).
#[tokio::test]
async fn a_move_the_state_machine_does_not_have_is_refused_and_writes_nothing() {
    for t in all_backends().await {
        let d = catalog_v153(&t.store).await;
        let event = NewAuditEvent {
            kind: "deploy.transition".into(),
            deploy_id: Some(d.id),
            ..NewAuditEvent::default()
        };
        let r = t
            .store
            .transition(
                d.id,
                &[DeployState::Requested],
                DeployState::Succeeded,
                None,
                None,
                Some(&event),
            )
            .await;
        match r {
            Err(e @ StoreError::IllegalTransition { .. }) => assert_eq!(
                e.to_string(),
                format!(
                    "deploy #{} cannot move from requested to succeeded: the deploy workflow has \
                     no such step",
                    d.id
                ),
                "{}",
                t.backend
            ),
            other => panic!("{}: expected a refusal, got {other:?}", t.backend),
        }
        let back = t
            .store
            .get_deploy(d.id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(back.state, DeployState::Requested, "{}", t.backend);
        assert!(t.store.deploy_steps(d.id).await.expect("steps").is_empty());
        assert_eq!(
            t.store
                .count_audit("deploy.transition")
                .await
                .expect("count"),
            0,
            "{}",
            t.backend
        );
        // A set with one allowed and one refused source is refused as a whole.
        assert!(matches!(
            t.store
                .transition(
                    d.id,
                    &[DeployState::Requested, DeployState::Cancelled],
                    DeployState::Failed,
                    None,
                    None,
                    None,
                )
                .await,
            Err(StoreError::IllegalTransition {
                from: DeployState::Cancelled,
                ..
            })
        ));
    }
}

/// A detached step's run on both stores: recorded before its supervisor exists, the supervisor
/// added, the posted offset only moving forward, its end taken once; the newest run of a step
/// is the one a re-attaching process follows.
#[tokio::test]
async fn step_runs_are_recorded_and_their_end_taken_once() {
    for t in all_backends().await {
        let d = catalog_v153(&t.store).await;
        assert_eq!(
            t.store
                .latest_step_run(d.id, Step::Plan)
                .await
                .expect("latest"),
            None
        );
        let first = t
            .store
            .start_step_run(d.id, Step::Plan, "host-a", "/j/deploy-1/plan-1")
            .await
            .expect("start");
        let id = t
            .store
            .start_step_run(d.id, Step::Plan, "host-a", "/j/deploy-1/plan-2")
            .await
            .expect("start");
        assert!(id > first);
        t.store
            .set_step_supervisor(id, 4242, 987_654_321_012)
            .await
            .expect("supervisor");
        t.store.step_run_posted(id, 300).await.expect("posted");
        t.store.step_run_posted(id, 100).await.expect("posted");
        let run = t
            .store
            .latest_step_run(d.id, Step::Plan)
            .await
            .expect("latest")
            .expect("a run");
        assert_eq!(
            (
                run.id,
                run.dir.as_str(),
                run.supervisor_pid,
                run.supervisor_start
            ),
            (id, "/j/deploy-1/plan-2", Some(4242), Some(987_654_321_012)),
            "{}",
            t.backend
        );
        assert_eq!(run.output_offset, 300, "the offset never moves back");
        assert_eq!((run.outcome, run.finished_ms), (None, None));
        t.store
            .finish_step_run(id, "failed", Some(3))
            .await
            .expect("finish");
        t.store
            .finish_step_run(id, "lost", None)
            .await
            .expect("finish again");
        let run = t
            .store
            .latest_step_run(d.id, Step::Plan)
            .await
            .expect("latest")
            .expect("a run");
        assert_eq!(
            (run.outcome.as_deref(), run.exit_code),
            (Some("failed"), Some(3))
        );
        assert!(run.finished_ms.is_some());
        assert_eq!(t.store.step_runs(d.id).await.expect("runs").len(), 2);
    }
}

/// A process that died between writing a deploy's final state and releasing its lock left the
/// lock behind; the recovery sweep (run before every deploy command and by the waits watcher)
/// frees it, and only it: not the lock of a deploy still working, and not the lock of an ended
/// deploy whose process still lives (after `succeeded` it commits the bump for `infra_pr` under
/// the lock, then releases it itself).
#[tokio::test]
async fn the_recovery_sweep_frees_the_lock_an_ended_deploy_left_behind() {
    use catalog_chatops::deploy::recovery;
    use catalog_chatops::store::Owner;
    let lease = std::time::Duration::from_secs(60);
    for t in all_backends().await {
        let owner = Owner::current();
        let mut ids = Vec::new();
        for (target, key) in [("catalog", "catalog:prod"), ("api", "api:prod")] {
            let d = t
                .store
                .create_locked_deploy(
                    &NewDeploy {
                        target,
                        environment: "prod",
                        version: "v1.5.3",
                        requested_by: "alice",
                        requested_by_id: "discord:111",
                        force: false,
                    },
                    key,
                    &owner,
                    &NewAuditEvent {
                        kind: "deploy.locked".into(),
                        ..NewAuditEvent::default()
                    },
                )
                .await
                .expect("create")
                .expect("the lock is free");
            ids.push(d.id);
        }
        // catalog's deploy fails; its process (this one) still holds the lease.
        assert!(
            t.store
                .transition(
                    ids[0],
                    &[DeployState::Locked],
                    DeployState::Failed,
                    Some(Step::Lock),
                    Some("the bump failed"),
                    None,
                )
                .await
                .expect("transition")
        );
        let keys = |locks: Vec<catalog_chatops::store::Lock>| -> Vec<(String, Option<i64>)> {
            locks.into_iter().map(|l| (l.key, l.deploy_id)).collect()
        };
        let both = vec![
            ("api:prod".to_string(), Some(ids[1])),
            ("catalog:prod".to_string(), Some(ids[0])),
        ];
        let interrupted = recovery::sweep(&t.store, lease).await.expect("sweep");
        assert!(interrupted.is_empty(), "{}: the owner is alive", t.backend);
        assert_eq!(
            keys(t.store.list_locks().await.expect("locks")),
            both,
            "{}: the ended deploy's process lives, so its lock stays",
            t.backend
        );

        // Now its process is gone (the lease is no longer held) without releasing the lock.
        t.store.release_lease(ids[0], &owner).await.expect("lease");
        let interrupted = recovery::sweep(&t.store, lease).await.expect("sweep");
        assert!(
            interrupted.is_empty(),
            "{}: api's owner is alive",
            t.backend
        );
        assert_eq!(
            keys(t.store.list_locks().await.expect("locks")),
            vec![("api:prod".to_string(), Some(ids[1]))],
            "{}: only the ended deploy's lock is released",
            t.backend
        );
        assert!(
            t.store
                .locks_of_ended_deploys()
                .await
                .expect("again")
                .is_empty()
        );
    }
}
