//! `verify`: compares the version histories of a source and a destination range key by key (count,
//! kind, order, size, ETag where comparable, metadata and tags). Both listings are streamed and joined
//! by key, so memory does not grow with the bucket.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::history::{KeyHistory, Selection, list_histories};
use crate::location::KeyMapping;
use crate::progress::Progress;
use crate::s3::{Entry, EntryKind, ObjectHead, S3Api, S3Result, VersionRef};

/// How many differences are kept to show; all are counted.
const SHOWN: usize = 20;
const PARALLEL_KEYS: usize = 32;

#[derive(Debug, Default)]
pub struct VerifyOutcome {
    pub keys: u64,
    pub entries: u64,
    pub difference_count: u64,
    pub differences: Vec<String>,
}

impl VerifyOutcome {
    fn add(&mut self, difference: String) {
        self.difference_count += 1;
        if self.differences.len() < SHOWN {
            self.differences.push(difference);
        }
    }
}

pub async fn verify<C: S3Api>(
    source: Arc<C>,
    destination: Arc<C>,
    mapping: &KeyMapping,
    latest_only: bool,
) -> S3Result<VerifyOutcome> {
    let selection = |mapping: KeyMapping| Selection {
        mapping,
        include: Vec::new(),
        exclude: Vec::new(),
        latest_only,
        shard: None,
        source_unversioned: false,
        as_of: None,
    };
    let reverse = KeyMapping {
        source: mapping.destination.clone(),
        destination: mapping.source.clone(),
    };
    let progress = Arc::new(Progress::default());
    let mut left = list_histories(
        Arc::clone(&source),
        mapping.source.bucket.clone(),
        selection(mapping.clone()),
        Arc::clone(&progress),
        None,
    );
    let mut right = list_histories(
        Arc::clone(&destination),
        mapping.destination.bucket.clone(),
        selection(reverse.clone()),
        progress,
        None,
    );
    let mut outcome = VerifyOutcome::default();
    let mut checks = FuturesUnordered::new();
    let mut next_left = left.recv().await.transpose()?;
    let mut next_right = right.recv().await.transpose()?;
    loop {
        let order = match (&next_left, &next_right) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(l), Some(r)) => mapping.relative(&l.key).cmp(reverse.relative(&r.key)),
        };
        match order {
            std::cmp::Ordering::Less => {
                let history = next_left.take().expect("present");
                outcome.keys += 1;
                outcome.entries += history.entries.len() as u64;
                outcome.add(format!(
                    "key {:?}: missing from the destination ({} entries in the source)",
                    history.key,
                    history.entries.len()
                ));
                next_left = left.recv().await.transpose()?;
            }
            std::cmp::Ordering::Greater => {
                let history = next_right.take().expect("present");
                outcome.add(format!(
                    "key {:?}: in the destination only ({} entries)",
                    history.key,
                    history.entries.len()
                ));
                next_right = right.recv().await.transpose()?;
            }
            std::cmp::Ordering::Equal => {
                let (l, r) = (
                    next_left.take().expect("present"),
                    next_right.take().expect("present"),
                );
                outcome.keys += 1;
                outcome.entries += l.entries.len() as u64;
                for difference in compare_histories(&l, &r) {
                    outcome.add(difference);
                }
                let (source, destination) = (Arc::clone(&source), Arc::clone(&destination));
                let buckets = (
                    mapping.source.bucket.clone(),
                    mapping.destination.bucket.clone(),
                );
                checks.push(async move {
                    compare_settings((&*source, &buckets.0), (&*destination, &buckets.1), l, r)
                        .await
                });
                if checks.len() >= PARALLEL_KEYS
                    && let Some(result) = checks.next().await
                {
                    result?.into_iter().for_each(|d| outcome.add(d));
                }
                next_left = left.recv().await.transpose()?;
                next_right = right.recv().await.transpose()?;
            }
        }
    }
    while let Some(result) = checks.next().await {
        result?.into_iter().for_each(|d| outcome.add(d));
    }
    Ok(outcome)
}

fn describe(entry: &Entry) -> String {
    match &entry.kind {
        EntryKind::DeleteMarker => format!("delete marker {}", entry.version_id),
        EntryKind::Object { size, etag, .. } => {
            format!("version {} ({size} bytes, ETag {etag})", entry.version_id)
        }
    }
}

/// Count, kind, order, size and (single-part) ETag of two histories, entry by entry.
pub fn compare_histories(source: &KeyHistory, destination: &KeyHistory) -> Vec<String> {
    let mut differences = Vec::new();
    if source.entries.len() != destination.entries.len() {
        differences.push(format!(
            "key {:?}: {} entries in the source, {} in the destination ({} versions {})",
            source.key,
            source.entries.len(),
            destination.entries.len(),
            source.entries.len().abs_diff(destination.entries.len()),
            if source.entries.len() > destination.entries.len() {
                "missing"
            } else {
                "extra"
            }
        ));
    }
    for (position, (s, d)) in source.entries.iter().zip(&destination.entries).enumerate() {
        let same = match (&s.kind, &d.kind) {
            (EntryKind::DeleteMarker, EntryKind::DeleteMarker) => true,
            (
                EntryKind::Object {
                    size: a, etag: ea, ..
                },
                EntryKind::Object {
                    size: b, etag: eb, ..
                },
            ) => a == b && (ea.contains('-') || eb.contains('-') || ea == eb),
            _ => false,
        };
        if !same {
            differences.push(format!(
                "key {:?}, entry {} (oldest is 1): source {} but destination {} (order or content differs)",
                source.key,
                position + 1,
                describe(s),
                describe(d)
            ));
            break;
        }
    }
    differences
}

/// What a copy must keep of an object: its headers, user metadata and tags.
fn settings(head: &ObjectHead) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        &head.content_type,
        &head.cache_control,
        &head.content_disposition,
        &head.content_encoding,
        &head.content_language,
        &head.metadata,
    )
}

async fn compare_settings<C: S3Api>(
    (source, source_bucket): (&C, &str),
    (destination, destination_bucket): (&C, &str),
    left: KeyHistory,
    right: KeyHistory,
) -> S3Result<Vec<String>> {
    let mut differences = Vec::new();
    for (s, d) in left.entries.iter().zip(&right.entries) {
        if s.is_delete_marker() || d.is_delete_marker() {
            continue;
        }
        let version = |bucket: &str, entry: &Entry| VersionRef {
            bucket: bucket.to_string(),
            key: entry.key.clone(),
            version_id: entry.version_id.clone(),
        };
        let (source_version, destination_version) =
            (version(source_bucket, s), version(destination_bucket, d));
        let (source_head, destination_head, source_tags, destination_tags) = futures::try_join!(
            source.head_object(&source_version, None),
            destination.head_object(&destination_version, None),
            source.get_tags(&source_version),
            destination.get_tags(&destination_version),
        )?;
        if settings(&source_head) != settings(&destination_head) {
            differences.push(format!(
                "key {:?}, version {}: metadata differs: source {:?}, destination {:?}",
                left.key,
                s.version_id,
                settings(&source_head),
                settings(&destination_head)
            ));
        }
        let sorted = |mut tags: Vec<(String, String)>| {
            tags.sort();
            tags
        };
        let (source_tags, destination_tags) = (sorted(source_tags), sorted(destination_tags));
        if source_tags != destination_tags {
            differences.push(format!(
                "key {:?}, version {}: tags differ: source {source_tags:?}, destination {destination_tags:?}",
                left.key, s.version_id
            ));
        }
    }
    Ok(differences)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(entries: &[(&str, Option<u64>)]) -> KeyHistory {
        KeyHistory {
            key: "k".into(),
            entries: entries
                .iter()
                .map(|(id, size)| Entry {
                    key: "k".into(),
                    version_id: id.to_string(),
                    is_latest: false,
                    last_modified: String::new(),
                    kind: match size {
                        Some(size) => EntryKind::Object {
                            size: *size,
                            etag: format!("\"{size}\""),
                            storage_class: None,
                        },
                        None => EntryKind::DeleteMarker,
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn equal_histories_have_no_differences_whatever_their_version_ids() {
        let source = history(&[("a", Some(1)), ("b", None), ("c", Some(2))]);
        let destination = history(&[("x", Some(1)), ("y", None), ("z", Some(2))]);
        assert!(compare_histories(&source, &destination).is_empty());
    }

    #[test]
    fn finds_missing_extra_and_reordered_entries() {
        let source = history(&[("a", Some(1)), ("b", None), ("c", Some(2))]);
        let missing = compare_histories(&source, &history(&[("x", Some(1)), ("y", None)]));
        assert!(missing[0].contains("1 versions missing"), "{missing:?}");
        let extra = compare_histories(
            &source,
            &history(&[("x", Some(1)), ("y", None), ("z", Some(2)), ("w", Some(2))]),
        );
        assert!(extra[0].contains("1 versions extra"), "{extra:?}");
        let reordered = compare_histories(
            &source,
            &history(&[("x", Some(1)), ("z", Some(2)), ("y", None)]),
        );
        assert!(reordered[0].contains("entry 2"), "{reordered:?}");
    }
}
