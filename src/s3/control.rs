//! S3 Control (Batch Operations jobs), STS (the caller's account) and IAM (roles), behind traits like the
//! data path's: the commands build requests from the types re-exported here and never hold an SDK
//! client.
//!
//! S3 Control's endpoint rules put the account id in the host (`{AccountId}.s3-control...`), also for a
//! custom endpoint, where `123456789012.127.0.0.1:PORT` does not resolve: with an explicit control
//! endpoint an interceptor sends the request to the given host exactly (before signing, so the
//! signature matches).

use std::future::Future;

pub use super::DateTime;
use aws_sdk_s3control::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3control::config::{ConfigBag, Intercept, RuntimeComponents};
pub use aws_sdk_s3control::types::{
    GeneratedManifestFormat, JobDescriptor, JobListDescriptor, JobManifest, JobManifestFieldName,
    JobManifestFormat, JobManifestGenerator, JobManifestGeneratorFilter, JobManifestLocation,
    JobManifestSpec, JobOperation, JobProgressSummary, JobReport, JobReportFormat, JobReportScope,
    JobStatus, KeyNameConstraint, ReplicationStatus, S3CopyObjectOperation, S3JobManifestGenerator,
    S3ManifestOutputLocation, S3ReplicateObjectOperation,
};

use super::aws::{Connection, load_config};

/// A failed S3 Control, STS or IAM call: the service's code and message (and HTTP status), or what
/// went wrong on the way.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ServiceError(pub String);

fn service_error<E>(
    error: aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::http::Response,
    >,
) -> ServiceError
where
    E: aws_sdk_s3control::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    match error.as_service_error() {
        Some(service) => ServiceError(format!(
            "{} ({}){}",
            service.code().unwrap_or("no error code"),
            service.message().unwrap_or("no message"),
            status.map_or(String::new(), |s| format!(", HTTP {s}"))
        )),
        None => {
            ServiceError(aws_smithy_types::error::display::DisplayErrorContext(&error).to_string())
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// A CreateJob request: what the job does, on which manifest (or generator), and its bookkeeping.
#[derive(Debug, Clone)]
pub struct CreateJob {
    pub operation: JobOperation,
    pub report: JobReport,
    pub manifest: Option<JobManifest>,
    pub generator: Option<JobManifestGenerator>,
    /// Idempotency: the same token is the same job.
    pub token: String,
    pub priority: i32,
    pub role_arn: String,
    pub confirmation_required: bool,
    pub description: String,
}

/// S3 Batch Operations jobs, and the account they run in.
pub trait Jobs: Send + Sync {
    /// The caller's account (STS GetCallerIdentity).
    fn account_id(&self) -> impl Future<Output = ServiceResult<String>> + Send;
    fn create_job(
        &self,
        account: &str,
        job: &CreateJob,
    ) -> impl Future<Output = ServiceResult<String>> + Send;
    fn describe_job(
        &self,
        account: &str,
        id: &str,
    ) -> impl Future<Output = ServiceResult<JobDescriptor>> + Send;
    fn list_jobs(
        &self,
        account: &str,
        status: Option<&str>,
    ) -> impl Future<Output = ServiceResult<Vec<JobListDescriptor>>> + Send;
    /// Requests cancellation; returns the job's status after it.
    fn cancel_job(
        &self,
        account: &str,
        id: &str,
    ) -> impl Future<Output = ServiceResult<Option<String>>> + Send;
}

/// An IAM role as the setup commands see it.
#[derive(Debug, Clone)]
pub struct Role {
    pub arn: String,
    /// The trust policy document, decoded.
    pub trust_policy: String,
}

/// The IAM calls `setup` makes for the replication and Batch Operations roles.
pub trait Roles: Send + Sync {
    fn get_role(&self, name: &str) -> impl Future<Output = ServiceResult<Option<Role>>> + Send;
    /// Creates the role; returns its ARN.
    fn create_role(
        &self,
        name: &str,
        trust_policy: &str,
        description: &str,
    ) -> impl Future<Output = ServiceResult<String>> + Send;
    /// The role's inline policy `policy`, decoded; None when it has none.
    fn role_policy(
        &self,
        name: &str,
        policy: &str,
    ) -> impl Future<Output = ServiceResult<Option<String>>> + Send;
    fn put_role_policy(
        &self,
        name: &str,
        policy: &str,
        document: &str,
    ) -> impl Future<Output = ServiceResult<()>> + Send;
}

/// Sends every request to the endpoint the user gave, undoing the account-id host prefix.
#[derive(Debug)]
struct ExactHost {
    authority: String,
}

impl Intercept for ExactHost {
    fn name(&self) -> &'static str {
        "S3ControlExactHost"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let request = context.request_mut();
        let uri = request.uri().to_string();
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or("request URI without a scheme")?;
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        request.set_uri(format!("{scheme}://{}{path}", self.authority))?;
        Ok(())
    }
}

/// `Jobs` on aws-sdk-s3control and aws-sdk-sts.
pub struct AwsJobs {
    control: aws_sdk_s3control::Client,
    sts: aws_sdk_sts::Client,
}

impl AwsJobs {
    /// Clients for `connection`'s side; S3 Control requests go to `control_endpoint` exactly when given.
    pub async fn connect(connection: &Connection, control_endpoint: Option<&str>) -> AwsJobs {
        let shared = load_config(connection).await;
        let mut builder = aws_sdk_s3control::config::Builder::from(&shared);
        if let Some(url) = control_endpoint {
            let authority = url
                .split_once("://")
                .map_or(url, |(_, rest)| rest)
                .trim_end_matches('/')
                .to_string();
            builder = builder
                .endpoint_url(url)
                .interceptor(ExactHost { authority });
        }
        AwsJobs {
            control: aws_sdk_s3control::Client::from_conf(builder.build()),
            sts: aws_sdk_sts::Client::new(&shared),
        }
    }
}

impl Jobs for AwsJobs {
    async fn account_id(&self) -> ServiceResult<String> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(service_error)?;
        out.account()
            .map(str::to_string)
            .ok_or_else(|| ServiceError("STS gave no account id".into()))
    }

    async fn create_job(&self, account: &str, job: &CreateJob) -> ServiceResult<String> {
        let out = self
            .control
            .create_job()
            .account_id(account)
            .operation(job.operation.clone())
            .report(job.report.clone())
            .set_manifest(job.manifest.clone())
            .set_manifest_generator(job.generator.clone())
            .client_request_token(&job.token)
            .priority(job.priority)
            .role_arn(&job.role_arn)
            .confirmation_required(job.confirmation_required)
            .description(&job.description)
            .send()
            .await
            .map_err(service_error)?;
        Ok(out.job_id().unwrap_or_default().to_string())
    }

    async fn describe_job(&self, account: &str, id: &str) -> ServiceResult<JobDescriptor> {
        let out = self
            .control
            .describe_job()
            .account_id(account)
            .job_id(id)
            .send()
            .await
            .map_err(service_error)?;
        out.job()
            .cloned()
            .ok_or_else(|| ServiceError(format!("DescribeJob gave no job {id}")))
    }

    async fn list_jobs(
        &self,
        account: &str,
        status: Option<&str>,
    ) -> ServiceResult<Vec<JobListDescriptor>> {
        let out = self
            .control
            .list_jobs()
            .account_id(account)
            .set_job_statuses(status.map(|s| vec![JobStatus::from(s)]))
            .send()
            .await
            .map_err(service_error)?;
        Ok(out.jobs().to_vec())
    }

    async fn cancel_job(&self, account: &str, id: &str) -> ServiceResult<Option<String>> {
        let out = self
            .control
            .update_job_status()
            .account_id(account)
            .job_id(id)
            .requested_job_status(aws_sdk_s3control::types::RequestedJobStatus::Cancelled)
            .status_update_reason("cancelled with s3-backfill batch cancel")
            .send()
            .await
            .map_err(service_error)?;
        Ok(out.status().map(|s| s.as_str().to_string()))
    }
}

/// `Roles` on aws-sdk-iam.
pub struct AwsRoles {
    iam: aws_sdk_iam::Client,
}

impl AwsRoles {
    pub async fn connect(connection: &Connection) -> AwsRoles {
        AwsRoles {
            iam: aws_sdk_iam::Client::new(&load_config(connection).await),
        }
    }
}

fn decoded(document: &str) -> String {
    percent_encoding::percent_decode_str(document)
        .decode_utf8_lossy()
        .into_owned()
}

impl Roles for AwsRoles {
    async fn get_role(&self, name: &str) -> ServiceResult<Option<Role>> {
        match self.iam.get_role().role_name(name).send().await {
            Ok(out) => Ok(out.role().map(|role| Role {
                arn: role.arn().to_string(),
                trust_policy: role
                    .assume_role_policy_document()
                    .map(decoded)
                    .unwrap_or_default(),
            })),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(service_error(e)),
        }
    }

    async fn create_role(
        &self,
        name: &str,
        trust_policy: &str,
        description: &str,
    ) -> ServiceResult<String> {
        let out = self
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust_policy)
            .description(description)
            .send()
            .await
            .map_err(service_error)?;
        Ok(out.role().map(|r| r.arn().to_string()).unwrap_or_default())
    }

    async fn role_policy(&self, name: &str, policy: &str) -> ServiceResult<Option<String>> {
        match self
            .iam
            .get_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .await
        {
            Ok(out) => Ok(Some(decoded(out.policy_document()))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(service_error(e)),
        }
    }

    async fn put_role_policy(&self, name: &str, policy: &str, document: &str) -> ServiceResult<()> {
        self.iam
            .put_role_policy()
            .role_name(name)
            .policy_name(policy)
            .policy_document(document)
            .send()
            .await
            .map_err(service_error)?;
        Ok(())
    }
}
