//! What a button means. A button's id is self-describing (`deploy:approve:7`,
//! `dag:enable:<dag_id>`) and a click becomes the command text the clicker could have typed, so
//! one grammar, one policy and one engine decide everything, and a click works after a restart
//! (its meaning is in the id and the store, never in memory).

/// The command text a button stands for; `None` for an id the bot never issues.
pub fn command_text(prefix: &str, button_id: &str) -> Option<String> {
    let mut parts = button_id.splitn(3, ':');
    let (kind, verb, arg) = (parts.next()?, parts.next()?, parts.next()?);
    let ok_id = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
    match (kind, verb) {
        ("deploy", "approve" | "cancel") if arg.parse::<i64>().is_ok() => {
            Some(format!("{prefix}deploy {verb} {arg}"))
        }
        ("dag", "enable") if ok_id(arg) => Some(format!("{prefix}dag enable {arg} --confirm")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_become_command_text() {
        assert_eq!(
            command_text("!", "deploy:approve:7").as_deref(),
            Some("!deploy approve 7")
        );
        assert_eq!(
            command_text("!", "deploy:cancel:7").as_deref(),
            Some("!deploy cancel 7")
        );
        assert_eq!(
            command_text("!", "dag:enable:image_expiration_workflow").as_deref(),
            Some("!dag enable image_expiration_workflow --confirm")
        );
        assert_eq!(command_text("!", "deploy:approve:7 --force"), None);
        assert_eq!(command_text("!", "dag:enable:a b"), None);
        assert_eq!(command_text("!", "deploy:apply:7"), None);
    }
}
