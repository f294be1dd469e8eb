//! `GET /api/v2/connections/{id}` and `GET /api/v2/connections/{id}/clients` (scope
//! `read:connections`): what `plan` reads to tell whether a connection can take an import
//! (a database connection enabled for at least one application, facts §1.1).
//!
//! Shapes follow Auth0's Management API reference (get-a-connection, get-enabled-clients-for-
//! a-connection): `id, name, display_name, strategy, options, enabled_clients, realms,
//! is_domain_connection`, and `{"clients": [{"client_id"}], "next"}`. Choices:
//! - `strategy` is `auth0` for database connections (custom ones too: their options carry
//!   `enabledDatabaseCustomization: true` and `import_mode`), `email` for passwordless.
//! - A connection "enabled" in the config is enabled for every configured client.
//! - An unknown id answers 404 "The connection does not exist." (`inexistent_connection`,
//!   the import endpoint's text for the same fact); `next` is left out on the last page.
//! - `omit_enabled_clients` drops `enabled_clients` from the connection body, as Auth0 may do
//!   for a property it marks not recommended, so clients are tested on the `/clients` path.

use serde_json::{json, Value};

use crate::config::{ClientConfig, ConnectionConfig, ConnectionKind};

fn enabled_clients(connection: &ConnectionConfig, clients: &[ClientConfig]) -> Vec<String> {
    if connection.enabled {
        clients.iter().map(|c| c.client_id.clone()).collect()
    } else {
        Vec::new()
    }
}

/// The body of `GET /api/v2/connections/{id}`.
pub fn connection_body(
    connection: &ConnectionConfig,
    clients: &[ClientConfig],
    omit_enabled_clients: bool,
) -> Value {
    let (strategy, options) = match connection.kind {
        ConnectionKind::Database => (
            "auth0",
            json!({"enabledDatabaseCustomization": false, "import_mode": false}),
        ),
        ConnectionKind::CustomDatabaseWithoutImportMode => (
            "auth0",
            json!({"enabledDatabaseCustomization": true, "import_mode": false}),
        ),
        ConnectionKind::Passwordless => ("email", json!({"name": "email"})),
    };
    let mut body = json!({
        "id": connection.id,
        "name": connection.name,
        "display_name": connection.name,
        "strategy": strategy,
        "options": options,
        "enabled_clients": enabled_clients(connection, clients),
        "realms": [connection.name],
        "is_domain_connection": false,
    });
    if omit_enabled_clients {
        if let Some(map) = body.as_object_mut() {
            map.remove("enabled_clients");
        }
    }
    body
}

/// The body of `GET /api/v2/connections/{id}/clients` (one page holds them all here).
pub fn clients_body(connection: &ConnectionConfig, clients: &[ClientConfig]) -> Value {
    let list: Vec<Value> = enabled_clients(connection, clients)
        .into_iter()
        .map(|id| json!({ "client_id": id }))
        .collect();
    json!({ "clients": list })
}
