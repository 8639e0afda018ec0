//! `pause_during_deploy` in the workflow: right before apply the bot re-checks the runs of those
//! DAGs, pauses the ones whose run only waits on a sensor, and checks again once they are paused
//! (a run that left its sensor meanwhile stops the deploy before anything is applied); when the
//! deploy ends, however it ends, it unpauses exactly the DAGs it paused.
//!
//! What was paused is in the store (`deploy_paused_dags`, written before Airflow is asked), so
//! the unpause does not depend on the process that paused: the workflow's ending path calls
//! [`unpause_after`] once, and whichever process finds a deploy ended or interrupted with DAGs
//! still paused (after a crash: the recovery sweep, the waits watcher of `run`/`serve`) calls
//! [`settle_leftovers`]. Both are safe to repeat: a DAG Airflow confirmed unpaused is done, one
//! whose unpause failed is tried again by the next sweep, and the card says so meanwhile.

use crate::config::TargetConfig;
use crate::context::Ctx;
use crate::conversation::Conversation;
use crate::deploy::dag_runs::{self, Gate, PauseReport, Standing};
use crate::deploy::preflight::Status;
use crate::deploy::step::Step;
use crate::integrations::airflow::PauseChange;
use crate::store::{Deploy, NewAuditEvent, Owner, now_ms};

use super::workflow::{Flow, Workflow};

/// The running runs of `pause_during_deploy` DAGs that do real work (not only waiting sensors):
/// `image_data_refresh · manual__… (task copy_data (BashOperator) is running …)`.
fn busy_refreshes(gate: &Gate, target: &TargetConfig) -> Vec<String> {
    gate.runs
        .iter()
        .filter(|j| j.run.state == "running" && target.pause_during_deploy.contains(&j.run.dag_id))
        .filter_map(|j| match &j.standing {
            Standing::Blocks { reason } => Some(format!(
                "`{}` run {}{}",
                j.run.dag_id,
                j.run.run_id,
                reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )),
            _ => None,
        })
        .collect()
}

impl Workflow<'_> {
    /// Approved, right before apply: the `pause_during_deploy` DAGs whose run waits on its
    /// sensor are paused (and recorded); `Err` is the reply of a deploy that failed here, with
    /// nothing applied (and whatever this call paused unpaused again by the ending path).
    pub(super) async fn pause_before_apply(
        &self,
        d: &Deploy,
        target: &TargetConfig,
        owner: &Owner,
    ) -> Flow<()> {
        if target.pause_during_deploy.is_empty() {
            return Ok(());
        }
        let airflow = &self.ctx.integrations.airflow;
        let gate = dag_runs::evaluate(airflow, target).await;
        if gate.check.status == Status::Unknown {
            let reason = format!(
                "cannot re-check the runs of the pause_during_deploy DAGs before apply ({}); \
                 nothing was applied",
                gate.check.summary
            );
            return Err(self.fail_at(d, Some(Step::Pause), &reason, owner).await);
        }
        let busy = busy_refreshes(&gate, target);
        if !busy.is_empty() && !d.force {
            let reason = format!(
                "{} left its sensor before apply, so pausing it would not make the deploy safe; \
                 nothing was applied. Deploy again when the run is over or waits on its sensor",
                busy.join("; ")
            );
            return Err(self.fail_at(d, Some(Step::Pause), &reason, owner).await);
        }
        if gate.to_pause.is_empty() {
            return Ok(());
        }
        for p in &gate.to_pause {
            // Written before Airflow is asked: a crash right after the request still leaves
            // the DAG on record for the process that recovers the deploy to unpause.
            if let Err(e) = self
                .ctx
                .store
                .record_pause_asked(d.id, &p.dag_id, Some(&p.run_id))
                .await
            {
                return Err(self.store_error(e));
            }
        }
        let ids: Vec<String> = gate.to_pause.iter().map(|p| p.dag_id.clone()).collect();
        let reports = dag_runs::pause_for_deploy(airflow, &ids).await;
        for r in &reports {
            // Only a DAG this deploy may have paused stays on record for the end to unpause: one
            // that was paused already (someone meant it), unknown to Airflow or refused is not.
            let ours = match r.change {
                PauseChange::Changed => Some(true),
                PauseChange::Unchanged | PauseChange::NotFound | PauseChange::Refused { .. } => {
                    Some(false)
                }
                PauseChange::Ignored | PauseChange::Failed { .. } => None,
            };
            if let Err(e) = self
                .ctx
                .store
                .record_pause_answer(d.id, &r.dag_id, ours)
                .await
            {
                return Err(self.store_error(e));
            }
        }
        record(self.ctx, d, &reports, true, &self.event("deploy.pause", d)).await;
        let said: Vec<String> = reports.iter().map(|r| r.describe(true)).collect();
        self.conv
            .post(&format!(
                "⏸️ Deploy #{} before apply: {} (pause_during_deploy: its run waits on its sensor). \
                 The bot unpauses what it paused when the deploy ends, however it ends.",
                d.id,
                said.join("; ")
            ))
            .await;
        self.refresh_card(d.id).await;
        if let Some(bad) = reports.iter().find(|r| !r.holds()) {
            let reason = format!("{}; nothing was applied", bad.describe(true));
            return Err(self.fail_at(d, Some(Step::Pause), &reason, owner).await);
        }
        // Between the check and the pause the sensor may have succeeded and the next task
        // started: only a check after the pause tells (a paused DAG starts no new task).
        let after = dag_runs::evaluate(airflow, target).await;
        if after.check.status == Status::Unknown {
            let reason = format!(
                "cannot re-check the paused DAGs' runs before apply ({}); nothing was applied",
                after.check.summary
            );
            return Err(self.fail_at(d, Some(Step::Pause), &reason, owner).await);
        }
        let busy = busy_refreshes(&after, target);
        if !busy.is_empty() && !d.force {
            let reason = format!(
                "{} left its sensor while it was being paused; nothing was applied. Deploy again \
                 when the run is over or waits on its sensor",
                busy.join("; ")
            );
            return Err(self.fail_at(d, Some(Step::Pause), &reason, owner).await);
        }
        Ok(())
    }
}

/// Journals and audits one pause or unpause round (the card and `!deploy status` read the
/// journal; the audit log keeps each DAG's outcome).
async fn record(
    ctx: &Ctx,
    d: &Deploy,
    reports: &[PauseReport],
    pausing: bool,
    event: &NewAuditEvent,
) {
    let state = if pausing { "paused" } else { "unpaused" };
    let sentences: Vec<String> = reports.iter().map(|r| r.describe(pausing)).collect();
    let detail = serde_json::json!({
        "reason": sentences.join("; "),
        "dags": reports,
    });
    if let Err(e) = ctx
        .store
        .record_step_output(d.id, Step::Pause, state, None, "", now_ms(), &detail)
        .await
    {
        tracing::error!(deploy_id = d.id, error = %e, "cannot journal the pause");
    }
    let outcome = if reports.iter().all(PauseReport::holds) {
        state
    } else {
        "incomplete"
    };
    if let Err(e) = ctx
        .store
        .append_audit(&NewAuditEvent {
            deploy_id: Some(d.id),
            target: Some(d.target.clone()),
            outcome: Some(outcome.into()),
            detail,
            ..event.clone()
        })
        .await
    {
        tracing::error!(deploy_id = d.id, error = %e, "cannot audit the pause");
    }
}

/// Unpauses every DAG deploy `d` paused and has not unpaused yet; the one call of the deploy's
/// ending path (and of [`settle_leftovers`]). Says what it did in `conv` and on the card; an
/// unpause Airflow did not confirm stays pending for the next sweep, and says so loudly.
pub async fn unpause_after(ctx: &Ctx, d: &Deploy, conv: Option<&dyn Conversation>) {
    let pending: Vec<String> = match ctx.store.paused_dags(d.id).await {
        Ok(rows) => rows
            .into_iter()
            .filter(|p| p.unpaused_ms.is_none())
            .map(|p| p.dag_id)
            .collect(),
        Err(e) => {
            tracing::error!(deploy_id = d.id, error = %e, "cannot read the paused DAGs");
            return;
        }
    };
    if pending.is_empty() {
        return;
    }
    let reports = dag_runs::unpause_after_deploy(&ctx.integrations.airflow, &pending).await;
    for r in &reports {
        let error = (!r.holds()).then(|| r.describe(false));
        if let Err(e) = ctx
            .store
            .record_unpause(d.id, &r.dag_id, error.as_deref())
            .await
        {
            tracing::error!(deploy_id = d.id, error = %e, "cannot record the unpause");
        }
    }
    let event = NewAuditEvent {
        kind: "deploy.unpause".into(),
        source: "system".into(),
        actor: "catalog-chatops".into(),
        ..NewAuditEvent::default()
    };
    record(ctx, d, &reports, false, &event).await;
    let said: Vec<String> = reports.iter().map(|r| r.describe(false)).collect();
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.holds())
        .map(|r| r.dag_id.as_str())
        .collect();
    let text = if failed.is_empty() {
        format!(
            "▶️ Deploy #{} ended: {} (paused for its apply).",
            d.id,
            said.join("; ")
        )
    } else {
        let p = &ctx.config.chat.prefix;
        format!(
            "🚨 Deploy #{} ended but {}. The bot tries again on its next sweep; to unpause now: {}.",
            d.id,
            said.join("; "),
            failed
                .iter()
                .map(|id| format!("`{p}dag enable {id}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if failed.is_empty() {
        tracing::info!(deploy_id = d.id, "{text}");
    } else {
        tracing::warn!(deploy_id = d.id, "{text}");
    }
    if let Some(conv) = conv {
        conv.post(&text).await;
        redraw_card(ctx, conv, d.id).await;
    }
}

/// Unpauses what deploys that ended or were interrupted (their process died) left paused: the
/// recovery half of `pause_during_deploy`. Called after every recovery sweep and by the waits
/// watcher of a long-running process, so a restarted bot unpauses by itself.
pub async fn settle_leftovers(ctx: &Ctx, conv: Option<&dyn Conversation>) {
    let ids = match ctx.store.deploys_with_dags_to_unpause().await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = %e, "cannot list the DAGs left paused");
            return;
        }
    };
    for id in ids {
        if let Ok(Some(d)) = ctx.store.get_deploy(id).await {
            unpause_after(ctx, &d, conv).await;
        }
    }
}

/// Redraws deploy `id`'s card in `conv` from the store.
pub(crate) async fn redraw_card(ctx: &Ctx, conv: &dyn Conversation, id: i64) {
    let Ok(Some(d)) = ctx.store.get_deploy(id).await else {
        return;
    };
    let needed = ctx.config.targets.get(&d.target).map_or(1, |t| t.approvals);
    match crate::deploy::card::build(&ctx.store, id, needed).await {
        Ok(Some(mut card)) => {
            if let Some(url) = crate::links::deploy_page(&ctx.config, id) {
                card.lines.push(format!("📄 {url}"));
            }
            conv.deploy_card(&card).await
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(deploy_id = id, error = %e, "cannot build the status card"),
    }
}
