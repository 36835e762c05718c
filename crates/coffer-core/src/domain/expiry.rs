use std::time::Duration;

use super::DomainError;

/// How long a presigned link lives: 1 second to 7 days (S3's own limit, which coffer applies to
/// its own links too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry(Duration);

impl Expiry {
    /// The longest lifetime, 604,800 seconds.
    pub const MAX: Duration = Duration::from_secs(604_800);

    /// Returns `InvalidExpiry` for zero, negative or more than 604,800 seconds.
    pub fn parse(seconds: i64) -> Result<Self, DomainError> {
        if seconds <= 0 {
            return Err(DomainError::InvalidExpiry("expires_in must be positive"));
        }
        if seconds as u64 > Self::MAX.as_secs() {
            return Err(DomainError::InvalidExpiry("expires_in must be at most 604800 seconds (7 days)"));
        }
        Ok(Self(Duration::from_secs(seconds as u64)))
    }

    pub fn duration(&self) -> Duration {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds() {
        assert!(Expiry::parse(0).is_err());
        assert!(Expiry::parse(-5).is_err());
        assert_eq!(Expiry::parse(1).unwrap().duration(), Duration::from_secs(1));
        assert_eq!(Expiry::parse(604_800).unwrap().duration(), Expiry::MAX);
        assert!(Expiry::parse(604_801).is_err());
        assert!(Expiry::parse(i64::MAX).is_err());
        assert!(Expiry::parse(i64::MIN).is_err());
    }

    proptest! {
        #[test]
        fn accepted_lifetimes_are_within_bounds(s in prop_oneof![any::<i64>(), -10i64..700_000]) {
            match Expiry::parse(s) {
                Ok(e) => prop_assert!((1..=604_800).contains(&e.duration().as_secs())),
                Err(_) => prop_assert!(!(1..=604_800).contains(&s)),
            }
        }
    }
}
