//! A key's object asks to move near its clients; a key that arrives is audited
//! and indexed to its new object (`placement`).

use super::*;
use crate::request::regions::Region;

fn created_in(home: Option<Region>, cfg: &Config) -> KeyState {
    let mut s = KeyState::empty();
    let create = KeyCommand::Create {
        record: Box::new(rec()),
        home,
    };
    let (fx, r) = apply(&mut s, create, cfg, NOW);
    assert!(r.is_ok());
    assert!(fx.home, "the home is written with the record");
    s
}

fn check_from(region: Region) -> KeyCommand {
    KeyCommand::Check(CheckItem {
        region: Some(region),
        ..item("h1", 1)
    })
}

fn move_to(s: &mut KeyState, cmd: KeyCommand, cfg: &Config, now: i64) -> Option<Region> {
    let a: Admitted = serde_json::from_value(apply(s, cmd, cfg, now).1.unwrap()).unwrap();
    let _ = apply(s, commit(a.reservation, 200), cfg, now);
    a.move_to
}

#[test]
fn a_first_request_from_far_away_asks_to_move_there() {
    let cfg = config(&[]);
    let mut s = created_in(Some(Region::Weur), &cfg);
    assert_eq!(
        move_to(&mut s, check_from(Region::Oc), &cfg, NOW),
        Some(Region::Oc)
    );
    assert_eq!(move_to(&mut s, check_from(Region::Oc), &cfg, NOW + 1), None);
}

#[test]
fn a_key_used_near_home_or_with_moves_off_stays() {
    let cfg = config(&[]);
    let mut s = created_in(Some(Region::Weur), &cfg);
    assert_eq!(move_to(&mut s, check_from(Region::Weur), &cfg, NOW), None);
    let off = config(&[("KEY_MOVE_EVERY_SECONDS", "0")]);
    let mut s = created_in(Some(Region::Weur), &off);
    assert_eq!(move_to(&mut s, check_from(Region::Oc), &off, NOW), None);
}

#[test]
fn a_refused_request_does_not_ask() {
    let cfg = config(&[]);
    let mut s = created_in(Some(Region::Weur), &cfg);
    let wrong = KeyCommand::Check(CheckItem {
        region: Some(Region::Oc),
        ..item("not-the-key", 1)
    });
    let r = apply(&mut s, wrong, &cfg, NOW).1;
    assert!(r.is_err());
    assert_eq!(
        move_to(&mut s, check_from(Region::Oc), &cfg, NOW),
        Some(Region::Oc)
    );
}

#[test]
fn an_arrival_is_audited_and_indexed_to_its_object() {
    let cfg = config(&[]);
    let mut s = created_in(Some(Region::Weur), &cfg);
    let arrived = KeyCommand::Arrived {
        name: "key_1~1".into(),
        region: Some(Region::Oc),
    };
    let (fx, r) = apply(&mut s, arrived, &cfg, NOW);
    assert!(r.is_ok());
    assert!(fx.home);
    assert_eq!(s.placement.home.region, Some(Region::Oc));
    assert_eq!(s.placement.home.moved_at, Some(NOW));
    let audit = fx.notices.iter().find_map(|n| match n {
        Notice::Audit { event } => Some(event),
        _ => None,
    });
    let audit = audit.expect("a move is audited");
    assert_eq!(audit.action, "key.moved");
    assert_eq!(audit.details["from"], "weur");
    assert_eq!(audit.details["to"], "oc");
    let entries: Vec<_> = fx
        .notices
        .iter()
        .filter_map(|n| match n {
            Notice::KvPut { hash, entry, .. } => Some((hash.clone(), entry.object.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        entries,
        vec![("h1".to_string(), Some("key_1~1".to_string()))]
    );
    // Just moved: it stays a while, wherever its requests come from.
    for i in 0..20 {
        assert_eq!(
            move_to(&mut s, check_from(Region::Weur), &cfg, NOW + i),
            None
        );
    }
}

#[test]
fn a_move_is_not_a_command_for_the_core() {
    let cfg = config(&[]);
    let mut s = created_in(Some(Region::Weur), &cfg);
    for cmd in [
        KeyCommand::Export {
            to: "key_1~1".into(),
        },
        KeyCommand::Relocated {
            to: "key_1~2".into(),
        },
        KeyCommand::MoveIn {
            name: "key_1~1".into(),
            region: None,
        },
    ] {
        assert!(apply(&mut s, cmd, &cfg, NOW).1.is_err());
    }
}
