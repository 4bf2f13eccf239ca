//! The S3 seam: the trait the engine talks to, its aws-sdk-s3 implementation and its decorators.

mod api;
mod aws;
#[cfg(test)]
pub mod fake;
pub mod limit;
mod list_xml;
pub mod retry;

pub use api::*;
pub use aws::{AwsS3, Connection, classify, copy_source, load_config, manifest_key};
pub use list_xml::{parse_list_versions, url_decode};
