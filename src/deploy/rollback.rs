//! `!deploy rollback <target>`: a deploy, through the whole workflow, of the version before the
//! newest successful one.

use crate::reply::{Outcome, Reply};
use crate::version::Version;

use super::workflow::Workflow;

impl Workflow<'_> {
    /// `!deploy rollback <target>`: deploys the version before the newest successful one.
    pub async fn rollback(&self, target_name: &str) -> Reply {
        let succeeded = match self.ctx.store.succeeded_deploys(target_name, 50).await {
            Ok(s) => s,
            Err(e) => return self.store_error(e),
        };
        let Some(current) = succeeded.first() else {
            return Reply::new(
                Outcome::Blocked,
                format!(
                    "No successful deploy of {target_name} is recorded, so there is nothing to roll back to."
                ),
            );
        };
        let Some(previous) = succeeded.iter().find(|d| d.version != current.version) else {
            return Reply::new(
                Outcome::Blocked,
                format!(
                    "Only {} {} was ever deployed successfully; there is no earlier version to roll back to.",
                    target_name, current.version
                ),
            );
        };
        let version = match Version::parse(&previous.version) {
            Ok(v) => v,
            Err(e) => {
                return Reply::new(
                    Outcome::Failed,
                    format!("The stored version is not valid: {e}"),
                );
            }
        };
        self.conv
            .post(&format!(
                "↩️ Rolling back {target_name} from {} (deploy #{}) to {} (deploy #{}).",
                current.version, current.id, previous.version, previous.id
            ))
            .await;
        self.start(target_name, &version, false, None).await
    }
}
