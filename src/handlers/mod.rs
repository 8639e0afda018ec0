//! One handler per feature. Each takes the engine's [`Ctx`], the actor and the parsed command,
//! may post progress to the conversation, and returns the [`Reply`] that closes the command.

mod audit;
mod deploy;
mod help;
mod locks;

use crate::chat::Conversation;
use crate::command::Command;
use crate::deploy::workflow::Workflow;
use crate::engine::Ctx;
use crate::policy::Actor;
use crate::reply::{Outcome, Reply};

pub async fn dispatch(ctx: &Ctx, actor: &Actor, cmd: &Command, conv: &dyn Conversation) -> Reply {
    let flow = Workflow { ctx, actor, conv };
    let result = match cmd {
        Command::Help { topic } => Ok(help::help(ctx, topic.as_deref())),
        Command::Audit { limit } => audit::recent(ctx, *limit).await,
        Command::Locks => locks::list(ctx).await,
        Command::DeployStatus { id } => deploy::status(ctx, *id).await,
        Command::DeployHistory { target } => deploy::history(ctx, target.as_deref()).await,
        Command::DeployCheck { target, version } => Ok(deploy::check(ctx, target, version).await),
        Command::Deploy {
            target,
            version,
            force,
        } => Ok(flow.start(target, version, *force).await),
        Command::DeployApprove { id } => Ok(flow.approve(*id).await),
        Command::DeployCancel { id } => Ok(flow.cancel(*id).await),
        Command::DeployResolve { id, resolution } => Ok(flow.resolve(*id, *resolution).await),
        Command::DeployRollback { target } => Ok(flow.rollback(target).await),
        other => Ok(not_available(ctx, other)),
    };
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "store error in handler");
        Reply::new(
            Outcome::Failed,
            format!(
                "The store could not be read ({}); try again.",
                ctx.redactor.redact(&e.to_string())
            ),
        )
    })
}

/// Commands whose feature is not part of this build say so plainly, and change nothing.
fn not_available(ctx: &Ctx, cmd: &Command) -> Reply {
    Reply::new(
        Outcome::Blocked,
        format!(
            "`{}{}` is not available in this version of the bot yet; nothing was done.",
            ctx.config.chat.prefix,
            cmd.name().replace('.', " ")
        ),
    )
}
