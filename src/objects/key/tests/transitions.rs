use super::*;

#[test]
fn a_leak_revokes_deactivates_or_only_announces() {
    let leak = |action| KeyCommand::Leak {
        hash: "h1".into(),
        action,
        source: Some("pastebin".into()),
        url: None,
    };
    for (action, status, applied) in [
        (LeakAction::Revoke, AdminStatus::Revoked, "revoked"),
        (LeakAction::Deactivate, AdminStatus::Inactive, "deactivated"),
        (LeakAction::Notify, AdminStatus::Active, "notified"),
    ] {
        let mut s = state(rec());
        let (fx, res) = apply(&mut s, leak(action), &config(&[]), NOW);
        let res = res.unwrap();
        assert_eq!(
            (res["found"].as_bool(), res["action"].as_str()),
            (Some(true), Some(applied))
        );
        assert_eq!(s.record.as_ref().unwrap().status, status);
        let Some(Notice::Webhook { event, data, .. }) = fx.notices.first() else {
            panic!("no webhook");
        };
        assert_eq!(
            (event.as_str(), data["prefix"].as_str()),
            ("key.leaked", Some("kw_live_aaaaaa"))
        );
        assert!(!data.to_string().contains("h1"), "never the hash or secret");
    }
    // A secret the key no longer takes is no live key: nothing happens.
    let mut s = state(rec());
    let _ = apply(&mut s, rotate_to("h2"), &config(&[]), NOW);
    let (fx, res) = apply(&mut s, leak(LeakAction::Revoke), &config(&[]), NOW);
    assert_eq!(res.unwrap(), json!({ "found": false }));
    assert!(fx.notices.is_empty() && fx.record == Change::None);
    assert_eq!(s.record.as_ref().unwrap().status, AdminStatus::Active);
}

#[test]
fn copies_are_queued_with_or_without_a_record() {
    let cfg = config(&[]);
    let notices = vec![Notice::KvRemove { hash: "h0".into() }];
    for record in [Some(rec()), None] {
        let mut s = KeyState {
            record,
            ..KeyState::empty()
        };
        let (fx, res) = apply(
            &mut s,
            KeyCommand::Enqueue {
                notices: notices.clone(),
            },
            &cfg,
            NOW,
        );
        assert_eq!(res, Ok(Value::Null));
        assert_eq!((fx.record, fx.notices), (Change::None, notices.clone()));
    }
}

#[test]
fn management_changes_bump_the_revision_and_uses_do_not() {
    let cfg = config(&[]);
    let mut s = state(rec());
    let r0 = s.record.as_ref().unwrap().revision;
    let _ = apply(&mut s, check_cmd("h1"), &cfg, NOW);
    assert_eq!(s.record.as_ref().unwrap().revision, r0);
    let _ = apply(&mut s, KeyCommand::Deactivate, &cfg, NOW);
    let _ = apply(&mut s, rotate_to("h2"), &cfg, NOW);
    assert_eq!(s.record.as_ref().unwrap().revision, r0 + 2);
}

#[test]
fn locate_answers_for_live_secrets_only_and_stores_nothing() {
    let cfg = config(&[]);
    let locate = |h: &str| KeyCommand::Locate { hash: h.into() };
    // Nothing was ever created here (a made-up key's locator): unknown.
    let (fx, r) = apply(&mut KeyState::empty(), locate("h1"), &cfg, NOW);
    assert!(fx.is_empty());
    assert_eq!(r, Err(ApiError::InvalidKey));
    let mut s = state(rec());
    let (fx, r) = apply(&mut s, locate("h1"), &cfg, NOW);
    assert!(fx.is_empty(), "a read");
    let found: HashEntry = serde_json::from_value(r.unwrap()).unwrap();
    assert_eq!(
        (found.id.as_str(), found.account.as_str()),
        ("key_1", "acme")
    );
    assert_eq!(
        apply(&mut s, locate("h9"), &cfg, NOW).1,
        Err(ApiError::InvalidKey)
    );
    // Rotated with a grace period: both secrets lead here until it ends.
    let rotate = KeyCommand::Rotate {
        hash: "h2".into(),
        prefix: "p".into(),
        grace_ms: 1_000,
    };
    let _ = apply(&mut s, rotate, &cfg, NOW);
    assert!(apply(&mut s, locate("h2"), &cfg, NOW + 1).1.is_ok());
    assert!(apply(&mut s, locate("h1"), &cfg, NOW + 1).1.is_ok());
    assert_eq!(
        apply(&mut s, locate("h1"), &cfg, NOW + 1_001).1,
        Err(ApiError::InvalidKey)
    );
    // Revoked: still located, so the key's own row (4) answers, not row 3.
    let _ = apply(&mut s, KeyCommand::Revoke, &cfg, NOW + 2_000);
    assert!(apply(&mut s, locate("h2"), &cfg, NOW + 2_001).1.is_ok());
}

#[test]
fn lifecycle_commands_and_delete() {
    let cfg = config(&[]);
    let mut s = state(rec());
    let _ = apply(&mut s, KeyCommand::Revoke, &cfg, NOW);
    assert_eq!(s.record.as_ref().unwrap().status, AdminStatus::Revoked);
    let (fx, res) = apply(&mut s, KeyCommand::Activate, &cfg, NOW);
    assert_eq!(fx.record, Change::None);
    assert!(matches!(res, Err(ApiError::Conflict { .. })));
    let mut s = state(rec());
    let (_, res) = apply(&mut s, rotate_to("h2"), &cfg, NOW);
    assert_eq!(res.unwrap()["old_hash"], "h1");
    assert_eq!(
        apply(&mut s, KeyCommand::Delete, &cfg, NOW).0.record,
        Change::Erase
    );
    assert!(s.record.is_none());
    let mut s = state(rec());
    assert!(use_key(&mut s, &cfg, NOW).is_ok());
    assert!(matches!(
        apply(&mut s, KeyCommand::Delete, &cfg, NOW).1,
        Err(ApiError::Conflict { .. })
    ));
}
