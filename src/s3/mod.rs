//! The S3 seam: the trait the engine talks to, its aws-sdk-s3 implementation and its decorators.

mod api;
mod aws;
#[cfg(test)]
pub mod fake;
#[cfg(any(test, feature = "testing"))]
pub mod faults;
pub mod limit;
mod list_xml;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod retry;

pub use api::*;
pub use aws::{AwsS3, Connection, classify, copy_source, load_config, manifest_key};
pub use list_xml::{parse_list_versions, url_decode};
