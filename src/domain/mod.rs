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
