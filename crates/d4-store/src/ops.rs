//! The one list of store operations.
//!
//! Every operation is written once, in the `store_ops!` invocation below: its role, its
//! name, its arguments with their types, its return type and its documentation. From that
//! list the macro generates
//! - the role traits ([`Sensors`], [`Policy`], [`Leases`], [`Queues`], [`Accounts`],
//!   [`Forwarding`]) that
//!   every backend implements and every caller uses,
//! - the socket RPC's [`Request`] enum (`{"op": "<name>", ...args}` on the wire),
//! - its `dispatch` (a request run on any [`Store`]),
//! - the [`RemoteStore`](crate::RemoteStore) client methods.
//!
//! Adding an operation: one line in the list, its body in each backend (`embedded/`,
//! `redis/`), one test in `testsuite/`. Methods that need no RPC of their own (defaults
//! written on top of other operations) go in a role's `provided { }` block.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::*;
use crate::{Base, Result, Store, StoreError};

/// Generates the role traits, [`Request`], `dispatch` and the `RemoteStore` impls from
/// the list of operations (see the module doc).
macro_rules! store_ops {
    (
        $(
            $(#[$rmeta:meta])*
            role $Role:ident {
                $(
                    $(#[$ometa:meta])*
                    fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) -> $ret:ty => $Variant:ident;
                )*
                $( provided { $($extra:tt)* } )?
            }
        )*
    ) => {
        $(
            $(#[$rmeta])*
            #[async_trait::async_trait]
            pub trait $Role: Base {
                $(
                    $(#[$ometa])*
                    async fn $name(&self, $($arg: $ty),*) -> Result<$ret>;
                )*
                $( $($extra)* )?
            }
        )*

        /// One request per store operation (JSON: `{"op": "<operation>", ...args}`), plus
        /// `subscribe` and `ping`. Generated from the operations list.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(tag = "op", rename_all = "snake_case")]
        pub enum Request {
            /// Switch this connection to an event stream: one `StoreEvent` JSON per line.
            Subscribe,
            /// Liveness check; answers `"pong"`.
            Ping,
            $( $(
                $(#[$ometa])*
                $Variant { $($arg: $ty),* },
            )* )*
        }

        /// Run one request on a store; the answer as a JSON value.
        pub(crate) async fn dispatch(store: &dyn Store, req: Request) -> Result<serde_json::Value> {
            fn json<T: Serialize>(v: T) -> Result<serde_json::Value> {
                serde_json::to_value(v)
                    .map_err(|e| StoreError::Backend(format!("encode answer: {e}")))
            }
            match req {
                Request::Subscribe => Err(StoreError::Invalid(
                    "subscribe is handled by the connection".into(),
                )),
                Request::Ping => json("pong"),
                $( $(
                    Request::$Variant { $($arg),* } => json(store.$name($($arg),*).await?),
                )* )*
            }
        }

        $(
            #[async_trait::async_trait]
            impl $Role for crate::RemoteStore {
                $(
                    async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                        self.call(Request::$Variant { $($arg),* }).await
                    }
                )*
            }
        )*
    };
}

store_ops! {
    /// Sensors: registration, settings, errors, and the activity a server flushes.
    role Sensors {
        /// Register a sensor (pending unless `approve`). `AlreadyExists` when it is already
        /// pending or approved; an `Unregistered` record (seen before) is upgraded.
        /// `Invalid` when the key, mail or description does not pass [`crate::validate`].
        fn register_sensor(reg: SensorRegistration) -> Sensor => RegisterSensor;
        /// Approve a pending (or unregistered) sensor. `NotFound` if unknown.
        fn approve_sensor(uuid: Uuid) -> Sensor => ApproveSensor;
        /// Delete a sensor's record (reject a pending registration). Returns whether it existed.
        fn delete_sensor(uuid: Uuid) -> bool => DeleteSensor;
        fn get_sensor(uuid: Uuid) -> Option<Sensor> => GetSensor;
        /// Every known sensor, ordered by uuid.
        fn list_sensors() -> Vec<Sensor> => ListSensors;
        /// Change settings; creates an `Unregistered` record when unknown. `Invalid` when
        /// the update does not pass [`crate::validate::sensor_update`].
        fn update_sensor(uuid: Uuid, update: SensorUpdate) -> Sensor => UpdateSensor;
        /// Record the sensor's last error (creates the record when unknown).
        fn record_sensor_error(uuid: Uuid, time: u64, message: String) -> () => RecordSensorError;
        /// Flush aggregated stats and last-seen updates (one transaction).
        fn record_activity(batch: ActivityBatch) -> () => RecordActivity;
        /// Every aggregate of one day (`YYYYMMDD`).
        fn day_stats(day: u32) -> DayStats => DayStats;
    }

    /// Policy: blocklists, kicks and the accepted D4 types and extended types.
    role Policy {
        /// Add (or replace) a block.
        fn add_block(block: Block) -> () => AddBlock;
        /// Remove a block; returns whether it existed.
        fn remove_block(target: BlockTarget) -> bool => RemoveBlock;
        /// Blocks in force at `now` (expired ones are left out).
        fn list_blocks(now: u64) -> Vec<Block> => ListBlocks;
        /// The first block in force at `now` matching this IP (prefix match) or UUID
        /// (`Uuid` then `IpsOfUuid`), if any.
        fn check_blocked(ip: IpAddr, uuid: Option<Uuid>, now: u64) -> Option<Block> => CheckBlocked;
        /// Kick a sensor: a temporary UUID block of [`KICK_BLOCK_SECS`] and a
        /// [`StoreEvent::Kick`] delivered at once to every subscriber.
        fn request_kick(uuid: Uuid, now: u64) -> () => RequestKick;
        fn accepted_types() -> Vec<u8> => AcceptedTypes;
        /// `Invalid` for type 0 (reserved).
        fn set_type_accepted(d4_type: u8, accepted: bool) -> () => SetTypeAccepted;
        fn accepted_ext_types() -> Vec<String> => AcceptedExtTypes;
        /// `Invalid` for a bad name ([`crate::validate::ext_name`]).
        fn set_ext_type_accepted(ext: String, accepted: bool) -> () => SetExtTypeAccepted;
    }

    /// Leases: the exclusive (sensor uuid, D4 type) slot of a live D4 session, held by a
    /// server for a renewable time.
    role Leases {
        /// Claim the (uuid, type) slot: `false` when another live session holds it. Types
        /// in [`LEASE_EXEMPT_TYPES`] always succeed (and are still listed).
        fn try_claim_lease(claim: LeaseClaim, now: u64) -> bool => TryClaimLease;
        /// Extend the leases of every session of `server_id` to `now + lease_secs`.
        fn renew_leases(server_id: String, lease_secs: u64, now: u64) -> u64 => RenewLeases;
        /// Release one session's lease (no-op if it does not hold the slot any more).
        fn release_lease(uuid: Uuid, d4_type: u8, session_id: Uuid) -> () => ReleaseLease;
        /// Live leases (not expired at `now`).
        fn list_leases(now: u64) -> Vec<Lease> => ListLeases;
        /// Drop every lease of `server_id` (at server start); returns how many.
        fn clear_leases(server_id: String) -> u64 => ClearLeases;
    }

    /// Analyzer queues: settings, pushes (at most once with a [`PushKey`]) and pops.
    role Queues {
        /// `AlreadyExists` if the uuid is taken; `Invalid` when the settings do not pass
        /// [`crate::validate::queue_config`].
        fn create_queue(config: QueueConfig, now: u64) -> Queue => CreateQueue;
        fn list_queues() -> Vec<Queue> => ListQueues;
        fn get_queue(uuid: Uuid) -> Option<Queue> => GetQueue;
        /// Replace the settings (entries kept; trimmed at once if the new max is lower).
        fn update_queue(config: QueueConfig, now: u64) -> Queue => UpdateQueue;
        /// Delete the queue and its entries; returns whether it existed.
        fn delete_queue(uuid: Uuid) -> bool => DeleteQueue;
        /// Uuids of the queues that take data of this kind from this sensor.
        fn queues_for(kind: QueueKind, sensor: Uuid) -> Vec<Uuid> => QueuesFor;
        /// All pushes, in order, in ONE transaction: each push appends its entries (in
        /// order) to each of its queues. Unknown queues are skipped; full queues drop
        /// their oldest entries and count them. With a key: at most once per (producer,
        /// seq): the store records `seq` as the producer's last in the same transaction;
        /// a call whose `seq` is not greater than the recorded one pushes nothing and
        /// returns `None` (a server replaying its journal after a crash). Without a key
        /// the answer is always `Some`.
        fn push_batch(key: Option<PushKey>, pushes: Vec<QueuePush>, now: u64) -> Option<PushOutcome> => PushBatch;
        /// The last `seq` recorded by [`Queues::push_batch`] for `producer`.
        fn pushed_seq(producer: Uuid) -> Option<u64> => PushedSeq;
        /// Drop the producer's recorded `seq` (a server retiring a journal).
        fn forget_producer(producer: Uuid) -> () => ForgetProducer;
        /// Take up to `max` oldest entries (FIFO); empty when none. `NotFound` if no queue.
        fn pop_entries(queue: Uuid, max: usize) -> Vec<QueueEntry> => PopEntries;
        /// Like `pop_entries`, but waits up to `timeout` for at least one entry.
        /// Cancel-safe: a dropped call has taken nothing (the socket server cancels it
        /// when its client goes away).
        fn pop_entries_blocking(queue: Uuid, max: usize, timeout: Duration) -> Vec<QueueEntry> => PopEntriesBlocking;
        /// At-least-once consumption: lease up to `max` entries to `consumer` for
        /// `lease_secs`. Delivered first: the entries this consumer holds and has not
        /// acknowledged (a consumer restarted under the same name, a cancelled call), then
        /// the entries of other consumers whose lease expired at `now` (a consumer killed),
        /// then the oldest queued entries. Leased entries leave the queue (`queue_len`,
        /// pops, d4-core's `RPOP`) until their lease expires. A consumer name is one
        /// sequential consumer ([`crate::validate::consumer_name`]). `NotFound` if no queue.
        fn lease_entries(queue: Uuid, consumer: String, max: usize, lease_secs: u64, now: u64) -> Vec<LeasedEntry> => LeaseEntries;
        /// Acknowledge entries leased to `consumer`: they are gone for good. Ids that are
        /// not (or no longer) leased to it are ignored; returns how many were acknowledged.
        fn ack_entries(queue: Uuid, consumer: String, ids: Vec<u64>) -> u64 => AckEntries;
        fn queue_len(queue: Uuid) -> u64 => QueueLen;
        /// The latest `n` entries, newest first, without removing them.
        fn queue_sample(queue: Uuid, n: usize) -> Vec<QueueEntry> => QueueSample;
        /// Remove every entry; returns how many.
        fn empty_queue(queue: Uuid) -> u64 => EmptyQueue;

        provided {
            /// One push without a key ([`Queues::push_batch`] of one [`QueuePush`]).
            async fn push_entries(
                &self,
                queues: Vec<Uuid>,
                entries: Vec<QueueEntry>,
                now: u64,
            ) -> Result<PushOutcome> {
                let out = self
                    .push_batch(None, vec![QueuePush { queues, entries }], now)
                    .await?;
                Ok(out.unwrap_or_default())
            }
        }
    }

    /// Accounts of the web UI / REST API: users, API tokens and web logins.
    role Accounts {
        /// `AlreadyExists` if the name is taken; `Invalid` for a bad name.
        fn create_user(user: User) -> () => CreateUser;
        fn get_user(name: String) -> Option<User> => GetUser;
        fn list_users() -> Vec<User> => ListUsers;
        /// Replace a user's record (role, password hash, token hash...). `NotFound` if unknown.
        fn update_user(user: User) -> () => UpdateUser;
        fn delete_user(name: String) -> bool => DeleteUser;
        /// The user whose API token hashes to `token_hash` ([`crate::hash_secret`]).
        fn user_by_token_hash(token_hash: String) -> Option<User> => UserByTokenHash;
        fn create_web_login(login: WebLogin) -> () => CreateWebLogin;
        /// The login if it exists and has not expired at `now`.
        fn get_web_login(id_hash: String, now: u64) -> Option<WebLogin> => GetWebLogin;
        fn delete_web_login(id_hash: String) -> bool => DeleteWebLogin;
        /// Delete expired web logins (and other expired entries: blocks, leases); returns
        /// how many web logins were removed.
        fn purge_expired(now: u64) -> u64 => PurgeExpired;
    }

    /// Forwarding: the rules that share accepted frames with partner D4 servers, and the
    /// counters each forwarding server reports per rule.
    role Forwarding {
        /// Create a rule (`created` = `updated` = `now`; an empty privacy key is replaced
        /// by a random one). `AlreadyExists` if the name is taken; `Invalid` when the rule
        /// does not pass [`crate::validate::forward_rule`].
        fn create_forward_rule(rule: ForwardRule, now: u64) -> ForwardRule => CreateForwardRule;
        /// Every rule, ordered by name.
        fn list_forward_rules() -> Vec<ForwardRule> => ListForwardRules;
        fn get_forward_rule(name: String) -> Option<ForwardRule> => GetForwardRule;
        /// Replace the rule of that name (`created` kept, `updated` = `now`; an empty
        /// privacy key keeps the stored one). `NotFound` if unknown; `Invalid` as create.
        fn update_forward_rule(rule: ForwardRule, now: u64) -> ForwardRule => UpdateForwardRule;
        /// Enable or disable a rule. `NotFound` if unknown.
        fn set_forward_rule_enabled(name: String, enabled: bool) -> ForwardRule => SetForwardRuleEnabled;
        /// Delete a rule and its counters; returns whether it existed.
        fn delete_forward_rule(name: String) -> bool => DeleteForwardRule;
        /// Replace one server's counters of a rule (ignored when the rule does not exist:
        /// a report racing its deletion).
        fn record_forward_stats(name: String, server_id: String, stats: ForwardStats, now: u64) -> () => RecordForwardStats;
        /// The counters of a rule, one entry per server that reported, ordered by server id.
        fn forward_stats(name: String) -> Vec<ForwardServerStats> => ForwardStats;
    }
}
