//! The S3 seam: the trait the engine talks to, its aws-sdk-s3 implementation and its decorators.

pub(crate) mod admin;
mod answer;
mod api;
mod aws;
mod aws_admin;
pub(crate) mod control;
mod direct;
#[cfg(test)]
pub mod fake;
#[cfg(any(test, feature = "testing"))]
pub mod faults;
mod insecure;
pub(crate) mod limit;
mod list_xml;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
mod net;
mod proxy;
pub(crate) mod retry;
mod transport;
mod wire;

pub use admin::{Created, PutOptions, S3Admin};
pub use api::*;
pub use aws::{
    AwsS3, Connection, check_ca_bundle, check_profile, classify, copy_source, load_config,
    manifest_key,
};
/// Time and base64 as S3 writes them (RFC 3339 and HTTP dates, SSE-C keys).
pub use aws_smithy_types::date_time::Format as DateFormat;
pub use aws_smithy_types::{DateTime, base64};
pub use list_xml::{parse_list_versions, url_decode};
pub use proxy::{ProxyChoice, check_proxy, without_credentials};

/// The client of the configuration commands: aws-sdk-s3 with our retries (the SDK's are off).
pub type Admin = retry::Retrying<AwsS3>;

/// An `Admin` client for one side.
pub async fn admin_client(connection: &Connection) -> Admin {
    retry::Retrying::new(
        AwsS3::connect(connection).await,
        retry::RetryPolicy::default(),
        std::sync::Arc::new(crate::progress::Progress::default()),
    )
}
