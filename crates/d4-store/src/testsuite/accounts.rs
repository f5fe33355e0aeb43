//! Conformance: users, API tokens and web logins.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use uuid::Uuid;

use super::S;
use crate::model::*;
use crate::StoreError;

fn user(name: &str, role: Role) -> User {
    User {
        name: name.into(),
        role,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        must_change_password: true,
        api_token_hash: None,
        created: 42,
        session_epoch: 0,
    }
}

/// Users: create, get, list, update (token index), delete.
pub async fn users(store: S) {
    let name = format!("admin-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let mut u = user(&name, Role::Admin);
    store.create_user(u.clone()).await.unwrap();
    assert!(matches!(
        store.create_user(u.clone()).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.create_user(user("bad name", Role::User)).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.get_user(name.clone()).await.unwrap(), Some(u.clone()));
    assert!(store
        .list_users()
        .await
        .unwrap()
        .iter()
        .any(|x| x.name == name));
    let h1 = crate::hash_secret("token-1");
    u.api_token_hash = Some(h1.clone());
    u.role = Role::User;
    u.must_change_password = false;
    store.update_user(u.clone()).await.unwrap();
    assert_eq!(
        store.user_by_token_hash(h1.clone()).await.unwrap(),
        Some(u.clone())
    );
    // Rotation: the old token stops working.
    let h2 = crate::hash_secret("token-2");
    u.api_token_hash = Some(h2.clone());
    store.update_user(u.clone()).await.unwrap();
    assert_eq!(store.user_by_token_hash(h1).await.unwrap(), None);
    assert_eq!(
        store
            .user_by_token_hash(h2.clone())
            .await
            .unwrap()
            .unwrap()
            .name,
        name
    );
    // The session epoch is kept as stored.
    u.session_epoch = 0xdead_beef_cafe;
    store.update_user(u.clone()).await.unwrap();
    assert_eq!(
        store
            .get_user(name.clone())
            .await
            .unwrap()
            .unwrap()
            .session_epoch,
        0xdead_beef_cafe
    );
    assert!(matches!(
        store.update_user(user("ghost", Role::User)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.delete_user(name.clone()).await.unwrap());
    assert!(!store.delete_user(name.clone()).await.unwrap());
    assert_eq!(store.get_user(name).await.unwrap(), None);
    assert_eq!(store.user_by_token_hash(h2).await.unwrap(), None);
}

/// Web logins: expiry, deletion, purge, removal with their user.
pub async fn web_logins(store: S) {
    let now = 9_000_000;
    let name = format!("u-{}", &Uuid::new_v4().simple().to_string()[..8]);
    store.create_user(user(&name, Role::User)).await.unwrap();
    let ws = |id: &str, expires| WebLogin {
        id_hash: crate::hash_secret(id),
        user: name.clone(),
        csrf_token: "csrf".into(),
        created: now,
        expires,
        epoch: 77,
    };
    let (a, b, c) = (
        ws(&format!("{name}a"), now + 10),
        ws(&format!("{name}b"), now + 100),
        ws(&format!("{name}c"), now + 100),
    );
    for s in [&a, &b, &c] {
        store.create_web_login(s.clone()).await.unwrap();
    }
    assert_eq!(
        store.get_web_login(a.id_hash.clone(), now).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store
            .get_web_login(a.id_hash.clone(), now + 10)
            .await
            .unwrap(),
        None,
        "expired"
    );
    assert!(store.purge_expired(now + 50).await.unwrap() >= 1);
    assert_eq!(
        store.get_web_login(a.id_hash.clone(), now).await.unwrap(),
        None,
        "purged"
    );
    assert!(store.delete_web_login(b.id_hash.clone()).await.unwrap());
    assert!(!store.delete_web_login(b.id_hash.clone()).await.unwrap());
    assert!(store
        .get_web_login(c.id_hash.clone(), now)
        .await
        .unwrap()
        .is_some());
    store.delete_user(name).await.unwrap();
    assert_eq!(
        store.get_web_login(c.id_hash.clone(), now).await.unwrap(),
        None,
        "gone with its user"
    );
}
