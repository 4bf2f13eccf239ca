//! moto for the tests that need S3 Control, KMS or replication configuration: one server per test
//! binary, the binary run against it, and an SDK client of its own (the independent oracle).

use std::process::Output;
use std::sync::OnceLock;

use s3_backfill::local_server::Moto;

pub fn moto() -> &'static Moto {
    static SERVER: OnceLock<Moto> = OnceLock::new();
    SERVER.get_or_init(|| Moto::start().expect("start moto"))
}

/// Runs the binary against moto.
pub fn on_moto(args: &[&str]) -> Output {
    super::binary()
        .current_dir(super::work_dir())
        .args(args)
        .args(["--endpoint-url", &moto().endpoint])
        .envs(moto().env())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run s3-backfill")
}

/// The SDK configuration of moto, for clients independent of the engine's (S3, IAM).
pub async fn moto_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto().endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// An aws-sdk-s3 client for moto, independent of the engine's.
pub async fn moto_s3() -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto_config().await)
            .force_path_style(true)
            .build(),
    )
}
