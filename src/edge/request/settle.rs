//! Compensating, after the answer: the settlement that commits or releases an
//! admitted request's reserved credits and completes its log row; the account's
//! credits given back when the request is not charged or one side refused it.
//! Each rides its object's lane: with the next admission's call to that object,
//! or alone after `SETTLE_LINGER_MS`; none delays the answer.

use crate::config::Config;
use crate::edge::js::rpc::{self, background, Object, To};
use crate::edge::js::runtime::now_ms;
use crate::edge::js::task;
use crate::key::identity::Identity;
use crate::limits::admission::LimitState;
use crate::limits::reservation::Settlement;
use crate::objects::account::AccountCommand;
use crate::objects::key::{KeyCommand, Notice};
use serde_json::Value;
use worker::{console_error, Context, Env};

/// A request the key's and the account's objects both admitted: its credits are
/// reserved in both until `settle` reports what the client got.
pub struct Admission {
    pub identity: Identity,
    pub key_id: String,
    pub reservation: u64,
    pub account: String,
    /// When and what the account's object took (given back if not charged).
    pub account_charge: Option<(i64, u64)>,
    /// The slice of the account-wide limits it was taken from here
    /// (`account_leased`), and its cost: settled here without a call.
    pub account_lease: Option<(u64, u64)>,
    pub limit: Option<LimitState>,
    pub started: i64,
    /// The budget lease it was admitted from in this isolate (`leased`): its
    /// `reservation` is its row there, settled here without a call.
    pub lease: Option<u64>,
    /// A child key's ancestors and their reservations (`Carve`): settled alike.
    pub parents: Vec<(String, u64)>,
}

/// Gives back what the account's object took for a request that is not charged.
pub fn refund(ctx: &Context, env: &Env, cfg: &Config, account: &str, at: i64, cost: u64) {
    let cmd = AccountCommand::Refund { at, cost };
    let to = To::Account(account.to_string());
    background(ctx, env, cfg.settle_linger_ms, to, cmd);
}

/// A webhook the account's object decided on (its `credits.low`), queued in the
/// outbox of the key whose request crossed the mark, after the answer.
pub fn announce(ctx: &Context, env: &Env, key_id: &str, event: &str, data: Value) {
    let notice = Notice::Webhook {
        event: event.to_string(),
        at: now_ms(),
        data,
    };
    let cmd = KeyCommand::Enqueue {
        notices: vec![notice],
    };
    let (env, id) = (env.clone(), key_id.to_string());
    task::wait_until(ctx, async move {
        if let Err(e) = rpc::ask::<Value>(&env, Object::Key(&id), &cmd).await {
            console_error!("{id}: webhook not queued: {e:?}");
        }
    });
}

/// The settlement rides the key's lane. A settlement lost with the isolate (at
/// most those of the requests it answered in its last `SETTLE_LINGER_MS`, plus
/// one call in flight) leaves its reservation to the key's alarm: released, not
/// charged, its row `abandoned` (README: "Object calls").
pub fn queue(ctx: &Context, env: &Env, cfg: &Config, key_id: &str, s: Settlement) {
    let cmd = KeyCommand::Settle { items: vec![s] };
    let to = To::Key(key_id.to_string());
    background(ctx, env, cfg.settle_linger_ms, to, cmd);
}

/// After the answer: commits the request's reservation (charged per `CHARGE_ON`)
/// or releases it, and completes its log row. `origin_status` is `None` when the
/// origin never answered. A request not charged gives the account's credits back.
pub fn settle(
    ctx: &Context,
    env: &Env,
    cfg: &Config,
    a: &Admission,
    origin_status: Option<u16>,
    status: u16,
    duration_ms: u32,
) {
    let charged = cfg.charge_on.charges(origin_status);
    if !charged {
        if let Some((at, cost)) = a.account_charge {
            refund(ctx, env, cfg, &a.account, at, cost);
        }
    }
    if let Some((lease, cost)) = a.account_lease {
        super::account_leased::settle(ctx, env, &a.account, lease, cost, charged);
    }
    let s = Settlement {
        id: a.reservation,
        origin_status,
        status,
        code: None,
        duration_ms,
    };
    for (parent, reservation) in &a.parents {
        let one = Settlement {
            id: *reservation,
            ..s.clone()
        };
        queue(ctx, env, cfg, parent, one);
    }
    if let Some(lease) = a.lease {
        if !super::leased::settle(ctx, env, cfg, &a.key_id, lease, &s) {
            console_error!("key {}: lease {lease} lost row {}", a.key_id, a.reservation);
        }
        return;
    }
    queue(ctx, env, cfg, &a.key_id, s);
}
