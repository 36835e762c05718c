use std::fmt;

use super::DomainError;

/// A request to restore an archived object: for how many days (1-365) the restored copy stays,
/// at which S3 retrieval tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restore {
    pub days: i32,
    pub tier: RestoreTier,
}

/// S3's retrieval tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreTier {
    Standard,
    Bulk,
    Expedited,
}

impl Restore {
    /// Returns `InvalidRestore` for days outside 1-365 or a tier S3 does not name.
    pub fn parse(days: i32, tier: &str) -> Result<Self, DomainError> {
        if !(1..=365).contains(&days) {
            return Err(DomainError::InvalidRestore("days must be 1 to 365"));
        }
        let tier = match tier {
            "Standard" => RestoreTier::Standard,
            "Bulk" => RestoreTier::Bulk,
            "Expedited" => RestoreTier::Expedited,
            _ => return Err(DomainError::InvalidRestore("tier must be Standard, Bulk or Expedited")),
        };
        Ok(Self { days, tier })
    }
}

impl fmt::Display for RestoreTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestoreTier::Standard => "Standard",
            RestoreTier::Bulk => "Bulk",
            RestoreTier::Expedited => "Expedited",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_s3_tiers_and_day_range() {
        assert_eq!(Restore::parse(7, "Bulk").unwrap().tier.to_string(), "Bulk");
        for (days, tier) in [(0, "Standard"), (366, "Standard"), (7, "standard"), (7, ""), (7, "Glacier")] {
            assert!(Restore::parse(days, tier).is_err(), "{days} {tier}");
        }
    }

    proptest! {
        #[test]
        fn only_the_three_tiers(days in -5i32..400, tier in "Standard|Bulk|Expedited|\\PC{0,12}") {
            let ok = (1..=365).contains(&days) && ["Standard", "Bulk", "Expedited"].contains(&tier.as_str());
            prop_assert_eq!(Restore::parse(days, &tier).is_ok(), ok);
        }
    }
}
