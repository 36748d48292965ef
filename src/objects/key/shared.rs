//! Sharing detection inside a key's object (`key::sharing`): each admitted
//! request's network and country are counted; a suspicion is audited and sent as
//! `key.shared_suspected` (once per hour), and with `SHARING_ACTION=deactivate`
//! the key is deactivated in the same step (its next request is 401
//! `key_inactive`; the index and trail say so).

use super::*;
use crate::key::sharing::{Action, Sharing};

pub(super) fn see(
    rec: &mut KeyRecord,
    sharing: &mut Sharing,
    cfg: &Config,
    ip: Option<&str>,
    country: Option<&str>,
    now: i64,
    fx: &mut Effects,
) {
    let (changed, suspicion) = sharing.see(ip, country, cfg.sharing_networks_per_hour, now);
    fx.sharing |= changed;
    let Some(s) = suspicion else { return };
    let deactivate = cfg.sharing_action == Action::Deactivate && rec.status == AdminStatus::Active;
    let details = json!({
        "window_start": to_rfc3339(s.window_start),
        "networks": s.networks,
        "countries": s.countries.len(),
        "country_list": s.countries,
        "new_country": s.new_country,
        "threshold": s.threshold,
        "action": if deactivate { "deactivated" } else { "notified" },
    });
    announce(
        fx,
        rec,
        cfg,
        now,
        alerts::Alert {
            event: "key.shared_suspected",
            details,
        },
    );
    if deactivate && lifecycle::deactivate(rec, now).is_ok() {
        rec.revision += 1;
        fx.record = Change::Put;
        let mut audit = event(
            rec,
            cfg,
            now,
            "key.deactivated",
            json!({ "reason": "shared_suspected" }),
        );
        audit.actor = "keyward".into();
        fx.notices.push(Notice::IndexSync {
            row: IndexRow::of(rec),
            event: Some(audit),
        });
    }
}
