//! Checks before any write: both buckets reachable with the given credentials, the ranges distinct,
//! a versioned destination when whole histories are copied, and what Object Lock on either side
//! means. Every failure is a usage error (exit 2) that names the bucket and says how to fix it.

use crate::error::Error;
use crate::location::Location;
use crate::s3::{ListRequest, S3Api, S3Error, Versioning};

#[derive(Debug, Clone, Copy)]
pub enum Side {
    Source,
    Destination,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Destination => "destination",
        }
    }

    fn options(self) -> &'static str {
        match self {
            Side::Source => "--source-endpoint-url/--endpoint-url, --source-profile/--profile",
            Side::Destination => "--dest-endpoint-url/--endpoint-url, --dest-profile/--profile",
        }
    }

    fn profile_options(self) -> &'static str {
        match self {
            Side::Source => "--source-profile/--profile",
            Side::Destination => "--dest-profile/--profile",
        }
    }
}

/// What to do about a certificate the TLS client refused, by rustls's reason in `message`.
pub fn certificate_fix(message: &str) -> &'static str {
    if message.contains("CaUsedAsEndEntity") {
        // `openssl req -x509` makes such certificates by default: a common test setup.
        "the server presents a CA certificate (basicConstraints CA:TRUE) as its own, which TLS clients \
         refuse whatever they trust: give the server a certificate with CA:FALSE (`openssl req -x509 ... \
         -addext basicConstraints=critical,CA:FALSE`, or one signed by a CA of yours, which --ca-bundle \
         then names), or, for a test server only, --no-verify-ssl"
    } else if message.contains("NotValidForName") {
        "the certificate does not name the endpoint URL's host: use the name or address it was issued \
         for, or reissue it with that host in its subjectAltName"
    } else if message.contains("Expired") {
        "the certificate has expired (or this machine's clock is wrong): renew it"
    } else {
        "give its certificate authority with --ca-bundle FILE or AWS_CA_BUNDLE"
    }
}

/// What to do about credentials S3 refused, by its error code.
pub fn credentials_fix(code: &str) -> &'static str {
    match code {
        "InvalidAccessKeyId" => {
            "the endpoint does not know this access key id: check AWS_ACCESS_KEY_ID or the profile's \
             aws_access_key_id, and that the key belongs to this endpoint's account"
        }
        "SignatureDoesNotMatch" => {
            "the secret key does not match the access key id: check AWS_SECRET_ACCESS_KEY or the profile's \
             aws_secret_access_key (a proxy that rewrites requests does this too)"
        }
        "ExpiredToken" | "TokenRefreshRequired" => {
            "the session token has expired: get fresh credentials (aws sso login, assume the role again, \
             or a new AWS_SESSION_TOKEN) and run the same command again"
        }
        "InvalidToken" => {
            "the session token is malformed or not for these keys: check AWS_SESSION_TOKEN or the \
             profile's aws_session_token"
        }
        "RequestTimeTooSkewed" => {
            "this machine's clock is more than 15 minutes off the endpoint's: set the time (NTP) and run \
             again"
        }
        _ => "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the profile",
    }
}

/// Explains a failure to reach a bucket in terms of what the user can change.
pub fn bucket_error(side: Side, bucket: &str, error: S3Error) -> Error {
    let name = side.name();
    Error::Usage(match error {
        S3Error::NoSuchBucket { .. } => format!(
            "{name} bucket {bucket} does not exist: check its name, region and endpoint ({})",
            side.options()
        ),
        S3Error::BadCredentials { code, message } if code == "NoCredentials" => format!(
            "no credentials for the {name} side ({message}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
             or AWS_PROFILE / {} with a profile that exists in ~/.aws/credentials or ~/.aws/config",
            side.profile_options()
        ),
        S3Error::BadCredentials { code, message } => format!(
            "the {name} endpoint rejected the credentials ({code}: {message}): {} (the profile: {})",
            credentials_fix(&code),
            side.profile_options()
        ),
        S3Error::AccessDenied { code, .. } => format!(
            "access to {name} bucket {bucket} is denied ({code}): the source needs s3:ListBucketVersions, \
             s3:GetObjectVersion and s3:GetObjectVersionTagging; the destination s3:PutObject, \
             s3:PutObjectTagging and s3:DeleteObject"
        ),
        S3Error::Other { code, message } if code == "ProxyRefused" => format!(
            "{message} (the {name} side's proxy: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY or --proxy; \
             NO_PROXY or --no-proxy to go around it)"
        ),
        S3Error::Other { code, message } if code == "UntrustedCertificate" => format!(
            "the {name} endpoint's TLS certificate is not trusted ({message}): {}",
            certificate_fix(&message)
        ),
        S3Error::Transient { message, .. }
            if message.contains("certificate") || message.contains("UnknownIssuer") =>
        {
            format!(
                "the {name} endpoint's TLS certificate is not trusted ({message}): {}",
                certificate_fix(&message)
            )
        }
        S3Error::Transient { message, .. } => format!(
            "cannot reach the {name} endpoint for bucket {bucket} ({message}): check that the endpoint URL is \
             right and the server is running ({})",
            side.options()
        ),
        other => format!("failed to check {name} bucket {bucket}: {other}"),
    })
}

pub async fn check_bucket<C: S3Api>(client: &C, side: Side, bucket: &str) -> Result<(), Error> {
    let error = match client.head_bucket(bucket).await {
        Ok(()) => return Ok(()),
        Err(error) => error,
    };
    // HeadBucket answers a bare 403 whatever the cause; a request with a body names it
    // (InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied).
    let error = match error {
        S3Error::AccessDenied { .. } => client
            .list_versions(ListRequest {
                bucket: bucket.to_string(),
                max_keys: Some(1),
                ..ListRequest::default()
            })
            .await
            .err()
            .unwrap_or(error),
        other => other,
    };
    Err(bucket_error(side, bucket, error))
}

/// `same_endpoint`: both sides are on one endpoint URL.
///
/// Ranges that overlap by name are refused even on two endpoints: a server-side copy is sent to the
/// destination endpoint, which reads the source bucket *by name on its own side*, so with one bucket
/// name it would read what it writes (and two URLs of one service are one bucket anyway). On two
/// endpoints the destination must also be able to see the source bucket; between independent clusters
/// it cannot, and no server-side copy can work.
pub async fn preflight<C: S3Api>(
    source: &C,
    destination: &C,
    from: &Location,
    to: &Location,
    needs_versioning: bool,
    same_endpoint: bool,
) -> Result<(), Error> {
    if from.overlaps(to) {
        let why = if same_endpoint {
            "the copy would read what it writes; choose a destination outside the source range"
                .to_string()
        } else {
            format!(
                "a server-side copy is sent to the destination endpoint, which reads the source bucket {} by name \
                 on its own side, so it would read what it writes; copying between independent clusters needs a \
                 tool that moves the bytes (rclone, s5cmd), and two URLs of one service name one bucket",
                from.bucket
            )
        };
        return Err(Error::Usage(format!("{from} and {to} overlap: {why}")));
    }
    check_bucket(source, Side::Source, &from.bucket).await?;
    check_bucket(destination, Side::Destination, &to.bucket).await?;
    if !same_endpoint
        && let Err(S3Error::NoSuchBucket { .. }) = destination.head_bucket(&from.bucket).await
    {
        return Err(Error::Usage(format!(
            "the destination endpoint has no bucket {}: a server-side copy is sent to the destination, which must \
             reach the source bucket itself (two regions or accounts of one S3 service can; two independent \
             clusters cannot); between clusters, copy with a tool that moves the bytes (rclone, s5cmd)",
            from.bucket
        )));
    }
    if needs_versioning {
        let fix = format!(
            "enable it (`s3-backfill s3bu s3://{}`) or copy only current versions with --latest-only",
            to.bucket
        );
        require_versioning(destination, Side::Destination, &to.bucket, &fix).await?;
    }
    Ok(())
}

/// The destination range must be listable: every key is compared with what the destination holds
/// before anything is written to it.
pub async fn check_destination_listing<C: S3Api>(
    destination: &C,
    to: &Location,
) -> Result<(), Error> {
    match destination
        .list_versions(ListRequest {
            bucket: to.bucket.clone(),
            prefix: to.prefix.clone(),
            max_keys: Some(1),
            ..ListRequest::default()
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(S3Error::AccessDenied { code, .. }) => Err(Error::Usage(format!(
            "the destination credentials cannot list destination bucket {} ({code}): copy compares every key \
             with what the destination already holds, so that a rerun never writes anything twice; grant \
             s3:ListBucket and s3:ListBucketVersions on it",
            to.bucket
        ))),
        Err(error) => Err(bucket_error(Side::Destination, &to.bucket, error)),
    }
}

/// Fails unless `bucket` has versioning Enabled; the message ends with `fix`. One check for every
/// command that needs a versioned bucket (copy, replication, setup).
pub async fn require_versioning<C: S3Api>(
    client: &C,
    side: Side,
    bucket: &str,
    fix: &str,
) -> Result<(), Error> {
    let status = client
        .bucket_versioning(bucket)
        .await
        .map_err(|e| bucket_error(side, bucket, e))?;
    if status == Versioning::Enabled {
        return Ok(());
    }
    let state = match status {
        Versioning::Suspended => "suspended",
        _ => "not enabled",
    };
    Err(Error::Usage(format!(
        "{} bucket {bucket} has versioning {state}, and this needs it enabled: {fix}",
        side.name()
    )))
}

/// Decides whether each version's Object Lock retention and legal hold are carried (the source has
/// Object Lock), refuses a destination that could not hold them unless `drop` (--no-object-lock), and
/// warns when the destination's default retention will lock every copy.
pub async fn object_lock<C: S3Api>(
    source: &C,
    destination: &C,
    from: &Location,
    to: &Location,
    drop: bool,
) -> Result<bool, Error> {
    let (source_bucket, destination_bucket) = (&from.bucket, &to.bucket);
    // Servers without Object Lock support answer errors of their own: no lock there.
    let destination_lock = destination
        .object_lock(destination_bucket)
        .await
        .unwrap_or(None);
    if let Some(retention) = destination_lock
        .as_ref()
        .and_then(|lock| lock.default_retention.as_ref())
    {
        eprintln!(
            "note: destination bucket {destination_bucket} has Object Lock default retention ({retention}): every \
             copied version without a retention of its own gets it and cannot be deleted before it ends; \
             check the selection with --dry-run first"
        );
    }
    let source_lock = match source.object_lock(source_bucket).await {
        Ok(lock) => lock,
        Err(S3Error::AccessDenied { code, .. }) => {
            eprintln!(
                "warning: cannot read the Object Lock configuration of source bucket {source_bucket} ({code}): \
                 retention and legal holds are not carried; grant s3:GetBucketObjectLockConfiguration to carry them"
            );
            return Ok(false);
        }
        Err(_) => None,
    };
    if source_lock.is_none() {
        return Ok(false);
    }
    if drop {
        eprintln!(
            "note: source bucket {source_bucket} has Object Lock; --no-object-lock: the copies do not keep their \
             versions' retention or legal holds"
        );
        return Ok(false);
    }
    if destination_lock.is_none() {
        return Err(Error::Usage(format!(
            "source bucket {source_bucket} has Object Lock enabled and destination bucket {destination_bucket} \
             does not, so the versions' retention and legal holds cannot be kept: create the destination with \
             Object Lock (`aws s3api create-bucket --bucket {destination_bucket} --object-lock-enabled-for-bucket`, \
             or `aws s3api put-object-lock-configuration` on a versioned bucket), or pass --no-object-lock to copy \
             without them"
        )));
    }
    eprintln!(
        "source bucket {source_bucket} has Object Lock: each version's retention and legal hold are read \
         (one HEAD per version) and set on its copy"
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refused_certificate_is_explained_by_rustlss_reason() {
        let cases = [
            (
                "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
                "CA:FALSE",
            ),
            (
                "invalid peer certificate: NotValidForNameContext { expected: ..., presented: [] }",
                "subjectAltName",
            ),
            (
                "invalid peer certificate: ExpiredContext { time: ... }",
                "renew",
            ),
            ("invalid peer certificate: UnknownIssuer", "--ca-bundle"),
        ];
        for (message, fix) in cases {
            assert!(certificate_fix(message).contains(fix), "{message}");
        }
    }

    use super::*;

    /// Each way S3 refuses credentials gets its own cause and fix, on the side it happened.
    #[test]
    fn refused_credentials_are_told_apart() {
        let refused = |code: &str| {
            // Which codes are credentials is classify_code's (aws.rs); here: what the user reads.
            let error = S3Error::BadCredentials {
                code: code.into(),
                message: "refused".into(),
            };
            bucket_error(Side::Destination, "dst", error).to_string()
        };
        for (code, says) in [
            ("InvalidAccessKeyId", "check AWS_ACCESS_KEY_ID"),
            ("SignatureDoesNotMatch", "check AWS_SECRET_ACCESS_KEY"),
            ("ExpiredToken", "the session token has expired"),
            ("InvalidToken", "check AWS_SESSION_TOKEN"),
            ("RequestTimeTooSkewed", "clock"),
        ] {
            let message = refused(code);
            assert!(message.contains(says), "{code}: {message}");
            assert!(message.contains("destination"), "{code}: {message}");
            assert!(message.contains("--dest-profile"), "{code}: {message}");
        }
    }
}
