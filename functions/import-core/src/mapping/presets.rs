//! The exports of common systems, each a mapping shipped with the tool (`--from NAME`): the
//! same machinery as an operator's own mapping, which can start as a copy of one of these.

use super::{Mapping, MappingError};

/// A preset: a name, what it reads, and its mapping (`None`: Auth0's own formats, read as is).
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    pub reads: &'static str,
    pub toml: Option<&'static str>,
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "auth0-export",
        reads: "Auth0's import format or an Auth0 export (JSON array, NDJSON, {\"users\": [...]}), as is",
        toml: None,
    },
    Preset {
        name: "supabase",
        reads: "a CSV of Supabase's auth.users (bcrypt encrypted_password)",
        toml: Some(include_str!("presets/supabase.toml")),
    },
    Preset {
        name: "django",
        reads: "a CSV of Django's auth_user table (pbkdf2_sha256$… and the other hashers)",
        toml: Some(include_str!("presets/django.toml")),
    },
    Preset {
        name: "aspnet-identity",
        reads: "a CSV of ASP.NET Core Identity's AspNetUsers table (Identity v3 PasswordHash)",
        toml: Some(include_str!("presets/aspnet-identity.toml")),
    },
    Preset {
        name: "cognito",
        reads: "a CSV of Cognito users (ListUsers / the user-import header): no hashes, every user must reset",
        toml: Some(include_str!("presets/cognito.toml")),
    },
    Preset {
        name: "firebase",
        reads: "firebase auth:export JSON ({\"users\": [...]}); Firebase's modified scrypt is refused per user",
        toml: Some(include_str!("presets/firebase.toml")),
    },
    Preset {
        name: "keycloak",
        reads: "a Keycloak realm or users export JSON ({\"realm\": …, \"users\": [...]}) with credentials",
        toml: Some(include_str!("presets/keycloak.toml")),
    },
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresetError {
    #[error("{0:?} is not a preset: one of {names}", names = names().join(", "))]
    Unknown(String),
    /// A shipped preset that does not check: a defect of the tool, caught by its tests.
    #[error("the preset {name} is broken: {error}")]
    Broken { name: String, error: MappingError },
}

pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The mapping of the preset `name`; `Ok(None)` for the one that reads Auth0's formats as is.
pub fn mapping(name: &str) -> Result<Option<Mapping>, PresetError> {
    let preset = find(name).ok_or_else(|| PresetError::Unknown(name.to_string()))?;
    preset
        .toml
        .map(|text| {
            Mapping::from_toml(text).map_err(|error| PresetError::Broken {
                name: name.to_string(),
                error,
            })
        })
        .transpose()
}
