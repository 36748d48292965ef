//! Faults on demand, for tests only (`TEST_FAULTS=true`, refused in production): a
//! request carrying `X-Keyward-Test-Fault: <target>:<mode>[, …]` has its calls to
//! that target fail at once (`fail`) or go unanswered until their deadline
//! (`stall`). Targets: `key-object`, `account-object`, `ip-guard`, `kv`, `origin`.
//! Like every `X-Keyward-*` header it never reaches the origin.

use crate::error::ApiError;

pub const HEADER: &str = "x-keyward-test-fault";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    KeyObject,
    AccountObject,
    IpGuard,
    Kv,
    Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fails at once, as a call whose object threw.
    Fail,
    /// Sent, then never answered: the deadline decides.
    Stall,
}

/// The faults one request asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults(Vec<(Target, Mode)>);

impl Faults {
    pub fn none() -> Self {
        Faults(Vec::new())
    }

    pub fn of(&self, target: Target) -> Option<Mode> {
        self.0.iter().find(|(t, _)| *t == target).map(|(_, m)| *m)
    }
}

/// The header's value, or 400 naming it.
pub fn parse(value: &str) -> Result<Faults, ApiError> {
    let bad = |what: &str| ApiError::InvalidHeader {
        name: HEADER.into(),
        reason: format!("'{what}' is not <target>:<fail|stall>"),
    };
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (target, mode) = part.split_once(':').ok_or_else(|| bad(part))?;
        let target = match target.trim() {
            "key-object" => Target::KeyObject,
            "account-object" => Target::AccountObject,
            "ip-guard" => Target::IpGuard,
            "kv" => Target::Kv,
            "origin" => Target::Origin,
            _ => return Err(bad(part)),
        };
        let mode = match mode.trim() {
            "fail" => Mode::Fail,
            "stall" => Mode::Stall,
            _ => return Err(bad(part)),
        };
        out.push((target, mode));
    }
    Ok(Faults(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_name_a_target_and_a_mode() {
        let f = parse("key-object:stall, origin:fail").unwrap();
        assert_eq!(f.of(Target::KeyObject), Some(Mode::Stall));
        assert_eq!(f.of(Target::Origin), Some(Mode::Fail));
        assert_eq!(f.of(Target::Kv), None);
        assert_eq!(parse("").unwrap(), Faults::none());
        for bad in ["key-object", "disk:fail", "kv:slow"] {
            assert!(
                matches!(parse(bad), Err(ApiError::InvalidHeader { .. })),
                "{bad}"
            );
        }
    }
}
