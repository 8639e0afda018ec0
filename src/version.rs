//! Release versions as typed in chat: `latest`, semver (`v1.2.3`, `0.4.1-rc.1`) or a monorepo
//! timestamp (`2023.07.03.17.52.00`).
//!
//! A version ends up substituted into argv templates, release tags and image tags, so everything
//! accepted here is restricted to `[0-9A-Za-z.-]` and never starts with `-`.

use std::fmt;

/// The longest version accepted, in characters.
const MAX_VERSION_CHARS: usize = 64;
/// The longest semver pre-release part (after the `-`), in characters.
const MAX_PRERELEASE_CHARS: usize = 40;

/// A validated release version; the text is kept exactly as the user typed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Version {
    /// The newest published release, resolved later against GitHub.
    Latest,
    /// `v1.2.3` or `1.2.3`, optionally with `-prerelease`.
    Semver(String),
    /// `YYYY.MM.DD.HH.MM.SS`, the monorepo's release tags.
    Timestamp(String),
}

impl Version {
    /// Validates `s`; the error is the sentence shown to the user.
    pub fn parse(s: &str) -> Result<Version, String> {
        let chars = s.chars().count();
        if chars > MAX_VERSION_CHARS {
            return Err(format!(
                "That version is {chars} characters long; release versions are at most {MAX_VERSION_CHARS}."
            ));
        }
        if s.eq_ignore_ascii_case("latest") {
            return Ok(Version::Latest);
        }
        // Checked before the shapes so that nothing outside the argv-safe charset can slip through
        // a future change to them.
        if s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(not_a_version(s));
        }
        if let Some(fields) = timestamp_fields(s) {
            return check_timestamp(s, fields).map(|()| Version::Timestamp(s.to_owned()));
        }
        check_semver(s).map(|()| Version::Semver(s.to_owned()))
    }

    /// Like [`Version::parse`], and also accepts the version typed as one of its tags: with
    /// `templates` `catalog-{version}` and `rel-{version}` (a target's `release_tag` and
    /// `image_tag`), `catalog-2026.11.30.10.00.00` and `rel-2026.11.30.10.00.00` are the
    /// version `2026.11.30.10.00.00` (interface.md, "Versions typed as tags"). The result is the
    /// bare version, as the templates expect it.
    pub fn parse_tagged(s: &str, templates: &[&str]) -> Result<Version, String> {
        let plain = Version::parse(s);
        if plain.is_ok() {
            return plain;
        }
        for template in templates {
            let Some(inner) = version_in_tag(template, s) else {
                continue;
            };
            return match Version::parse(inner) {
                // `catalog-latest` is no release's tag.
                Ok(Version::Latest) => plain,
                other => other,
            };
        }
        let forms: Vec<String> = templates
            .iter()
            .filter(|t| **t != "{version}")
            .map(|t| crate::command::code(&t.replace("{version}", "<version>")))
            .collect();
        match (plain, forms.is_empty()) {
            (Err(e), false) => Err(format!(
                "{e} A version may also be typed as its tag: {}.",
                forms.join(" or ")
            )),
            (other, _) => other,
        }
    }

    /// The version exactly as typed (`latest` for [`Version::Latest`]).
    pub fn as_str(&self) -> &str {
        match self {
            Version::Latest => "latest",
            Version::Semver(s) | Version::Timestamp(s) => s,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `{version}` part of `tag` under `template` (`catalog-{version}`), when the template has
/// a prefix or suffix and `tag` carries both.
fn version_in_tag<'a>(template: &str, tag: &'a str) -> Option<&'a str> {
    let (prefix, suffix) = template.split_once("{version}")?;
    if prefix.is_empty() && suffix.is_empty() {
        return None;
    }
    tag.strip_prefix(prefix)?
        .strip_suffix(suffix)
        .filter(|v| !v.is_empty())
}

fn not_a_version(s: &str) -> String {
    format!(
        "{} is not a release version: use `v1.2.3` (semver, `v` optional), \
         `2023.07.03.17.52.00` (monorepo release) or `latest`.",
        crate::command::code(s)
    )
}

/// The six numeric fields when `s` has the timestamp shape (4+2+2+2+2+2 digits), else `None`.
fn timestamp_fields(s: &str) -> Option<[u32; 6]> {
    let parts: Vec<&str> = s.split('.').collect();
    let widths = [4, 2, 2, 2, 2, 2];
    if parts.len() != widths.len() {
        return None;
    }
    let mut fields = [0u32; 6];
    for ((part, width), field) in parts.iter().zip(widths).zip(fields.iter_mut()) {
        if part.len() != width || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *field = part.parse().ok()?;
    }
    Some(fields)
}

fn check_timestamp(s: &str, [_, month, day, hour, minute, second]: [u32; 6]) -> Result<(), String> {
    let checks = [
        ("month", month, 1, 12),
        ("day", day, 1, 31),
        ("hour", hour, 0, 23),
        ("minute", minute, 0, 59),
        ("second", second, 0, 59),
    ];
    for (name, value, low, high) in checks {
        if !(low..=high).contains(&value) {
            return Err(format!(
                "{} is not a monorepo release version: the {name} is {value:02}, \
                 expected {low:02} to {high:02} (as in `2023.07.03.17.52.00`).",
                crate::command::code(s)
            ));
        }
    }
    Ok(())
}

fn check_semver(s: &str) -> Result<(), String> {
    let body = s.strip_prefix('v').unwrap_or(s);
    let (core, prerelease) = match body.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (body, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let numeric = |n: &&str| {
        !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n.len() == 1 || !n.starts_with('0'))
    };
    if numbers.len() != 3 || !numbers.iter().all(numeric) {
        return Err(not_a_version(s));
    }
    if let Some(pre) = prerelease {
        let len = pre.chars().count();
        if len == 0 {
            return Err(not_a_version(s));
        }
        if len > MAX_PRERELEASE_CHARS {
            return Err(format!(
                "{} is not a release version: its pre-release part is {len} characters long, \
                 at most {MAX_PRERELEASE_CHARS}.",
                crate::command::code(s)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_latest_semver_and_timestamps_verbatim() {
        assert_eq!(Version::parse("latest"), Ok(Version::Latest));
        assert_eq!(Version::parse("LATEST"), Ok(Version::Latest));
        for s in [
            "v1.2.3",
            "1.2.3",
            "0.4.1",
            "v0.0.0",
            "v10.20.30",
            "v1.2.3-rc.1",
            "1.0.0-alpha-2",
        ] {
            assert_eq!(Version::parse(s), Ok(Version::Semver(s.to_owned())), "{s}");
        }
        for s in [
            "2023.07.03.17.52.00",
            "1999.12.31.23.59.59",
            "2024.01.01.00.00.00",
        ] {
            assert_eq!(
                Version::parse(s),
                Ok(Version::Timestamp(s.to_owned())),
                "{s}"
            );
        }
    }

    #[test]
    fn keeps_the_text_exactly() {
        let v = Version::parse("v1.2.3").unwrap();
        assert_eq!(v.as_str(), "v1.2.3");
        assert_eq!(v.to_string(), "v1.2.3");
        assert_eq!(Version::Latest.to_string(), "latest");
    }

    #[test]
    fn rejects_malformed_semver() {
        for s in [
            "v1.2",
            "1",
            "v1.2.3.4",
            "v01.2.3",
            "1.02.3",
            "1.2.03",
            "V1.2.3",
            "vv1.2.3",
            "v1.2.3-",
            "v1..3",
            "-1.2.3",
            "v1.2.3+build",
            "v1.2.3 ",
            "",
            "v",
            "v-1.2.3",
            "1.2.x",
            "v١.٢.٣",
            "v1.2.3;rm",
            "$(id)",
            "{version}",
            "../1.2.3",
        ] {
            assert!(Version::parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn the_generic_sentence_is_exact() {
        assert_eq!(
            Version::parse("v1.2").unwrap_err(),
            "`v1.2` is not a release version: use `v1.2.3` (semver, `v` optional), \
             `2023.07.03.17.52.00` (monorepo release) or `latest`."
        );
    }

    #[test]
    fn timestamp_fields_are_range_checked() {
        assert_eq!(
            Version::parse("2023.13.03.17.52.00").unwrap_err(),
            "`2023.13.03.17.52.00` is not a monorepo release version: the month is 13, \
             expected 01 to 12 (as in `2023.07.03.17.52.00`)."
        );
        for s in [
            "2023.00.03.17.52.00",
            "2023.07.00.17.52.00",
            "2023.07.32.17.52.00",
            "2023.07.03.24.52.00",
            "2023.07.03.17.60.00",
            "2023.07.03.17.52.60",
        ] {
            assert!(Version::parse(s).is_err(), "{s}");
        }
        // Not the timestamp shape, and not semver either.
        assert!(Version::parse("2023.7.3.17.52.0").is_err());
        assert!(Version::parse("2023.07.03").is_err());
    }

    #[test]
    fn a_version_may_be_typed_as_its_release_or_image_tag() {
        let monorepo = ["catalog-{version}", "rel-{version}"];
        let bare = Version::Timestamp("2026.11.30.10.00.00".into());
        for typed in [
            "2026.11.30.10.00.00",
            "catalog-2026.11.30.10.00.00",
            "rel-2026.11.30.10.00.00",
        ] {
            assert_eq!(
                Version::parse_tagged(typed, &monorepo),
                Ok(bare.clone()),
                "{typed}"
            );
        }
        assert_eq!(
            Version::parse_tagged("latest", &monorepo),
            Ok(Version::Latest)
        );
        // The inner version is checked like any other.
        assert_eq!(
            Version::parse_tagged("rel-2026.13.30.10.00.00", &monorepo).unwrap_err(),
            "`2026.13.30.10.00.00` is not a monorepo release version: the month is 13, \
             expected 01 to 12 (as in `2023.07.03.17.52.00`)."
        );
        assert!(Version::parse_tagged("catalog-latest", &monorepo).is_err());
        assert!(Version::parse_tagged("api-2026.11.30.10.00.00", &monorepo).is_err());
        assert!(Version::parse_tagged("rel-", &monorepo).is_err());
        assert!(Version::parse_tagged("rel-2026.11.30.10.00.00;id", &monorepo).is_err());
        assert_eq!(
            Version::parse_tagged("frontend-1", &monorepo).unwrap_err(),
            "`frontend-1` is not a release version: use `v1.2.3` (semver, `v` optional), \
             `2023.07.03.17.52.00` (monorepo release) or `latest`. A version may also be typed \
             as its tag: `catalog-<version>` or `rel-<version>`."
        );
        // Semver tags without a prefix: nothing more to strip, the sentence stays the same.
        let semver = ["{version}", "{version}"];
        assert_eq!(
            Version::parse_tagged("v1.5.3", &semver),
            Ok(Version::Semver("v1.5.3".into()))
        );
        assert_eq!(
            Version::parse_tagged("v1.2", &semver).unwrap_err(),
            Version::parse("v1.2").unwrap_err()
        );
    }

    #[test]
    fn length_limits() {
        let long = format!("v1.2.3-{}", "a".repeat(41));
        assert_eq!(
            Version::parse(&long).unwrap_err(),
            format!(
                "`{long}` is not a release version: its pre-release part is 41 characters long, at most 40."
            )
        );
        assert!(Version::parse(&format!("v1.2.3-{}", "a".repeat(40))).is_ok());
        let huge = format!("1.2.{}", "9".repeat(70));
        assert_eq!(
            Version::parse(&huge).unwrap_err(),
            "That version is 74 characters long; release versions are at most 64."
        );
    }
}
