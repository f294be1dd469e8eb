//! What `plan` checks before any job is created, and the table it prints: the scopes a token
//! carries, whether a connection can take an import (facts §1.1: a database connection, enabled
//! for at least one application), the job slots free, and chunks, jobs and an ETA (`pace`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use crate::pace;

/// A Management API scope and what goes wrong without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeNeed {
    pub scope: &'static str,
    pub without: &'static str,
    /// Without it the migration cannot run (else it only loses a check or a convenience).
    pub required: bool,
}

/// The scopes, in the order a table lists them (facts §1.1, §2; Auth0's reference for
/// `GET /api/v2/connections/{id}`).
pub const SCOPES: &[ScopeNeed] = &[
    ScopeNeed {
        scope: "create:users",
        without: "no import job can start (POST /api/v2/jobs/users-imports)",
        required: true,
    },
    ScopeNeed {
        scope: "read:users",
        without: "jobs are followed with create:users, which also allows it",
        required: false,
    },
    ScopeNeed {
        scope: "read:connections",
        without: "plan cannot check the connection",
        required: false,
    },
];

/// The `scope` claim of a JWT access token (Auth0's Management API tokens are JWTs, facts
/// §5.1), split on spaces. `None` for a token that is not a JWT or has no such claim. The
/// signature is not checked: this only reads what the token says it allows.
pub fn jwt_scopes(token: &str) -> Option<Vec<String>> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let scope = claims.get("scope")?.as_str()?;
    Some(scope.split_whitespace().map(str::to_string).collect())
}

/// Whether a connection can take an import, from `GET /api/v2/connections/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionVerdict {
    Importable {
        name: String,
        enabled_clients: usize,
    },
    /// 404: no such connection in this tenant.
    Missing,
    /// Not an Auth0 database connection (passwordless, social, enterprise).
    NotDatabase { name: String, strategy: String },
    /// A custom database connection without "Import Users to Auth0" (facts §1.4).
    CustomWithoutImportMode { name: String },
    /// Enabled for no application (facts §1.1: "Connection must be enabled.").
    NotEnabled { name: String },
    /// The check could not be made (e.g. the token lacks `read:connections`).
    Unchecked { reason: String },
}

impl ConnectionVerdict {
    /// Reads the connection's answer. `listed_clients` is the count from
    /// `GET /api/v2/connections/{id}/clients`, for a body without `enabled_clients`.
    pub fn from_answer(status: u16, body: &[u8], listed_clients: Option<usize>) -> Self {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match status {
            200 => {}
            404 => return ConnectionVerdict::Missing,
            403 => {
                return ConnectionVerdict::Unchecked {
                    reason: "the token lacks read:connections".into(),
                }
            }
            _ => {
                let message = v.get("message").and_then(Value::as_str).unwrap_or("");
                return ConnectionVerdict::Unchecked {
                    reason: format!("Auth0 answered {status} {message}")
                        .trim()
                        .to_string(),
                };
            }
        }
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let strategy = v.get("strategy").and_then(Value::as_str).unwrap_or("");
        if strategy != "auth0" {
            return ConnectionVerdict::NotDatabase {
                name,
                strategy: strategy.to_string(),
            };
        }
        let option = |k: &str| {
            v.get("options")
                .and_then(|o| o.get(k))
                .and_then(Value::as_bool)
        };
        if option("enabledDatabaseCustomization") == Some(true)
            && option("import_mode") != Some(true)
        {
            return ConnectionVerdict::CustomWithoutImportMode { name };
        }
        let enabled = v
            .get("enabled_clients")
            .and_then(Value::as_array)
            .map(Vec::len)
            .or(listed_clients);
        match enabled {
            Some(0) => ConnectionVerdict::NotEnabled { name },
            Some(n) => ConnectionVerdict::Importable {
                name,
                enabled_clients: n,
            },
            None => ConnectionVerdict::Unchecked {
                reason: "Auth0 did not say which applications the connection is enabled for".into(),
            },
        }
    }

    /// Whether a body without `enabled_clients` needs the `/clients` listing to decide.
    pub fn needs_client_listing(status: u16, body: &[u8]) -> bool {
        status == 200
            && serde_json::from_slice::<Value>(body)
                .ok()
                .is_some_and(|v| v.get("enabled_clients").is_none())
    }

    /// Whether an import into this connection would be refused.
    pub fn blocks(&self) -> bool {
        !matches!(
            self,
            ConnectionVerdict::Importable { .. } | ConnectionVerdict::Unchecked { .. }
        )
    }

    pub fn describe(&self) -> String {
        match self {
            ConnectionVerdict::Importable {
                name,
                enabled_clients,
            } => format!(
                "\"{name}\": database connection, enabled for {enabled_clients} application(s) — OK"
            ),
            ConnectionVerdict::Missing => {
                "does not exist in this tenant — use the id (con_…) from Authentication > Database"
                    .into()
            }
            ConnectionVerdict::NotDatabase { name, strategy } => format!(
                "\"{name}\" is a {strategy} connection — imports need a database connection"
            ),
            ConnectionVerdict::CustomWithoutImportMode { name } => format!(
                "\"{name}\" is a custom database without \"Import Users to Auth0\" — turn it on or use another connection"
            ),
            ConnectionVerdict::NotEnabled { name } => format!(
                "\"{name}\" is enabled for no application — enable it for one (Applications tab of the connection)"
            ),
            ConnectionVerdict::Unchecked { reason } => format!("not checked: {reason}"),
        }
    }
}

/// How the token's scopes stand against `SCOPES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeCheck {
    /// `None`: the token does not say (an opaque token).
    pub granted: Option<Vec<String>>,
}

impl ScopeCheck {
    pub fn missing(&self, required_only: bool) -> Vec<&'static str> {
        let Some(granted) = &self.granted else {
            return Vec::new();
        };
        SCOPES
            .iter()
            .filter(|n| !required_only || n.required)
            .filter(|n| !granted.iter().any(|g| g == n.scope))
            .map(|n| n.scope)
            .collect()
    }

    pub fn blocks(&self) -> bool {
        !self.missing(true).is_empty()
    }

    pub fn describe(&self) -> String {
        let Some(granted) = &self.granted else {
            return "not readable from the token (not a JWT): make sure it has create:users".into();
        };
        let mut text = if granted.is_empty() {
            "none".to_string()
        } else {
            granted.join(" ")
        };
        let required = self.missing(true);
        let optional: Vec<&str> = self
            .missing(false)
            .into_iter()
            .filter(|s| !required.contains(s))
            .collect();
        if required.is_empty() {
            text.push_str(" — OK");
        } else {
            let _ = write!(text, " — MISSING {}", required.join(", "));
        }
        for need in SCOPES.iter().filter(|n| optional.contains(&n.scope)) {
            let _ = write!(text, "; no {}: {}", need.scope, need.without);
        }
        text
    }
}

/// Job slots: the tenant's, and how many the pipeline's ledger shows held now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    pub total: u32,
    /// `None` when no ledger was given: Auth0 has no endpoint that lists import jobs.
    pub busy: Option<u32>,
}

/// Everything `plan` found, for the table.
#[derive(Debug, Clone)]
pub struct PlanFacts {
    pub file: String,
    pub input: String,
    pub users_in: u64,
    pub users_accepted: u64,
    pub users_rejected: u64,
    pub rejects_by_code: BTreeMap<String, u64>,
    pub chunks: u64,
    /// The largest users file per chunk the split used.
    pub max_chunk_bytes: u64,
    pub mean_chunk_fill: f64,
    pub connection_id: String,
    pub upsert: bool,
    pub connection: ConnectionVerdict,
    pub scopes: ScopeCheck,
    pub slots: Slots,
    /// Why the file could not be read as a whole, when it could not.
    pub failure: Option<String>,
}

impl PlanFacts {
    /// What stops the migration, one sentence each; empty when it can go ahead.
    pub fn blockers(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(f) = &self.failure {
            out.push(format!("the file cannot be read: {f}"));
        } else if self.chunks == 0 {
            out.push("no user would be imported: every record is rejected".into());
        }
        if self.connection.blocks() {
            out.push(format!(
                "connection {}: {}",
                self.connection_id,
                self.connection.describe()
            ));
        }
        if self.scopes.blocks() {
            out.push(format!(
                "the token lacks {}",
                self.scopes.missing(true).join(", ")
            ));
        }
        out
    }

    /// A Markdown table a person can paste into a change ticket.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_string(), v));
        row("Input", format!("`{}` ({})", self.file, self.input));
        row("Users in the file", n(self.users_in));
        row("Accepted", n(self.users_accepted));
        let reasons: Vec<String> = self
            .rejects_by_code
            .iter()
            .map(|(c, k)| format!("{c} {}", n(*k)))
            .collect();
        row(
            "Rejected before submission",
            if reasons.is_empty() {
                n(self.users_rejected)
            } else {
                format!("{} ({})", n(self.users_rejected), reasons.join(", "))
            },
        );
        row(
            "Chunks = import jobs",
            format!(
                "{} (up to {} bytes of users each, mean fill {:.0}%)",
                n(self.chunks),
                n(self.max_chunk_bytes),
                self.mean_chunk_fill * 100.0
            ),
        );
        row(
            "Mode",
            if self.upsert {
                "upsert (existing users are updated)".into()
            } else {
                "insert only (existing users fail as DUPLICATED_USER)".into()
            },
        );
        row(
            "Connection",
            format!("`{}` {}", self.connection_id, self.connection.describe()),
        );
        row("Token scopes", self.scopes.describe());
        row(
            "Job slots",
            match self.slots.busy {
                Some(b) => format!(
                    "{} per tenant; {} busy now in this stack's ledger, {} free",
                    self.slots.total,
                    b,
                    self.slots.total.saturating_sub(b)
                ),
                None => format!(
                    "{} per tenant; busy unknown: Auth0 lists no import jobs (pass --stack/--bucket to read the pipeline's slots)",
                    self.slots.total
                ),
            },
        );
        let job = pace::assumed_job_time(self.upsert);
        let wall = pace::wall_time(self.chunks, self.slots.total, job);
        row(
            "Estimated duration",
            format!(
                "{} ({} jobs × ~{} ÷ {} slots)",
                pace::human(wall),
                n(self.chunks),
                pace::human(job),
                self.slots.total
            ),
        );
        row("Assumption", pace::assumption(self.upsert));
        let blockers = self.blockers();
        row(
            "Verdict",
            if blockers.is_empty() {
                "READY: no job was created by this plan".into()
            } else {
                format!("NOT READY: {}", blockers.join("; "))
            },
        );
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = format!(
            "| {:<width$} | Value |\n|{}|-------|\n",
            "Check",
            "-".repeat(width + 2)
        );
        for (k, v) in rows {
            let _ = writeln!(out, "| {k:<width$} | {} |", v.replace('|', "\\|"));
        }
        out
    }
}

fn n(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwt(claims: &Value) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[test]
    fn scopes_come_from_a_jwt_s_claims_only() {
        assert_eq!(
            jwt_scopes(&jwt(&json!({"scope": "create:users  read:users"}))),
            Some(vec!["create:users".into(), "read:users".into()])
        );
        assert_eq!(jwt_scopes(&jwt(&json!({"sub": "x"}))), None);
        assert_eq!(jwt_scopes("opaque-token"), None);
        assert_eq!(jwt_scopes("a.b.c.d"), None);
        assert_eq!(jwt_scopes("a.!!!.c"), None);
    }

    proptest::proptest! {
        /// Whatever the scopes, a token carrying them gives them back; any text at all is read
        /// without a panic.
        #[test]
        fn scopes_round_trip_through_a_token(
            scopes in proptest::collection::vec("[a-z_]{1,12}:[a-z_]{1,12}", 0..6),
            noise in "\\PC{0,80}",
        ) {
            let token = jwt(&json!({"scope": scopes.join(" "), "sub": "x@clients"}));
            proptest::prop_assert_eq!(jwt_scopes(&token), Some(scopes));
            let _ = jwt_scopes(&noise);
        }

        /// Any status and body get a verdict, and only a 200 can say "importable".
        #[test]
        fn any_answer_gets_a_verdict(status in 100u16..600, body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let v = ConnectionVerdict::from_answer(status, &body, None);
            let importable = matches!(v, ConnectionVerdict::Importable { .. });
            proptest::prop_assert!(status == 200 || !importable);
            let _ = v.describe();
        }
    }

    #[test]
    fn the_connection_s_answer_decides() {
        let body = |v: Value| serde_json::to_vec(&v).unwrap();
        let db = json!({"name": "DB", "strategy": "auth0", "options": {}, "enabled_clients": ["a", "b"]});
        assert_eq!(
            ConnectionVerdict::from_answer(200, &body(db), None),
            ConnectionVerdict::Importable {
                name: "DB".into(),
                enabled_clients: 2
            }
        );
        let v = ConnectionVerdict::from_answer(
            200,
            &body(json!({"name": "DB", "strategy": "auth0", "enabled_clients": []})),
            None,
        );
        assert!(matches!(v, ConnectionVerdict::NotEnabled { .. }) && v.blocks());
        let v = ConnectionVerdict::from_answer(
            200,
            &body(json!({"name": "e", "strategy": "email", "enabled_clients": ["a"]})),
            None,
        );
        assert!(v.describe().contains("email connection") && v.blocks());
        let custom = json!({"name": "C", "strategy": "auth0", "options": {"enabledDatabaseCustomization": true, "import_mode": false}, "enabled_clients": ["a"]});
        assert!(matches!(
            ConnectionVerdict::from_answer(200, &body(custom), None),
            ConnectionVerdict::CustomWithoutImportMode { .. }
        ));
        let lazy = json!({"name": "C", "strategy": "auth0", "options": {"enabledDatabaseCustomization": true, "import_mode": true}, "enabled_clients": ["a"]});
        assert!(!ConnectionVerdict::from_answer(200, &body(lazy), None).blocks());
        assert_eq!(
            ConnectionVerdict::from_answer(404, b"{}", None),
            ConnectionVerdict::Missing
        );
        let no_scope = ConnectionVerdict::from_answer(403, b"{}", None);
        assert!(!no_scope.blocks() && no_scope.describe().contains("read:connections"));

        // Without enabled_clients in the body, the /clients listing decides.
        let bare = body(json!({"name": "DB", "strategy": "auth0"}));
        assert!(ConnectionVerdict::needs_client_listing(200, &bare));
        assert!(ConnectionVerdict::from_answer(200, &bare, Some(0)).blocks());
        assert!(!ConnectionVerdict::from_answer(200, &bare, Some(1)).blocks());
    }

    #[test]
    fn missing_scopes_block_only_when_required() {
        let all = ScopeCheck {
            granted: Some(vec!["create:users".into(), "read:users".into()]),
        };
        assert!(!all.blocks());
        assert!(all.describe().contains("OK") && all.describe().contains("read:connections"));
        let read_only = ScopeCheck {
            granted: Some(vec!["read:users".into()]),
        };
        assert!(read_only.blocks() && read_only.describe().contains("MISSING create:users"));
        assert!(!ScopeCheck { granted: None }.blocks());
    }

    fn facts() -> PlanFacts {
        PlanFacts {
            file: "users.json".into(),
            input: "1.0 MiB, NDJSON".into(),
            users_in: 120_000,
            users_accepted: 119_876,
            users_rejected: 124,
            rejects_by_code: BTreeMap::from([("INVALID_FORMAT".into(), 124)]),
            chunks: 240,
            max_chunk_bytes: 500_000,
            mean_chunk_fill: 0.97,
            connection_id: "con_AbCdEf0123456789".into(),
            upsert: false,
            connection: ConnectionVerdict::Importable {
                name: "DB".into(),
                enabled_clients: 1,
            },
            scopes: ScopeCheck {
                granted: Some(vec!["create:users".into(), "read:users".into()]),
            },
            slots: Slots {
                total: 2,
                busy: Some(0),
            },
            failure: None,
        }
    }

    #[test]
    fn the_table_states_counts_eta_and_assumption() {
        let t = facts().table();
        assert!(
            t.contains("| Users in the file          | 120,000 |"),
            "{t}"
        );
        // 240 jobs in waves of 2 at 4 minutes: 120 × 4 min = 8 h.
        assert!(
            t.contains("8 h 00 min (240 jobs × ~4 min 00 s ÷ 2 slots)"),
            "{t}"
        );
        assert!(t.contains("~4 min per insert job"), "{t}");
        assert!(t.contains("READY: no job was created"), "{t}");
        assert!(
            t.lines().all(|l| l.starts_with('|') && l.ends_with('|')),
            "{t}"
        );

        let mut bad = facts();
        bad.connection = ConnectionVerdict::Missing;
        bad.scopes = ScopeCheck {
            granted: Some(vec![]),
        };
        bad.upsert = true;
        let t = bad.table();
        assert!(
            t.contains("NOT READY") && t.contains("lacks create:users"),
            "{t}"
        );
        assert!(t.contains("~14 min per upsert job"), "{t}");
        assert_eq!(bad.blockers().len(), 2);
    }
}
