//! `verify`: compares the version histories of a source and a destination range key by key (count,
//! kind, order, size, and the proof that each pair is the same: ETags, else checksums, else this
//! machine's record of its copies, else with `--compare content` the bytes — see `merge`), and each
//! version's attributes (`attribute_differences`) and tags. A pair nothing proves is a difference
//! ("unproven"), never a match. Both listings are streamed and joined
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

/// What `verify` compares beyond the histories.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Compare only current versions.
    pub latest_only: bool,
    /// The KMS key the copies were told to use (`copy --sse-kms-key-id`).
    pub kms_key: Option<String>,
    /// Counts the source's entries as listed, and as done once compared (for the progress lines).
    pub progress: Arc<Progress>,
    /// How pairs the ETags and checksums cannot decide are compared.
    pub compare: crate::merge::Compare,
    /// This machine's record of the copies whose ETags cannot prove them.
    pub provenance: Option<Arc<crate::replay::Provenance>>,
}

pub async fn verify<C: S3Api>(
    source: Arc<C>,
    destination: Arc<C>,
    mapping: &KeyMapping,
    options: &VerifyOptions,
) -> S3Result<VerifyOutcome> {
    let latest_only = options.latest_only;
    let selection = |mapping: KeyMapping| Selection {
        latest_only,
        ..Selection::all(mapping)
    };
    let reverse = KeyMapping {
        source: mapping.destination.clone(),
        destination: mapping.source.clone(),
    };
    let progress = Arc::clone(&options.progress);
    let mut left = list_histories(
        Arc::clone(&source),
        mapping.source.bucket.clone(),
        selection(mapping.clone()),
        Arc::clone(&progress),
        None,
    );
    // The destination's listing is not the work to count.
    let mut right = list_histories(
        Arc::clone(&destination),
        mapping.destination.bucket.clone(),
        selection(reverse.clone()),
        Arc::new(Progress::default()),
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
                progress.in_step(history.entries.len() as u64, 0, 0);
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
                let kms_key = options.kms_key.clone();
                let progress = Arc::clone(&progress);
                let proof = Proof {
                    compare: options.compare,
                    provenance: options.provenance.clone(),
                    progress: Arc::clone(&progress),
                };
                checks.push(async move {
                    let entries = l.entries.len() as u64;
                    let compared = compare_settings(
                        (&*source, &buckets.0),
                        (&*destination, &buckets.1),
                        (l, r),
                        kms_key.as_deref(),
                        &proof,
                    )
                    .await;
                    progress.in_step(entries, 0, 0);
                    compared
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

/// Count, kind, order, size and ETag of two histories, entry by entry; a pair of one size whose ETags
/// differ is left to `compare_settings`, whose HEADs can tell whether the ETags are comparable.
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
            (EntryKind::Object { size: a, .. }, EntryKind::Object { size: b, .. }) => a == b,
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

/// The attributes a copy must keep that differ between a source version and its copy, each as
/// `attribute: source ..., destination ...`. Content headers, user metadata and the website redirect
/// must be equal; storage class too (no class is STANDARD); encryption, the checksum algorithm and
/// Object Lock settings the source has must be on the copy (a copy may gain encryption or a checksum
/// from the destination's defaults). Checksum values are not compared: a multipart copy can only have
/// a composite checksum, which never equals a single-part one.
///
/// `kms_key` is the key the copies were told to use (`copy --sse-kms-key-id`): then every copy must be
/// SSE-KMS with it, whatever the source's encryption (its Bucket Key is the destination bucket's
/// choice). Otherwise an SSE-KMS source's copy must have the same key and, if the source has one, an
/// S3 Bucket Key.
pub fn attribute_differences(
    source: &ObjectHead,
    copy: &ObjectHead,
    kms_key: Option<&str>,
) -> Vec<String> {
    let mut differences = Vec::new();
    let mut equal = |name: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
        let (a, b) = (format!("{a:?}"), format!("{b:?}"));
        if a != b {
            differences.push(format!("{name}: source {a}, destination {b}"));
        }
    };
    equal("Content-Type", &source.content_type, &copy.content_type);
    equal("Cache-Control", &source.cache_control, &copy.cache_control);
    equal(
        "Content-Disposition",
        &source.content_disposition,
        &copy.content_disposition,
    );
    equal(
        "Content-Encoding",
        &source.content_encoding,
        &copy.content_encoding,
    );
    equal(
        "Content-Language",
        &source.content_language,
        &copy.content_language,
    );
    equal("Expires", &source.expires, &copy.expires);
    equal("user metadata", &source.metadata, &copy.metadata);
    equal(
        "website redirect",
        &source.website_redirect,
        &copy.website_redirect,
    );
    let class = |head: &ObjectHead| head.storage_class.clone().unwrap_or("STANDARD".into());
    equal("storage class", &class(source), &class(copy));
    let mut kept = |name: &str, a: &Option<String>, b: &Option<String>| {
        if a.is_some() && a != b {
            differences.push(format!("{name}: source {a:?}, destination {b:?}"));
        }
    };
    if kms_key.is_none() {
        kept(
            "server-side encryption",
            &source.server_side_encryption,
            &copy.server_side_encryption,
        );
    }
    kept(
        "checksum algorithm",
        &source.checksum_algorithm,
        &copy.checksum_algorithm,
    );
    kept(
        "Object Lock mode",
        &source.object_lock.mode,
        &copy.object_lock.mode,
    );
    kept(
        "Object Lock retain-until date",
        &source.object_lock.retain_until,
        &copy.object_lock.retain_until,
    );
    kept(
        "Object Lock legal hold",
        &source.object_lock.legal_hold,
        &copy.object_lock.legal_hold,
    );
    if source.sse_customer && !copy.sse_customer {
        differences.push("SSE-C: source encrypted with a customer key, destination not".into());
    }
    let is_kms = |head: &ObjectHead| {
        head.server_side_encryption
            .as_deref()
            .is_some_and(|sse| sse.starts_with("aws:kms"))
    };
    match kms_key {
        Some(expected) => {
            if !is_kms(copy)
                || !copy
                    .sse_kms_key_id
                    .as_deref()
                    .is_some_and(|key| same_kms_key(expected, key))
            {
                differences.push(format!(
                    "SSE-KMS key: expected {expected:?} (--sse-kms-key-id), destination {:?} with key {:?}",
                    copy.server_side_encryption, copy.sse_kms_key_id
                ));
            }
        }
        None => {
            if is_kms(source) && is_kms(copy) {
                let same = match (&source.sse_kms_key_id, &copy.sse_kms_key_id) {
                    (Some(a), Some(b)) => same_kms_key(a, b),
                    (a, b) => a == b,
                };
                if !same {
                    differences.push(format!(
                        "SSE-KMS key: source {:?}, destination {:?}",
                        source.sse_kms_key_id, copy.sse_kms_key_id
                    ));
                }
            }
        }
    }
    if kms_key.is_none()
        && is_kms(source)
        && is_kms(copy)
        && source.bucket_key_enabled
        && !copy.bucket_key_enabled
    {
        differences.push("S3 Bucket Key: source enabled, destination not".into());
    }
    differences
}

/// Whether two names of a KMS key name the same key: equal, or an ARN and the key id it ends with.
/// An alias cannot be resolved without KMS: it is taken as matching.
fn same_kms_key(a: &str, b: &str) -> bool {
    let id = |key: &str| {
        key.rsplit_once(":key/")
            .map_or(key, |(_, id)| id)
            .to_string()
    };
    a == b || id(a) == id(b) || a.contains("alias/") || b.contains("alias/")
}

/// What proves a pair whose listed ETags differ.
struct Proof {
    compare: crate::merge::Compare,
    provenance: Option<Arc<crate::replay::Provenance>>,
    progress: Arc<Progress>,
}

impl Proof {
    /// Why the pair is not proven the same, if it is not.
    async fn difference<C: S3Api>(
        &self,
        (source, source_version, source_head): (&C, &VersionRef, &ObjectHead),
        (destination, destination_version, destination_head): (&C, &VersionRef, &ObjectHead),
    ) -> S3Result<Option<String>> {
        use crate::merge::{Compare, MatchedBy, Verdict, by_heads};
        let recorded = self.provenance.as_ref().is_some_and(|record| {
            record.proves(
                &destination_version.key,
                &destination_version.version_id,
                source_version,
            )
        });
        let verdict = match by_heads(source_head, destination_head) {
            // This machine copied exactly that version there (before checksums: some servers
            // present a multipart copy's composite checksum as a full-object one).
            Verdict::Different | Verdict::Unproven
                if recorded && !(source_head.etag_is_md5() && destination_head.etag_is_md5()) =>
            {
                Verdict::Same(MatchedBy::Record)
            }
            Verdict::Unproven if self.compare == Compare::Size => Verdict::Same(MatchedBy::Size),
            Verdict::Unproven if self.compare == Compare::Content => {
                let (theirs, ours) = futures::try_join!(
                    source.content_digest(source_version),
                    destination.content_digest(destination_version)
                )?;
                self.progress.compared_content(theirs.size + ours.size);
                if theirs == ours {
                    Verdict::Same(MatchedBy::Content)
                } else {
                    Verdict::Different
                }
            }
            verdict => verdict,
        };
        Ok(match verdict {
            Verdict::Same(how) => {
                how.count(&self.progress);
                None
            }
            Verdict::Different => Some(format!(
                "content differs: source ETag {}, destination ETag {}",
                source_head.etag, destination_head.etag
            )),
            Verdict::Unproven => Some(format!(
                "unproven: the ETags ({} and {}) are not comparable (another part layout, SSE-KMS or \
                 SSE-C) and there is no checksum in common; rerun verify with --compare content to \
                 compare the bytes",
                source_head.etag, destination_head.etag
            )),
        })
    }
}

async fn compare_settings<C: S3Api>(
    (source, source_bucket): (&C, &str),
    (destination, destination_bucket): (&C, &str),
    (left, right): (KeyHistory, KeyHistory),
    kms_key: Option<&str>,
    proof: &Proof,
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
        let listed_etags_differ = match (&s.kind, &d.kind) {
            (EntryKind::Object { etag: a, .. }, EntryKind::Object { etag: b, .. }) => {
                a.trim_matches('"') != b.trim_matches('"')
            }
            _ => false,
        };
        if listed_etags_differ
            && s.size() == d.size()
            && let Some(difference) = proof
                .difference(
                    (source, &source_version, &source_head),
                    (destination, &destination_version, &destination_head),
                )
                .await?
        {
            differences.push(format!(
                "key {:?}, version {}: {difference}",
                left.key, s.version_id
            ));
        }
        for difference in attribute_differences(&source_head, &destination_head, kms_key) {
            differences.push(format!(
                "key {:?}, version {}: {difference}",
                left.key, s.version_id
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

    #[test]
    fn every_attribute_a_copy_must_keep_is_compared_and_named() {
        let source = ObjectHead {
            content_type: Some("text/plain".into()),
            server_side_encryption: Some("AES256".into()),
            checksum_algorithm: Some("SHA256".into()),
            object_lock: crate::s3::LockSettings {
                mode: Some("GOVERNANCE".into()),
                retain_until: Some("2030-01-01T00:00:00Z".into()),
                legal_hold: Some("ON".into()),
            },
            ..ObjectHead::default()
        };
        assert_eq!(
            attribute_differences(&source, &source.clone(), None),
            Vec::<String>::new()
        );
        type Change = fn(&mut ObjectHead);
        let changes: Vec<(&str, Change)> = vec![
            ("Content-Type", |h| {
                h.content_type = Some("text/html".into())
            }),
            ("Cache-Control", |h| {
                h.cache_control = Some("no-cache".into())
            }),
            ("Content-Disposition", |h| {
                h.content_disposition = Some("inline".into())
            }),
            ("Content-Encoding", |h| {
                h.content_encoding = Some("gzip".into())
            }),
            ("Content-Language", |h| {
                h.content_language = Some("fr".into())
            }),
            ("Expires", |h| {
                h.expires = Some("Thu, 01 Jan 2030 00:00:00 GMT".into())
            }),
            ("user metadata", |h| {
                h.metadata.insert("k".into(), "v".into());
            }),
            ("website redirect", |h| {
                h.website_redirect = Some("/x".into())
            }),
            ("storage class", |h| {
                h.storage_class = Some("GLACIER_IR".into())
            }),
            ("server-side encryption", |h| {
                h.server_side_encryption = None
            }),
            ("checksum algorithm", |h| h.checksum_algorithm = None),
            ("Object Lock mode", |h| {
                h.object_lock.mode = Some("COMPLIANCE".into())
            }),
            ("Object Lock retain-until date", |h| {
                h.object_lock.retain_until = None
            }),
            ("Object Lock legal hold", |h| {
                h.object_lock.legal_hold = Some("OFF".into())
            }),
        ];
        for (name, change) in changes {
            let mut copy = source.clone();
            change(&mut copy);
            let differences = attribute_differences(&source, &copy, None);
            assert_eq!(differences.len(), 1, "{name}: {differences:?}");
            assert!(
                differences[0].starts_with(&format!("{name}: ")),
                "{differences:?}"
            );
        }
        // A copy may gain what the source lacks (the destination's default encryption, a checksum),
        // and no storage class is STANDARD.
        let plain = ObjectHead::default();
        let gained = ObjectHead {
            server_side_encryption: Some("AES256".into()),
            checksum_algorithm: Some("CRC64NVME".into()),
            storage_class: Some("STANDARD".into()),
            ..ObjectHead::default()
        };
        assert_eq!(
            attribute_differences(&plain, &gained, None),
            Vec::<String>::new()
        );
        let sse_c = ObjectHead {
            sse_customer: true,
            ..ObjectHead::default()
        };
        assert_eq!(attribute_differences(&sse_c, &plain, None).len(), 1);
    }

    #[test]
    fn an_sse_kms_copy_keeps_its_key_and_bucket_key() {
        let arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd";
        let source = ObjectHead {
            server_side_encryption: Some("aws:kms".into()),
            sse_kms_key_id: Some(arn.into()),
            bucket_key_enabled: true,
            ..ObjectHead::default()
        };
        assert_eq!(
            attribute_differences(&source, &source.clone(), None),
            Vec::<String>::new()
        );
        let other_key = ObjectHead {
            sse_kms_key_id: Some("arn:aws:kms:us-east-1:111122223333:key/other".into()),
            ..source.clone()
        };
        let differences = attribute_differences(&source, &other_key, None);
        assert_eq!(differences.len(), 1, "{differences:?}");
        assert!(
            differences[0].starts_with("SSE-KMS key: "),
            "{differences:?}"
        );
        let no_bucket_key = ObjectHead {
            bucket_key_enabled: false,
            ..source.clone()
        };
        let differences = attribute_differences(&source, &no_bucket_key, None);
        assert_eq!(
            differences,
            vec!["S3 Bucket Key: source enabled, destination not"]
        );
        let sse_s3 = ObjectHead {
            server_side_encryption: Some("AES256".into()),
            ..ObjectHead::default()
        };
        let differences = attribute_differences(&source, &sse_s3, None);
        assert_eq!(differences.len(), 1, "{differences:?}");
        assert!(
            differences[0].starts_with("server-side encryption: "),
            "{differences:?}"
        );
        // Told the copies' key: every copy must use it (a key id matches its ARN), whatever the source.
        assert_eq!(
            attribute_differences(&sse_s3, &source, Some("1234abcd")),
            Vec::<String>::new()
        );
        let differences = attribute_differences(&source, &other_key, Some(arn));
        assert_eq!(differences.len(), 1, "{differences:?}");
        assert!(
            differences[0].contains("--sse-kms-key-id"),
            "{differences:?}"
        );
        assert_eq!(attribute_differences(&source, &sse_s3, Some(arn)).len(), 1);
    }

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
