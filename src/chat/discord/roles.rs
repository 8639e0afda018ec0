//! A member's guild roles → the bot's roles, through `[discord] roles` (keys are guild role names
//! or ids). Only mapped roles count, so creating a guild role with a lucky name grants nothing
//! that the config did not say.

use std::collections::BTreeMap;

/// The bot roles of a member holding `guild_roles` (id, name), in mapping order, deduplicated.
pub fn bot_roles(mapping: &BTreeMap<String, String>, guild_roles: &[(u64, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (id, name) in guild_roles {
        for key in [id.to_string(), name.clone()] {
            if let Some(role) = mapping.get(&key)
                && !out.contains(role)
            {
                out.push(role.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_map_and_nothing_else_counts() {
        let mapping: BTreeMap<String, String> = [
            (
                "Core Maintainers".to_string(),
                "core-maintainer".to_string(),
            ),
            ("77".to_string(), "core-maintainer".to_string()),
            ("Triage".to_string(), "triage".to_string()),
        ]
        .into();
        let member = [
            (77, "Maintainers (old)".to_string()),
            (78, "Core Maintainers".to_string()),
            (79, "core-maintainer".to_string()),
        ];
        assert_eq!(bot_roles(&mapping, &member), vec!["core-maintainer"]);
        assert!(bot_roles(&mapping, &[(1, "Contributors".into())]).is_empty());
        assert!(bot_roles(&mapping, &[]).is_empty());
    }
}
