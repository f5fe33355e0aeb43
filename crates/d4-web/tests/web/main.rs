#![allow(clippy::unwrap_used, clippy::expect_used)]
//! API and page tests: the real router over a real store, driven with
//! `tower::ServiceExt::oneshot`. Every test runs twice: on the embedded store in a temp
//! dir (module `embedded`) and on the Redis store over a real redis-server (module
//! `redis`), since the UI must work the same on both backends.
//!
//! Modules: [`support`] (the harness), [`api`], [`api_functions`], [`forward`], [`login`], [`pages`],
//! [`ops`], [`pssl`] (embedded store only: the page reads no store but the login's).

mod api;
mod api_functions;
mod forward;
mod labels;
mod login;
mod ops;
mod pages;
mod pibs;
mod pssl;
mod pssl_real;
mod support;

use api::*;
use api_functions::*;
use forward::*;
use labels::*;
use login::*;
use ops::*;
use pages::*;
use support::Backend;

/// Runs each named test (an `async fn(Backend)`) on both backends: `embedded::NAME` and
/// `redis::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Embedded).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Redis).await
                }
            )*
        }
    };
}

on_both_backends!(
    admin_password_reset_removes_the_first_start_password_file,
    api_forward_rules,
    api_names_tags_and_groups,
    api_kick_block_and_blocklist,
    api_queues,
    api_role_matrix,
    api_sensor_registration_and_settings,
    api_stats_and_monitoring,
    api_types,
    api_users_and_tokens,
    csrf_is_required_on_every_form_post,
    descriptions_are_escaped_on_every_page,
    first_start_admin_must_change_password_and_file_is_removed,
    login_and_flash_messages_are_fixed_codes,
    login_lockout_is_per_user_and_client_ip,
    metrics_need_a_token_and_include_sources,
    monitoring_threshold_form,
    no_open_redirect_after_login,
    openapi_lists_the_endpoints,
    queue_alerts_api_metrics_and_page,
    pages_check_roles_and_escape,
    pages_names_tags_groups_and_partner_meta,
    password_and_role_changes_end_other_sessions,
    register_api_matches_the_reference,
    serves_plain_http_on_a_real_socket,
    sharing_pages,
    sessions_survive_a_restart,
);
