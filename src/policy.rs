//! Who may do what: actions (permission names from interface.md) mapped to roles by the
//! `[permissions]` table. `*` grants everyone; an action that is not listed is denied to all.

use std::collections::BTreeMap;

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
    pub permission: String,
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

/// The permission table, checked by [`Policy::authorize`].
#[derive(Debug, Clone, Default)]
pub struct Policy {
    grants: BTreeMap<String, Vec<String>>,
}

impl Policy {
    pub fn new(grants: BTreeMap<String, Vec<String>>) -> Policy {
        Policy { grants }
    }

    /// The roles granted `permission` (possibly `*`); empty when it is not listed.
    pub fn granted_to(&self, permission: &str) -> &[String] {
        self.grants
            .get(permission)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn allows(&self, actor: &Actor, permission: &str) -> bool {
        self.granted_to(permission)
            .iter()
            .any(|r| r == "*" || actor.roles.iter().any(|have| have == r))
    }

    pub fn authorize(&self, actor: &Actor, permission: &str) -> Result<(), Denial> {
        if self.allows(actor, permission) {
            Ok(())
        } else {
            Err(Denial {
                permission: permission.to_string(),
                granted_to: self.granted_to(permission).to_vec(),
                user_roles: actor.roles.clone(),
            })
        }
    }
}
