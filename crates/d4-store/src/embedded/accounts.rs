//! Accounts on the embedded store: `users`, the `tokens` index (token hash → name) and
//! `web_sessions` (web logins, the table keeps its former name).

use super::codec::{all_json, be, get_json, to_json};
use super::{write, EmbeddedStore, BLOCKS, LEASES, TOKENS, USERS, WEB_LOGINS};
use crate::model::*;
use crate::{validate, Accounts, Result, StoreError};

#[async_trait::async_trait]
impl Accounts for EmbeddedStore {
    async fn create_user(&self, user: User) -> Result<()> {
        validate::user(&user)?;
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(USERS).map_err(be)?;
                if get_json::<User>(&t, &user.name)?.is_some() {
                    return Err(StoreError::AlreadyExists(format!("user {}", user.name)));
                }
                t.insert(user.name.as_str(), to_json(&user)?.as_slice())
                    .map_err(be)?;
                if let Some(h) = &user.api_token_hash {
                    txn.open_table(TOKENS)
                        .map_err(be)?
                        .insert(h.as_str(), user.name.as_str())
                        .map_err(be)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn get_user(&self, name: String) -> Result<Option<User>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(USERS).map_err(be)?;
            get_json(&t, &name)
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.run(|db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(USERS).map_err(be)?;
            all_json(&t)
        })
        .await
    }

    async fn update_user(&self, user: User) -> Result<()> {
        validate::user(&user)?;
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(USERS).map_err(be)?;
                let old: User = get_json(&t, &user.name)?
                    .ok_or_else(|| StoreError::NotFound(format!("user {}", user.name)))?;
                let mut tokens = txn.open_table(TOKENS).map_err(be)?;
                if let Some(h) = &old.api_token_hash {
                    tokens.remove(h.as_str()).map_err(be)?;
                }
                if let Some(h) = &user.api_token_hash {
                    tokens.insert(h.as_str(), user.name.as_str()).map_err(be)?;
                }
                t.insert(user.name.as_str(), to_json(&user)?.as_slice())
                    .map_err(be)?;
                Ok(())
            })
        })
        .await
    }

    async fn delete_user(&self, name: String) -> Result<bool> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(USERS).map_err(be)?;
                let Some(old) = get_json::<User>(&t, &name)? else {
                    return Ok(false);
                };
                t.remove(name.as_str()).map_err(be)?;
                if let Some(h) = &old.api_token_hash {
                    txn.open_table(TOKENS)
                        .map_err(be)?
                        .remove(h.as_str())
                        .map_err(be)?;
                }
                let mut ws = txn.open_table(WEB_LOGINS).map_err(be)?;
                ws.retain(|_, v| {
                    serde_json::from_slice::<WebLogin>(v)
                        .map(|s| s.user != name)
                        .unwrap_or(false)
                })
                .map_err(be)?;
                Ok(true)
            })
        })
        .await
    }

    async fn user_by_token_hash(&self, token_hash: String) -> Result<Option<User>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let tokens = txn.open_table(TOKENS).map_err(be)?;
            let Some(name) = tokens
                .get(token_hash.as_str())
                .map_err(be)?
                .map(|g| g.value().to_string())
            else {
                return Ok(None);
            };
            let t = txn.open_table(USERS).map_err(be)?;
            get_json(&t, &name)
        })
        .await
    }

    async fn create_web_login(&self, login: WebLogin) -> Result<()> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(WEB_LOGINS).map_err(be)?;
                t.insert(login.id_hash.as_str(), to_json(&login)?.as_slice())
                    .map_err(be)?;
                Ok(())
            })
        })
        .await
    }

    async fn get_web_login(&self, id_hash: String, now: u64) -> Result<Option<WebLogin>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(WEB_LOGINS).map_err(be)?;
            Ok(get_json::<WebLogin>(&t, &id_hash)?.filter(|s| s.expires > now))
        })
        .await
    }

    async fn delete_web_login(&self, id_hash: String) -> Result<bool> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(WEB_LOGINS).map_err(be)?;
                let existed = t.remove(id_hash.as_str()).map_err(be)?.is_some();
                Ok(existed)
            })
        })
        .await
    }

    async fn purge_expired(&self, now: u64) -> Result<u64> {
        self.run(move |db| {
            write(db, |txn| {
                let mut n = 0u64;
                txn.open_table(WEB_LOGINS)
                    .map_err(be)?
                    .retain(|_, v| {
                        let keep = serde_json::from_slice::<WebLogin>(v)
                            .map(|s| s.expires > now)
                            .unwrap_or(false);
                        if !keep {
                            n += 1;
                        }
                        keep
                    })
                    .map_err(be)?;
                txn.open_table(BLOCKS)
                    .map_err(be)?
                    .retain(|_, v| {
                        serde_json::from_slice::<Block>(v)
                            .map(|b| b.active_at(now))
                            .unwrap_or(false)
                    })
                    .map_err(be)?;
                txn.open_table(LEASES)
                    .map_err(be)?
                    .retain(|_, v| {
                        serde_json::from_slice::<Lease>(v)
                            .map(|s| s.expires > now)
                            .unwrap_or(false)
                    })
                    .map_err(be)?;
                Ok(n)
            })
        })
        .await
    }
}
