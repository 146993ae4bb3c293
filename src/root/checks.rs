//! Values that are legal but almost surely wrong: a root that expires within days, a key
//! given for another role than the one it was generated for, a GUN that names a tag or has
//! capitals. Each is refused with [`Error::AlmostSurelyWrong`], whose hint names the one flag
//! that insists; when insisted on, the check gives a warning to show instead.
//!
//! Every root operation that takes such values (init now; rotate and renew later) runs the
//! same checks, so an operator learns one flag per mistake.

use crate::error::{Error, Result};
use crate::text::escape_untrusted;
use crate::tuf::model::UtcTime;

/// A root expiring sooner than this many days is almost surely a typo (`1h` for `1y`).
pub const SHORT_EXPIRY_DAYS: i64 = 30;

/// The flag that insists on a root expiring within [`SHORT_EXPIRY_DAYS`].
pub const SHORT_EXPIRY_FLAG: &str = "--allow-short-expiry";
/// The flag that insists on a key given for another role than it was generated for.
pub const ROLE_MISMATCH_FLAG: &str = "--allow-role-mismatch";
/// The flag that insists on a GUN with a tag, a digest or capitals.
pub const UNUSUAL_GUN_FLAG: &str = "--allow-unusual-gun";

/// Which of the checks the operator insisted on (each has its own flag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Insist {
    /// [`SHORT_EXPIRY_FLAG`].
    pub short_expiry: bool,
    /// [`ROLE_MISMATCH_FLAG`].
    pub role_mismatch: bool,
    /// [`UNUSUAL_GUN_FLAG`].
    pub unusual_gun: bool,
}

/// Refused unless `insisted`; a warning when it was.
fn judge(
    insisted: bool,
    detail: String,
    advice: &str,
    flag: &'static str,
) -> Result<Option<String>> {
    if insisted {
        Ok(Some(format!("{detail} ({flag} given)")))
    } else {
        Err(Error::AlmostSurelyWrong {
            detail,
            advice: advice.to_owned(),
            flag,
        })
    }
}

/// A root expiry within [`SHORT_EXPIRY_DAYS`] of `now` (an expiry in the past is refused
/// elsewhere, without a way to insist).
pub fn root_expiry(expires: UtcTime, now: UtcTime, insisted: bool) -> Result<Option<String>> {
    let days = now.days_until(expires);
    if days >= SHORT_EXPIRY_DAYS {
        return Ok(None);
    }
    let when = match days {
        0 => "less than a day".to_string(),
        1 => "1 day".to_string(),
        n => format!("{n} days"),
    };
    judge(
        insisted,
        format!("the root would expire in {when}, at {expires}; clients refuse it after that"),
        "a root is meant to last years (the default --expires is 10y: ten calendar years); check the --expires value",
        SHORT_EXPIRY_FLAG,
    )
}

/// The same check for a root that is about to be exported: a warning only (the draft was made
/// with the expiry insisted on, or time passed).
pub fn root_expiry_warning(expires: UtcTime, now: UtcTime) -> Option<String> {
    let days = now.days_until(expires);
    (days < SHORT_EXPIRY_DAYS).then(|| {
        format!("the root expires in {days} day(s), at {expires}; clients refuse it after that")
    })
}

/// What is unusual about a GUN, if anything: a tag or digest in its last component, or
/// capitals (docker refers to repositories in lower case).
fn gun_oddity(gun: &str) -> Option<String> {
    let last = gun.rsplit('/').next().unwrap_or(gun);
    if last.contains(':') || last.contains('@') {
        let repo = last.split([':', '@']).next().unwrap_or(last);
        return Some(format!(
            "the GUN `{}` ends in a tag or digest; a GUN names the repository without it (`…/{}`), and one root serves every tag",
            escape_untrusted(gun),
            escape_untrusted(repo)
        ));
    }
    if gun.chars().any(|c| c.is_ascii_uppercase()) {
        return Some(format!(
            "the GUN `{}` has capitals; docker names repositories in lower case, so no image would find this root (`{}`)",
            escape_untrusted(gun),
            escape_untrusted(&gun.to_ascii_lowercase())
        ));
    }
    None
}

/// A GUN that names a tag or digest, or has capitals.
pub fn new_gun(gun: &str, insisted: bool) -> Result<Option<String>> {
    match gun_oddity(gun) {
        None => Ok(None),
        Some(detail) => judge(
            insisted,
            detail,
            "give the repository name exactly as `docker trust inspect` and `notary list` will use it",
            UNUSUAL_GUN_FLAG,
        ),
    }
}

/// A key given as `given_as` (`root`, `targets`, `snapshot`) that the inventory records as
/// generated for another role (`key generate --role`).
pub fn key_role(
    uri: &str,
    key_id: &str,
    given_as: &str,
    recorded: Option<&str>,
    insisted: bool,
) -> Result<Option<String>> {
    match recorded {
        Some(role) if role != given_as => judge(
            insisted,
            format!(
                "{uri} (key ID {key_id}) was generated as a {role} key and is given as the {given_as} key"
            ),
            "check the URI (`rootkeeper key list` shows each key's role); a key serves one role",
            ROLE_MISMATCH_FLAG,
        ),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guns_with_tags_or_capitals_are_odd_ports_are_not() {
        for odd in [
            "registry.example.com/app:latest",
            "registry.example.com/app@sha256:00",
            "localhost:5000/app:v1",
            "Registry.example.com/app",
            "registry.example.com/Admin/demo",
        ] {
            assert!(gun_oddity(odd).is_some(), "{odd}");
            assert!(matches!(
                new_gun(odd, false),
                Err(Error::AlmostSurelyWrong {
                    flag: UNUSUAL_GUN_FLAG,
                    ..
                })
            ));
            assert!(new_gun(odd, true).unwrap().is_some());
        }
        for fine in [
            "registry.example.com/admin/demo",
            "localhost:5000/app",
            "docker.io/library/alpine",
        ] {
            assert_eq!(new_gun(fine, false).unwrap(), None, "{fine}");
        }
    }

    #[test]
    fn a_root_for_days_is_refused_unless_insisted() {
        let now = UtcTime::now();
        let soon = now.plus(std::time::Duration::from_secs(3600));
        let err = root_expiry(soon, now, false).unwrap_err().to_string();
        assert!(err.contains("expire in less than a day"), "{err}");
        assert!(root_expiry(soon, now, true).unwrap().is_some());
        assert_eq!(root_expiry(now.plus_years(1), now, false).unwrap(), None);
        assert!(root_expiry_warning(soon, now).is_some());
    }

    #[test]
    fn a_key_of_another_role_is_refused_unless_insisted() {
        assert!(key_role("u", "k", "root", Some("targets"), false).is_err());
        assert!(
            key_role("u", "k", "root", Some("targets"), true)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            key_role("u", "k", "root", Some("root"), false).unwrap(),
            None
        );
        assert_eq!(key_role("u", "k", "root", None, false).unwrap(), None);
    }
}
