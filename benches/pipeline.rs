//! CPU cost of the stages between the wire and the executor: parsing a ListObjectVersions page (a real
//! SeaweedFS answer, fixtures/list-versions-seaweedfs.xml), grouping it into per-key histories, planning;
//! reading an S3 Inventory report's CSV rows, sorting them by key and planning each key's history;
//! encoding keys for x-amz-copy-source and decoding listed keys; appending journal records and
//! replaying a journal into the state a resume starts from.
//! Run: cargo bench --bench pipeline

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::io::Read;

use s3_backfill::history::{HistoryBuilder, KeyHistory};
use s3_backfill::input::fixture::{ReportOptions, inventory_report};
use s3_backfill::input::rows::Schema;
use s3_backfill::input::sort::{DEFAULT_BUDGET, Sorter};
use s3_backfill::input::{Data, KeyPlan, plan_key, read_csv};
use s3_backfill::plan::PlanSettings;
use s3_backfill::s3::parse_list_versions;
use s3_backfill::s3::{Entry, EntryKind};

const PAGE: &str = include_str!("../fixtures/list-versions-seaweedfs.xml");

fn pipeline(c: &mut Criterion) {
    let entries = parse_list_versions(PAGE).unwrap().entries;
    let mut group = c.benchmark_group("listing page");
    group.throughput(Throughput::Elements(entries.len() as u64));
    group.bench_function("parse", |b| {
        b.iter(|| parse_list_versions(std::hint::black_box(PAGE)).unwrap())
    });
    group.bench_function("group into histories", |b| {
        b.iter(|| {
            let mut builder = HistoryBuilder::default();
            let mut histories: Vec<_> = entries
                .iter()
                .cloned()
                .filter_map(|e| builder.push(e))
                .collect();
            histories.extend(builder.finish());
            histories
        })
    });
    let plan = PlanSettings::default();
    group.bench_function("plan", |b| {
        b.iter(|| entries.iter().map(|e| plan.action(e)).collect::<Vec<_>>())
    });
    group.finish();
}

/// 25,000 keys x 4 versions as one gzip'd inventory data file, rows shuffled.
fn inventory_file() -> Vec<u8> {
    let histories: Vec<KeyHistory> = (0..25_000)
        .map(|k| {
            let key = format!("data/2026/{k:07}/object name {k}.json");
            let entries = (0..4)
                .map(|v| Entry {
                    key: key.clone(),
                    version_id: format!(
                        "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLU{v}"
                    ),
                    is_latest: false,
                    last_modified: format!("2026-11-20T10:00:0{v}.000Z"),
                    kind: EntryKind::Object {
                        size: 1024 * k,
                        etag: "\"0123456789abcdef0123456789abcdef\"".into(),
                        storage_class: None,
                    },
                })
                .collect();
            KeyHistory { key, entries }
        })
        .collect();
    let options = ReportOptions {
        data_files: 1,
        ..ReportOptions::default()
    };
    inventory_report("bench-src", &histories, &options)
        .0
        .remove(0)
        .1
}

fn parse(bytes: &[u8], schema: &Schema) -> Sorter {
    let mut sorter = Sorter::new(DEFAULT_BUDGET);
    let mut reader = Data::new(bytes, "bench").unwrap();
    read_csv(&mut reader, "bench", &mut sorter, |r| {
        schema.row(r, "bench-src")
    })
    .unwrap();
    sorter
}

fn inventory(c: &mut Criterion) {
    let gzipped = inventory_file();
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(gzipped.as_slice())
        .read_to_end(&mut plain)
        .unwrap();
    let schema = Schema::parse(s3_backfill::input::fixture::SCHEMA).unwrap();
    let mut group = c.benchmark_group("inventory rows");
    group.throughput(Throughput::Elements(100_000));
    group.sample_size(20);
    group.bench_function("parse CSV", |b| b.iter(|| parse(&plain, &schema)));
    group.bench_function("gunzip and parse", |b| b.iter(|| parse(&gzipped, &schema)));
    group.bench_function("gunzip, parse, sort, plan", |b| {
        b.iter(|| {
            let mut planned = 0;
            let mut current: Option<(String, Vec<_>)> = None;
            for row in parse(&gzipped, &schema).finish().unwrap() {
                let row = row.unwrap();
                match &mut current {
                    Some((key, rows)) if *key == row.key => rows.push(row),
                    _ => {
                        if let Some((key, rows)) = current.take() {
                            planned += usize::from(matches!(
                                plan_key(key, rows, false),
                                KeyPlan::Ready(_)
                            ));
                        }
                        current = Some((row.key.clone(), vec![row]));
                    }
                }
            }
            if let Some((key, rows)) = current {
                planned += usize::from(matches!(plan_key(key, rows, false), KeyPlan::Ready(_)));
            }
            assert_eq!(planned, 25_000);
        })
    });
    group.finish();
}

fn keys_and_journal(c: &mut Criterion) {
    use s3_backfill::checkpoint::{Record, State, decode, encode};
    use s3_backfill::s3::{VersionRef, copy_source, url_decode};
    let keys: Vec<String> = (0..10_000)
        .map(|k| format!("data/2026/{k:07}/object name+{k} é#?.json"))
        .collect();
    let mut group = c.benchmark_group("keys");
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("encode x-amz-copy-source", |b| {
        b.iter(|| {
            keys.iter()
                .map(|key| {
                    copy_source(&VersionRef {
                        bucket: "source-bucket".into(),
                        key: key.clone(),
                        version_id:
                            "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLU0"
                                .into(),
                    })
                })
                .collect::<Vec<_>>()
        })
    });
    let encoded: Vec<String> = keys
        .iter()
        .map(|key| {
            key.bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect()
        })
        .collect();
    group.bench_function("decode listed keys (EncodingType=url)", |b| {
        b.iter(|| {
            encoded
                .iter()
                .map(|key| url_decode(key).unwrap())
                .collect::<Vec<_>>()
        })
    });
    group.finish();

    // What a run appends for one single-version key: intent, done (last), key done; a watermark every
    // 256 keys, as the engine writes it.
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .flat_map(|(index, key)| {
            let mut records = vec![
                Record::Intent {
                    key: key.clone(),
                    index: 0,
                    version_id: format!("v{index}"),
                    previous: None,
                    timeout_ms: Some(30_000),
                },
                Record::Done {
                    key: key.clone(),
                    index: 0,
                    written: Some(format!("w{index}")),
                    last: true,
                },
                Record::KeyDone { key: key.clone() },
            ];
            if index % 256 == 255 {
                records.push(Record::Watermark { key: key.clone() });
            }
            records
        })
        .collect();
    let mut journal = Vec::new();
    for record in &records {
        encode(record, &mut journal);
    }
    let mut group = c.benchmark_group("journal");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("append (encode with CRC)", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(journal.len());
            for record in &records {
                encode(record, &mut out);
            }
            out
        })
    });
    group.bench_function("replay (decode and apply)", |b| {
        b.iter(|| {
            let mut state = State::default();
            for line in journal.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                if let s3_backfill::checkpoint::Decoded::Record(record) = decode(line) {
                    state.apply(&record);
                }
            }
            state
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline, inventory, keys_and_journal);
criterion_main!(benches);
