//! Bad input and safety: every row of README's "Bad input" table that the local server can produce,
//! read-only source credentials (the source is never written to), and secrets kept out of every output.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use std::sync::atomic::Ordering::Relaxed;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockLegalHoldStatus, ObjectLockMode};
use common::chaos_proxy::{ChaosProxy, Faults};
use common::*;
use s3_backfill::local_server::{READER_ACCESS_KEY, READER_SECRET_KEY};

fn run_with(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    binary()
        .current_dir(work_dir())
        .args(args)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_and_non_s3_endpoints_and_unknown_flags_exit_2() {
    let source = create_bucket("safe-src", true).await;
    let destination = create_bucket("safe-dst", true).await;
    let (src, dst) = (format!("s3://{source}"), format!("s3://{destination}"));
    let creds = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];

    // Nothing listens on the port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = run_with(
        &[
            "copy",
            &src,
            &dst,
            "--endpoint-url",
            &format!("http://127.0.0.1:{port}"),
        ],
        &creds,
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("cannot reach the source endpoint"),
        "{}",
        text(&output)
    );

    // A web server that is not S3: answers every request with an HTML page.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let web = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let body = "<html><body>Welcome to nginx!</body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let output = run_with(
        &[
            "copy",
            &src,
            &dst,
            "--endpoint-url",
            &web,
            "--progress",
            "never",
        ],
        &creds,
    );
    assert_ne!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("not an S3 response"),
        "{}",
        text(&output)
    );
    assert!(histories(&destination, "").await.is_empty());

    let output = cli(&["copy", &src, &dst, "--no-such-flag"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("--no-such-flag"),
        "{}",
        text(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_with_read_only_source_credentials_succeeds_and_keeps_secrets_out_of_every_output() {
    let source = create_bucket("ro-src", true).await;
    let destination = create_bucket("ro-dst", true).await;
    for version in 0..3 {
        put(&source, "doc", format!("v{version}")).await;
    }
    delete(&source, "doc").await;
    put(&source, "big", vec![1u8; 7 << 20]).await;
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        format!(
            "[reader]\naws_access_key_id = {READER_ACCESS_KEY}\naws_secret_access_key = {READER_SECRET_KEY}\n\
             [writer]\naws_access_key_id = test\naws_secret_access_key = test\n"
        ),
    )
    .unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        "[profile reader]\nregion = us-east-1\n[profile writer]\nregion = us-east-1\n",
    )
    .unwrap();
    let report = dir.path().join("report.json");
    let checkpoint = dir.path().join("job.checkpoint");
    let output = binary()
        .current_dir(work_dir())
        .args([
            "copy",
            &format!("s3://{source}"),
            &format!("s3://{destination}"),
            "--endpoint-url",
            &server().endpoint,
            "--source-profile",
            "reader",
            "--dest-profile",
            "writer",
            "--multipart-threshold",
            "6MiB",
            "--report",
            report.to_str().unwrap(),
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--progress",
            "always",
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_CONFIG_FILE", &config)
        .env("RUST_LOG", "trace")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_same_histories(&source, &destination).await;
    // The source credentials could not have written anything; prove they are really read-only.
    let reader_write = binary()
        .current_dir(work_dir())
        .args([
            "copy",
            &format!("s3://{destination}"),
            &format!("s3://{source}/copied-back/"),
        ])
        .args([
            "--endpoint-url",
            &server().endpoint,
            "--profile",
            "reader",
            "--no-checkpoint",
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_CONFIG_FILE", &config)
        .output()
        .unwrap();
    assert_ne!(
        reader_write.status.code(),
        Some(0),
        "{}",
        text(&reader_write)
    );
    assert!(histories(&source, "copied-back/").await.is_empty());
    // No secret in stdout, stderr, the report or the checkpoint.
    let everything = [
        text(&output),
        std::fs::read_to_string(&report).unwrap(),
        std::fs::read_to_string(&checkpoint).unwrap(),
    ]
    .join("\n");
    for secret in [READER_SECRET_KEY, "aws_secret_access_key"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    // Every log level and format: fresh destinations, so every request path runs again.
    for flags in [
        &["-vvv"][..],
        &["-vvv", "--log-format", "json"],
        &["--log-format", "json"],
    ] {
        let fresh = create_bucket("ro-log", true).await;
        let logged = binary()
            .current_dir(work_dir())
            .args(["copy", &format!("s3://{source}"), &format!("s3://{fresh}")])
            .args(["--endpoint-url", &server().endpoint])
            .args(["--source-profile", "reader", "--dest-profile", "writer"])
            .args(["--multipart-threshold", "6MiB", "--no-checkpoint"])
            .args(["--progress", "json", "--progress-interval", "0.2"])
            .args(flags)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
            .env("AWS_CONFIG_FILE", &config)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert!(logged.status.success(), "{flags:?}: {}", text(&logged));
        let shown = text(&logged);
        assert!(
            shown.lines().count() > 5,
            "{flags:?} logged nothing: {shown}"
        );
        for secret in [
            READER_SECRET_KEY,
            "aws_secret_access_key",
            "Signature=",
            "x-amz-security-token",
        ] {
            assert!(!shown.contains(secret), "{flags:?}: {secret} leaked");
        }
    }
    use std::os::unix::fs::PermissionsExt;
    for file in [&report, &checkpoint] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_deleted_midway_fails_that_key_only() {
    let source = create_bucket("midway-src", true).await;
    let destination = create_bucket("midway-dst", true).await;
    // 40 keys ahead of z/last at 5 requests a second (a HEAD and a copy each on SeaweedFS, which has
    // no default encryption): about 16 s in which the deletion must land, even on a loaded machine.
    for index in 0..40 {
        put(&source, &format!("a/{index:02}"), "x").await;
    }
    for version in 0..3 {
        put(&source, "z/last", format!("version {version}")).await;
    }
    let ids = version_ids(&source, "z/last").await;
    // Slow enough (5 requests a second) that the deletion lands while the run is going: the listing
    // saw z/last's three versions, its middle one is gone by the time it is copied.
    let child = command(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--rate-limit",
        "5",
        "--concurrency",
        "1",
        "--no-checkpoint",
        "--progress",
        "never",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // The first copy arriving proves the listing is done; z/last comes some seconds later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while histories(&destination, "").await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "nothing arrived");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    client()
        .delete_object()
        .bucket(&source)
        .key("z/last")
        .version_id(&ids[1])
        .send()
        .await
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let shown = text(&output);
    assert!(
        shown.contains(&format!("failed: s3://{source}/z/last version {}", ids[1])),
        "{shown}"
    );
    // The other keys are complete; z/last stopped after its first version (nothing out of order).
    let arrived = histories(&destination, "").await;
    assert_eq!(arrived.len(), 41, "{arrived:?}");
    let last = arrived.iter().find(|(k, _)| k == "z/last").unwrap();
    assert_eq!(last.1.len(), 1, "{last:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_with_object_lock_default_retention_gets_every_version_and_a_notice() {
    let source = create_bucket("lockdefault-src", true).await;
    let destination = create_locked_bucket("lockdefault-dst", Some(1)).await;
    for index in 0..10 {
        let key = format!("k/{index}");
        put(&source, &key, "one").await;
        put(&source, &key, "two!").await;
    }
    delete(&source, "k/3").await;
    put(&source, "big", vec![5u8; 6 << 20]).await;
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--multipart-threshold",
        "5MiB",
        "--part-size",
        "5MiB",
        "--no-checkpoint",
        "--progress",
        "never",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let shown = text(&output);
    assert!(
        shown.contains(&format!(
            "destination bucket {destination} has Object Lock default retention (GOVERNANCE for 1 day(s))"
        )),
        "{shown}"
    );
    assert_same_histories(&source, &destination).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_with_object_lock_keeps_retention_or_needs_no_object_lock() {
    let source = create_locked_bucket("locked-src", None).await;
    let until = DateTime::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 86_400,
    );
    put(&source, "plain", "no retention").await;
    for (key, body) in [("held", vec![1u8; 10]), ("held-big", vec![2u8; 6 << 20])] {
        client()
            .put_object()
            .bucket(&source)
            .key(key)
            .body(ByteStream::from(body))
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(until)
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .send()
            .await
            .unwrap();
    }
    let copy = |endpoint: &str, destination: &str, extra: &[&str]| {
        copy_via(endpoint, &source, destination)
            .args(["--no-checkpoint", "--progress", "never"])
            .args(["--multipart-threshold", "5MiB", "--part-size", "5MiB"])
            .args(extra)
            .output()
            .unwrap()
    };
    // A destination without Object Lock cannot keep the retention: refused before any write.
    let plain = create_bucket("locked-plain-dst", true).await;
    let output = copy(&server().endpoint, &plain, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let shown = text(&output);
    assert!(
        shown.contains(&format!(
            "source bucket {source} has Object Lock enabled and destination bucket {plain} does not"
        )) && shown.contains("--no-object-lock"),
        "{shown}"
    );
    assert!(histories(&plain, "").await.is_empty());
    // --no-object-lock copies the versions without it.
    let output = copy(&server().endpoint, &plain, &["--no-object-lock"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(histories(&plain, "").await.len(), 3);
    // Into a bucket with Object Lock, each locked version's copy asks for the same retention and hold:
    // the recording proxy sees the headers on the CopyObject and on the CreateMultipartUpload (SeaweedFS
    // applies them on multipart uploads only, so the stored result is checked there).
    let locked = create_locked_bucket("locked-dst", None).await;
    let proxy = ChaosProxy::start(server().port, Faults::default(), 1);
    let output = copy(&proxy.endpoint, &locked, &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("each version's retention and legal hold are read"));
    assert_eq!(proxy.counts.object_lock_headers.load(Relaxed), 2);
    let head = client()
        .head_object()
        .bucket(&locked)
        .key("held-big")
        .send()
        .await
        .unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
    assert_eq!(head.object_lock_retain_until_date(), Some(&until));
    assert_eq!(
        head.object_lock_legal_hold_status(),
        Some(&ObjectLockLegalHoldStatus::On)
    );
    assert_same_histories(&source, &locked).await;
}

#[test]
fn completion_scripts_name_every_command() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = offline(&["completions", shell]);
        assert_eq!(output.status.code(), Some(0), "{shell}: {}", text(&output));
        let script = String::from_utf8_lossy(&output.stdout);
        for command in ["copy", "verify", "status", "setup", "batch", "checkpoint"] {
            assert!(script.contains(command), "{shell}: {command} missing");
        }
    }
    let output = offline(&["completions", "tcsh"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

/// The first mistakes a new user makes, each named with its fix, with no SDK Debug dump in sight.
#[tokio::test(flavor = "multi_thread")]
async fn first_contact_errors_name_the_cause_and_the_fix() {
    let source = create_bucket("first-src", true).await;
    let destination = create_bucket("first-dst", true).await;
    let home = tempfile::tempdir().unwrap();
    // The server's keys, none, or the server's with one of them replaced.
    enum Keys {
        Server,
        Missing,
        Replaced(&'static str, &'static str),
    }
    let run = |extra: &[&str], credentials: &Keys| {
        let mut command = binary();
        command
            .current_dir(work_dir())
            .args([
                "copy",
                &format!("s3://{source}"),
                &format!("s3://{destination}"),
            ])
            .args(["--no-checkpoint"])
            .args(extra)
            .env("HOME", home.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_CONFIG_FILE")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE");
        match credentials {
            Keys::Server => {
                command.envs(server().env());
            }
            Keys::Missing => {
                command
                    .env_remove("AWS_ACCESS_KEY_ID")
                    .env_remove("AWS_SECRET_ACCESS_KEY");
            }
            Keys::Replaced(name, value) => {
                command.envs(server().env()).env(name, value);
            }
        }
        command.output().unwrap()
    };
    let endpoint = server().endpoint.clone();
    let port = endpoint.rsplit(':').next().unwrap().to_string();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let cases: Vec<(Vec<String>, Keys, &str)> = vec![
        // No credentials anywhere, the server up.
        (
            vec!["--endpoint-url".into(), endpoint.clone()],
            Keys::Missing,
            "no credentials for the source side",
        ),
        // A secret key that does not go with the access key.
        (
            vec!["--endpoint-url".into(), endpoint.clone()],
            Keys::Replaced("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
            "the secret key does not match the access key id: check AWS_SECRET_ACCESS_KEY",
        ),
        // An access key the endpoint does not know.
        (
            vec!["--endpoint-url".into(), endpoint.clone()],
            Keys::Replaced("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000"),
            "does not know this access key id: check AWS_ACCESS_KEY_ID",
        ),
        // A profile that does not exist is not skipped in favour of other credentials.
        (
            vec![
                "--endpoint-url".into(),
                endpoint.clone(),
                "--profile".into(),
                "nosuch".into(),
            ],
            Keys::Server,
            "profile \"nosuch\" is not in",
        ),
        // An endpoint without its scheme.
        (
            vec!["--endpoint-url".into(), format!("127.0.0.1:{port}")],
            Keys::Server,
            "has no scheme: write it as http://127.0.0.1",
        ),
        // Nothing listening.
        (
            vec![
                "--endpoint-url".into(),
                format!("http://127.0.0.1:{closed}"),
            ],
            Keys::Server,
            "Connection refused",
        ),
    ];
    for (extra, credentials, expected) in cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let output = run(&extra, &credentials);
        let shown = text(&output);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {shown}");
        assert!(shown.contains(expected), "{extra:?}: {shown}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        for dump in ["DispatchFailure", "ConnectorError", "{ ", "Some(", "WARN"] {
            assert!(!stderr.contains(dump), "{extra:?} shows {dump:?}: {shown}");
        }
    }
}

#[test]
fn the_manual_page_and_environment_variables() {
    let output = offline(&["man"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let page = String::from_utf8_lossy(&output.stdout);
    assert!(page.contains(".TH s3-backfill 1"), "{page}");
    // An option's S3_BACKFILL_ variable is read, and a bad value named like the option's.
    let output = binary()
        .args(["copy", "s3://aaa", "s3://bbb"])
        .env("S3_BACKFILL_CONCURRENCY", "0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("--concurrency"), "{}", text(&output));
}

/// An endpoint with a certificate from a private CA: refused with the option to use, then trusted with
/// --ca-bundle (or AWS_CA_BUNDLE), as the aws CLI does.
#[test]
fn a_private_ca_is_trusted_with_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    use s3_backfill::local_server::SeaweedFs;
    let (certificate, key) = SeaweedFs::self_signed_certificate(dir.path());
    let tls = SeaweedFs::start_tls(&certificate, &key).unwrap();
    let run = |args: &[&str], bundle: Option<&std::path::Path>| {
        let mut command = binary();
        command
            .current_dir(work_dir())
            .args(args)
            .args(["--endpoint-url", &tls.endpoint])
            .envs(tls.env())
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_CA_BUNDLE");
        if let Some(bundle) = bundle {
            command.env("AWS_CA_BUNDLE", bundle);
        }
        command.output().unwrap()
    };
    let output = run(&["mb", "s3://tls-src"], None);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("--ca-bundle"), "{}", text(&output));
    for bucket in ["tls-src", "tls-dst"] {
        let output = run(&["mb", &format!("s3://{bucket}")], Some(&certificate));
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let output = run(&["s3bu", &format!("s3://{bucket}")], Some(&certificate));
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    }
    let output = run(
        &["copy", "s3://tls-src", "s3://tls-dst", "--no-checkpoint"],
        Some(&certificate),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // --no-verify-ssl: no bundle needed, and said loudly, on every command.
    for args in [
        &["mb", "s3://tls-insecure"][..],
        &["s3bu", "s3://tls-insecure"],
        &[
            "copy",
            "s3://tls-src",
            "s3://tls-insecure",
            "--no-checkpoint",
        ],
        &["verify", "s3://tls-src", "s3://tls-insecure"],
    ] {
        let output = run(&[args, &["--no-verify-ssl"][..]].concat(), None);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains("WARNING: --no-verify-ssl"),
            "{args:?}: {}",
            text(&output)
        );
    }
    // A file that holds no certificate is refused before anything runs.
    let output = run(&["mb", "s3://tls-x", "--ca-bundle"], None);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let output = run(
        &["mb", "s3://tls-x", "--ca-bundle", key.to_str().unwrap()],
        None,
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("holds no PEM certificate"),
        "{}",
        text(&output)
    );
}
