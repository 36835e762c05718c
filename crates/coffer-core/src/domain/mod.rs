//! Domain newtypes. Every raw string from outside is turned into one of these by its `parse`
//! function at the edge (HTTP handler, CLI, configuration); nothing deeper sees raw strings.

mod blob_key;
mod bucket;
mod category;
mod error;
mod expiry;
mod filename;
mod media_type;
mod object_key;
mod restore;
mod tenant_id;

pub use blob_key::{BlobKey, BlobVersion};
pub use bucket::BucketName;
pub use category::Category;
pub use error::DomainError;
pub use expiry::Expiry;
pub use filename::Filename;
pub use media_type::MediaType;
pub use object_key::ObjectKey;
pub use restore::{Restore, RestoreTier};
pub use tenant_id::TenantId;

/// Helpers for the parsers' property tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use proptest::strategy::Strategy;
    use proptest::test_runner::{TestCaseError, TestRunner};

    /// Runs `check` on inputs from `strategy`; `check` returns whether the parser accepted the
    /// input (after asserting what it must of it). Fails unless both accepted and refused inputs
    /// were seen, so that a strategy too wild or too tame cannot leave an assertion unreached.
    pub fn both_branches<S: Strategy<Value = String>>(
        strategy: S,
        check: impl Fn(&str) -> Result<bool, TestCaseError>,
    ) {
        let (accepted, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
        TestRunner::default()
            .run(&strategy, |s| {
                let counter = if check(&s)? { &accepted } else { &refused };
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .unwrap();
        let (a, r) = (accepted.into_inner(), refused.into_inner());
        assert!(a > 0 && r > 0, "accepted {a}, refused {r}: the strategy must reach both branches");
    }
}
