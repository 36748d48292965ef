//! What an address's guard object does with each command: counts a failed attempt
//! (and blocks the address past the threshold), or says whether it is blocked;
//! and when its storage can go. Its state is the address's `FailureWindow`.

use crate::limits::failed_attempts::{FailureOutcome, FailureWindow, IpBlockConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpGuardCommand {
    /// Counts one failed attempt.
    Fail,
    /// Whether the bucket is blocked, counting nothing.
    Status,
}

/// What storage must do after a command or the alarm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effects {
    /// Write the window.
    pub save: bool,
    /// Set the alarm that deletes everything once the window and any block are over.
    pub clean_up_at: Option<i64>,
    /// Nothing of this address needs keeping: delete all its storage.
    pub delete_all: bool,
}

/// `keep_calls`: the object counts its calls (`OBJECT_STATS`), so its storage
/// stays for `make scale` to read.
pub fn apply(
    window: &mut FailureWindow,
    cmd: IpGuardCommand,
    cfg: &IpBlockConfig,
    now: i64,
    keep_calls: bool,
) -> (Effects, FailureOutcome) {
    match cmd {
        IpGuardCommand::Fail => {
            let outcome = window.record_failure(cfg, now);
            let fx = Effects {
                save: true,
                clean_up_at: Some(window.idle_at(cfg)),
                delete_all: false,
            };
            (fx, outcome)
        }
        IpGuardCommand::Status => {
            let outcome = FailureOutcome {
                was_blocked: false,
                blocked_until: window.blocked_at(now),
            };
            // Asking about an address never seen leaves nothing behind.
            let fx = Effects {
                delete_all: *window == FailureWindow::default() && !keep_calls,
                ..Effects::default()
            };
            (fx, outcome)
        }
    }
}

/// The alarm: set again while the window or a block lasts, else delete everything.
pub fn wake(window: &FailureWindow, cfg: &IpBlockConfig, now: i64) -> Effects {
    let idle = window.idle_at(cfg);
    if idle > now {
        Effects {
            clean_up_at: Some(idle),
            ..Effects::default()
        }
    } else {
        Effects {
            delete_all: true,
            ..Effects::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: IpBlockConfig = IpBlockConfig {
        threshold: 2,
        window_ms: 1_000,
        cooldown_ms: 5_000,
    };

    #[test]
    fn failures_are_saved_and_cleaned_up_once_idle() {
        let mut w = FailureWindow::default();
        let (fx, out) = apply(&mut w, IpGuardCommand::Fail, &CFG, 0, false);
        assert_eq!(
            (fx.save, fx.clean_up_at, out.blocked_until),
            (true, Some(1_000), None)
        );
        let (fx, out) = apply(&mut w, IpGuardCommand::Fail, &CFG, 10, false);
        assert_eq!(
            (out.blocked_until, fx.clean_up_at),
            (Some(5_010), Some(5_010))
        );
        let (fx, out) = apply(&mut w, IpGuardCommand::Status, &CFG, 20, false);
        assert_eq!((out.blocked_until, fx.delete_all), (Some(5_010), false));
        assert_eq!(wake(&w, &CFG, 100).clean_up_at, Some(5_010));
        assert!(wake(&w, &CFG, 5_010).delete_all);
    }

    #[test]
    fn asking_about_an_unknown_address_keeps_nothing() {
        let mut w = FailureWindow::default();
        let (fx, out) = apply(&mut w, IpGuardCommand::Status, &CFG, 0, false);
        assert!(fx.delete_all && !fx.save && out.blocked_until.is_none());
        let (fx, _) = apply(&mut w, IpGuardCommand::Status, &CFG, 0, true);
        assert!(!fx.delete_all, "counted calls stay for make scale");
    }
}
