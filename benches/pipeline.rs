//! CPU cost of the stages between the wire and the executor: parsing a ListObjectVersions page (a real
//! SeaweedFS answer, fixtures/list-versions-seaweedfs.xml), grouping it into per-key histories, planning.
//! Run: cargo bench --bench pipeline

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use s3_backfill::history::HistoryBuilder;
use s3_backfill::plan::PlanSettings;
use s3_backfill::s3::parse_list_versions;

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

criterion_group!(benches, pipeline);
criterion_main!(benches);
