//! Accounts on Redis: `d4rs:user:<name>` records, the token index, and web logins
//! (`d4rs:web_session:<hash>`, the former name) indexed globally and per user.

use std::collections::HashMap;

use super::{be, from_json, get_json, keys, mget_json, set_json_new, to_json, RedisStore};
use crate::model::*;
use crate::{validate, Accounts, Leases, Result, StoreError};

#[async_trait::async_trait]
impl Accounts for RedisStore {
    async fn create_user(&self, user: User) -> Result<()> {
        validate::user(&user)?;
        let mut c = self.meta.clone();
        let created = set_json_new(&mut c, keys::user(&user.name), &user).await?;
        if !created {
            return Err(StoreError::AlreadyExists(format!("user {}", user.name)));
        }
        let mut pipe = redis::pipe();
        pipe.sadd(keys::USERS, &user.name).ignore();
        if let Some(h) = &user.api_token_hash {
            pipe.set(keys::user_token(h), &user.name).ignore();
        }
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        Ok(())
    }

    async fn get_user(&self, name: String) -> Result<Option<User>> {
        get_json(&mut self.meta.clone(), keys::user(&name)).await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let mut c = self.meta.clone();
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::USERS)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        names.sort();
        let keys: Vec<String> = names.iter().map(|n| keys::user(n)).collect();
        mget_json(&mut c, &keys).await
    }

    async fn update_user(&self, user: User) -> Result<()> {
        validate::user(&user)?;
        let old = self
            .get_user(user.name.clone())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {}", user.name)))?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(keys::user(&user.name), to_json(&user)?)
            .ignore();
        if old.api_token_hash != user.api_token_hash {
            if let Some(h) = &old.api_token_hash {
                pipe.del(keys::user_token(h)).ignore();
            }
            if let Some(h) = &user.api_token_hash {
                pipe.set(keys::user_token(h), &user.name).ignore();
            }
        }
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        Ok(())
    }

    async fn delete_user(&self, name: String) -> Result<bool> {
        let Some(old) = self.get_user(name.clone()).await? else {
            return Ok(false);
        };
        let mut c = self.meta.clone();
        let logins: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::user_logins(&name))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(keys::user(&name))
            .ignore()
            .srem(keys::USERS, &name)
            .ignore()
            .del(keys::user_logins(&name))
            .ignore();
        if let Some(h) = &old.api_token_hash {
            pipe.del(keys::user_token(h)).ignore();
        }
        for s in &logins {
            pipe.del(keys::web_login(s))
                .ignore()
                .srem(keys::WEB_LOGINS, s)
                .ignore();
        }
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        Ok(true)
    }

    async fn user_by_token_hash(&self, token_hash: String) -> Result<Option<User>> {
        let mut c = self.meta.clone();
        let name: Option<String> = redis::cmd("GET")
            .arg(keys::user_token(&token_hash))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let Some(name) = name else { return Ok(None) };
        Ok(self
            .get_user(name)
            .await?
            .filter(|u| u.api_token_hash.as_deref() == Some(token_hash.as_str())))
    }

    async fn create_web_login(&self, login: WebLogin) -> Result<()> {
        let mut pipe = redis::pipe();
        let key = keys::web_login(&login.id_hash);
        pipe.atomic()
            .set(&key, to_json(&login)?)
            .ignore()
            .sadd(keys::WEB_LOGINS, &login.id_hash)
            .ignore()
            .sadd(keys::user_logins(&login.user), &login.id_hash)
            .ignore();
        // A real expiry as a safety net (purge_expired does the exact cleanup).
        if login.expires > now() {
            pipe.cmd("EXPIREAT")
                .arg(&key)
                .arg(login.expires + 60)
                .ignore();
        }
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        Ok(())
    }

    async fn get_web_login(&self, id_hash: String, now: u64) -> Result<Option<WebLogin>> {
        let login: Option<WebLogin> =
            get_json(&mut self.meta.clone(), keys::web_login(&id_hash)).await?;
        Ok(login.filter(|s| s.expires > now))
    }

    async fn delete_web_login(&self, id_hash: String) -> Result<bool> {
        let mut c = self.meta.clone();
        let Some(s) = get_json::<WebLogin>(&mut c, keys::web_login(&id_hash)).await? else {
            return Ok(false);
        };
        let () = redis::pipe()
            .atomic()
            .del(keys::web_login(&id_hash))
            .ignore()
            .srem(keys::WEB_LOGINS, &id_hash)
            .ignore()
            .srem(keys::user_logins(&s.user), &id_hash)
            .ignore()
            .query_async(&mut c)
            .await
            .map_err(be)?;
        Ok(true)
    }

    async fn purge_expired(&self, now: u64) -> Result<u64> {
        let mut c = self.meta.clone();
        // Blocks.
        let all: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys::BLOCKS)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let expired: Vec<&String> = all
            .iter()
            .filter(|(_, v)| from_json::<Block>(v).is_ok_and(|b| !b.active_at(now)))
            .map(|(k, _)| k)
            .collect();
        if !expired.is_empty() {
            let _: i64 = redis::cmd("HDEL")
                .arg(keys::BLOCKS)
                .arg(&expired)
                .query_async(&mut c)
                .await
                .map_err(be)?;
        }
        // Leases: listing drops the records whose lease key is gone.
        let _ = self.list_leases(now).await?;
        // Web logins.
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::WEB_LOGINS)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let ks: Vec<String> = ids.iter().map(|i| keys::web_login(i)).collect();
        let vals: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&ks)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut pipe = redis::pipe();
        let mut n = 0;
        for (id, v) in ids.iter().zip(vals) {
            let login = v.and_then(|v| from_json::<WebLogin>(&v).ok());
            match login {
                Some(s) if s.expires > now => {}
                Some(s) => {
                    n += 1;
                    pipe.del(keys::web_login(id))
                        .ignore()
                        .srem(keys::WEB_LOGINS, id)
                        .ignore()
                        .srem(keys::user_logins(&s.user), id)
                        .ignore();
                }
                None => {
                    pipe.srem(keys::WEB_LOGINS, id).ignore();
                }
            }
        }
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        Ok(n)
    }
}
