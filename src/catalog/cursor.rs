use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::CatalogError;

/// The list orders the API offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Newest first (by upload time, then key descending).
    #[default]
    Newest,
    /// By file name, then key, ascending.
    Name,
}

impl SortOrder {
    /// Returns `None` for anything but `newest` and `name`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "newest" => Some(Self::Newest),
            "name" => Some(Self::Name),
            _ => None,
        }
    }
}

/// Where a listing page ended: the sort key of its last row. Opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "s")]
pub enum Cursor {
    #[serde(rename = "n")]
    Newest {
        /// Microseconds since the epoch.
        t: i64,
        k: String,
    },
    #[serde(rename = "f")]
    Name { f: String, k: String },
}

impl Cursor {
    pub fn sort(&self) -> SortOrder {
        match self {
            Cursor::Newest { .. } => SortOrder::Newest,
            Cursor::Name { .. } => SortOrder::Name,
        }
    }

    /// The opaque form handed to callers.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("cursor serialises"))
    }

    /// Parses an opaque cursor; `InvalidCursor` for anything `encode` did not produce.
    pub fn parse(raw: &str) -> Result<Self, CatalogError> {
        if raw.len() > 2048 {
            return Err(CatalogError::InvalidCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| CatalogError::InvalidCursor)?;
        serde_json::from_slice(&bytes).map_err(|_| CatalogError::InvalidCursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(t in any::<i64>(), k in "\\PC{0,80}", name in any::<bool>()) {
            let c = if name { Cursor::Name { f: k.clone(), k } } else { Cursor::Newest { t, k } };
            prop_assert_eq!(Cursor::parse(&c.encode()).unwrap(), c);
        }

        #[test]
        fn garbage_is_refused_not_panicking(s in "\\PC{0,200}|[A-Za-z0-9_-]{0,80}") {
            prop_assert!(Cursor::parse(&s).is_err(), "{s:?} parsed as a cursor");
        }
    }

    #[test]
    fn refuses_obvious_garbage() {
        assert!(Cursor::parse("not a cursor").is_err());
        assert!(Cursor::parse("").is_err());
    }
}
