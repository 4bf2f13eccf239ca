//! The S3 clients the commands build, and the files they write.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use crate::cli::EndpointArgs;
use crate::error::Error;
use crate::progress::Progress;
use crate::s3::AwsS3;
use crate::s3::limit::{Limited, Limits};
use crate::s3::retry::{RetryPolicy, Retrying};

/// The client stack every command uses: retries around limits around aws-sdk-s3.
pub type Client = Retrying<Limited<AwsS3>>;

pub async fn clients(
    endpoints: &EndpointArgs,
    limits: &Arc<Limits>,
    progress: &Arc<Progress>,
) -> (Arc<Client>, Arc<Client>) {
    let (source, destination, _) =
        clients_and_places(endpoints, limits, progress, None, None).await;
    (source, destination)
}

/// Where each side is (`AwsS3::place`), for the job's identity.
pub struct Places {
    pub source: String,
    pub destination: String,
}

impl Places {
    /// Both sides talk to one endpoint URL, where one bucket name is one bucket (on Amazon S3 in
    /// whatever region: bucket names are global there).
    pub(crate) fn same_endpoint(&self) -> bool {
        self.source.split(' ').next() == self.destination.split(' ').next()
    }
}

/// The clients of both sides; with SSE-C keys, the source's reads use `source_key` and the
/// destination's writes `destination_key`, its copies reading the source with `source_key`.
pub(crate) async fn clients_and_places(
    endpoints: &EndpointArgs,
    limits: &Arc<Limits>,
    progress: &Arc<Progress>,
    source_key: Option<crate::s3::CustomerKey>,
    destination_key: Option<crate::s3::CustomerKey>,
) -> (Arc<Client>, Arc<Client>, Places) {
    let build = |aws: AwsS3| {
        Arc::new(Retrying::new(
            Limited::new(aws, Arc::clone(limits)),
            RetryPolicy::default(),
            Arc::clone(progress),
        ))
    };
    let source = AwsS3::connect(&crate::s3::Connection {
        customer_key: source_key.clone(),
        ..endpoints.source()
    })
    .await;
    let destination = AwsS3::connect(&crate::s3::Connection {
        customer_key: destination_key,
        copy_source_customer_key: source_key,
        ..endpoints.destination()
    })
    .await;
    let places = Places {
        source: source.place().to_string(),
        destination: destination.place().to_string(),
    };
    (build(source), build(destination), places)
}

/// Writes a file readable by its owner only (reports and manifests name buckets and keys).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(bytes))
        .map_err(|source| Error::File {
            path: path.display().to_string(),
            source,
        })
}
