//! What an admin key may reach and hand out (OWASP API1 and API5): only keys of its
//! own account that are no freer than itself — permissions it holds, projects inside
//! its scope, an expiry no later than its own, an IP allowlist inside its own.
//! Keys beyond that do not exist for it (404); creating or patching a key into one
//! is refused (403).

use crate::cidr::Cidr;
use crate::model::{Identity, KeyRecord};
use crate::policy;
use crate::time_fmt::to_rfc3339;

/// The powers of a key, as far as confinement compares them.
#[derive(Debug, Clone, Copy)]
pub struct Powers<'a> {
    pub permissions: &'a [String],
    pub projects: &'a [String],
    pub expires_at: Option<i64>,
    pub ip_allowlist: &'a [String],
}

impl<'a> Powers<'a> {
    pub fn of_key(rec: &'a KeyRecord) -> Self {
        Powers {
            permissions: &rec.permissions,
            projects: &rec.projects,
            expires_at: rec.expires_at,
            ip_allowlist: &rec.ip_allowlist,
        }
    }

    pub fn of_caller(id: &'a Identity) -> Self {
        Powers {
            permissions: &id.permissions,
            projects: &id.projects,
            expires_at: id.expires_at,
            ip_allowlist: &id.ip_allowlist,
        }
    }
}

/// How `target` is freer than `granter`, in words; `None` when it is not.
pub fn excess(granter: &Powers, target: &Powers) -> Option<String> {
    if let Some(p) = target
        .permissions
        .iter()
        .find(|p| !policy::holds(granter.permissions, p))
    {
        return Some(format!("permission '{p}', which this admin key lacks"));
    }
    if !granter.projects.is_empty() {
        if target.projects.is_empty() {
            return Some("access to all projects, beyond this admin key's scope".into());
        }
        if let Some(p) = target
            .projects
            .iter()
            .find(|p| !granter.projects.contains(p))
        {
            return Some(format!("project '{p}', outside this admin key's scope"));
        }
    }
    if let Some(limit) = granter.expires_at {
        match target.expires_at {
            None => {
                return Some(format!(
                    "no expiry, while this admin key expires at {}",
                    to_rfc3339(limit)
                ))
            }
            Some(at) if at > limit => {
                return Some(format!(
                    "an expiry after this admin key's ({})",
                    to_rfc3339(limit)
                ))
            }
            Some(_) => {}
        }
    }
    if !granter.ip_allowlist.is_empty() {
        if target.ip_allowlist.is_empty() {
            return Some("no IP allowlist, while this admin key has one".into());
        }
        let outer: Vec<Cidr> = granter
            .ip_allowlist
            .iter()
            .filter_map(|c| Cidr::parse(c).ok())
            .collect();
        if let Some(c) = target
            .ip_allowlist
            .iter()
            .find(|c| Cidr::parse(c).map_or(true, |inner| !outer.iter().any(|o| inner.within(o))))
        {
            return Some(format!(
                "IP range '{c}', outside this admin key's allowlist"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_800_000_000_000;

    fn s(list: &[&str]) -> Vec<String> {
        list.iter().map(|x| x.to_string()).collect()
    }

    #[derive(Clone)]
    struct Owned {
        permissions: Vec<String>,
        projects: Vec<String>,
        expires_at: Option<i64>,
        ip_allowlist: Vec<String>,
    }

    impl Owned {
        fn powers(&self) -> Powers<'_> {
            Powers {
                permissions: &self.permissions,
                projects: &self.projects,
                expires_at: self.expires_at,
                ip_allowlist: &self.ip_allowlist,
            }
        }
    }

    fn admin() -> Owned {
        Owned {
            permissions: s(&["admin"]),
            projects: s(&["p1", "p2"]),
            expires_at: Some(T),
            ip_allowlist: s(&["10.0.0.0/8", "2001:db8::/32"]),
        }
    }

    /// The admin's own powers, changed by `f`.
    fn target(f: impl Fn(&mut Owned)) -> Owned {
        let mut o = admin();
        f(&mut o);
        o
    }

    #[test]
    fn the_same_or_less_is_within() {
        let check = |t: Owned| excess(&admin().powers(), &t.powers());
        assert_eq!(check(admin()), None);
        assert_eq!(
            check(Owned {
                permissions: s(&["read:all"]),
                projects: s(&["p2"]),
                expires_at: Some(T - 1),
                ip_allowlist: s(&["10.1.0.0/16", "2001:db8:5::1"]),
            }),
            None
        );
    }

    #[test]
    fn each_way_of_being_freer_is_named() {
        let cases: Vec<(Owned, &str)> = vec![
            (
                target(|o| o.permissions.push("license:manage".into())),
                "license:manage",
            ),
            (target(|o| o.projects.clear()), "all projects"),
            (target(|o| o.projects = s(&["p3"])), "project 'p3'"),
            (target(|o| o.expires_at = None), "no expiry"),
            (target(|o| o.expires_at = Some(T + 1)), "an expiry after"),
            (target(|o| o.ip_allowlist.clear()), "no IP allowlist"),
            (
                target(|o| o.ip_allowlist = s(&["11.0.0.0/8"])),
                "'11.0.0.0/8'",
            ),
            (
                target(|o| o.ip_allowlist = s(&["10.0.0.0/7"])),
                "'10.0.0.0/7'",
            ),
        ];
        for (t, word) in cases {
            let why = excess(&admin().powers(), &t.powers()).expect(word);
            assert!(why.contains(word), "{why} lacks {word}");
        }
    }

    #[test]
    fn an_unconfined_admin_reaches_everything_it_holds() {
        let root_like = Owned {
            permissions: s(&["admin"]),
            projects: vec![],
            expires_at: None,
            ip_allowlist: vec![],
        };
        let mut t = root_like.clone();
        t.permissions = s(&["write:all"]);
        assert!(excess(&root_like.powers(), &t.powers()).is_none());
        t.permissions = s(&["admin", "license:manage"]);
        assert!(excess(&root_like.powers(), &t.powers()).is_some());
    }
}
