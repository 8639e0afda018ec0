//! Permission proof: for every command and every combination of the configured roles (generated,
//! not hand-listed) the engine's decision equals the policy table, and no privileged step runs
//! for a denied actor — checked on what the steps and the upstreams would have touched, not only
//! on the reply.

use crate::support;

use catalog_chatops::chat::Transcript;
use catalog_chatops::integrations::{HttpPolicy, Service};
use catalog_chatops::policy::Actor;
use catalog_chatops::sandbox::{self, World};
use catalog_chatops::{Engine, Outcome};

/// One text per command form of interface.md.
const COMMANDS: &[&str] = &[
    "!help",
    "!deploy catalog v1.5.3",
    "!deploy catalog v1.5.3 --force",
    "!deploy check catalog v1.5.3",
    "!deploy approve 1",
    "!deploy cancel 1",
    "!deploy status",
    "!deploy history catalog",
    "!deploy resolve 1 failed",
    "!deploy rollback catalog",
    "!locks",
    "!dag-sync status",
    "!airflow status",
    "!dags new",
    "!dag enable flickr_workflow",
    "!migrations status",
    "!migrations apply 0001_add_index.sql",
    "!audit 3",
];

/// Commands whose effects are privileged: bump/plan/apply, unpause, migrations, settling deploys.
fn privileged(text: &str) -> bool {
    !matches!(
        text,
        "!help"
            | "!deploy check catalog v1.5.3"
            | "!deploy status"
            | "!deploy history catalog"
            | "!locks"
            | "!dag-sync status"
            | "!airflow status"
            | "!dags new"
            | "!migrations status"
            | "!audit 3"
    )
}

/// Every subset of `roles`.
fn subsets(roles: &[String]) -> Vec<Vec<String>> {
    (0..1u32 << roles.len())
        .map(|mask| {
            roles
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, r)| r.clone())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_equal_the_table_and_denied_actors_touch_nothing() {
    let world = sandbox::start(World::openverse_idle())
        .await
        .expect("sandbox");
    world.world.lock().airflow.password.clear();
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = dir.path().join("infra");
    sandbox::session::write_infra(&infra).expect("infra");
    let url = support::store_url(dir.path()).await;
    let store = catalog_chatops::store::Store::open(&url)
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    let mut config = support::config_with_store(&url);
    world.configure(&mut config);
    config.limits.commands_per_minute = 100_000;
    config.limits.burst = 100_000;
    for t in config.targets.values_mut() {
        t.workdir = infra.display().to_string();
        t.bump = vec![
            "just".into(),
            "--justfile".into(),
            "infra.justfile".into(),
            "bump".into(),
            "{version}".into(),
        ];
        t.plan = vec![
            "just".into(),
            "--justfile".into(),
            "infra.justfile".into(),
            "plan".into(),
        ];
        t.apply = vec![
            "just".into(),
            "--justfile".into(),
            "infra.justfile".into(),
            "apply".into(),
        ];
    }
    // The roles the configuration knows, plus two it does not mention.
    let mut roles: Vec<String> = config
        .permissions
        .values()
        .flatten()
        .filter(|r| *r != "*")
        .cloned()
        .collect();
    roles.extend(["contributor".to_string(), "triage".to_string()]);
    roles.sort();
    roles.dedup();
    let table = config.permissions.clone();
    let engine = Engine::with_http_policy(
        config,
        store.clone(),
        HttpPolicy {
            attempts: 1,
            ..Default::default()
        },
    )
    .expect("engine");

    let mut checked = 0;
    for text in COMMANDS {
        for held in subsets(&roles) {
            let actor = Actor::chat("test", "mallory", "mallory", &held);
            let targets = vec!["catalog".to_string()];
            let cmd = catalog_chatops::command::parse(
                text,
                &catalog_chatops::command::ParseContext {
                    prefix: "!",
                    bot_user_id: None,
                    targets: &targets,
                    version_tags: &[],
                },
            )
            .expect("valid")
            .expect("addressed");
            // The table, read directly: `*` or one of the held roles.
            let grants = table
                .get(cmd.permission().name())
                .cloned()
                .unwrap_or_default();
            let expected = grants.iter().any(|g| g == "*" || held.contains(g));
            if expected && privileged(text) {
                // Allowed privileged commands are exercised by the workflow suites; here only
                // the table agreement is checked, so no deploy starts.
                assert!(
                    engine.policy().allows(&actor, cmd.permission()),
                    "{text} {held:?}"
                );
                continue;
            }
            let reply = engine
                .handle(&actor, text, &Transcript::new())
                .await
                .expect("addressed");
            checked += 1;
            let decided = store.list_audit(1, None).await.expect("audit")[0]
                .decision
                .clone();
            if expected {
                assert_ne!(reply.outcome, Outcome::Denied, "{text} as {held:?}");
                assert_eq!(decided.as_deref(), Some("allowed"), "{text} as {held:?}");
            } else {
                assert_eq!(
                    reply.outcome,
                    Outcome::Denied,
                    "{text} as {held:?}: {}",
                    reply.message
                );
                assert_eq!(decided.as_deref(), Some("denied"), "{text} as {held:?}");
            }
        }
    }
    assert!(checked > 100, "{checked} decisions checked");

    // Nothing privileged happened for any denied actor: no deploy, no step, no unpause.
    assert!(
        store
            .list_deploys(None, 10)
            .await
            .expect("deploys")
            .is_empty()
    );
    // Every recipe of the stand-in appends to state/steps.log (state/ itself holds its seed).
    assert!(!infra.join("state/steps.log").exists(), "no infra step ran");
    assert_eq!(
        world.world.count_prefix(Service::Airflow, "PATCH"),
        0,
        "no DAG was unpaused"
    );

    // Control: the same check does see a step when an allowed actor deploys, so it can fail.
    let alice = Actor::chat("test", "alice", "alice", &["core-maintainer".to_string()]);
    let reply = engine
        .handle(&alice, "!deploy catalog v1.5.3", &Transcript::new())
        .await
        .expect("addressed");
    assert_eq!(
        reply.outcome,
        Outcome::AwaitingApproval,
        "{}",
        reply.message
    );
    assert!(
        infra.join("state/wanted").exists(),
        "the allowed actor's bump ran"
    );
}
