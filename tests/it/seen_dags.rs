//! The announcer's seen set at the size of a big Airflow: `record_seen` writes many rows per
//! statement, so it is checked across statement boundaries, with the duplicate ids overlapping
//! offset pages produce, on both store backends.

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_seen_keeps_every_dag_across_statement_boundaries() {
    for ts in support::all_backends().await {
        let store = &ts.store;
        // 1,234 ids (three statements), every 100th listed twice as overlapping pages would.
        let mut first: Vec<(String, bool)> = (0..1_234)
            .map(|i| (format!("dag_{i:05}"), i % 3 == 0))
            .collect();
        first.extend(
            (0..1_234)
                .step_by(100)
                .map(|i| (format!("dag_{i:05}"), i % 3 == 0)),
        );
        store.record_seen(&first, true).await.expect("seed");
        let seen = store.seen_dags().await.expect("read");
        assert_eq!(seen.len(), 1_234, "{}", ts.backend);
        assert!(
            seen.values().all(|d| d.announced_ms.is_some()),
            "seeding marks every DAG announced ({})",
            ts.backend
        );
        let d3 = &seen["dag_00003"];
        assert!(d3.is_paused);
        assert!(!seen["dag_00004"].is_paused);

        // The next poll: one DAG unpaused, two new ones (one listed twice, the last sighting
        // wins), everything else unchanged.
        let mut next: Vec<(String, bool)> = (0..1_234)
            .map(|i| (format!("dag_{i:05}"), i % 3 == 0 && i != 3))
            .collect();
        next.push(("dag_new_a".into(), false));
        next.push(("dag_new_b".into(), false));
        next.push(("dag_new_b".into(), true));
        store.record_seen(&next, false).await.expect("record");
        let after = store.seen_dags().await.expect("read");
        assert_eq!(after.len(), 1_236, "{}", ts.backend);
        let d3_after = &after["dag_00003"];
        assert!(!d3_after.is_paused, "the paused flag is refreshed");
        assert_eq!(
            d3_after.first_seen_ms, d3.first_seen_ms,
            "first sighting kept"
        );
        assert_eq!(d3_after.announced_ms, d3.announced_ms);
        assert!(d3_after.last_seen_ms >= d3.last_seen_ms);
        let b = &after["dag_new_b"];
        assert!(b.is_paused, "the last sighting wins");
        assert_eq!(b.announced_ms, None, "a new DAG waits to be announced");
        assert_eq!(after["dag_new_a"].announced_ms, None);
    }
}
