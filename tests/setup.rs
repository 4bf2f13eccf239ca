//! Replication setup against a real moto 5.1.22 server (S3 configuration and IAM) started by the test
//! harness, through the real binary. What the commands did is read back with independent SDK clients.

mod common;

use common::chaos_proxy;
use common::moto::{moto, moto_config as config, moto_s3 as s3, on_moto as cli};
use common::{bucket_name as name, text};

fn ok(args: &[&str]) -> String {
    let output = cli(args);
    assert!(output.status.success(), "{args:?}: {}", text(&output));
    text(&output)
}

fn refused(args: &[&str], needles: &[&str]) {
    let output = cli(args);
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {shown}");
    for needle in needles {
        assert!(
            shown.contains(needle),
            "{args:?}: missing {needle:?} in {shown}"
        );
    }
}

async fn rules(bucket: &str) -> Option<aws_sdk_s3::types::ReplicationConfiguration> {
    s3().await
        .get_bucket_replication()
        .bucket(bucket)
        .send()
        .await
        .ok()
        .and_then(|out| out.replication_configuration().cloned())
}

/// The replication configuration as moto stored it (its management API): GetBucketReplication on moto
/// answers from a fixed template that always says prefix "", delete markers Disabled and no storage
/// class, so those fields are checked here, where the server keeps what it received.
fn stored_rules(bucket: &str) -> Vec<serde_json::Value> {
    let body = std::process::Command::new("curl")
        .args(["-sf", &format!("{}/moto-api/data.json", moto().endpoint)])
        .output()
        .expect("curl");
    let data: serde_json::Value = serde_json::from_slice(&body.stdout).expect("moto data");
    let bucket = data["s3"]["FakeBucket"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == bucket)
        .unwrap()
        .clone();
    match &bucket["replication"]["Rule"] {
        serde_json::Value::Array(rules) => rules.clone(),
        serde_json::Value::Null => Vec::new(),
        rule => vec![rule.clone()],
    }
}

const ROLE: &str = "arn:aws:iam::123456789012:role/replication";

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_flow_sets_up_a_whole_bucket_rule() {
    let (source, destination) = (name("seed-src"), name("seed-dst"));
    let (src, dst) = (format!("s3://{source}"), format!("s3://{destination}"));
    assert!(ok(&["s3mb", &src]).contains("created"));
    assert!(ok(&["s3mb", &src]).contains("exists already (nothing changed)"));
    ok(&["mb", &dst]);
    assert!(ok(&["s3bu", &src]).contains("-> Enabled"));
    assert!(ok(&["s3bu", &src]).contains("already (nothing changed)"));
    ok(&["versioning", &dst, "enable"]);
    assert!(ok(&["versioning", &dst, "status"]).contains("versioning Enabled"));
    let s3ptr = [
        "s3ptr",
        &src,
        &dst,
        "backfill-rule",
        "--rule-scope",
        "all",
        "--destination-region",
        "us-east-1",
        "--role-arn",
        ROLE,
    ];
    let output = ok(&s3ptr);
    assert!(
        output.contains("replication rule before: (no rule backfill-rule"),
        "{output}"
    );
    assert!(
        output.contains("replication rule after:  backfill-rule (Enabled"),
        "{output}"
    );

    // Read back independently.
    let configuration = rules(&source).await.expect("a replication configuration");
    assert_eq!(configuration.role(), ROLE);
    assert_eq!(configuration.rules().len(), 1);
    let rule = &configuration.rules()[0];
    assert_eq!(rule.id(), Some("backfill-rule"));
    assert_eq!(rule.status().as_str(), "Enabled");
    assert_eq!(
        rule.destination().unwrap().bucket(),
        format!("arn:aws:s3:::{destination}")
    );
    let stored = &stored_rules(&source)[0];
    // `<Prefix></Prefix>`: the whole bucket (moto stores the empty element as null).
    assert_eq!(
        stored["Filter"]["Prefix"].as_str().unwrap_or(""),
        "",
        "{stored}"
    );
    assert!(stored["Filter"]["Tag"].is_null(), "{stored}");
    assert_eq!(
        stored["DeleteMarkerReplication"]["Status"], "Disabled",
        "{stored}"
    );

    // The same again changes nothing; `replication get` shows it, as a table and as JSON.
    let again = ok(&s3ptr);
    assert!(
        again.contains("already as asked (nothing changed)"),
        "{again}"
    );
    assert!(
        ok(&["replication", "get", &src])
            .contains("backfill-rule (Enabled, priority 0, all objects)")
    );
    let output = cli(&["replication", "get", &src, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["Role"], ROLE);
    assert_eq!(json["Rules"][0]["ID"], "backfill-rule");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_is_added_updated_and_deleted_keeping_the_others() {
    let (source, destination) = (name("rules-src"), name("rules-dst"));
    let (src, dst) = (format!("s3://{source}"), format!("s3://{destination}"));
    for bucket in [&src, &dst] {
        ok(&["mb", bucket]);
        ok(&["s3bu", bucket]);
    }
    let put = |rule: &str, extra: &[&str]| {
        let mut args = vec![
            "replication",
            "put",
            &src,
            &dst,
            "--rule-name",
            rule,
            "--role-arn",
            ROLE,
        ];
        args.extend_from_slice(extra);
        ok(&args)
    };
    put("logs", &["--rule-scope", "prefix=logs/"]);
    put(
        "tagged",
        &[
            "--rule-scope",
            "tag=backup=yes",
            "--delete-marker-replication",
            "on",
        ],
    );
    let tagged = stored_rules(&source)
        .into_iter()
        .find(|r| r["ID"] == "tagged")
        .unwrap();
    assert_eq!(tagged["Filter"]["Tag"]["Key"], "backup", "{tagged}");
    assert_eq!(tagged["Filter"]["Tag"]["Value"], "yes", "{tagged}");
    assert_eq!(
        tagged["DeleteMarkerReplication"]["Status"], "Enabled",
        "{tagged}"
    );
    let output = put(
        "logs",
        &[
            "--rule-scope",
            "prefix=logs/",
            "--storage-class",
            "STANDARD_IA",
        ],
    );
    assert!(output.contains("replication rule before: logs"), "{output}");
    let configuration = rules(&source).await.unwrap();
    assert_eq!(configuration.rules().len(), 2);
    let by_id = |id: &str| {
        configuration
            .rules()
            .iter()
            .find(|r| r.id() == Some(id))
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("logs").priority(), Some(0));
    assert_eq!(by_id("tagged").priority(), Some(1));
    let stored = stored_rules(&source);
    let logs = stored.iter().find(|r| r["ID"] == "logs").unwrap();
    assert_eq!(logs["Filter"]["Prefix"], "logs/", "{logs}");
    assert_eq!(logs["Destination"]["StorageClass"], "STANDARD_IA", "{logs}");
    assert_eq!(
        logs["DeleteMarkerReplication"]["Status"], "Disabled",
        "{logs}"
    );

    ok(&["replication", "delete", &src, "--rule-name", "tagged"]);
    let left = rules(&source).await.unwrap();
    assert_eq!(left.rules().len(), 1);
    assert_eq!(left.rules()[0].id(), Some("logs"));
    ok(&["replication", "delete", &src]);
    assert!(rules(&source).await.is_none());
    assert!(ok(&["replication", "delete", &src]).contains("nothing changed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_creates_everything_once_and_the_second_run_changes_nothing() {
    let (source, destination) = (name("setup-src"), name("setup-dst"));
    let (src, dst) = (format!("s3://{source}"), format!("s3://{destination}"));
    let role_name = name("backfill-role");
    let args = [
        "setup",
        &src,
        &dst,
        "--rule-name",
        "everything",
        "--create-role",
        &role_name,
    ];
    let first = ok(&args);
    assert!(
        first.contains(&format!("role {role_name}: (none) -> created")),
        "{first}"
    );
    assert!(first.contains("4. existing objects: not copied"), "{first}");
    let second = ok(&args);
    assert!(
        second.contains("everything was already set up: nothing changed"),
        "{second}"
    );
    for change in ["(none) ->", "-> Enabled", "before:", "attached", "updated"] {
        assert!(!second.contains(change), "{change:?} in {second}");
    }

    let client = s3().await;
    for bucket in [&source, &destination] {
        let versioning = client
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
    }
    let iam = aws_sdk_iam::Client::new(&config().await);
    let role = iam.get_role().role_name(&role_name).send().await.unwrap();
    let role = role.role().unwrap();
    let trust = percent_encoding::percent_decode_str(role.assume_role_policy_document().unwrap())
        .decode_utf8_lossy()
        .into_owned();
    assert!(trust.contains("s3.amazonaws.com"), "{trust}");
    let permissions = iam
        .get_role_policy()
        .role_name(&role_name)
        .policy_name("s3-backfill-replication")
        .send()
        .await
        .unwrap();
    let permissions = percent_encoding::percent_decode_str(permissions.policy_document())
        .decode_utf8_lossy()
        .into_owned();
    assert!(permissions.contains("s3:ReplicateObject"), "{permissions}");
    assert!(
        permissions.contains(&format!("arn:aws:s3:::{destination}/*")),
        "{permissions}"
    );
    let configuration = rules(&source).await.unwrap();
    assert_eq!(configuration.role(), role.arn());
    assert_eq!(configuration.rules()[0].id(), Some("everything"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_preflight_error_is_refused_before_any_change() {
    let (source, destination) = (name("pre-src"), name("pre-dst"));
    let (src, dst) = (format!("s3://{source}"), format!("s3://{destination}"));
    ok(&["mb", &src]);
    ok(&["mb", &dst]);
    let put = |extra: &[&str]| {
        let mut args = vec!["replication", "put", &src, &dst, "--rule-name", "r"];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>, needles: &[&str]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, needles)
    };
    // No role option: both are shown.
    run(put(&[]), &["--role-arn ARN", "--create-role NAME"]);
    // Versioning off on the source, then on the destination.
    run(
        put(&["--role-arn", ROLE]),
        &[
            &format!("source bucket {source} has versioning not enabled"),
            &format!("s3-backfill s3bu s3://{source}"),
        ],
    );
    ok(&["s3bu", &src]);
    run(
        put(&["--role-arn", ROLE]),
        &[&format!("s3-backfill s3bu s3://{destination}")],
    );
    ok(&["s3bu", &dst]);
    // A missing bucket, an invalid name, a long rule name, the same bucket, a wrong region.
    let missing = name("missing");
    refused(
        &[
            "replication",
            "put",
            &src,
            &format!("s3://{missing}"),
            "--rule-name",
            "r",
            "--role-arn",
            ROLE,
        ],
        &[&format!("destination bucket {missing} does not exist")],
    );
    refused(
        &[
            "replication",
            "put",
            &src,
            "s3://Bad_Name",
            "--rule-name",
            "r",
            "--role-arn",
            ROLE,
        ],
        &["Bad_Name", "lowercase"],
    );
    let long = "r".repeat(256);
    refused(
        &[
            "replication",
            "put",
            &src,
            &dst,
            "--rule-name",
            &long,
            "--role-arn",
            ROLE,
        ],
        &["256 characters", "1 to 255"],
    );
    refused(
        &[
            "replication",
            "put",
            &src,
            &src,
            "--rule-name",
            "r",
            "--role-arn",
            ROLE,
        ],
        &["the destination bucket is the source bucket"],
    );
    run(
        put(&["--role-arn", ROLE, "--destination-region", "eu-west-1"]),
        &["--destination-region eu-west-1", "is in us-east-1"],
    );
    // None of them wrote a rule.
    assert!(rules(&source).await.is_none());
}

#[test]
fn role_policy_prints_both_documents() {
    let output = common::binary()
        .args([
            "role",
            "policy",
            "--source",
            "s3://a-src",
            "--dest",
            "s3://a-dst",
            "--for",
            "batch",
            "--dest-kms-key",
            "arn:aws:kms:us-east-1:111122223333:key/k",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        shown.contains("batchoperations.s3.amazonaws.com"),
        "{shown}"
    );
    assert!(
        shown.contains("s3:InitiateReplication") && shown.contains("kms:Encrypt"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_with_existing_copy_backfills_what_replication_skips() {
    let (source, destination) = (name("exist-src"), name("exist-dst"));
    let (src, dst) = (format!("s3://{source}"), format!("s3://{destination}"));
    ok(&["mb", &src]);
    ok(&["s3bu", &src]);
    let client = s3().await;
    for body in ["first", "second"] {
        client
            .put_object()
            .bucket(&source)
            .key("doc.txt")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(
                body.as_bytes(),
            ))
            .send()
            .await
            .unwrap();
    }
    client
        .delete_object()
        .bucket(&source)
        .key("doc.txt")
        .send()
        .await
        .unwrap();
    let output = ok(&[
        "setup",
        &src,
        &dst,
        "--rule-name",
        "all",
        "--role-arn",
        ROLE,
        "--existing",
        "copy",
    ]);
    // The backfill comes before the rule, and a catch-up after it.
    let backfill = output.find("3. existing objects: copying").expect(&output);
    let rule = output.find("4. replication rule and role").expect(&output);
    let catch_up = output.find("5. catch-up").expect(&output);
    assert!(backfill < rule && rule < catch_up, "{output}");
    let listed = client
        .list_object_versions()
        .bucket(&destination)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.versions().len(), 2, "{output}");
    assert_eq!(listed.delete_markers().len(), 1, "{output}");
    // In order: the delete marker was written last (moto lists versions before delete markers, so the
    // engine has to order them by IsLatest).
    assert_eq!(
        listed.delete_markers()[0].is_latest(),
        Some(true),
        "{output}"
    );
    // --existing batch is refused before anything changes.
    let other = name("batch-dst");
    refused(
        &[
            "setup",
            &src,
            &format!("s3://{other}"),
            "--rule-name",
            "b",
            "--role-arn",
            ROLE,
            "--existing",
            "batch",
        ],
        &[
            "--existing batch",
            "--batch-role-arn ARN",
            "--report s3://BUCKET/PREFIX",
        ],
    );
}

/// Each key's versions on moto, oldest first, as (ETag, size); moto lists a key's versions newest first
/// (there are no delete markers here).
async fn version_etags(bucket: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let listed = s3()
        .await
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert!(!listed.is_truncated().unwrap_or(false));
    let mut keys = std::collections::BTreeMap::<String, Vec<String>>::new();
    for version in listed.versions() {
        keys.entry(version.key().unwrap().to_string())
            .or_default()
            .push(version.e_tag().unwrap().to_string());
    }
    for etags in keys.values_mut() {
        etags.reverse();
    }
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_flow_never_fights_live_replication() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let (source, destination) = (name("live-src"), name("live-dst"));
    let (src, dst) = (format!("s3://{source}"), format!("s3://{destination}"));
    ok(&["mb", &src]);
    ok(&["s3bu", &src]);
    let client = s3().await;
    let put = move |bucket: String, key: String, body: String| {
        let client = client.clone();
        async move {
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(aws_sdk_s3::primitives::ByteStream::from(body.into_bytes()))
                .send()
                .await
                .unwrap();
        }
    };
    for index in 0..20 {
        let key = format!("{}/{index:02}", if index < 4 { "hot" } else { "cold" });
        for version in 0..2 {
            put(source.clone(), key.clone(), format!("{key} v{version}")).await;
        }
    }
    let before = version_etags(&source).await;
    // A writer keeps writing new versions of the hot keys while setup runs. A stand-in for S3
    // Replication mirrors each write made once the rule exists into the destination, 300 ms later
    // (S3 takes seconds; the rule is looked up after the write, so a write it mirrors came at most one
    // request before the rule). A replica racing the catch-up's own write of an older entry of the
    // same key within a few milliseconds is the one case no order avoids (README says so).
    let setup_done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (source, destination, done) = (source.clone(), destination.clone(), setup_done.clone());
        tokio::spawn(async move {
            let mut writes = Vec::new(); // (key, replicated)
            let mut replicas = tokio::task::JoinSet::new();
            for n in 0.. {
                let replicated_so_far = writes.iter().filter(|(_, r)| *r).count();
                if done.load(Relaxed) && replicated_so_far >= 5 {
                    break;
                }
                let key = format!("hot/{:02}", n % 4);
                let body = format!("{key} live {n}");
                put(source.clone(), key.clone(), body.clone()).await;
                let replicated = rules(&source).await.is_some();
                if replicated {
                    let replica = put(destination.clone(), key.clone(), body);
                    replicas.spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                        replica.await
                    });
                }
                writes.push((key, replicated));
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            replicas.join_all().await;
            writes
        })
    };
    let args = [
        "setup".to_string(),
        src.clone(),
        dst.clone(),
        "--rule-name".into(),
        "live".into(),
        "--role-arn".into(),
        ROLE.into(),
        "--existing".into(),
        "copy".into(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&args)
    })
    .await
    .unwrap();
    setup_done.store(true, Relaxed);
    let writes = writer.await.unwrap();
    let shown = text(&output);
    assert!(matches!(output.status.code(), Some(0 | 1)), "{shown}");
    let before_rule = writes.iter().filter(|(_, r)| !r).count();
    assert!(
        before_rule > 0,
        "no write landed during the backfill: {shown}"
    );
    let (sources, copies) = (
        version_etags(&source).await,
        version_etags(&destination).await,
    );
    assert_eq!(
        sources.keys().collect::<Vec<_>>(),
        copies.keys().collect::<Vec<_>>()
    );
    for (key, history) in &sources {
        let copy = &copies[key];
        // The current version is the source's, and every version from before setup is there, first.
        assert_eq!(
            copy.last(),
            history.last(),
            "{key}: {copy:?} vs {history:?}\n{shown}"
        );
        assert_eq!(copy[..before[key].len()], before[key][..], "{key}\n{shown}");
    }
    // Only keys written both before the rule and after it can be diverged, and each is named.
    let diverged: Vec<&str> = shown
        .lines()
        .filter_map(|line| line.strip_prefix(&format!("diverged: {dst}/")))
        .map(|rest| rest.split(' ').next().unwrap())
        .collect();
    eprintln!(
        "{before_rule} writes before the rule, {} after it; diverged: {diverged:?}",
        writes.len() - before_rule
    );
    for key in &diverged {
        let mine = writes.iter().filter(|(k, _)| k == key);
        assert!(
            mine.clone().any(|(_, r)| *r) && mine.clone().any(|(_, r)| !r),
            "{key} reported diverged without writes in both windows: {shown}"
        );
    }
    assert_eq!(
        output.status.code(),
        Some(if diverged.is_empty() { 0 } else { 1 }),
        "{shown}"
    );
    // Keys nobody wrote to meanwhile are in step: the copy of every version, nothing else.
    for (key, history) in sources.iter().filter(|(k, _)| k.starts_with("cold/")) {
        assert_eq!(&copies[key], history, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_website_buckets_redirects_survive_copy_object() {
    // moto here: SeaweedFS keeps no website redirects.
    let (source, destination) = (name("site-src"), name("site-dst"));
    let (src, dst) = (format!("s3://{source}"), format!("s3://{destination}"));
    for bucket in [&src, &dst] {
        ok(&["mb", bucket]);
        ok(&["s3bu", bucket]);
    }
    let client = s3().await;
    client
        .put_bucket_website()
        .bucket(&source)
        .website_configuration(
            aws_sdk_s3::types::WebsiteConfiguration::builder()
                .index_document(
                    aws_sdk_s3::types::IndexDocument::builder()
                        .suffix("index.html")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    // The destination encrypts by default, so no HEAD is made for encryption: the redirect alone asks.
    client
        .put_bucket_encryption()
        .bucket(&destination)
        .server_side_encryption_configuration(
            aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
                .rules(
                    aws_sdk_s3::types::ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::Aes256)
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .put_object()
        .bucket(&source)
        .key("old-page.html")
        .website_redirect_location("/new-page.html")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b""))
        .send()
        .await
        .unwrap();
    // Through the recording proxy: moto itself keeps redirects on CopyObject, S3 does not, so what
    // matters is that the copy asks for it.
    let proxy = chaos_proxy::ChaosProxy::start(moto().port, chaos_proxy::Faults::default(), 1);
    let output = common::binary()
        .current_dir(std::env::temp_dir())
        .args(["copy", &src, &dst, "--progress", "never"])
        .args(["--endpoint-url", &proxy.endpoint])
        .envs(moto().env())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    let output = text(&output);
    assert!(output.starts_with("exit Some(0)"), "{output}");
    let lines = proxy.counts.request_lines.lock().unwrap().clone();
    let copies = lines
        .iter()
        .filter(|line| line.starts_with("put ") && line.contains("old-page.html"))
        .count();
    assert_eq!(copies, 1, "{lines:?}");
    assert_eq!(
        proxy
            .counts
            .website_redirect_headers
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "{output}"
    );
    let head = client
        .head_object()
        .bucket(&destination)
        .key("old-page.html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.website_redirect_location(),
        Some("/new-page.html"),
        "{output}"
    );
}
