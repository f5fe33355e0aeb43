//! Accounts of the web UI / REST API: users, roles and web logins.

use serde::{Deserialize, Serialize};

/// Roles of the web UI / REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    User,
    SensorRegister,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::SensorRegister => "sensor_register",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            "sensor_register" | "sensor-register" => Ok(Role::SensorRegister),
            _ => Err(format!("unknown role {s:?} (admin, user, sensor_register)")),
        }
    }
}

/// A user of the web UI / REST API. The store never sees clear-text secrets: the caller
/// stores an argon2 PHC string and token hashes ([`crate::hash_secret`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// argon2 PHC string.
    pub password_hash: String,
    /// The password must be changed at next login (first admin account).
    pub must_change_password: bool,
    /// SHA-256 hex of the user's API token, if any.
    pub api_token_hash: Option<String>,
    pub created: u64,
    /// Web logins are valid only while their `epoch` equals this: changing it (password
    /// or role change) ends every other login of the user. Random per user, so a user
    /// deleted and created again never inherits old logins.
    #[serde(default)]
    pub session_epoch: u64,
}

/// A web login (the session cookie of a signed-in user), stored by the hash of its id so a
/// leaked store gives no cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebLogin {
    /// SHA-256 hex of the cookie's id.
    pub id_hash: String,
    pub user: String,
    pub csrf_token: String,
    pub created: u64,
    pub expires: u64,
    /// The user's [`User::session_epoch`] when the login was created.
    #[serde(default)]
    pub epoch: u64,
}
