//! Batch Operations mode. No local server implements S3 Control jobs, so the harness runs a small stub
//! S3 Control endpoint that records every request and answers CreateJob, DescribeJob, ListJobs and
//! UpdateJobStatus in the API's XML; the tests check what it received. Manifests go to SeaweedFS (copy
//! jobs) or moto (replication jobs, which need a replication configuration), and are read back there.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

use std::sync::{Arc, Mutex};

use common::moto::{moto_s3, on_moto};
use common::*;

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

#[derive(Default)]
struct StubState {
    requests: Vec<Recorded>,
    /// Token -> job id, so a resubmitted job is the same job (as S3 Control does).
    tokens: HashMap<String, String>,
    /// Job id -> (describes so far, cancelled).
    jobs: HashMap<String, (u32, bool)>,
}

/// Tasks every stub job has; each DescribeJob completes one more.
const TASKS: u32 = 3;

struct ControlStub {
    endpoint: String,
    state: Arc<Mutex<StubState>>,
}

fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(text[start..end].to_string())
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nx-amz-request-id: stub\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

const NS: &str = "http://awss3control.amazonaws.com/doc/2018-08-20/";

fn job_xml(id: &str, describes: u32, cancelled: bool) -> String {
    let succeeded = describes.min(TASKS);
    let status = if cancelled {
        "Cancelled"
    } else if succeeded == TASKS {
        "Complete"
    } else {
        "Active"
    };
    format!(
        "<JobId>{id}</JobId><Description>stub</Description><Status>{status}</Status><Priority>10</Priority>\
         <ProgressSummary><TotalNumberOfTasks>{TASKS}</TotalNumberOfTasks><NumberOfTasksSucceeded>{succeeded}</NumberOfTasksSucceeded>\
         <NumberOfTasksFailed>0</NumberOfTasksFailed></ProgressSummary>"
    )
}

fn handle(state: &Mutex<StubState>, request: &Recorded, stream: &mut TcpStream) {
    let mut state = state.lock().unwrap();
    state.requests.push(request.clone());
    let path = request.path.as_str();
    let (route, _query) = path.split_once('?').unwrap_or((path, ""));
    match (request.method.as_str(), route.trim_end_matches('/')) {
        ("POST", "/v20180820/jobs") => {
            if request.body.contains("role/denied") {
                return respond(
                    stream,
                    "403 Forbidden",
                    "<?xml version=\"1.0\"?><ErrorResponse><Error><Code>AccessDenied</Code><Message>the role may not be passed</Message></Error><RequestId>stub</RequestId></ErrorResponse>",
                );
            }
            let token = between(
                &request.body,
                "<ClientRequestToken>",
                "</ClientRequestToken>",
            )
            .unwrap_or_default();
            let next = format!("job-{}", state.tokens.len() + 1);
            let id = state.tokens.entry(token).or_insert(next).clone();
            state.jobs.entry(id.clone()).or_insert((0, false));
            respond(
                stream,
                "200 OK",
                &format!(
                    "<?xml version=\"1.0\"?><CreateJobResult xmlns=\"{NS}\"><JobId>{id}</JobId></CreateJobResult>"
                ),
            )
        }
        ("GET", "/v20180820/jobs") => {
            let jobs: String = state
                .jobs
                .iter()
                .map(|(id, (describes, cancelled))| {
                    format!("<member>{}</member>", job_xml(id, *describes, *cancelled))
                })
                .collect();
            respond(
                stream,
                "200 OK",
                &format!(
                    "<?xml version=\"1.0\"?><ListJobsResult xmlns=\"{NS}\"><Jobs>{jobs}</Jobs></ListJobsResult>"
                ),
            )
        }
        ("GET", route) if route.starts_with("/v20180820/jobs/") => {
            let id = route.trim_start_matches("/v20180820/jobs/").to_string();
            let Some(job) = state.jobs.get_mut(&id) else {
                return respond(
                    stream,
                    "404 Not Found",
                    "<?xml version=\"1.0\"?><ErrorResponse><Error><Code>NoSuchJob</Code><Message>no such job</Message></Error><RequestId>stub</RequestId></ErrorResponse>",
                );
            };
            job.0 += 1;
            let xml = job_xml(&id, job.0, job.1);
            respond(
                stream,
                "200 OK",
                &format!(
                    "<?xml version=\"1.0\"?><DescribeJobResult xmlns=\"{NS}\"><Job>{xml}<Report><Bucket>arn:aws:s3:::reports</Bucket>\
                     <Prefix>done</Prefix><Format>Report_CSV_20180820</Format><Enabled>true</Enabled><ReportScope>AllTasks</ReportScope></Report>\
                     </Job></DescribeJobResult>"
                ),
            )
        }
        ("POST", route) if route.ends_with("/status") => {
            let id = route
                .trim_start_matches("/v20180820/jobs/")
                .trim_end_matches("/status")
                .to_string();
            if let Some(job) = state.jobs.get_mut(&id) {
                job.1 = true;
            }
            respond(
                stream,
                "200 OK",
                &format!(
                    "<?xml version=\"1.0\"?><UpdateJobStatusResult xmlns=\"{NS}\"><JobId>{id}</JobId><Status>Cancelled</Status></UpdateJobStatusResult>"
                ),
            )
        }
        _ => respond(
            stream,
            "400 Bad Request",
            "<ErrorResponse><Error><Code>Unknown</Code><Message>stub</Message></Error></ErrorResponse>",
        ),
    }
}

fn serve(stream: TcpStream, state: Arc<Mutex<StubState>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Recorded {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        handle(&state, &request, &mut stream);
    }
}

impl ControlStub {
    fn start() -> ControlStub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(StubState::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, state));
            }
        });
        ControlStub { endpoint, state }
    }

    fn creates(&self) -> Vec<Recorded> {
        let state = self.state.lock().unwrap();
        state
            .requests
            .iter()
            .filter(|r| r.method == "POST" && r.path.trim_end_matches('/') == "/v20180820/jobs")
            .cloned()
            .collect()
    }
}

async fn read_object(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (String, String) {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let etag = out.e_tag().unwrap_or_default().to_string();
    let body = out.body.collect().await.unwrap().into_bytes();
    (String::from_utf8(body.to_vec()).unwrap(), etag)
}

const ROLE: &str = "arn:aws:iam::111122223333:role/batch";
const ACCOUNT: &str = "111122223333";

#[tokio::test(flavor = "multi_thread")]
async fn a_replication_job_is_submitted_with_its_manifest_and_followed_to_the_end() {
    let stub = ControlStub::start();
    let source = format!("batch-src-{:08x}", fastrand::u32(..));
    let destination = format!("batch-dst-{:08x}", fastrand::u32(..));
    let reports = format!("batch-rep-{:08x}", fastrand::u32(..));
    let (src, dst) = (format!("s3://{source}"), format!("s3://{destination}"));
    let output = on_moto(&[
        "setup",
        &src,
        &dst,
        "--rule-name",
        "all",
        "--role-arn",
        "arn:aws:iam::111122223333:role/r",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        on_moto(&["mb", &format!("s3://{reports}")])
            .status
            .success()
    );
    let client = moto_s3().await;
    for (key, body) in [
        ("a b+c.txt", "1"),
        ("a b+c.txt", "22"),
        ("dir/ключ", "333"),
        ("gone", "4"),
    ] {
        client
            .put_object()
            .bucket(&source)
            .key(key)
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
        .key("gone")
        .send()
        .await
        .unwrap();

    let submit = [
        "batch",
        "submit",
        &src,
        "--role-arn",
        ROLE,
        "--report",
        &format!("s3://{reports}/done"),
        "--account-id",
        ACCOUNT,
        "--control-endpoint-url",
        &stub.endpoint,
        "--no-confirmation",
        "--wait",
        "--poll-seconds",
        "0.05",
    ];
    let output = on_moto(&submit);
    assert!(output.status.success(), "{}", text(&output));
    let shown = text(&output);
    assert!(shown.contains("job job-1 submitted"), "{shown}");
    assert!(
        shown.contains("Complete — 3 of 3 tasks succeeded"),
        "{shown}"
    );
    assert!(
        shown.contains("completion report: s3://reports/done/job-job-1/"),
        "{shown}"
    );

    // CreateJob, field by field.
    let creates = stub.creates();
    assert_eq!(creates.len(), 1);
    let create = &creates[0];
    assert_eq!(
        create.headers.get("x-amz-account-id").map(String::as_str),
        Some(ACCOUNT)
    );
    let body = &create.body;
    assert!(body.contains("<S3ReplicateObject"), "{body}");
    assert!(
        body.contains("<Format>S3BatchOperations_CSV_20180820</Format>"),
        "{body}"
    );
    for field in ["Bucket", "Key", "VersionId"] {
        assert!(
            body.contains(&format!("<member>{field}</member>")),
            "{body}"
        );
    }
    assert!(
        body.contains(&format!("<RoleArn>{ROLE}</RoleArn>")),
        "{body}"
    );
    assert!(body.contains("<Priority>10</Priority>"), "{body}");
    assert!(
        body.contains("<ConfirmationRequired>false</ConfirmationRequired>"),
        "{body}"
    );
    assert!(
        body.contains(&format!("<Bucket>arn:aws:s3:::{reports}</Bucket>")),
        "{body}"
    );
    assert!(
        body.contains("<Prefix>done</Prefix>")
            && body.contains("<ReportScope>AllTasks</ReportScope>"),
        "{body}"
    );
    let arn = between(body, "<ObjectArn>", "</ObjectArn>").unwrap();
    let etag = between(body, "<ETag>", "</ETag>").unwrap();
    let key = arn
        .strip_prefix(&format!("arn:aws:s3:::{reports}/"))
        .expect("manifest in the report bucket")
        .to_string();
    assert!(key.starts_with("done/s3-backfill-manifests/"), "{key}");

    // The manifest is the object the ARN and ETag name, and lists every version but the delete marker.
    let (manifest, actual_etag) = read_object(&client, &reports, &key).await;
    assert_eq!(etag.replace("&quot;", "\""), actual_etag);
    let listed = client
        .list_object_versions()
        .bucket(&source)
        .send()
        .await
        .unwrap();
    let mut expected: Vec<String> = listed
        .versions()
        .iter()
        .map(|v| {
            format!(
                "{source},{},{}",
                s3_backfill::s3::manifest_key(v.key().unwrap()),
                v.version_id().unwrap()
            )
        })
        .collect();
    let mut rows: Vec<String> = manifest.lines().map(str::to_string).collect();
    expected.sort();
    rows.sort();
    assert_eq!(rows, expected);
    assert!(
        manifest.contains("a%20b%2Bc.txt") && manifest.contains("dir/%D0%BA%D0%BB%D1%8E%D1%87"),
        "{manifest}"
    );

    // Submitting the same again is the same job: same token, no duplicate.
    let mut again = submit.to_vec();
    again.retain(|a| *a != "--wait");
    let output = on_moto(&again);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("job job-1 submitted"),
        "{}",
        text(&output)
    );
    let creates = stub.creates();
    let token =
        |r: &Recorded| between(&r.body, "<ClientRequestToken>", "</ClientRequestToken>").unwrap();
    assert_eq!(token(&creates[0]), token(&creates[1]));

    // status, list, wait and cancel.
    let control = [
        "--account-id",
        ACCOUNT,
        "--control-endpoint-url",
        &stub.endpoint,
    ];
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&control);
        on_moto(&all)
    };
    let output = run(&["batch", "status", "job-1"]);
    assert!(
        text(&output).contains("job job-1: Complete"),
        "{}",
        text(&output)
    );
    let output = run(&["batch", "list"]);
    assert!(text(&output).contains("job-1"), "{}", text(&output));
    let output = run(&["batch", "cancel", "job-1"]);
    assert!(text(&output).contains("now Cancelled"), "{}", text(&output));
    let cancels = stub
        .state
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|r| r.path.contains("/status"))
        .count();
    assert_eq!(cancels, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_job_leaves_out_big_entries_and_runs_noncurrent_then_current() {
    let stub = ControlStub::start();
    let source = create_bucket("bsrc", true).await;
    let destination = create_bucket("bdst", true).await;
    let reports = create_bucket("brep", false).await;
    put(&source, "doc", "v1").await;
    put(&source, "doc", "v2").await;
    put(&source, "big", "this one is over the lowered limit").await;
    let output = cli(&[
        "batch",
        "submit",
        &format!("s3://{source}"),
        "--operation",
        "copy",
        "--dest",
        &format!("s3://{destination}"),
        "--role-arn",
        ROLE,
        "--report",
        &format!("s3://{reports}/r/"),
        "--account-id",
        ACCOUNT,
        "--control-endpoint-url",
        &stub.endpoint,
        "--no-confirmation",
        "--wait",
        "--poll-seconds",
        "0.05",
        "--batch-copy-limit",
        "10",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let shown = text(&output);
    assert!(
        shown.contains("1 versions are over Batch copy's 10 B limit"),
        "{shown}"
    );
    assert!(
        shown.contains("s3-backfill copy") && shown.contains("--manifest"),
        "{shown}"
    );
    assert!(
        shown.contains("noncurrent versions go in a first job"),
        "{shown}"
    );
    let creates = stub.creates();
    assert_eq!(creates.len(), 2, "{shown}");
    // The first job (noncurrent versions) completed before the second was created.
    let requests = stub.state.lock().unwrap().requests.clone();
    let second_create = requests.iter().rposition(|r| r.method == "POST").unwrap();
    assert!(
        requests[..second_create]
            .iter()
            .any(|r| r.method == "GET" && r.path.contains("job-1"))
    );
    let client = client();
    let manifest = |create: &Recorded| {
        let arn = between(&create.body, "<ObjectArn>", "</ObjectArn>").unwrap();
        arn.strip_prefix(&format!("arn:aws:s3:::{reports}/"))
            .unwrap()
            .to_string()
    };
    let read = |key: String| {
        let client = client.clone();
        let reports = reports.clone();
        async move {
            let out = client
                .get_object()
                .bucket(&reports)
                .key(key)
                .send()
                .await
                .unwrap();
            String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
        }
    };
    let ids = version_ids(&source, "doc").await;
    assert_eq!(
        read(manifest(&creates[0])).await,
        format!("{source},doc,{}\n", ids[0])
    );
    assert_eq!(
        read(manifest(&creates[1])).await,
        format!("{source},doc,{}\n", ids[1])
    );
    for create in &creates {
        assert!(create.body.contains("<S3PutObjectCopy>"), "{}", create.body);
        assert!(create.body.contains(&format!(
            "<TargetResource>arn:aws:s3:::{destination}</TargetResource>"
        )));
    }
    let excluded =
        std::fs::read_to_string(work_dir().join("s3-backfill-too-large-for-batch.csv")).unwrap();
    assert!(
        excluded.starts_with(&format!("{source},big,")),
        "{excluded}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_name_the_fix_or_the_s3_control_code() {
    let stub = ControlStub::start();
    let source = create_bucket("bnorep", true).await;
    let reports = create_bucket("bnorep-r", false).await;
    put(&source, "k", "v").await;
    let base = |role: &str| {
        vec![
            "batch".to_string(),
            "submit".into(),
            format!("s3://{source}"),
            "--role-arn".into(),
            role.into(),
            "--report".into(),
            format!("s3://{reports}/r"),
            "--account-id".into(),
            ACCOUNT.into(),
            "--control-endpoint-url".into(),
            stub.endpoint.clone(),
        ]
    };
    // SeaweedFS has no replication configuration: a replication job is refused before anything is submitted.
    let args = base(ROLE);
    let output = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("has no replication configuration"),
        "{}",
        text(&output)
    );
    assert!(
        text(&output).contains("s3-backfill setup"),
        "{}",
        text(&output)
    );
    assert!(stub.creates().is_empty());
    // S3 Control's own error comes through with its code.
    let destination = create_bucket("bnorep-d", true).await;
    let mut args = base("arn:aws:iam::111122223333:role/denied");
    args.extend([
        "--operation".into(),
        "copy".into(),
        "--dest".into(),
        format!("s3://{destination}"),
        "--wait".into(),
    ]);
    let output = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("AccessDenied (the role may not be passed)"),
        "{}",
        text(&output)
    );
    // Copy without --wait is refused: the second job must start after the first.
    let mut args = base(ROLE);
    args.extend([
        "--operation".into(),
        "copy".into(),
        "--dest".into(),
        format!("s3://{destination}"),
    ]);
    let output = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("add --wait"), "{}", text(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_with_existing_batch_submits_the_replication_job() {
    let stub = ControlStub::start();
    let source = format!("sb-src-{:08x}", fastrand::u32(..));
    let reports = format!("sb-rep-{:08x}", fastrand::u32(..));
    assert!(
        on_moto(&["mb", &format!("s3://{reports}")])
            .status
            .success()
    );
    assert!(on_moto(&["mb", &format!("s3://{source}")]).status.success());
    assert!(
        on_moto(&["s3bu", &format!("s3://{source}")])
            .status
            .success()
    );
    let client = moto_s3().await;
    client
        .put_object()
        .bucket(&source)
        .key("old")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"before the rule",
        ))
        .send()
        .await
        .unwrap();
    let output = on_moto(&[
        "setup",
        &format!("s3://{source}"),
        &format!("s3://sb-dst-{:08x}", fastrand::u32(..)),
        "--rule-name",
        "r",
        "--role-arn",
        "arn:aws:iam::111122223333:role/r",
        "--existing",
        "batch",
        "--batch-role-arn",
        ROLE,
        "--report",
        &format!("s3://{reports}/jobs"),
        "--account-id",
        ACCOUNT,
        "--control-endpoint-url",
        &stub.endpoint,
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("4. existing objects: an S3 Batch Operations replication job"));
    let creates = stub.creates();
    assert_eq!(creates.len(), 1);
    assert!(
        creates[0].body.contains("<S3ReplicateObject"),
        "{}",
        creates[0].body
    );
    assert!(
        creates[0]
            .body
            .contains(&format!("<RoleArn>{ROLE}</RoleArn>")),
        "{}",
        creates[0].body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_manifest_generator_carries_the_filters_and_the_account_comes_from_sts() {
    let stub = ControlStub::start();
    let source = format!("gen-src-{:08x}", fastrand::u32(..));
    let reports = format!("gen-rep-{:08x}", fastrand::u32(..));
    let output = on_moto(&[
        "setup",
        &format!("s3://{source}/logs/"),
        &format!("s3://gen-dst-{:08x}", fastrand::u32(..)),
        "--rule-name",
        "r",
        "--role-arn",
        "arn:aws:iam::123456789012:role/r",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        on_moto(&["mb", &format!("s3://{reports}")])
            .status
            .success()
    );
    // No --account-id: moto's STS answers GetCallerIdentity with its account, 123456789012.
    let output = on_moto(&[
        "batch",
        "submit",
        &format!("s3://{source}/logs/"),
        "--from",
        "generator",
        "--filter",
        "statuses=NONE,FAILED",
        "--created-after",
        "2024-01-01T00:00:00Z",
        "--role-arn",
        ROLE,
        "--report",
        &format!("s3://{reports}/gen"),
        "--control-endpoint-url",
        &stub.endpoint,
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let json_line = String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|l| l.starts_with('{'))
        .map(str::to_string)
        .expect("a JSON line");
    let json: serde_json::Value = serde_json::from_str(&json_line).unwrap();
    assert_eq!(json["job_id"], "job-1");
    assert_eq!(json["account_id"], "123456789012");
    let create = &stub.creates()[0];
    assert_eq!(
        create.headers.get("x-amz-account-id").map(String::as_str),
        Some("123456789012")
    );
    let body = &create.body;
    assert!(!body.contains("<Manifest>"), "{body}");
    assert!(body.contains("<S3JobManifestGenerator>"), "{body}");
    assert!(
        body.contains(&format!(
            "<SourceBucket>arn:aws:s3:::{source}</SourceBucket>"
        )),
        "{body}"
    );
    assert!(
        body.contains("<EnableManifestOutput>true</EnableManifestOutput>"),
        "{body}"
    );
    assert!(
        body.contains("<member>NONE</member>") && body.contains("<member>FAILED</member>"),
        "{body}"
    );
    assert!(
        body.contains("<CreatedAfter>2024-01-01T00:00:00Z</CreatedAfter>"),
        "{body}"
    );
    assert!(body.contains("logs/"), "{body}");
}
