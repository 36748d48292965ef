//! What a key tells the world: alerts and suspensions in the audit trail and as
//! webhooks, the end of a suspension, and when the object must wake next.

use super::*;

/// Ends a suspension that is over, recording the resume.
pub(super) fn wake(rec: &mut KeyRecord, cfg: &Config, now: i64) -> Outcome {
    match rec.suspended_until {
        Some(until) if until <= now => {
            rec.suspended_until = None;
            let mut fx = Effects::put();
            let details = json!({ "suspended_until": to_rfc3339(until) });
            fx.notices.push(Notice::Audit {
                event: event(rec, cfg, now, "key.resumed", details),
            });
            (fx, Ok(Value::Null))
        }
        Some(until) => (
            Effects {
                alarm_at: Some(until),
                ..Effects::none()
            },
            Ok(Value::Null),
        ),
        None => (Effects::none(), Ok(Value::Null)),
    }
}

/// An alert, in the audit trail and as a webhook (via the outbox).
pub(super) fn announce(fx: &mut Effects, rec: &KeyRecord, cfg: &Config, now: i64, alert: Alert) {
    let mut audit = event(rec, cfg, now, alert.event, alert.details.clone());
    audit.actor = "keyward".into();
    fx.notices.push(Notice::Audit { event: audit });
    fx.notices.push(Notice::Webhook {
        event: alert.event.into(),
        at: now,
        data: key_data(&rec.id, &rec.account, &rec.prefix, &alert.details),
    });
}

/// When the key's object must wake next for an alert (an expiry notice or the
/// lapse); none for a revoked key.
pub fn next_alert_at(rec: &KeyRecord, cfg: &Config) -> Option<i64> {
    if rec.status == AdminStatus::Revoked {
        return None;
    }
    alerts::next_expiry_check(&rec.alerts, rec.expires_at, &cfg.alerts.expiry_notice_ms)
}

pub(super) fn event(
    rec: &KeyRecord,
    cfg: &Config,
    now: i64,
    action: &str,
    details: Value,
) -> AuditEvent {
    AuditEvent {
        at: now,
        actor: "circuit_breaker".into(),
        action: action.into(),
        key_id: Some(rec.id.clone()),
        account: rec.account.clone(),
        details,
        scope: Some(Powers::of(rec, cfg.plan(rec.plan.as_deref()).1)),
    }
}
