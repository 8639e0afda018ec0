//! A Slack user → the bot's roles, through `[slack.roles]`: a key is a user id (`U…`/`W…`), a
//! user group id (`S…`) or a user group handle (`openverse-maintainers`). Group members come from
//! `usergroups.list` + `usergroups.users.list`, cached for [`MEMBERSHIP_TTL`] so that a command
//! costs no extra calls while someone leaving a group stops counting soon. Only mapped groups
//! and users count, and a lookup that fails grants nothing (fail closed).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::api::{Api, ApiError};

/// How long group memberships are reused.
pub const MEMBERSHIP_TTL: Duration = Duration::from_secs(60);

/// Configured group key → the user ids of its members.
type Members = HashMap<String, HashSet<String>>;

pub struct Roles {
    mapping: BTreeMap<String, String>,
    api: Arc<Api>,
    /// The configured groups' members, and when they were read.
    cache: Mutex<Option<(Instant, Members)>>,
}

/// A key that names one user rather than a group.
fn is_user_id(key: &str) -> bool {
    key.starts_with(['U', 'W'])
        && key[1..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl Roles {
    pub fn new(mapping: BTreeMap<String, String>, api: Arc<Api>) -> Roles {
        Roles {
            mapping,
            api,
            cache: Mutex::new(None),
        }
    }

    /// The bot roles of `user`, in the mapping's key order, deduplicated.
    pub async fn of(&self, user: &str) -> Vec<String> {
        let groups = if self.mapping.keys().any(|k| !is_user_id(k)) {
            self.memberships().await
        } else {
            HashMap::new()
        };
        bot_roles(&self.mapping, &groups, user)
    }

    /// The configured groups' members, from the cache while it is fresh.
    async fn memberships(&self) -> Members {
        // Held across the lookup, so concurrent commands wait for one refresh instead of each
        // making their own.
        let mut cache = self.cache.lock().await;
        if let Some((at, groups)) = cache.as_ref()
            && at.elapsed() < MEMBERSHIP_TTL
        {
            return groups.clone();
        }
        match self.read_groups().await {
            Ok(groups) => {
                *cache = Some((Instant::now(), groups.clone()));
                groups
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the Slack user groups; they grant no roles until they can be read");
                *cache = None;
                HashMap::new()
            }
        }
    }

    async fn read_groups(&self) -> Result<Members, ApiError> {
        let all = self.api.user_groups().await?;
        let mut out = HashMap::new();
        for key in self.mapping.keys().filter(|k| !is_user_id(k)) {
            let Some((id, _)) = all.iter().find(|(id, handle)| id == key || handle == key) else {
                tracing::warn!(
                    group = %key,
                    "[slack.roles] names a user group that does not exist (or is disabled); it grants nothing"
                );
                continue;
            };
            let members = self.api.group_members(id).await?;
            out.insert(key.clone(), members.into_iter().collect());
        }
        Ok(out)
    }
}

/// The roles `user` gets from `mapping`, given the configured groups' members.
fn bot_roles(mapping: &BTreeMap<String, String>, groups: &Members, user: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (key, role) in mapping {
        let member = if is_user_id(key) {
            key == user
        } else {
            groups.get(key).is_some_and(|m| m.contains(user))
        };
        if member && !out.contains(role) {
            out.push(role.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_group_members_get_mapped_roles_and_nobody_else() {
        let mapping: BTreeMap<String, String> = [
            ("openverse-maintainers", "core-maintainer"),
            ("S0TRIAGE", "triage"),
            ("U0ALICE", "core-maintainer"),
            ("missing-group", "admin"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        let groups: Members = [
            ("openverse-maintainers", vec!["U0BOB"]),
            ("S0TRIAGE", vec!["U0BOB", "U0CAROL"]),
        ]
        .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
        .into();
        assert_eq!(bot_roles(&mapping, &groups, "U0ALICE"), ["core-maintainer"]);
        // In key order (ids before handles), each role once.
        assert_eq!(
            bot_roles(&mapping, &groups, "U0BOB"),
            ["triage", "core-maintainer"]
        );
        assert_eq!(bot_roles(&mapping, &groups, "U0CAROL"), ["triage"]);
        assert!(bot_roles(&mapping, &groups, "U0DAVE").is_empty());
        // Without the group lookup only the user ids count.
        assert_eq!(
            bot_roles(&mapping, &HashMap::new(), "U0ALICE"),
            ["core-maintainer"]
        );
        assert!(bot_roles(&mapping, &HashMap::new(), "U0BOB").is_empty());
        assert!(is_user_id("W012AB") && !is_user_id("S012") && !is_user_id("ulrich"));
    }
}
