//! Handle names: `<prefix>/<suffix>`, compared ASCII case-insensitively (CNRI `case_sensitive = "no"`).

/// The prefix-record namespace.
pub const NA_PREFIX: &str = "0.NA/";

/// The prefix part of a handle (`21.T999` of `21.T999/abc`), or `None` without a `/`.
pub fn prefix_of(handle: &str) -> Option<&str> {
    handle
        .split_once('/')
        .map(|(p, _)| p)
        .filter(|p| !p.is_empty())
}

/// The prefix handle that governs creation under `prefix`: `0.NA/<prefix>`.
pub fn prefix_handle(prefix: &str) -> String {
    format!("{NA_PREFIX}{prefix}")
}

/// For a handle in the `0.NA` namespace, the prefix it describes (`0.NA/21.T999` → `21.T999`).
pub fn described_prefix(handle: &str) -> Option<&str> {
    let head = handle.get(..NA_PREFIX.len())?;
    if head.eq_ignore_ascii_case(NA_PREFIX) {
        handle.get(NA_PREFIX.len()..).filter(|p| !p.is_empty())
    } else {
        None
    }
}

/// The prefix under which a request for `handle` is homed: `0.NA/X` records live with prefix `X`.
pub fn homing_prefix(handle: &str) -> Option<&str> {
    described_prefix(handle).or_else(|| prefix_of(handle))
}

/// Whether `handle` is syntactically acceptable: non-empty prefix and suffix, no control
/// characters, at most 2048 bytes.
pub fn is_valid(handle: &str) -> bool {
    handle.len() <= crate::constants::MAX_HANDLE_LENGTH
        && handle
            .split_once('/')
            .is_some_and(|(p, s)| !p.is_empty() && !s.is_empty())
        && !handle.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(prefix_of("21.T999/abc/def"), Some("21.T999"));
        assert_eq!(prefix_of("nohandle"), None);
        assert_eq!(prefix_of("/x"), None);
        assert_eq!(described_prefix("0.na/21.T999"), Some("21.T999"));
        assert_eq!(described_prefix("21.T999/x"), None);
        assert_eq!(homing_prefix("0.NA/21.T999"), Some("21.T999"));
        assert_eq!(homing_prefix("21.T999/x"), Some("21.T999"));
        assert_eq!(prefix_handle("21.T999"), "0.NA/21.T999");
        assert!(is_valid("21.T999/x") && !is_valid("21.T999/") && !is_valid("a/b\n"));
    }
}
