//! Copying from an S3 Inventory report and from a CSV manifest, against SeaweedFS, through the real binary.
//! The reports are written by the generator in `s3_backfill::input::fixture` (the AWS layout, shuffled
//! rows split across gzip'd files, extra columns) from the oracle's own listing of the source.

mod common;

use std::io::Write;

use aws_sdk_s3::primitives::ByteStream;
use common::*;
use s3_backfill::history::KeyHistory;
use s3_backfill::input::fixture::{ReportOptions, inventory_key, inventory_report};
use s3_backfill::s3::{Entry, EntryKind};

/// Versions written in quick succession (so SeaweedFS's whole-second times tie), awkward keys, null
/// versions and delete markers.
async fn seed(bucket: &str) {
    put(bucket, "null-then-more", "null version").await;
    enable_versioning(bucket).await;
    put(bucket, "null-then-more", "after versioning").await;
    for revision in 0..3 {
        put(bucket, "many", format!("revision {revision}")).await;
    }
    put(bucket, "marker-middle", "one").await;
    delete(bucket, "marker-middle").await;
    put(bucket, "marker-middle", "three").await;
    put(bucket, "marker-top", "a").await;
    delete(bucket, "marker-top").await;
    put(bucket, "empty", "").await;
    for key in [
        "with space",
        "plus+sign",
        "per%cent",
        "hash#and?q",
        "unicodé/日本語",
    ] {
        put(bucket, key, key).await;
        put(bucket, key, format!("{key} v2")).await;
    }
    for index in 0..40 {
        put(bucket, &format!("bulk/{index:03}"), format!("{index}")).await;
    }
}

/// The source's histories as the generator takes them. With `spread`, each key's times are rewritten
/// one second apart in the listed order (as real S3's millisecond times would be), except for the key
/// `many`, whose versions keep a shared time so that key must be ordered by a listing.
async fn source_histories(bucket: &str, spread: bool) -> Vec<KeyHistory> {
    raw_histories(bucket, "")
        .await
        .into_iter()
        .map(|(key, entries)| {
            let tie = key == "many";
            let entries = entries
                .into_iter()
                .enumerate()
                .map(|(n, raw)| Entry {
                    key: key.clone(),
                    version_id: raw.version_id,
                    is_latest: false,
                    last_modified: match (spread, tie) {
                        (true, false) => format!("2026-11-20T10:00:{n:02}.000Z"),
                        (true, true) => "2026-11-20T10:00:00.000Z".into(),
                        (false, _) => raw.last_modified,
                    },
                    kind: match raw.seen {
                        Seen::Version { size, etag } => EntryKind::Object {
                            size,
                            etag,
                            storage_class: None,
                        },
                        Seen::DeleteMarker => EntryKind::DeleteMarker,
                    },
                })
                .collect();
            KeyHistory { key, entries }
        })
        .collect()
}

async fn upload(bucket: &str, objects: &[(String, Vec<u8>)]) {
    for (key, bytes) in objects {
        client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(bytes.clone()))
            .send()
            .await
            .unwrap();
    }
}

/// A local copy of a report's objects, in the layout they have on S3.
fn write_tree(objects: &[(String, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (key, bytes) in objects {
        let path = dir.path().join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_every_version_from_an_inventory_report_on_s3() {
    let source = create_bucket("inv-src", false).await;
    let reports = create_bucket("inv-reports", false).await;
    seed(&source).await;
    let (objects, manifest) = inventory_report(
        &source,
        &source_histories(&source, true).await,
        &ReportOptions {
            data_files: 4,
            ..ReportOptions::default()
        },
    );
    upload(&reports, &objects).await;
    let uri = format!("s3://{reports}/{manifest}");

    // A dry run reads the whole report and writes nothing.
    let destination = create_bucket("inv-dst", true).await;
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--inventory",
        &uri,
        "--dry-run",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("from 4 files of inventory"),
        "{}",
        text(&output)
    );
    // Reading the report says so before it ends (then every --progress-interval with the rows read).
    assert!(
        text(&output).contains(&format!("reading inventory {uri}")),
        "{}",
        text(&output)
    );
    assert!(histories(&destination, "").await.is_empty());

    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--inventory",
        &uri,
    ]);
    assert!(output.status.success(), "{}", text(&output));
    // The key whose versions share a time is named and ordered by listing it.
    assert!(
        text(&output).contains("\"many\" share a LastModifiedDate"),
        "{}",
        text(&output)
    );
    assert_same_histories(&source, &destination).await;

    // The rerun resumes from the job's checkpoint: nothing is copied twice.
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--inventory",
        &uri,
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("nothing to do"), "{}", text(&output));
    assert_same_histories(&source, &destination).await;

    // A report without Size and IsLatest: those keys are planned by listing them, and the copy is exact.
    let (objects, manifest) = inventory_report(
        &source,
        &source_histories(&source, true).await,
        &ReportOptions {
            prefix: "narrow",
            schema: "Key, LastModifiedDate, Bucket, IsDeleteMarker, VersionId",
            ..ReportOptions::default()
        },
    );
    upload(&reports, &objects).await;
    let narrow = create_bucket("inv-narrow", true).await;
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{narrow}"),
        "--inventory",
        &format!("s3://{reports}/{manifest}"),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert_same_histories(&source, &narrow).await;

    // Latest only, through a prefix mapping, from the same report.
    let latest = create_bucket("inv-latest", true).await;
    let output = cli(&[
        "copy",
        &format!("s3://{source}/bulk/"),
        &format!("s3://{latest}/copied/"),
        "--inventory",
        &uri,
        "--latest-only",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let got = relative_histories(&latest, "copied/").await;
    assert_eq!(got.len(), 40);
    assert!(got.iter().all(|(_, h)| h.len() == 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inventory_with_real_times_and_a_stale_version_copies_the_rest_exactly() {
    let source = create_bucket("inv-real", false).await;
    seed(&source).await;
    let mut histories = source_histories(&source, false).await;
    // A version the source no longer has (the report is stale): only that entry fails, with --inventory-check.
    histories.push(KeyHistory {
        key: "gone".into(),
        entries: vec![Entry {
            key: "gone".into(),
            version_id: "no-such-version".into(),
            is_latest: true,
            last_modified: "2026-11-20T10:00:00.000Z".into(),
            kind: EntryKind::Object {
                size: 3,
                etag: "\"x\"".into(),
                storage_class: None,
            },
        }],
    });
    let (objects, manifest) = inventory_report(&source, &histories, &ReportOptions::default());
    let dir = write_tree(&objects);
    let destination = create_bucket("inv-real-dst", true).await;
    let report = dir.path().join("report.json");
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--inventory",
        dir.path().join(&manifest).to_str().unwrap(),
        "--inventory-check",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let failures = json["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{json}");
    assert_eq!(failures[0]["key"], "gone");
    assert_eq!(failures[0]["version_id"], "no-such-version");
    assert_same_histories(&source, &destination).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_gone_from_the_source_fails_alone_and_its_key_goes_on() {
    let source = create_bucket("inv-stale", false).await;
    seed(&source).await;
    let mut histories = source_histories(&source, true).await;
    // Between the two versions of "with space", and first in "plus+sign": versions deleted since the report.
    let gone = |key: &str, id: &str, time: &str| Entry {
        key: key.into(),
        version_id: id.into(),
        is_latest: false,
        last_modified: time.into(),
        kind: EntryKind::Object {
            size: 3,
            etag: "\"x\"".into(),
            storage_class: None,
        },
    };
    for history in &mut histories {
        match history.key.as_str() {
            "with space" => {
                let between = gone("with space", "deleted-since", "2026-11-20T10:00:00.500Z");
                history.entries.insert(1, between);
            }
            "plus+sign" => {
                let first = gone("plus+sign", "deleted-first", "2026-11-20T09:59:59.000Z");
                history.entries.insert(0, first);
            }
            _ => {}
        }
    }
    let (objects, manifest) = inventory_report(&source, &histories, &ReportOptions::default());
    let dir = write_tree(&objects);
    let destination = create_bucket("inv-stale-dst", true).await;
    let report = dir.path().join("report.json");
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--inventory",
        dir.path().join(&manifest).to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let mut failed: Vec<_> = json["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["version_id"].as_str().unwrap().to_string())
        .collect();
    failed.sort();
    assert_eq!(failed, ["deleted-first", "deleted-since"], "{json}");
    // A 404 has no message to carry S3's request id: the reason carries it alone.
    for failure in json["failures"].as_array().unwrap() {
        let reason = failure["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("not in the source (") && reason.contains("request id "),
            "{reason}"
        );
    }
    assert_same_histories(&source, &destination).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_the_versions_a_manifest_names_in_their_order() {
    let source = create_bucket("man-src", false).await;
    seed(&source).await;
    let listed = raw_histories(&source, "").await;
    let ids = |key: &str| -> Vec<String> {
        listed
            .iter()
            .find(|(k, _)| k == key)
            .unwrap()
            .1
            .iter()
            .map(|e| e.version_id.clone())
            .collect()
    };
    // Rows out of order, every version of `many` and `marker-middle` (its delete marker included), the
    // older version of "with space", the current version of "plus+sign", and a null version.
    let many = ids("many");
    let middle = ids("marker-middle");
    let space = ids("with space");
    let rows = [
        format!("{source},many,{}", many[2]),
        format!("{source},{},{}", inventory_key("with space"), space[0]),
        format!("{source},marker-middle,{}", middle[1]),
        format!("{source},many,{}", many[0]),
        format!("{source},marker-middle,{}", middle[2]),
        format!("{source},null-then-more,null"),
        format!("{source},many,{}", many[1]),
        format!("{source},{}", inventory_key("plus+sign")),
        format!("{source},marker-middle,{}", middle[0]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all((rows.join("\n") + "\n").as_bytes()).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let destination = create_bucket("man-dst", true).await;
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--manifest",
        path.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let (want, got) = (
        histories(&source, "").await,
        histories(&destination, "").await,
    );
    let of = |all: &[(String, Vec<Seen>)], key: &str| {
        all.iter()
            .find(|(k, _)| k == key)
            .map(|(_, h)| h.clone())
            .unwrap_or_default()
    };
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(same_history(&of(&want, "many"), &of(&got, "many")));
    assert!(same_history(
        &of(&want, "marker-middle"),
        &of(&got, "marker-middle")
    ));
    assert!(same_history(
        &of(&want, "with space")[..1],
        &of(&got, "with space")
    ));
    assert!(same_history(
        &of(&want, "plus+sign")[1..],
        &of(&got, "plus+sign")
    ));
    assert!(same_history(
        &of(&want, "null-then-more")[..1],
        &of(&got, "null-then-more")
    ));

    // The same manifest on S3.
    let holder = create_bucket("man-holder", false).await;
    upload(
        &holder,
        &[("lists/m.csv.gz".to_string(), std::fs::read(&path).unwrap())],
    )
    .await;
    let again = create_bucket("man-dst2", true).await;
    let output = cli(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{again}"),
        "--manifest",
        &format!("s3://{holder}/lists/m.csv.gz"),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(histories(&again, "").await, got);
}

/// Every bad input: exit 2, a message naming the file (and line), and nothing copied.
#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_are_refused_with_file_and_line() {
    let source = create_bucket("bad-src", true).await;
    put(&source, "k", "v").await;
    let destination = create_bucket("bad-dst", true).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let run = |flag: &str, uri: &str, extra: &[&str]| {
        let mut args = vec![
            "copy".to_string(),
            format!("s3://{source}"),
            format!("s3://{destination}"),
            flag.to_string(),
            uri.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&args)
    };
    let expect = |output: std::process::Output, needles: &[&str]| {
        let shown = text(&output);
        assert_eq!(output.status.code(), Some(2), "{shown}");
        for needle in needles {
            assert!(shown.contains(needle), "missing {needle:?} in {shown}");
        }
    };
    let gzip = |text: &str| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap()
    };

    let columns = write(
        "columns.csv",
        format!("{source},a\n{source},b,v,extra\n").as_bytes(),
    );
    expect(
        run("--manifest", &columns, &[]),
        &["columns.csv, line 2", "4 columns"],
    );
    let escape = write(
        "escape.csv",
        format!("{source},ok\n{source},ok\n{source},bad%zzkey\n").as_bytes(),
    );
    expect(
        run("--manifest", &escape, &[]),
        &["escape.csv, line 3", "bad URL escape"],
    );
    let other = write("other.csv", b"another-bucket,k,v\n");
    expect(
        run("--manifest", &other, &[]),
        &["other.csv, line 1", "not of the source bucket"],
    );
    let mut truncated = gzip(&format!("{source},k,v\n").repeat(2000));
    truncated.truncate(truncated.len() / 2);
    let truncated = write("truncated.csv.gz", &truncated);
    expect(
        run("--manifest", &truncated, &[]),
        &["truncated.csv.gz, line", "truncated gzip"],
    );
    let versions = write("versions.csv", format!("{source},k,v1\n").as_bytes());
    expect(
        run("--manifest", &versions, &["--latest-only"]),
        &["--latest-only conflicts"],
    );

    // Inventory reports: start from a good one and break one thing at a time.
    let one_key = vec![KeyHistory {
        key: "k".into(),
        entries: vec![Entry {
            key: "k".into(),
            version_id: "v1".into(),
            is_latest: true,
            last_modified: "2026-11-20T10:00:00.000Z".into(),
            kind: EntryKind::Object {
                size: 1,
                etag: "\"e\"".into(),
                storage_class: None,
            },
        }],
    }];
    let report = |label: &str, schema: &str| {
        let (objects, manifest) = inventory_report(
            &source,
            &one_key,
            &ReportOptions {
                prefix: label,
                schema,
                data_files: 1,
                ..ReportOptions::default()
            },
        );
        for (key, bytes) in &objects {
            write(key, bytes);
        }
        let data = objects[0].0.clone();
        (dir.path().join(&manifest), dir.path().join(data))
    };
    let set_json = |manifest: &std::path::Path, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
        edit(&mut json);
        let bytes = serde_json::to_vec(&json).unwrap();
        std::fs::write(
            manifest.with_file_name("manifest.checksum"),
            s3_backfill::input::fixture::md5_hex(&bytes),
        )
        .unwrap();
        std::fs::write(manifest, bytes).unwrap();
    };

    let (manifest, _) = report("not-json", s3_backfill::input::fixture::SCHEMA);
    std::fs::write(&manifest, b"{ this is not json").unwrap();
    std::fs::remove_file(manifest.with_file_name("manifest.checksum")).unwrap();
    expect(
        run("--inventory", manifest.to_str().unwrap(), &[]),
        &["manifest.json", "not a valid S3 Inventory manifest.json"],
    );

    let (manifest, _) = report("no-schema", s3_backfill::input::fixture::SCHEMA);
    set_json(&manifest, &|json| {
        json.as_object_mut().unwrap().remove("fileSchema");
    });
    expect(
        run("--inventory", manifest.to_str().unwrap(), &[]),
        &["missing field `fileSchema`"],
    );

    let (manifest, _) = report("orc", s3_backfill::input::fixture::SCHEMA);
    set_json(&manifest, &|json| json["fileFormat"] = "ORC".into());
    expect(
        run("--inventory", manifest.to_str().unwrap(), &[]),
        &["unsupported inventory format ORC", "CSV"],
    );

    let (manifest, _) = report("checksum", s3_backfill::input::fixture::SCHEMA);
    std::fs::write(
        manifest.with_file_name("manifest.checksum"),
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    expect(
        run("--inventory", manifest.to_str().unwrap(), &[]),
        &["does not match manifest.checksum"],
    );

    let (manifest, data) = report("md5", s3_backfill::input::fixture::SCHEMA);
    set_json(&manifest, &|json| {
        json["files"][0]["MD5checksum"] = "00000000000000000000000000000000".into()
    });
    expect(
        run("--inventory", manifest.to_str().unwrap(), &[]),
        &[data.file_name().unwrap().to_str().unwrap(), "MD5"],
    );

    let (manifest, data) = report("short-row", "Bucket, Key, VersionId, IsLatest");
    std::fs::write(
        &data,
        gzip(&format!(
            "\"{source}\",\"k\",\"v1\",\"true\"\n\"{source}\",\"k\",\"v2\"\n"
        )),
    )
    .unwrap();
    set_json(&manifest, &|json| {
        json["files"][0]["MD5checksum"] = serde_json::Value::Null;
        json["files"][0]["size"] = serde_json::Value::Null;
    });
    expect(
        run("--inventory", manifest.to_str().unwrap(), &[]),
        &["csv.gz, line 2", "3 columns, but fileSchema names 4"],
    );

    // Nothing reached the destination from any of them.
    assert!(histories(&destination, "").await.is_empty());
}

/// `--manifest -`: the rows come on standard input, as from a pipe.
#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_on_standard_input_is_read_like_a_file() {
    let source = create_bucket("stdin-src", true).await;
    let destination = create_bucket("stdin-dst", true).await;
    for key in ["a", "b", "with space"] {
        put(&source, key, key).await;
        put(&source, key, format!("{key} again")).await;
    }
    let mut child = command(&[
        "copy",
        &format!("s3://{source}"),
        &format!("s3://{destination}"),
        "--manifest",
        "-",
        "--no-checkpoint",
        "--progress",
        "never",
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{source},a\n{source},with%20space\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("manifest -"), "{}", text(&output));
    // Rows without a version id name each key's current version.
    let keys: Vec<String> = histories(&destination, "")
        .await
        .into_iter()
        .map(|(key, history)| format!("{key}:{}", history.len()))
        .collect();
    assert_eq!(keys, ["a:1", "with space:1"]);
}
