//! The one error type. Its first variants are the rows of SPEC §3's check table, in
//! table order; the rest are the management API's. Status, code, message and headers
//! are decided here and nowhere else.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiError {
    // --- check table, rows 1..16 ---
    HttpsRequired,
    IpBlocked {
        retry_after: u64,
    },
    InvalidKey,
    KeyRevoked,
    KeyInactive,
    KeyExpired,
    WrongEnvironment,
    UpgradeRequired,
    IpNotAllowed,
    MissingPermission {
        permission: String,
    },
    ProjectForbidden {
        project: String,
    },
    KeySuspended {
        retry_after: u64,
    },
    RateLimited {
        retry_after: u64,
    },
    QuotaExceeded {
        window: String,
        retry_after: Option<u64>,
    },
    PlanRateLimited {
        window: String,
        retry_after: u64,
    },
    /// Row 16: the key's or its account's balance cannot pay the request;
    /// `retry_after`, the seconds until a refill, when one is due.
    CreditsExhausted {
        retry_after: Option<u64>,
    },
    // --- management API ---
    /// 400: bad input; `field` names what is wrong.
    InvalidField {
        field: String,
        reason: String,
    },
    /// 400: the body is not a JSON object.
    InvalidBody {
        reason: String,
    },
    /// 400: a path that origins could read differently (see `canonical_path`).
    InvalidPath {
        reason: String,
    },
    /// 400: a header keyward must read is not what it may be.
    InvalidHeader {
        name: String,
        reason: String,
    },
    /// 401: a signed request (GitHub's secret scanning) whose signature does not verify.
    BadSignature,
    /// 403: an admin key asked for something outside its reach.
    Forbidden {
        reason: String,
    },
    /// 404: no such key, account or route.
    NotFound {
        what: String,
    },
    /// 405; `allow` lists the methods the path serves, when it serves any.
    MethodNotAllowed {
        allow: Vec<String>,
    },
    /// 409: the request conflicts with the key's state (revoked, used, alias taken).
    Conflict {
        reason: String,
    },
    /// 413: a management body over the limit, refused before it is parsed.
    PayloadTooLarge {
        limit: usize,
    },
    /// 502: the origin could not be reached.
    OriginUnreachable,
    /// 504: the origin did not answer within `ORIGIN_TIMEOUT_SECONDS`.
    OriginTimeout,
    /// 503: KV or a Durable Object could not answer; the request is refused, never
    /// admitted (fail closed).
    Unavailable {
        retry_after: u64,
    },
    /// 500: the deployment's configuration is wrong; says which variable (never a
    /// secret's value) on every request until it is fixed.
    Misconfigured {
        reason: String,
    },
    /// 500: storage or runtime failure; the detail is logged, not shown.
    Internal {
        detail: String,
    },
}

impl ApiError {
    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::Internal {
            detail: detail.to_string(),
        }
    }

    /// Position in the check table (1-based); management errors rank after it.
    /// When two independent lookups each find a failure, the lower row is answered.
    pub fn row(&self) -> u8 {
        use ApiError::*;
        match self {
            HttpsRequired => 1,
            IpBlocked { .. } => 2,
            InvalidKey => 3,
            KeyRevoked => 4,
            KeyInactive => 5,
            KeyExpired => 6,
            WrongEnvironment => 7,
            UpgradeRequired => 8,
            IpNotAllowed => 9,
            MissingPermission { .. } => 10,
            ProjectForbidden { .. } => 11,
            KeySuspended { .. } => 12,
            RateLimited { .. } => 13,
            QuotaExceeded { .. } => 14,
            PlanRateLimited { .. } => 15,
            CreditsExhausted { .. } => 16,
            _ => 100,
        }
    }

    pub fn status(&self) -> u16 {
        use ApiError::*;
        match self {
            HttpsRequired | IpBlocked { .. } => 403,
            InvalidKey | KeyRevoked | KeyInactive | KeyExpired | WrongEnvironment => 401,
            UpgradeRequired | IpNotAllowed | MissingPermission { .. } | ProjectForbidden { .. } => {
                403
            }
            KeySuspended { .. }
            | RateLimited { .. }
            | QuotaExceeded { .. }
            | PlanRateLimited { .. } => 429,
            CreditsExhausted { .. } => 402,
            InvalidField { .. }
            | InvalidBody { .. }
            | InvalidPath { .. }
            | InvalidHeader { .. } => 400,
            BadSignature => 401,
            Forbidden { .. } => 403,
            NotFound { .. } => 404,
            MethodNotAllowed { .. } => 405,
            Conflict { .. } => 409,
            PayloadTooLarge { .. } => 413,
            OriginUnreachable => 502,
            OriginTimeout => 504,
            Unavailable { .. } => 503,
            Misconfigured { .. } => 500,
            Internal { .. } => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            HttpsRequired => "https_required",
            IpBlocked { .. } => "ip_blocked",
            InvalidKey => "invalid_key",
            KeyRevoked => "key_revoked",
            KeyInactive => "key_inactive",
            KeyExpired => "key_expired",
            WrongEnvironment => "wrong_environment",
            UpgradeRequired => "upgrade_required",
            IpNotAllowed => "ip_not_allowed",
            MissingPermission { .. } => "insufficient_permissions",
            ProjectForbidden { .. } => "project_forbidden",
            KeySuspended { .. } => "key_suspended",
            RateLimited { .. } => "rate_limited",
            QuotaExceeded { .. } => "quota_exceeded",
            PlanRateLimited { .. } => "plan_rate_limited",
            CreditsExhausted { .. } => "credits_exhausted",
            InvalidField { .. }
            | InvalidBody { .. }
            | InvalidPath { .. }
            | InvalidHeader { .. } => "invalid_request",
            BadSignature => "invalid_signature",
            Forbidden { .. } => "forbidden",
            NotFound { .. } => "not_found",
            MethodNotAllowed { .. } => "method_not_allowed",
            Conflict { .. } => "conflict",
            PayloadTooLarge { .. } => "payload_too_large",
            OriginUnreachable => "origin_unreachable",
            OriginTimeout => "origin_timeout",
            Unavailable { .. } => "unavailable",
            Misconfigured { .. } => "configuration_error",
            Internal { .. } => "internal_error",
        }
    }

    pub fn message(&self) -> String {
        use ApiError::*;
        match self {
            HttpsRequired => "HTTPS required".into(),
            IpBlocked { .. } => "IP temporarily blocked".into(),
            InvalidKey => "Invalid API Key".into(),
            KeyRevoked => "Revoked API Key".into(),
            KeyInactive => "Inactive API Key".into(),
            KeyExpired => "Expired API Key".into(),
            WrongEnvironment => "API key not valid for this environment".into(),
            UpgradeRequired => "Upgrade required".into(),
            IpNotAllowed => "IP address not allowed for this key".into(),
            MissingPermission { permission } => {
                format!("Forbidden: missing permission '{permission}'")
            }
            ProjectForbidden { project } => format!("Forbidden: no access to project '{project}'"),
            KeySuspended { .. } => "API key suspended".into(),
            RateLimited { .. } => "Rate limit exceeded".into(),
            QuotaExceeded { window, .. } => format!("Rate limit exceeded: quota {window}"),
            PlanRateLimited { window, .. } => {
                format!("exceeded the {window} rate limit on your subscription")
            }
            CreditsExhausted { .. } => "Credits exhausted".into(),
            InvalidField { field, reason } => format!("invalid field '{field}': {reason}"),
            InvalidBody { reason } => format!("invalid request body: {reason}"),
            InvalidPath { reason } => format!("invalid request path: {reason}"),
            InvalidHeader { name, reason } => format!("invalid header '{name}': {reason}"),
            BadSignature => "Invalid signature".into(),
            Forbidden { reason } => format!("Forbidden: {reason}"),
            NotFound { what } => format!("{what} not found"),
            MethodNotAllowed { .. } => "Method not allowed".into(),
            Conflict { reason } => reason.clone(),
            PayloadTooLarge { limit } => {
                format!("Request body too large: at most {limit} bytes")
            }
            OriginUnreachable => "Origin unreachable".into(),
            OriginTimeout => "Origin did not answer in time".into(),
            Unavailable { .. } => "Service temporarily unavailable".into(),
            Misconfigured { reason } => format!("keyward is misconfigured: {reason}"),
            Internal { .. } => "Internal error".into(),
        }
    }

    /// Headers the answer carries besides `Content-Type`.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        use ApiError::*;
        match self {
            InvalidKey => vec![("WWW-Authenticate", "Bearer".into())],
            MethodNotAllowed { allow } if !allow.is_empty() => vec![("Allow", allow.join(", "))],
            IpBlocked { retry_after }
            | KeySuspended { retry_after }
            | RateLimited { retry_after }
            | Unavailable { retry_after }
            | PlanRateLimited { retry_after, .. }
            | QuotaExceeded {
                retry_after: Some(retry_after),
                ..
            }
            | CreditsExhausted {
                retry_after: Some(retry_after),
            } => vec![("Retry-After", retry_after.to_string())],
            // keyward could not get an answer: worth retrying soon.
            OriginUnreachable | OriginTimeout => vec![("Retry-After", "1".into())],
            _ => Vec::new(),
        }
    }

    /// The JSON body: `{"error", "code"}`, plus `field` for bad input.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "error": self.message(), "code": self.code() });
        let field = match self {
            ApiError::InvalidField { field, .. } => Some(field.as_str()),
            ApiError::InvalidPath { .. } => Some("path"),
            ApiError::InvalidHeader { name, .. } => Some(name.as_str()),
            _ => None,
        };
        if let (Some(field), Some(obj)) = (field, body.as_object_mut()) {
            obj.insert("field".into(), serde_json::Value::String(field.to_string()));
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_render_exactly() {
        let cases: Vec<(ApiError, u16, &str, &str)> = vec![
            (
                ApiError::HttpsRequired,
                403,
                "HTTPS required",
                "https_required",
            ),
            (
                ApiError::IpBlocked { retry_after: 5 },
                403,
                "IP temporarily blocked",
                "ip_blocked",
            ),
            (ApiError::InvalidKey, 401, "Invalid API Key", "invalid_key"),
            (ApiError::KeyRevoked, 401, "Revoked API Key", "key_revoked"),
            (
                ApiError::KeyInactive,
                401,
                "Inactive API Key",
                "key_inactive",
            ),
            (ApiError::KeyExpired, 401, "Expired API Key", "key_expired"),
            (
                ApiError::WrongEnvironment,
                401,
                "API key not valid for this environment",
                "wrong_environment",
            ),
            (
                ApiError::UpgradeRequired,
                403,
                "Upgrade required",
                "upgrade_required",
            ),
            (
                ApiError::IpNotAllowed,
                403,
                "IP address not allowed for this key",
                "ip_not_allowed",
            ),
            (
                ApiError::MissingPermission {
                    permission: "write:all".into(),
                },
                403,
                "Forbidden: missing permission 'write:all'",
                "insufficient_permissions",
            ),
            (
                ApiError::ProjectForbidden {
                    project: "p9".into(),
                },
                403,
                "Forbidden: no access to project 'p9'",
                "project_forbidden",
            ),
            (
                ApiError::KeySuspended { retry_after: 9 },
                429,
                "API key suspended",
                "key_suspended",
            ),
            (
                ApiError::RateLimited { retry_after: 1 },
                429,
                "Rate limit exceeded",
                "rate_limited",
            ),
            (
                ApiError::QuotaExceeded {
                    window: "daily".into(),
                    retry_after: Some(3),
                },
                429,
                "Rate limit exceeded: quota daily",
                "quota_exceeded",
            ),
            (
                ApiError::PlanRateLimited {
                    window: "per-minute".into(),
                    retry_after: 2,
                },
                429,
                "exceeded the per-minute rate limit on your subscription",
                "plan_rate_limited",
            ),
            (
                ApiError::CreditsExhausted { retry_after: None },
                402,
                "Credits exhausted",
                "credits_exhausted",
            ),
        ];
        for (i, (err, status, msg, code)) in cases.iter().enumerate() {
            assert_eq!(err.row() as usize, i + 1, "{err:?} is out of table order");
            assert_eq!(err.status(), *status);
            assert_eq!(err.message(), *msg);
            assert_eq!(err.code(), *code);
            assert_eq!(err.body()["error"], *msg);
        }
    }

    #[test]
    fn headers_follow_the_table() {
        assert_eq!(
            ApiError::InvalidKey.headers(),
            vec![("WWW-Authenticate", "Bearer".into())]
        );
        assert_eq!(
            ApiError::RateLimited { retry_after: 7 }.headers(),
            vec![("Retry-After", "7".into())]
        );
        let total = ApiError::QuotaExceeded {
            window: "total".into(),
            retry_after: None,
        };
        assert!(total.headers().is_empty());
        assert!(ApiError::KeyRevoked.headers().is_empty());
        assert!(ApiError::CreditsExhausted { retry_after: None }
            .headers()
            .is_empty());
        assert_eq!(
            ApiError::CreditsExhausted {
                retry_after: Some(60)
            }
            .headers(),
            vec![("Retry-After", "60".into())]
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let e = ApiError::field("alias", "already used");
        assert_eq!(e.status(), 400);
        assert_eq!(e.body()["field"], "alias");
        assert_eq!(e.message(), "invalid field 'alias': already used");
    }

    #[test]
    fn the_edge_errors_render_with_their_headers() {
        let e = ApiError::MethodNotAllowed {
            allow: vec!["GET".into(), "PATCH".into()],
        };
        assert_eq!((e.status(), e.code()), (405, "method_not_allowed"));
        assert_eq!(e.headers(), vec![("Allow", "GET, PATCH".into())]);
        let e = ApiError::Unavailable { retry_after: 1 };
        assert_eq!((e.status(), e.code()), (503, "unavailable"));
        assert_eq!(e.headers(), vec![("Retry-After", "1".into())]);
        let e = ApiError::OriginTimeout;
        assert_eq!((e.status(), e.code()), (504, "origin_timeout"));
        assert_eq!(e.headers(), vec![("Retry-After", "1".into())]);
        let e = ApiError::PayloadTooLarge { limit: 65_536 };
        assert_eq!((e.status(), e.code()), (413, "payload_too_large"));
        let e = ApiError::InvalidPath {
            reason: "it contains ';' (path parameters)".into(),
        };
        assert_eq!((e.status(), e.code()), (400, "invalid_request"));
        assert_eq!(e.body()["field"], "path");
    }

    #[test]
    fn survives_the_wire_between_objects() {
        let e = ApiError::MissingPermission {
            permission: "admin".into(),
        };
        let back: ApiError = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
