//! Who may do what: [`Permission`]s (their config names are interface.md's) mapped to roles by
//! the `[permissions]` table. `*` grants everyone; a permission that is not listed is denied to
//! all.

use std::collections::BTreeMap;
use std::fmt;

/// Everything a command can need. The enum, not its name, is what code compares, so a typo is a
/// compile error; the name appears only in config files, denials and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Look: status, history, locks, help, the audit log.
    Read,
    /// A deploy's preflight alone, which changes nothing.
    DeployCheck,
    /// Start a deploy (or a rollback).
    DeployStart,
    /// Approve a plan, and settle an interrupted deploy.
    DeployApprove,
    /// Cancel someone else's deploy (the requester may always cancel their own).
    DeployCancel,
    /// Deploy despite active DAG runs.
    DeployForce,
    /// Unpause a DAG.
    DagEnable,
    /// Run a catalog DB migration.
    MigrationsApply,
}

impl Permission {
    /// Every permission, in the order of interface.md (and of messages that list them).
    pub const ALL: [Permission; 8] = [
        Permission::Read,
        Permission::DeployCheck,
        Permission::DeployStart,
        Permission::DeployApprove,
        Permission::DeployCancel,
        Permission::DeployForce,
        Permission::DagEnable,
        Permission::MigrationsApply,
    ];

    /// The name in the `[permissions]` table, in denials and in the audit log.
    pub const fn name(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::DeployCheck => "deploy.check",
            Permission::DeployStart => "deploy.start",
            Permission::DeployApprove => "deploy.approve",
            Permission::DeployCancel => "deploy.cancel",
            Permission::DeployForce => "deploy.force",
            Permission::DagEnable => "dag.enable",
            Permission::MigrationsApply => "migrations.apply",
        }
    }

    /// The permission a config name stands for; names are exact (lowercase, dotted).
    pub fn from_name(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The roles granted this permission when the config has no `[permissions]` section
    /// (interface.md's example): looking and checking for everyone, the rest for maintainers.
    pub const fn default_roles(self) -> &'static [&'static str] {
        match self {
            Permission::Read | Permission::DeployCheck => &["*"],
            Permission::DeployStart
            | Permission::DeployApprove
            | Permission::DeployCancel
            | Permission::DeployForce
            | Permission::DagEnable
            | Permission::MigrationsApply => &["core-maintainer"],
        }
    }

    /// The `[permissions]` table used when the config has none.
    pub fn default_grants() -> BTreeMap<String, Vec<String>> {
        Permission::ALL
            .into_iter()
            .map(|p| {
                let roles = p.default_roles().iter().map(|r| r.to_string()).collect();
                (p.name().to_string(), roles)
            })
            .collect()
    }

    /// A command needing only this permission changes nothing anywhere: it reads the store or
    /// upstream services. The engine audits such a command once, after it ran.
    pub const fn changes_nothing(self) -> bool {
        matches!(self, Permission::Read | Permission::DeployCheck)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an actor's identity comes from; local identities are claimed, not proven, and the audit
/// log records the OS user beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `exec` or `console` on the bot's host.
    Local { os_user: String },
    /// A chat platform that authenticated the user (Discord).
    Chat { platform: &'static str },
    /// The bot itself (watchers).
    System,
}

impl Source {
    pub fn name(&self) -> &'static str {
        match self {
            Source::Local { .. } => "local",
            Source::Chat { platform } => platform,
            Source::System => "system",
        }
    }

    pub fn os_user(&self) -> Option<&str> {
        match self {
            Source::Local { os_user } => Some(os_user),
            _ => None,
        }
    }
}

/// The person (or the bot) behind a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Who this is, stably: `discord:<user id>` or `local:<name>`. Rules about *people* (no
    /// self-approval, distinct approvers, the requester may cancel) compare this, because a
    /// Discord username can be changed at will and so must not decide who someone is.
    pub id: String,
    /// What to call them in messages and the audit log.
    pub name: String,
    pub roles: Vec<String>,
    pub source: Source,
}

impl Actor {
    /// A shell user: the name is claimed (`--user`), and trusted through `[local] allowed_roles`,
    /// so the name is the identity.
    pub fn local(name: &str, roles: &[String], os_user: &str) -> Actor {
        Actor {
            id: format!("local:{name}"),
            name: name.to_string(),
            roles: roles.to_vec(),
            source: Source::Local {
                os_user: os_user.to_string(),
            },
        }
    }

    /// A user a chat platform authenticated: `user_id` is the platform's immutable id (the
    /// Discord snowflake), `name` the changeable name shown in messages.
    pub fn chat(platform: &'static str, user_id: &str, name: &str, roles: &[String]) -> Actor {
        Actor {
            id: format!("{platform}:{user_id}"),
            name: name.to_string(),
            roles: roles.to_vec(),
            source: Source::Chat { platform },
        }
    }
}

/// Why an action was refused; `Display` is the sentence the user sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub permission: Permission,
    pub granted_to: Vec<String>,
    pub user_roles: Vec<String>,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| {
            v.iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "You need the `{}` permission", self.permission)?;
        if self.granted_to.is_empty() {
            write!(f, ", which no role is granted")?;
        } else {
            write!(f, ", granted to {}", list(&self.granted_to))?;
        }
        if self.user_roles.is_empty() {
            write!(f, "; you have no roles.")
        } else {
            write!(f, "; your roles are {}.", list(&self.user_roles))
        }
    }
}

/// The permission table, checked by [`Policy::authorize`]. It is keyed by config name because it
/// comes from the config, which has already refused names that are no [`Permission`].
#[derive(Debug, Clone, Default)]
pub struct Policy {
    grants: BTreeMap<String, Vec<String>>,
}

impl Policy {
    pub fn new(grants: BTreeMap<String, Vec<String>>) -> Policy {
        Policy { grants }
    }

    /// The roles granted `permission` (possibly `*`); empty when it is not listed.
    pub fn granted_to(&self, permission: Permission) -> &[String] {
        self.grants
            .get(permission.name())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn allows(&self, actor: &Actor, permission: Permission) -> bool {
        self.granted_to(permission)
            .iter()
            .any(|r| r == "*" || actor.roles.iter().any(|have| have == r))
    }

    pub fn authorize(&self, actor: &Actor, permission: Permission) -> Result<(), Denial> {
        if self.allows(actor, permission) {
            Ok(())
        } else {
            Err(Denial {
                permission,
                granted_to: self.granted_to(permission).to_vec(),
                user_roles: actor.roles.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        for p in Permission::ALL {
            assert_eq!(Permission::from_name(p.name()), Some(p));
            assert_eq!(p.to_string(), p.name());
        }
        let mut names: Vec<&str> = Permission::ALL.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Permission::ALL.len());
        assert_eq!(Permission::from_name("Deploy.Start"), None);
        assert_eq!(Permission::from_name("deploy"), None);
    }

    #[test]
    fn defaults_let_everyone_look_and_maintainers_act() {
        let grants = Permission::default_grants();
        assert_eq!(grants.len(), 8);
        assert_eq!(grants["read"], ["*"]);
        assert_eq!(grants["deploy.check"], ["*"]);
        assert_eq!(grants["deploy.force"], ["core-maintainer"]);
        let policy = Policy::new(grants);
        let nobody = Actor::local("n", &[], "n");
        let maintainer = Actor::local("m", &["core-maintainer".to_string()], "m");
        for p in Permission::ALL {
            assert_eq!(policy.allows(&nobody, p), p.changes_nothing(), "{p}");
            assert!(policy.allows(&maintainer, p), "{p}");
        }
    }

    #[test]
    fn a_denial_names_the_permission_and_who_has_it() {
        let policy = Policy::new(Permission::default_grants());
        let denial = policy
            .authorize(
                &Actor::local("n", &["triage".to_string()], "n"),
                Permission::DagEnable,
            )
            .unwrap_err();
        assert_eq!(
            denial.to_string(),
            "You need the `dag.enable` permission, granted to `core-maintainer`; your roles are \
             `triage`."
        );
        let empty = Policy::new(BTreeMap::new());
        let denial = empty
            .authorize(&Actor::local("n", &[], "n"), Permission::Read)
            .unwrap_err();
        assert_eq!(
            denial.to_string(),
            "You need the `read` permission, which no role is granted; you have no roles."
        );
    }
}
