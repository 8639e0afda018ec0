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
