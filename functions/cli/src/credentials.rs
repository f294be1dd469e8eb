//! The Auth0 credentials `migrate` and `plan` use: a JSON file shaped like the Lambdas' secret,
//! or, without one, the environment (AUTH0_DOMAIN with AUTH0_CLIENT_ID + AUTH0_CLIENT_SECRET,
//! or with AUTH0_TOKEN). Values are never printed; errors name the variable, not its value.

use std::path::Path;

use anyhow::{bail, Context, Result};
use import_core::auth0::{parse_secret, Auth0Credentials};

const DOMAIN: &str = "AUTH0_DOMAIN";
const CLIENT_ID: &str = "AUTH0_CLIENT_ID";
const CLIENT_SECRET: &str = "AUTH0_CLIENT_SECRET";
const TOKEN: &str = "AUTH0_TOKEN";

/// From `file` when given, else from the environment.
pub fn load(file: Option<&Path>) -> Result<Auth0Credentials> {
    if let Some(file) = file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        return parse_secret(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()));
    }
    from_env(|name| std::env::var(name).ok())
}

/// The credentials the variables `var` gives, as the secret's JSON would state them.
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Auth0Credentials> {
    let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let Some(domain) = get(DOMAIN) else {
        bail!("no Auth0 credentials: pass --credentials FILE, or set {DOMAIN} with {CLIENT_ID} and {CLIENT_SECRET} (or with {TOKEN})");
    };
    let secret = match (get(TOKEN), get(CLIENT_ID), get(CLIENT_SECRET)) {
        (Some(token), _, _) => serde_json::json!({"domain": domain, "token": token}),
        (None, Some(id), Some(secret)) => {
            serde_json::json!({"domain": domain, "client_id": id, "client_secret": secret})
        }
        (None, Some(_), None) => bail!("{CLIENT_ID} is set but {CLIENT_SECRET} is not"),
        (None, None, _) => {
            bail!("{DOMAIN} is set but neither {TOKEN} nor {CLIENT_ID} with {CLIENT_SECRET}")
        }
    };
    parse_secret(&secret.to_string()).map_err(|e| anyhow::anyhow!("from the environment: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn client_credentials_or_a_token_from_the_environment() {
        let c = from_env(env(&[
            ("AUTH0_DOMAIN", "t.eu.auth0.com"),
            ("AUTH0_CLIENT_ID", "id"),
            ("AUTH0_CLIENT_SECRET", "s3cret"),
        ]))
        .unwrap();
        assert!(
            matches!(c, Auth0Credentials::ClientCredentials { ref base_url, .. } if base_url == "https://t.eu.auth0.com")
        );
        let t = from_env(env(&[
            ("AUTH0_DOMAIN", "t.eu.auth0.com"),
            ("AUTH0_TOKEN", "eyJ.x.y"),
        ]))
        .unwrap();
        assert!(matches!(t, Auth0Credentials::StaticToken { .. }));
    }

    #[test]
    fn missing_pieces_are_named_and_values_never_shown() {
        let none = from_env(env(&[])).unwrap_err().to_string();
        assert!(
            none.contains("AUTH0_DOMAIN") && none.contains("--credentials"),
            "{none}"
        );
        let half = from_env(env(&[
            ("AUTH0_DOMAIN", "t.eu.auth0.com"),
            ("AUTH0_CLIENT_ID", "visible-id"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(half.contains("AUTH0_CLIENT_SECRET is not"), "{half}");
        let bad = from_env(env(&[
            ("AUTH0_DOMAIN", "ftp://x"),
            ("AUTH0_TOKEN", "super-secret-token"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(!bad.contains("super-secret-token"), "{bad}");
    }
}
