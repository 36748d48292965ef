//! What an account's Durable Object does with each command, as a pure function of
//! its state (plan, version, ledger of account-wide limits), the command, the
//! configuration and the time. The object loads, calls `apply`, performs the
//! returned effects (plan and meta rows, ledger buckets, index and audit writes)
//! and answers — or, for a read of its index or trail, runs the query `apply`
//! names. Its alarm's decisions are here too: which keys a plan change reaches
//! next, and when the object must wake.

pub mod balance;
mod command;
mod lending;
pub mod reporting;
#[cfg(test)]
mod tests;

pub use command::{
    AccountAdmitted, AccountCommand, AccountCredits, AccountView, Declared, EventsPage, KeyIds,
};
pub use lending::BudgetGrant;

use crate::admin::listing::ListQuery;
use crate::config::Config;
use crate::error::ApiError;
use crate::key::record::IndexRow;
use crate::limits::admission;
use crate::limits::budget_lease::LeaseBook;
use crate::limits::ledger::{Ledger, StoredBucket, ACCOUNT_LEVELS};
use crate::limits::plan_lease;
use crate::limits::plans::{PlanCopy, Propagation};
use crate::notify::audit::{AuditEvent, EventQuery, REFUSAL_WINDOW_MS};
use crate::objects::batch::Answer;
use crate::request::regions::Region;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How long a deleted key's tombstone keeps a late copy (an outbox retry) from
/// bringing its row back. Outbox retries end within minutes.
pub const TOMBSTONE_MS: i64 = 7 * 86_400_000;

/// Retry delay of an alarm step that could not finish (the directory did not
/// answer).
pub const RETRY_MS: i64 = 1_000;

/// What the object keeps besides the plan and ledger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(default)]
    pub plan_version: u64,
    /// The account's name, once a command named it.
    #[serde(default)]
    pub account: Option<String>,
    /// Whether the directory lists this account (cross-account views).
    #[serde(default)]
    pub registered: bool,
    #[serde(default)]
    pub propagation: Option<Propagation>,
    /// Where the account's clients are, as declared (`PUT /accounts/{id}`).
    #[serde(default)]
    pub region: Option<Region>,
    /// The end of the latest plan lease granted (`limits::plan_lease`).
    #[serde(default)]
    pub lease_until: i64,
    /// Slices of the account-wide limits lent out (`lending`).
    #[serde(default)]
    pub book: LeaseBook,
    #[serde(default)]
    pub last_lease: u64,
    /// The account's balance, shared by its keys (`balance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<crate::limits::credits::Credits>,
    /// How far its usage reports got (`reporting`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting: Option<reporting::Reporting>,
}

pub struct AccountState {
    pub plan: Option<String>,
    pub ledger: Ledger,
    pub meta: Meta,
    /// Answers of credit changes, by `Idempotency-Key` (`admin::replays`).
    pub replays: crate::admin::replays::Replays,
}

impl AccountState {
    pub fn empty() -> Self {
        AccountState {
            plan: None,
            ledger: Ledger::new(&ACCOUNT_LEVELS),
            meta: Meta::default(),
            replays: Default::default(),
        }
    }
}

/// A write to the account's index of keys or its audit trail, performed by the
/// object's store (each one atomic there).
#[derive(Debug, Clone, PartialEq)]
pub enum IndexWrite {
    Claim {
        row: IndexRow,
        cap: Option<u64>,
    },
    Sync {
        row: IndexRow,
    },
    /// The key's row goes; a tombstone dated `at` keeps late copies out.
    Remove {
        id: String,
        at: i64,
    },
    Record {
        event: AuditEvent,
    },
    /// Recorded when fewer than `per_hour` from `bucket` were in the last hour.
    Refused {
        event: AuditEvent,
        bucket: String,
        per_hour: u32,
    },
}

/// What storage must do after a command.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// The plan row, when it changed.
    pub plan: Option<String>,
    pub meta: bool,
    pub buckets: Vec<StoredBucket>,
    pub prune: Vec<(usize, i64)>,
    pub index: Vec<IndexWrite>,
    /// The kept answers of credit changes changed.
    pub replays: bool,
}

/// What the object answers: now, after performing the effects (the answer of a
/// write is the store's), or from a query of its index or trail.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Now(Result<Value, ApiError>),
    /// The answer of the last index write (a claim's refusal, a refusal recorded
    /// or not).
    FromStore,
    List {
        query: Box<ListQuery>,
        after: Option<String>,
        now: i64,
    },
    Events {
        query: Box<EventQuery>,
    },
}

/// What the index knew when a plan change was recorded: how many keys, and the
/// newest (later keys are born with the new plan).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyCount {
    pub total: u64,
    pub newest: Option<String>,
}

/// Whether a command writes: the directory and the alarm hear of it afterwards.
pub fn writes(cmd: &AccountCommand) -> bool {
    !matches!(
        cmd,
        AccountCommand::Get
            | AccountCommand::Admit { .. }
            | AccountCommand::Batch { .. }
            | AccountCommand::Refund { .. }
            | AccountCommand::Report { .. }
            | AccountCommand::List { .. }
            | AccountCommand::Events { .. }
    )
}

/// Whether `apply` needs the index's `KeyCount` for `cmd`.
pub fn needs_key_count(cmd: &AccountCommand) -> bool {
    matches!(cmd, AccountCommand::SetPlan { .. })
}

/// The account a command is about, when it names one.
fn named_account(cmd: &AccountCommand) -> Option<&str> {
    match cmd {
        AccountCommand::SetPlan { event, .. }
        | AccountCommand::Record { event }
        | AccountCommand::Refused { event, .. } => Some(&event.account),
        AccountCommand::Claim { row, .. } | AccountCommand::Sync { row, .. } => Some(&row.account),
        AccountCommand::Remove { event, .. } => event.as_ref().map(|e| e.account.as_str()),
        _ => None,
    }
}

pub fn apply(
    state: &mut AccountState,
    cmd: AccountCommand,
    cfg: &Config,
    now: i64,
    keys: &KeyCount,
) -> (Effects, Reply) {
    let mut fx = Effects::default();
    if state.meta.account.is_none() {
        if let Some(name) = named_account(&cmd) {
            state.meta.account = Some(name.to_string());
            fx.meta = true;
        }
    }
    let reply = match cmd {
        AccountCommand::Get => Reply::Now(to_value(&view(state))),
        AccountCommand::SetPlan {
            plan,
            region,
            event,
        } => {
            let from = cfg.plan(state.plan.as_deref()).0;
            state.plan = Some(plan.clone());
            state.meta.plan_version += 1;
            state.meta.propagation = Some(Propagation::start(
                state.meta.plan_version,
                keys.newest.clone(),
                keys.total,
            ));
            let mut event = event;
            if let Some(d) = event.details.as_object_mut() {
                d.insert("from".into(), json!(from));
                d.insert("keys".into(), json!(keys.total));
                d.insert("version".into(), json!(state.meta.plan_version));
                if let Declared::To(r) = region {
                    d.insert("region".into(), json!(r));
                }
            }
            if let Declared::To(r) = region {
                state.meta.region = r;
            }
            // Every plan lease and every slice lent under the old plan ends first.
            let wait =
                plan_lease::wait_ms(state.meta.lease_until, now).max(state.meta.book.wait_ms(now));
            fx.plan = Some(plan);
            fx.meta = true;
            fx.index.push(IndexWrite::Record { event });
            Reply::Now(to_value(&AccountView {
                leases_wait_ms: wait,
                ..view(state)
            }))
        }
        one @ (AccountCommand::Admit { .. }
        | AccountCommand::Refund { .. }
        | AccountCommand::Report { .. }) => {
            let answer = admit(state, cfg, now, vec![one], &mut fx).pop();
            Reply::Now(answer.unwrap_or_else(|| Err(ApiError::internal("no answer"))))
        }
        AccountCommand::Batch { items } => {
            let answers: Vec<Answer> = admit(state, cfg, now, items, &mut fx)
                .into_iter()
                .map(Answer::from)
                .collect();
            Reply::Now(to_value(&answers))
        }
        AccountCommand::Credits {
            set,
            change,
            idempotency_key,
            event,
        } => Reply::Now(balance::change(
            state,
            set,
            change,
            idempotency_key,
            event,
            now,
            &mut fx,
        )),
        AccountCommand::Claim { row, cap } => {
            fx.index.push(IndexWrite::Claim { row, cap });
            Reply::FromStore
        }
        AccountCommand::Sync { row, event } => {
            fx.index.push(IndexWrite::Sync { row });
            fx.index
                .extend(event.map(|event| IndexWrite::Record { event }));
            Reply::Now(Ok(Value::Null))
        }
        AccountCommand::Remove { id, event } => {
            fx.index.push(IndexWrite::Remove { id, at: now });
            fx.index
                .extend(event.map(|event| IndexWrite::Record { event }));
            Reply::Now(Ok(Value::Null))
        }
        AccountCommand::Record { event } => {
            fx.index.push(IndexWrite::Record { event });
            Reply::Now(Ok(Value::Null))
        }
        AccountCommand::Refused { event, bucket } => {
            let per_hour = cfg.audit_refusals_per_hour;
            fx.index.push(IndexWrite::Refused {
                event,
                bucket,
                per_hour,
            });
            Reply::FromStore
        }
        AccountCommand::List { query, after, now } => Reply::List {
            query: Box::new(query),
            after,
            now,
        },
        AccountCommand::Events { query } => Reply::Events {
            query: Box::new(query),
        },
    };
    (fx, reply)
}

/// Whether a claim may stand, from what the index holds: `holder`, another key
/// holding the alias asked for; `known`, whether the key already has its row;
/// `held`, how many keys the account holds. A new key past `cap` is refused.
pub fn claim(
    row: &IndexRow,
    holder: Option<&str>,
    known: bool,
    held: u64,
    cap: Option<u64>,
) -> Result<(), ApiError> {
    if let (Some(alias), Some(_)) = (&row.alias, holder) {
        return Err(ApiError::Conflict {
            reason: format!(
                "alias '{alias}' is already used in account '{}'",
                row.account
            ),
        });
    }
    match cap {
        Some(cap) if !known && held >= cap => Err(ApiError::Conflict {
            reason: format!(
                "account '{}' already holds {held} keys, the most MAX_KEYS_PER_ACCOUNT allows",
                row.account
            ),
        }),
        _ => Ok(()),
    }
}

fn view(state: &AccountState) -> AccountView {
    let p = state.meta.propagation.as_ref();
    AccountView {
        plan: state.plan.clone(),
        plan_version: state.meta.plan_version,
        keys_total: p.map_or(0, |p| p.keys_total),
        keys_updated: p.map_or(0, |p| p.keys_updated),
        region: state.meta.region,
        leases_wait_ms: 0,
        credits: state.meta.credits.clone(),
    }
}

/// Row 15 and its give-backs, in order: admissions (lending a slice where asked),
/// refunds and lease reports, their buckets in `fx` (one write per bucket). Each admission's answer carries the plan version
/// every admission is checked against; a refusal here refuses the request
/// whatever the key's plan copy.
fn admit(
    state: &mut AccountState,
    cfg: &Config,
    now: i64,
    items: Vec<AccountCommand>,
    fx: &mut Effects,
) -> Vec<Result<Value, ApiError>> {
    let (name, plan) = cfg.plan(state.plan.as_deref());
    let copy = PlanCopy {
        plan: name,
        version: state.meta.plan_version,
    };
    let account_limits = plan.map(|p| p.account_limits).unwrap_or_default();
    balance::refill(state, now, fx);
    // Without account-wide limits or a balance the answer is the plan alone: leased.
    let plain = account_limits == Default::default() && state.meta.credits.is_none();
    let lease_until = (plain && cfg.plan_lease_ms > 0).then(|| {
        let (until, renewed) = plan_lease::grant(state.meta.lease_until, now, cfg.plan_lease_ms);
        if renewed {
            state.meta.lease_until = until;
            fx.meta = true;
        }
        until
    });
    // Slices past their end without a report count at their end from now on.
    let (mut buckets, lapsed) = state.meta.book.lapse(&mut state.ledger, now);
    fx.meta |= lapsed;
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        answers.push(match item {
            AccountCommand::Admit { cost, want, free } => {
                let (mut one, touched) =
                    admission::admit_accounts(&mut state.ledger, &account_limits, now, &[cost]);
                buckets.extend(touched);
                one.pop()
                    .unwrap_or_else(|| Err(ApiError::internal("no answer")))
                    .and_then(|c| {
                        // Row 16 after row 15: a refusal gives the limits back.
                        let spent = if free { 0 } else { cost };
                        let credits_low = match balance::spend(state, cfg, spent, now, fx) {
                            Ok(low) => low,
                            Err(e) => {
                                if c.charged > 0 {
                                    buckets.extend(state.ledger.remove(now, c.charged));
                                }
                                return Err(e);
                            }
                        };
                        let held = state.meta.credits.is_some() && !free;
                        // A balance is spent here request by request: never lent.
                        let budget = if held {
                            None
                        } else {
                            lending::lend(state, &account_limits, cfg, want, now, &mut buckets)
                        };
                        fx.meta |= budget.is_some();
                        to_value(&AccountAdmitted {
                            at: now,
                            limit: c.limit,
                            // Given back (limits and balance) when not charged.
                            charged: if held { cost } else { c.charged },
                            plan: copy.clone(),
                            lease_until,
                            budget,
                            credits_low,
                        })
                    })
            }
            AccountCommand::Refund { at, cost } => {
                buckets.extend(state.ledger.remove(at, cost));
                balance::refund(state, at, cost, fx);
                Ok(Value::Null)
            }
            AccountCommand::Report { lease, charged } => {
                let settled = state
                    .meta
                    .book
                    .settle(&mut state.ledger, lease, charged, now);
                fx.meta |= settled.is_some();
                buckets.extend(settled.unwrap_or_default());
                Ok(Value::Null)
            }
            _ => Err(ApiError::internal(
                "a batch carries admissions, refunds and reports only",
            )),
        });
    }
    if !buckets.is_empty() {
        fx.prune = state.ledger.prune(now);
        fx.buckets = admission::last_per_bucket(buckets);
    }
    answers
}

/// The next keys a plan change reaches: those after its progress and no newer
/// than the change, at most `batch` (the store reads them), and the plan they take.
pub fn next_plan_batch(state: &AccountState, cfg: &Config) -> Option<(Propagation, PlanCopy)> {
    if cfg.test_hold_plan_updates {
        return None;
    }
    let p = state.meta.propagation.as_ref().filter(|p| !p.complete())?;
    let copy = PlanCopy {
        plan: cfg.plan(state.plan.as_deref()).0,
        version: p.version,
    };
    Some((p.clone(), copy))
}

/// Records how far the change of `version` got with `ids` (`ok`: whether each
/// took it). A newer change meanwhile starts over on its own: nothing recorded.
pub fn record_plan_batch(
    state: &mut AccountState,
    version: u64,
    ids: &[String],
    ok: &[bool],
    batch: usize,
) -> bool {
    match state
        .meta
        .propagation
        .as_mut()
        .filter(|p| p.version == version)
    {
        Some(p) => {
            p.record(ids, ok, batch);
            true
        }
        None => false,
    }
}

/// When the alarm must run next: now while a plan change is carried to the keys,
/// soon while the directory does not list the account yet, else when the oldest
/// event, tombstone or refusal count falls out of its retention.
pub fn next_alarm(state: &AccountState, cfg: &Config, now: i64, oldest: &Oldest) -> Option<i64> {
    let propagating = state
        .meta
        .propagation
        .as_ref()
        .is_some_and(|p| !p.complete())
        && !cfg.test_hold_plan_updates;
    if propagating {
        return Some(now);
    }
    if !state.meta.registered && state.meta.account.is_some() {
        return Some(now + RETRY_MS);
    }
    // The next usage report (an account not yet reporting starts now).
    let report = match (&state.meta.reporting, cfg.usage_report) {
        (_, None) => None,
        (None, Some(_)) => state.meta.account.as_ref().map(|_| now),
        (Some(r), Some(_)) => reporting::due_at(r, cfg),
    };
    [
        oldest.event.map(|at| at + cfg.audit_retention_ms),
        oldest.tombstone.map(|at| at + TOMBSTONE_MS),
        oldest.refusal.map(|at| at + REFUSAL_WINDOW_MS),
        oldest.outbox,
        report,
    ]
    .into_iter()
    .flatten()
    .min()
}

/// The oldest rows the alarm's retention removes, as the store reads them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Oldest {
    pub event: Option<i64>,
    pub tombstone: Option<i64>,
    pub refusal: Option<i64>,
    /// When the earliest webhook in the outbox is due.
    pub outbox: Option<i64>,
}

/// What the alarm's retention removes at `now`: events at or before the first
/// time, tombstones at or before the second, refusal counts at or before the third.
pub fn retention(cfg: &Config, now: i64) -> (i64, i64, i64) {
    (
        now - cfg.audit_retention_ms,
        now - TOMBSTONE_MS,
        now - REFUSAL_WINDOW_MS,
    )
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}
