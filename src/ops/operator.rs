//! Who runs an operations command, for the records it leaves (a restore's):
//! the name given with `--operator`, else the operating-system user.

use std::ffi::CStr;

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

/// The effective user's name from the password database (`getpwuid_r`),
/// not from the environment.
fn os_user() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to memory owned here and sized as passed;
    // `entry`'s strings point into `buffer`, read before it is dropped.
    let status = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status == 0 && !found.is_null() && !entry.pw_name.is_null() {
        // SAFETY: getpwuid_r succeeded, so pw_name is a NUL-terminated string in `buffer`.
        let name = unsafe { CStr::from_ptr(entry.pw_name) };
        if let Ok(name) = name.to_str() {
            if !name.is_empty() {
                return name.to_owned();
            }
        }
    }
    format!("uid {uid}")
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
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(name, "root");
        }
    }
}
