//! `console`: an interactive chat with the bot in the terminal, with line editing and history.
//! It prints exactly the text Discord would show.

use std::path::PathBuf;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::policy::Actor;

use super::exec::{StdoutConversation, handle_addressed};

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".catalog-chatops_history"))
}

/// Runs until the user types `quit`/`exit` or closes the input (Ctrl-D). `:as NAME [ROLE...]`
/// switches the local user, so one terminal can play requester and approver.
pub async fn run(engine: &Engine, mut actor: Actor, banner: &str) -> anyhow::Result<()> {
    println!("{banner}");
    println!(
        "You are {} with roles [{}]. Type {}help, or quit to leave.",
        actor.name,
        actor.roles.join(", "),
        engine.ctx().config.chat.prefix
    );
    // rustyline blocks on the terminal, so it lives on its own thread; it reads the next line
    // only after the previous command has been answered.
    let (line_tx, mut line_rx) = mpsc::channel::<String>(1);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut editor = DefaultEditor::new()?;
        let history = history_path();
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        loop {
            match editor.readline("you> ") {
                Ok(line) => {
                    let trimmed = line.trim();
                    if trimmed.is_empty() {
                        continue;
                    }
                    if matches!(trimmed, "quit" | "exit") {
                        break;
                    }
                    let _ = editor.add_history_entry(trimmed);
                    if line_tx.blocking_send(line).is_err() || ready_rx.recv().is_err() {
                        break;
                    }
                }
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => break,
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        Ok(())
    });
    let conv = StdoutConversation { json: false };
    while let Some(line) = line_rx.recv().await {
        if let Some(rest) = line.trim().strip_prefix(":as") {
            let mut words = rest.split_whitespace();
            match words.next() {
                Some(name) => {
                    // A different local user is a different person: the identity follows.
                    let roles: Vec<String> = words.map(str::to_string).collect();
                    let os_user = actor.source.os_user().unwrap_or_default().to_string();
                    actor = Actor::local(name, &roles, &os_user);
                    println!(
                        "You are now {} with roles [{}].",
                        actor.name,
                        actor.roles.join(", ")
                    );
                }
                None => println!("Usage: :as NAME [ROLE...]"),
            }
            let _ = ready_tx.send(());
            continue;
        }
        handle_addressed(engine, &actor, &line, &conv).await;
        let _ = ready_tx.send(());
    }
    drop(ready_tx);
    match reader.join() {
        Ok(result) => result,
        Err(_) => anyhow::bail!("the console input thread panicked"),
    }
}
