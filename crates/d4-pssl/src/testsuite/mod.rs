//! The conformance suite every [`crate::PsslStore`] backend runs (feature `testsuite`):
//! checks as functions over `&dyn PsslStore`, each expecting a fresh, empty store, and
//! [`pssl_store_suite!`](crate::pssl_store_suite) to turn them into `#[test]`s given a
//! constructor. [`data`] makes the certificates (rcgen) and writes `ja3-jl` lines by hand;
//! [`scenario`] holds the sessions the checks query.

pub mod cases;
pub mod data;
pub mod paging;
pub mod period;
pub mod scenario;
pub mod weak;

use crate::store::PsslStore;

/// One check: it gets a fresh, empty store.
pub type Check = fn(&dyn PsslStore);

/// Every check, by name (for a harness of its own; the macro lists the same).
pub const CASES: &[(&str, Check)] = &[
    ("commit_then_every_query", cases::commit_then_every_query),
    ("idempotent", cases::idempotent),
    (
        "counts_first_last_across_commits",
        cases::counts_first_last_across_commits,
    ),
    ("paging", cases::paging),
    ("paging_during_ingest", cases::paging_during_ingest),
    ("unknown_values", cases::unknown_values),
    ("weak_keys", weak::weak_keys),
    ("sessions_between", period::sessions_between),
];

/// One `#[test]` per check. `$make` is an expression evaluated anew for each test, giving a
/// value that dereferences to a fresh, empty store (keep its temporary folder or database
/// alive in that value).
///
/// ```ignore
/// d4_pssl::pssl_store_suite!(fresh_store());
/// ```
#[macro_export]
macro_rules! pssl_store_suite {
    ($make:expr) => {
        $crate::pssl_store_suite!(@cases $make;
            commit_then_every_query,
            idempotent,
            counts_first_last_across_commits,
            paging,
            paging_during_ingest,
            unknown_values
        );
        $crate::pssl_store_suite!(@weak $make; weak_keys);
        #[test]
        fn sessions_between() {
            let fixture = $make;
            $crate::testsuite::period::sessions_between(&*fixture);
        }
    };
    (@weak $make:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let fixture = $make;
                $crate::testsuite::weak::$name(&*fixture);
            }
        )*
    };
    (@cases $make:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let fixture = $make;
                $crate::testsuite::cases::$name(&*fixture);
            }
        )*
    };
}
