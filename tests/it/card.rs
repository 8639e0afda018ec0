//! The deploy status card, as the workflow hands it to a chat front end: built from the store
//! after every transition, Approve/Cancel only while waiting, and a link to the deploy's page
//! when `[server] public_url` is set.

use crate::support;

use std::sync::Mutex;

use catalog_chatops::Engine;
use catalog_chatops::chat::Conversation;
use catalog_chatops::conversation::DeployCard;
use catalog_chatops::integrations::HttpPolicy;
use catalog_chatops::policy::Actor;
use catalog_chatops::sandbox::{self, World};
use catalog_chatops::store::DeployState;

#[derive(Default)]
struct Cards(Mutex<Vec<DeployCard>>);

#[async_trait::async_trait]
impl Conversation for Cards {
    async fn post(&self, _text: &str) {}
    async fn deploy_card(&self, card: &DeployCard) {
        self.0.lock().expect("lock").push(card.clone());
    }
}

fn maintainer(name: &str) -> Actor {
    Actor::chat("test", name, name, &["core-maintainer".to_string()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_card_follows_the_workflow_and_links_the_page() {
    if std::process::Command::new("just")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(std::env::var("CI").is_err(), "`just` is required in CI");
        eprintln!("skipping: `just` is not on PATH");
        return;
    }
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
    let sandbox_toml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sandbox.toml"))
            .expect("config");
    let mut config = catalog_chatops::config::load_from_str(&sandbox_toml, &[]).expect("valid");
    world.configure(&mut config);
    config.server.public_url = Some("https://ops.example.org".into());
    for t in config.targets.values_mut() {
        t.workdir = infra.display().to_string();
    }
    let engine = Engine::with_http_policy(config, store, HttpPolicy::default()).expect("engine");

    let cards = Cards::default();
    let r = engine
        .handle(&maintainer("alice"), "!deploy catalog v1.5.3", &cards)
        .await
        .expect("addressed");
    assert_eq!(
        r.outcome,
        catalog_chatops::Outcome::AwaitingApproval,
        "{}",
        r.message
    );
    let waiting = cards
        .0
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("a card");
    assert_eq!(waiting.title, "deploy catalog v1.5.3 · #1");
    assert_eq!(waiting.state, DeployState::AwaitingApproval);
    let ids: Vec<&str> = waiting.buttons.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["deploy:approve:1", "deploy:cancel:1"]);
    let text = waiting.text();
    assert!(text.contains("✅ bump"), "{text}");
    assert!(
        text.contains("✅ plan: Plan: 1 to add, 1 to change, 1 to destroy"),
        "{text}"
    );
    assert!(
        text.contains("⏳ approval (needs 1 from someone other than alice)"),
        "{text}"
    );
    assert!(
        text.contains("📄 https://ops.example.org/deploys/1"),
        "{text}"
    );
    // One card per transition, redrawn from the store: locked, bump, plan, awaiting approval.
    assert!(cards.0.lock().expect("lock").len() >= 4);

    let later = Cards::default();
    let r = engine
        .handle(&maintainer("bob"), "!deploy approve 1", &later)
        .await
        .expect("addressed");
    assert_eq!(r.outcome, catalog_chatops::Outcome::Ok, "{}", r.message);
    let done = later
        .0
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("a card");
    assert_eq!(done.state, DeployState::Succeeded);
    assert!(
        done.buttons.is_empty(),
        "the buttons are gone once it left the waiting state"
    );
    let text = done.text();
    assert!(text.contains("✅ approval by bob"), "{text}");
    assert!(text.contains("🚀 succeeded"), "{text}");
}
