//! Who runs an operations command, for the records it leaves (a restore's):
//! the name given with `--operator`, else the operating-system user.

/// The longest operator name kept.
const MAX_CHARS: usize = 100;

/// `given` when there is one (trimmed, at most 100 characters), else the
/// name of the effective operating-system user, else `uid <n>`.
pub fn operator(given: Option<&str>) -> anyhow::Result<String> {
    match given.map(str::trim) {
        Some("") => anyhow::bail!("--operator must not be empty"),
        Some(name) if name.chars().count() > MAX_CHARS || name.chars().any(char::is_control) => {
            anyhow::bail!(
                "--operator must be at most {MAX_CHARS} characters, without control characters"
            )
        }
        Some(name) => Ok(name.to_owned()),
        None => Ok(os_user()),
    }
}

/// The effective user's name from the password database, not from the
/// environment.
fn os_user() -> String {
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) if !user.name.is_empty() => user.name,
        _ => format!("uid {uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_name_wins_and_is_checked() {
        assert_eq!(operator(Some("  Jeanne  ")).unwrap(), "Jeanne");
        assert!(operator(Some(" ")).is_err());
        assert!(operator(Some(&"x".repeat(101))).is_err());
        assert!(operator(Some("a\nb")).is_err());
    }

    #[test]
    fn without_a_name_the_os_user_is_named() {
        let name = operator(None).unwrap();
        assert!(!name.is_empty());
        if nix::unistd::geteuid().is_root() {
            assert_eq!(name, "root");
        }
    }
}
