//! One handler per feature. Each takes the [`Ctx`] the engine hands down, the actor and the
//! parsed command, may post progress to the conversation, and returns the [`Reply`] that closes
//! the command. A new command is a variant in `command`, a row in its tables, an arm in
//! [`dispatch`] and (usually) a file here.

pub mod airflow;
mod audit;
pub mod dag_sync;
pub mod dags;
mod deploy;
mod help;
mod locks;
pub mod migrations;

use crate::command::Command;
use crate::context::Ctx;
use crate::conversation::Conversation;
use crate::deploy::workflow::Workflow;
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
            when_idle,
            within,
        } => {
            let wait = when_idle.then(|| {
                within
                    .unwrap_or(crate::command::Within::DEFAULT)
                    .as_duration()
            });
            Ok(flow.start(target, version, *force, wait).await)
        }
        Command::DeployApprove { id } => Ok(flow.approve(*id).await),
        Command::DeployCancel { id } => Ok(flow.cancel(*id).await),
        Command::DeployResolve { id, resolution } => Ok(flow.resolve(*id, *resolution).await),
        Command::DeployRollback { target } => Ok(flow.rollback(target).await),
        Command::AirflowStatus => Ok(airflow::status(ctx).await),
        Command::DagsNew { days } => dags::new_dags(ctx, *days).await,
        Command::DagEnable { dag_id, confirm } => dags::enable(ctx, dag_id, *confirm).await,
        Command::DagSyncStatus => Ok(dag_sync::status(ctx).await),
        Command::MigrationsStatus => migrations::status(ctx).await,
        Command::MigrationsApply { name } => migrations::apply(ctx, actor, name).await,
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
