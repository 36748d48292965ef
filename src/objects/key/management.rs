//! Management changes of a key, and a leaked secret's handling: applied, given the
//! next revision, persisted and answered.

use super::*;

pub(super) fn record_result(
    rec: &mut KeyRecord,
    f: impl FnOnce(&mut KeyRecord) -> Result<(), ApiError>,
) -> Outcome {
    match f(rec) {
        Ok(()) => {
            rec.revision += 1;
            (Effects::put(), to_value(&rec))
        }
        Err(e) => (Effects::none(), Err(e)),
    }
}

/// A leaked secret: its key is revoked or deactivated (or left, for `notify`) in
/// this one step, and the webhook goes to the outbox with it. A secret this key
/// no longer accepts is not a live key: nothing changes.
pub(super) fn leak(
    rec: &mut KeyRecord,
    hash: &str,
    action: LeakAction,
    source: Option<String>,
    url: Option<String>,
    now: i64,
) -> Outcome {
    if !rec.accepts_hash(hash, now) {
        let none = Leaked {
            found: false,
            action: None,
            record: None,
        };
        return (Effects::none(), to_value(&none));
    }
    let applied = match (action, rec.status) {
        (LeakAction::Revoke, AdminStatus::Revoked)
        | (LeakAction::Deactivate, AdminStatus::Revoked) => "none",
        (LeakAction::Revoke, _) => "revoked",
        (LeakAction::Deactivate, AdminStatus::Inactive) => "none",
        (LeakAction::Deactivate, _) => "deactivated",
        (LeakAction::Notify, _) => "notified",
    };
    let (mut fx, reply) = match applied {
        "revoked" => record_result(rec, |r| {
            lifecycle::revoke(r, now);
            Ok(())
        }),
        "deactivated" => record_result(rec, |r| lifecycle::deactivate(r, now)),
        _ => (Effects::none(), to_value(&rec)),
    };
    fx.notices.push(Notice::Webhook {
        event: "key.leaked".into(),
        at: now,
        data: key_data(
            &rec.id,
            &rec.account,
            &rec.prefix,
            &json!({ "source": source, "url": url, "action": applied, "status": rec.effective_status(now) }),
        ),
    });
    let reply = reply.and_then(|_| {
        to_value(&Leaked {
            found: true,
            action: Some(applied.into()),
            record: Some(rec.clone()),
        })
    });
    (fx, reply)
}
