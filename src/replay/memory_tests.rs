//! The executor, its reconcile and its resume on the in-memory S3, with faults injected under the
//! retry decorator: the crash-handling core without a server.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use crate::checkpoint::{JobIdentity, Journal, State, replay};
use crate::history::Selection;
use crate::location::{KeyMapping, Location};
use crate::merge::OnDiverged;
use crate::plan::{MIB, PlanSettings};
use crate::progress::Progress;
use crate::replay::{Checkpoint, CopyJob, Executor, Stop};
use crate::s3::faults::{Fault, Faulty, Schedule};
use crate::s3::memory::MemoryS3;
use crate::s3::retry::{RetryPolicy, Retrying};
use crate::s3::{Versioning, WriteSettings};

type Client = Retrying<Faulty<MemoryS3>>;

const SOURCE: &str = "source";
const DESTINATION: &str = "destination";
/// Objects above this are copied by UploadPartCopy (parts of 5 MiB in these tests).
const THRESHOLD: u64 = 5 * MIB;

/// The writes and reads a run makes on the destination, where faults are injected.
const DESTINATION_OPERATIONS: &[&str] = &[
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "DeleteObject",
    "ListObjectVersions",
    "ListMultipartUploads",
    "HeadObject",
];

fn client(s3: &MemoryS3, schedule: Option<Schedule>, progress: &Arc<Progress>) -> Arc<Client> {
    let faulty = match schedule {
        Some(schedule) => Faulty::new(s3.clone(), schedule),
        None => Faulty::none(s3.clone()),
    };
    let policy = RetryPolicy {
        max_attempts: 10,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(20),
    };
    Arc::new(Retrying::new(faulty, policy, Arc::clone(progress)))
}

fn job() -> CopyJob {
    CopyJob {
        selection: Selection::all(KeyMapping {
            source: Location {
                bucket: SOURCE.into(),
                prefix: String::new(),
            },
            destination: Location {
                bucket: DESTINATION.into(),
                prefix: String::new(),
            },
        }),
        plan: PlanSettings {
            multipart_threshold: THRESHOLD,
            part_size: None,
        },
        write: WriteSettings::default(),
        concurrency: 8,
        tolerate_missing_source: false,
        listers: 4,
        on_diverged: OnDiverged::Skip,
        compare: crate::merge::Compare::Metadata,
        encrypted_etags: false,
        destination_versioned: true,
        destination_never_versioned: false,
        destination_per_key: false,
        dry_run: false,
    }
}

fn identity() -> JobIdentity {
    JobIdentity {
        source: format!("s3://{SOURCE}/"),
        destination: format!("s3://{DESTINATION}/"),
        include: Vec::new(),
        exclude: Vec::new(),
        latest_only: false,
        storage_class: None,
        sse_kms_key_id: None,
        input: None,
        shard: None,
        source_endpoint: "memory".into(),
        destination_endpoint: "memory".into(),
        as_of: None,
    }
}

fn open_checkpoint(path: &Path) -> Checkpoint {
    let lock = crate::checkpoint::lock(path).expect("lock the checkpoint");
    let existing = path
        .exists()
        .then(|| replay(path).expect("replay the checkpoint"))
        .filter(|state| state.identity.is_some());
    let fresh = existing.is_none();
    // As the command does: a run that did not end cleanly may have left writes that land late.
    let settle_until = existing
        .as_ref()
        .filter(|state| !state.ended_cleanly)
        .map(|state| tokio::time::Instant::now() + crate::checkpoint::in_flight_bound(state, 0.0));
    let state = match existing {
        Some(state) if state.pass_complete => State {
            identity: state.identity,
            ..State::default()
        },
        Some(state) => state,
        None => State::default(),
    };
    Checkpoint {
        journal: Journal::open(path, &identity(), state, fresh).expect("open the journal"),
        retry_failed: true,
        settle_until,
        _lock: lock,
    }
}

/// What one run left: whether it finished every key, and the faults it met.
struct Run {
    complete: bool,
    injected: Vec<(&'static str, Fault)>,
    /// Entries recorded failed.
    failures: usize,
    /// Why the run stopped itself, if it did.
    halted: Option<String>,
}

/// One run of the copy from SOURCE to DESTINATION, with the destination's requests going through
/// `schedule`, stopped (as by Ctrl-C) at the `stop_after`th destination write.
async fn run(
    s3: &MemoryS3,
    checkpoint: Option<&Path>,
    schedule: Schedule,
    stop_after: Option<u64>,
) -> Run {
    run_or_kill(s3, checkpoint, schedule, stop_after, false).await
}

/// `run`, and with `kill_on_late` killed (as by kill -9: the run dropped wherever it is, its requests
/// abandoned) as soon as a write that lands late (`Fault::LateApply`) is on its way.
async fn run_or_kill(
    s3: &MemoryS3,
    checkpoint: Option<&Path>,
    schedule: Schedule,
    stop_after: Option<u64>,
    kill_on_late: bool,
) -> Run {
    let kill = Arc::new(tokio::sync::Notify::new());
    let late_sent = Arc::clone(&kill);
    let progress = Arc::new(Progress::default());
    let stop = Arc::new(Stop::default());
    let mut schedule = schedule;
    let stopping = Arc::clone(&stop);
    let mut writes = 0;
    let schedule: Schedule = Box::new(move |operation, n| {
        if operation != "ListObjectVersions" && operation != "HeadObject" {
            writes += 1;
            if stop_after == Some(writes) {
                stopping.trigger();
            }
        }
        let fault = schedule(operation, n);
        if kill_on_late && fault == Some(Fault::LateApply) {
            late_sent.notify_one();
        }
        fault
    });
    let faulty = Faulty::new(s3.clone(), schedule);
    let policy = RetryPolicy {
        max_attempts: 10,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(20),
    };
    let destination = Arc::new(Retrying::new(faulty, policy, Arc::clone(&progress)));
    let executor = Arc::new(Executor {
        source: client(s3, None, &progress),
        destination,
        job: job(),
        progress: Arc::clone(&progress),
        checkpoint: checkpoint.map(open_checkpoint),
        stop: Arc::clone(&stop),
        halted: std::sync::Mutex::new(None),
        version_map: None,
        provenance: None,
    });
    let running = Arc::clone(&executor).run(None);
    let outcome = match kill_on_late {
        false => running.await,
        true => match tokio::select! {
            outcome = running => Some(outcome),
            () = kill.notified() => None,
        } {
            Some(outcome) => outcome,
            None => {
                // Killed: nothing more is recorded (waiting here for the journal's thread would let
                // the paused clock run on, and the late write land, before the resume looks).
                for _ in 0..100 {
                    tokio::task::yield_now().await;
                }
                return Run {
                    complete: false,
                    injected: Vec::new(),
                    failures: 0,
                    halted: None,
                };
            }
        },
    };
    if let Some(checkpoint) = &executor.checkpoint {
        checkpoint.journal.flush().await.expect("flush the journal");
    }
    let (injected, halted) = match Arc::try_unwrap(executor) {
        Ok(executor) => (
            executor.destination.inner().injected(),
            executor.halted.into_inner().expect("halt lock"),
        ),
        Err(_) => panic!("the executor outlived its run"),
    };
    Run {
        failures: progress.failure_count() as usize,
        halted,
        complete: outcome.is_ok()
            && !stop.is_set()
            && progress.failure_count() == 0
            && progress.diverged_keys().is_empty(),
        injected,
    }
}

/// An executor of `job` without faults, checkpoint or maps, counting into `progress`.
fn plain_executor(s3: &MemoryS3, progress: &Arc<Progress>, job: CopyJob) -> Arc<Executor<Client>> {
    Arc::new(Executor {
        source: client(s3, None, progress),
        destination: client(s3, None, progress),
        job,
        progress: Arc::clone(progress),
        checkpoint: None,
        stop: Arc::new(Stop::default()),
        halted: std::sync::Mutex::new(None),
        version_map: None,
        provenance: None,
    })
}

/// A source with the given histories: per key, `Some(size)` a put, `None` a delete.
fn seed(s3: &MemoryS3, histories: &[(String, Vec<Option<u64>>)]) {
    s3.create_bucket(SOURCE, Versioning::Enabled);
    s3.create_bucket(DESTINATION, Versioning::Enabled);
    for (key, history) in histories {
        for write in history {
            match write {
                Some(size) if *size > THRESHOLD => {
                    let parts = vec![5 * MIB; (*size / (5 * MIB)) as usize];
                    let rest = size - parts.iter().sum::<u64>();
                    let parts = parts
                        .into_iter()
                        .chain((rest > 0).then_some(rest))
                        .collect();
                    s3.put(SOURCE, key, *size, Some(parts));
                }
                Some(size) => {
                    s3.put(SOURCE, key, *size, None);
                }
                None => s3.delete(SOURCE, key),
            }
        }
    }
}

fn no_faults() -> Schedule {
    Box::new(|_, _| None)
}

fn assert_exact(s3: &MemoryS3, context: &str) {
    assert_eq!(
        s3.histories(DESTINATION),
        s3.histories(SOURCE),
        "the destination's histories are not the source's ({context})"
    );
    assert_eq!(
        s3.uploads(DESTINATION),
        Vec::<String>::new(),
        "uploads left ({context})"
    );
}

#[tokio::test(start_paused = true)]
async fn a_clean_run_copies_every_history_and_a_rerun_writes_nothing() {
    let s3 = MemoryS3::new();
    let histories = vec![
        ("a".to_string(), vec![Some(1), Some(2), None, Some(3)]),
        ("b/big".to_string(), vec![Some(12 * MIB), None]),
        ("b/c".to_string(), vec![None, Some(5)]),
    ];
    seed(&s3, &histories);
    assert!(run(&s3, None, no_faults(), None).await.complete);
    assert_exact(&s3, "first run");
    let writes = |s3: &MemoryS3| {
        let requests = s3.requests();
        [
            "CopyObject",
            "UploadPartCopy",
            "DeleteObject",
            "CompleteMultipartUpload",
        ]
        .iter()
        .map(|kind| requests.get(kind).copied().unwrap_or(0))
        .sum::<u64>()
    };
    let before = writes(&s3);
    assert_eq!(before, 4 + 3 + 3 + 1, "{:?}", s3.requests());
    assert!(run(&s3, None, no_faults(), None).await.complete);
    assert_eq!(writes(&s3), before, "a rerun wrote again");
    assert_exact(&s3, "rerun");
}

/// Multipart sources of every layout (uniform, one small part, parts of differing sizes) below the
/// threshold: copied by parts in their own layout, so every copy has its source's ETag and a rerun
/// proves each pair from the listings alone, without a HEAD (issue 25: no match without proof).
#[tokio::test(start_paused = true)]
async fn multipart_sources_keep_their_etags_and_are_proven_by_the_listings() {
    let s3 = MemoryS3::new();
    s3.create_bucket(SOURCE, Versioning::Enabled);
    s3.create_bucket(DESTINATION, Versioning::Enabled);
    s3.put(
        SOURCE,
        "uniform",
        12 * MIB,
        Some(vec![5 * MIB, 5 * MIB, 2 * MIB]),
    );
    s3.put(SOURCE, "one-small-part", 3, Some(vec![3]));
    s3.put(
        SOURCE,
        "uneven",
        12 * MIB,
        Some(vec![6 * MIB, 5 * MIB, MIB]),
    );
    let job = CopyJob {
        plan: PlanSettings {
            multipart_threshold: 100 * MIB,
            part_size: None,
        },
        ..job()
    };
    let progress = Arc::new(Progress::default());
    let executor = |job: CopyJob| plain_executor(&s3, &progress, job);
    executor(job.clone()).run(None).await.unwrap();
    assert_exact(&s3, "first run");
    let etags = |bucket: &str| {
        let mut etags = s3.etags(bucket);
        etags.sort();
        etags
    };
    assert_eq!(etags(DESTINATION), etags(SOURCE));
    assert_eq!(s3.requests().get("CopyObject"), None, "{:?}", s3.requests());
    let heads = s3.requests().get("HeadObject").copied();
    executor(job).run(None).await.unwrap();
    assert_eq!(
        s3.requests().get("HeadObject").copied(),
        heads,
        "the rerun needed a HEAD"
    );
    assert_eq!(progress.unproven_keys(), Vec::new());
    assert_exact(&s3, "rerun");
}

/// A destination key holding another object of the source version's size, whose ETags cannot be
/// compared (a multipart source, no checksums): never taken as the same (before issue 25 it was, "by
/// size alone", and the version was never copied). `--compare content` reads both and finds them
/// different; over the same bytes it proves them the same.
#[tokio::test(start_paused = true)]
async fn an_equal_size_proves_nothing_and_content_decides() {
    let s3 = MemoryS3::new();
    s3.create_bucket(SOURCE, Versioning::Enabled);
    s3.create_bucket(DESTINATION, Versioning::Enabled);
    s3.put(SOURCE, "k", 12 * MIB, Some(vec![6 * MIB, 6 * MIB]));
    s3.put(DESTINATION, "k", 12 * MIB, None);
    let progress = Arc::new(Progress::default());
    let run_with = |compare| {
        let executor = plain_executor(&s3, &progress, CopyJob { compare, ..job() });
        async move { executor.run(None).await.unwrap() }
    };
    run_with(crate::merge::Compare::Metadata).await;
    let unproven = progress.unproven_keys();
    assert_eq!(unproven.len(), 1, "{unproven:?}");
    assert_eq!((unproven[0].key.as_str(), unproven[0].position), ("k", 1));
    assert_eq!(s3.histories(DESTINATION)[0].1.len(), 1, "written anyway");
    run_with(crate::merge::Compare::Content).await;
    assert_eq!(progress.diverged_keys().len(), 1, "other bytes: diverged");
    assert_eq!(s3.histories(DESTINATION)[0].1.len(), 1, "written anyway");
    // The same bytes under another layout: proven by content.
    let s3 = MemoryS3::new();
    s3.create_bucket(SOURCE, Versioning::Enabled);
    s3.create_bucket(DESTINATION, Versioning::Enabled);
    s3.put(SOURCE, "k", 12 * MIB, Some(vec![6 * MIB, 6 * MIB]));
    let progress = Arc::new(Progress::default());
    let executor = |job: CopyJob| plain_executor(&s3, &progress, job);
    let other_layout = CopyJob {
        plan: PlanSettings {
            multipart_threshold: THRESHOLD,
            part_size: Some(5 * MIB),
        },
        ..job()
    };
    executor(other_layout.clone()).run(None).await.unwrap();
    assert_exact(&s3, "copied in another layout");
    executor(other_layout).run(None).await.unwrap();
    assert_eq!(progress.unproven_keys().len(), 1);
    executor(CopyJob {
        compare: crate::merge::Compare::Content,
        ..job()
    })
    .run(None)
    .await
    .unwrap();
    assert_eq!(
        progress
            .matched_by_content
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_exact(&s3, "proven by content, nothing written");
}

/// Kill (the run dropped, its requests abandoned) while a copy is on its way and lands after the kill:
/// the resume waits until it can no longer land (its recorded timeout + 5 s + the heartbeat), finds it,
/// and does not write it again.
#[tokio::test(start_paused = true)]
async fn a_write_landing_after_a_kill_is_found_by_the_resume() {
    let s3 = MemoryS3::new();
    seed(&s3, &[("k".to_string(), vec![Some(1), Some(2)])]);
    let directory = tempfile::tempdir().unwrap();
    let checkpoint = directory.path().join("job.checkpoint");
    let schedule: Schedule =
        Box::new(|operation, n| (operation == "CopyObject" && n == 0).then_some(Fault::LateApply));
    let killed = run_or_kill(&s3, Some(&checkpoint), schedule, None, true).await;
    assert!(!killed.complete);
    assert!(
        run(&s3, Some(&checkpoint), no_faults(), None)
            .await
            .complete
    );
    tokio::time::sleep(crate::s3::faults::LATE_TIMEOUT + crate::s3::faults::LATE_BY).await;
    assert_exact(&s3, "after the late copy landed");
}

/// CreateMultipartUpload whose answer is lost: the upload exists on the server, its id is unknown to
/// the run. A blind retry creates a second one and leaves the first billed forever.
#[tokio::test(start_paused = true)]
async fn a_lost_create_multipart_answer_leaves_no_orphaned_upload() {
    let s3 = MemoryS3::new();
    seed(&s3, &[("big".to_string(), vec![Some(11 * MIB)])]);
    let schedule: Schedule = Box::new(|operation, n| {
        (operation == "CreateMultipartUpload" && n == 0).then_some(Fault::DropAnswer)
    });
    let run = run(&s3, None, schedule, None).await;
    assert!(run.complete);
    assert_eq!(
        run.injected,
        vec![("CreateMultipartUpload", Fault::DropAnswer)]
    );
    assert_exact(&s3, "after a lost CreateMultipartUpload answer");
    assert_eq!(
        s3.requests()["AbortMultipartUpload"],
        1,
        "{:?}",
        s3.requests()
    );
}

/// The session token expires mid-run: every later request is refused. The run stops (exit 3) with
/// the fix instead of recording every remaining entry failed, and a rerun with fresh credentials
/// resumes to an exact copy.
#[tokio::test(start_paused = true)]
async fn credentials_that_expire_mid_run_stop_it_and_a_rerun_resumes() {
    let s3 = MemoryS3::new();
    let histories: Vec<_> = (0..20)
        .map(|i| (format!("k{i:02}"), vec![Some(1), Some(2)]))
        .collect();
    seed(&s3, &histories);
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let mut requests = 0;
    let schedule: Schedule = Box::new(move |_, _| {
        requests += 1;
        (requests > 10).then_some(Fault::ExpiredToken)
    });
    let first = run(&s3, Some(&checkpoint), schedule, None).await;
    assert!(!first.complete);
    assert_eq!(
        first.failures, 0,
        "entries recorded failed for expired credentials"
    );
    let reason = first.halted.expect("the run did not stop itself");
    assert!(reason.contains("the session token has expired"), "{reason}");
    let second = run(&s3, Some(&checkpoint), no_faults(), None).await;
    assert!(second.complete);
    assert_exact(&s3, "after a rerun with fresh credentials");
}

/// Every kind of fault on every write of the destination, each on its own: the run still ends exact.
#[tokio::test(start_paused = true)]
async fn each_fault_on_each_write_is_survived() {
    for operation in [
        "CopyObject",
        "DeleteObject",
        "CreateMultipartUpload",
        "UploadPartCopy",
        "CompleteMultipartUpload",
    ] {
        for fault in [
            Fault::DropAnswer,
            Fault::ServerError,
            Fault::SlowDown,
            Fault::Reset,
        ] {
            let s3 = MemoryS3::new();
            seed(
                &s3,
                &[
                    ("a".to_string(), vec![Some(3), None, Some(4)]),
                    ("big".to_string(), vec![Some(11 * MIB), Some(6 * MIB)]),
                ],
            );
            let schedule: Schedule =
                Box::new(move |op, n| (op == operation && n == 0).then_some(fault));
            let run = run(&s3, None, schedule, None).await;
            assert!(run.complete, "{operation} {fault:?}");
            assert_eq!(run.injected, vec![(operation, fault)]);
            assert_exact(&s3, &format!("{operation} {fault:?}"));
        }
    }
}

/// A write answered without its version id, then the next write of the key losing its answer: the
/// first must not leave the key's head unknown (it was taken as an unversioned destination's, where
/// repeating a write is harmless, so the second was sent again: a duplicate version). Each write op.
#[tokio::test(start_paused = true)]
async fn a_write_answered_without_its_version_id_is_found_on_the_destination() {
    for operation in ["CopyObject", "DeleteObject", "CompleteMultipartUpload"] {
        let s3 = MemoryS3::new();
        seed(
            &s3,
            &[(
                "a".to_string(),
                vec![
                    Some(3),
                    None,
                    Some(4),
                    None,
                    Some(5),
                    Some(11 * MIB),
                    Some(6 * MIB),
                ],
            )],
        );
        // Every write of `operation` answered without its id, and every write after the first
        // losing its answer once.
        let mut lost = 0;
        let schedule: Schedule = Box::new(move |op, n| {
            if op == operation && n % 2 == 0 {
                return Some(Fault::NoVersionId);
            }
            if matches!(
                op,
                "CopyObject" | "DeleteObject" | "CompleteMultipartUpload"
            ) && n > 0
            {
                lost += 1;
                return (lost % 2 == 1).then_some(Fault::DropAnswer);
            }
            None
        });
        let run = run(&s3, None, schedule, None).await;
        assert!(run.complete, "{operation}");
        assert!(
            run.injected.contains(&(operation, Fault::NoVersionId)),
            "{operation}: {:?}",
            run.injected
        );
        assert_exact(&s3, operation);
    }
}

fn histories() -> impl Strategy<Value = Vec<(String, Vec<Option<u64>>)>> {
    let write = prop_oneof![
        6 => (1u64..64).prop_map(Some),
        1 => (THRESHOLD + 1..3 * THRESHOLD).prop_map(Some),
        2 => Just(None),
    ];
    let key = prop_oneof![
        Just("a".to_string()),
        Just("a/b".to_string()),
        Just("a/c".to_string()),
        Just("b".to_string()),
        Just("c/d/e".to_string()),
        Just("c/d/f".to_string()),
        Just("z".to_string()),
    ];
    prop::collection::btree_map(key, prop::collection::vec(write, 1..5), 1..7)
        .prop_map(|map| map.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// For random histories and random fault schedules (writes whose answers are lost, that fail, that
    /// land late after their attempt timed out), with a Ctrl-C or a kill somewhere and reruns on the
    /// same checkpoint until a run completes, the destination ends equal to the source: no entry
    /// missing, none written twice, no upload left.
    #[test]
    fn random_histories_and_faults_end_exact(
        histories in histories(),
        seed_value in any::<u64>(),
        rate in 0.0f64..0.3,
        stop_after in prop::option::of(1u64..12),
        kill_on_late in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let directory = tempfile::tempdir().expect("temp dir");
        let checkpoint = directory.path().join("job.checkpoint");
        runtime.block_on(async {
            let s3 = MemoryS3::new();
            seed(&s3, &histories);
            let mut stop = stop_after;
            let mut kill = kill_on_late;
            for attempt in 0..8u64 {
                let schedule = Faulty::<MemoryS3>::random_schedule(
                    seed_value.wrapping_add(attempt),
                    rate,
                    DESTINATION_OPERATIONS,
                );
                let run =
                    run_or_kill(&s3, Some(&checkpoint), schedule, stop.take(), std::mem::take(&mut kill))
                        .await;
                if run.complete {
                    // Every write that lands late has landed before the destination is judged.
                    tokio::time::sleep(
                        crate::s3::faults::LATE_TIMEOUT + crate::s3::faults::LATE_BY,
                    )
                    .await;
                    assert_exact(&s3, &format!("after {} runs", attempt + 1));
                    return;
                }
            }
            panic!("no run completed in 8 attempts");
        });
    }
}
