//! Merging a key's source history with what the destination already holds, so that any rerun writes
//! only what is missing, whoever wrote the rest and whatever the checkpoint says.
//!
//! The destination is the truth. Before a key is replayed, its destination history (from a listing of
//! the destination range merged by key with the source's, or one listing of the key) is compared with
//! its source history, oldest first:
//!
//! - the same entries: the key is *in step* and nothing is written;
//! - the destination holds a prefix of the source history: only the missing suffix is written, in order
//!   (an interrupted run, a failed entry retried, new versions since the last run);
//! - anything else is *diverged* (someone else wrote to the key, or an entry was deleted on either side):
//!   the key is left untouched and reported with the first position where the histories differ, unless
//!   `--on-diverged append` asks to append the source entries the destination lacks anyway.
//!
//! Two entries are the same when they are of the same kind and, for objects, of the same size and ETag.
//! ETags are not comparable across a multipart copy with another part layout, or under SSE-KMS or SSE-C
//! (their ETags are not MD5s and differ per copy): for those, one HEAD of each side decides, by their
//! checksums where both have one of the same algorithm, else by size alone; the report counts both.
//! With `--latest-only`, only the current entries are compared.

use crate::s3::{Entry, EntryKind, ObjectHead};

/// What to do with a key whose destination history is neither the source's nor a prefix of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnDiverged {
    /// Leave the key untouched and report it (exit 1).
    #[default]
    Skip,
    /// Append the source entries the destination lacks, after what it holds.
    Append,
}

/// How a destination entry compares with a source entry, from the listings alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Likeness {
    /// Same kind, and for objects the same size and ETag.
    Same,
    /// Same kind and size, different ETags: only a HEAD of each side can tell (the ETags may not be
    /// comparable).
    Unverified,
    Different,
}

pub fn likeness(source: &Entry, destination: &Entry) -> Likeness {
    match (&source.kind, &destination.kind) {
        (EntryKind::DeleteMarker, EntryKind::DeleteMarker) => Likeness::Same,
        (
            EntryKind::Object {
                size: a, etag: x, ..
            },
            EntryKind::Object {
                size: b, etag: y, ..
            },
        ) if a == b => {
            if x.trim_matches('"') == y.trim_matches('"') {
                Likeness::Same
            } else {
                Likeness::Unverified
            }
        }
        _ => Likeness::Different,
    }
}

/// How two entries were found to be the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// Kind, size and ETag (delete markers: kind).
    Etag,
    /// Size and a checksum of the same algorithm (ETags not comparable).
    Checksum,
    /// Size alone: ETags not comparable and no checksum on both sides.
    Size,
}

/// Whether two objects of the same size whose listed ETags differ are the same, from a HEAD of each.
pub fn by_heads(theirs: &ObjectHead, ours: &ObjectHead) -> Option<MatchedBy> {
    if theirs.etag == ours.etag {
        // The listing did not give one side's ETag (an inventory without that column).
        return Some(MatchedBy::Etag);
    }
    if theirs.etag_is_md5() && ours.etag_is_md5() {
        // Both ETags are MD5s of the bytes: the bytes differ.
        return None;
    }
    match (&theirs.checksum, &ours.checksum) {
        (Some((a, x)), Some((b, y))) if a == b => (x == y).then_some(MatchedBy::Checksum),
        _ => Some(MatchedBy::Size),
    }
}

/// What to write for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlan {
    /// The destination holds the whole source history: nothing to write.
    InStep,
    /// The destination holds source entries `..from` and nothing else: write `from..`.
    Append { from: usize },
    /// The histories differ at `position` (0-based, in the source history) for `reason`; with
    /// `--on-diverged append`, `append_from` is the first source entry to write.
    Diverged {
        position: usize,
        reason: String,
        append_from: Option<usize>,
    },
}

/// One side's entry, described for a diverged key's reason.
pub fn describe(entry: &Entry) -> String {
    match &entry.kind {
        EntryKind::DeleteMarker => format!("a delete marker (version {})", entry.version_id),
        EntryKind::Object { size, etag, .. } => format!(
            "version {} ({size} bytes, ETag {})",
            entry.version_id,
            etag.trim_matches('"')
        ),
    }
}

/// Plans a key from its source and destination histories (both oldest first). `same(i, j)` tells
/// whether source entry `i` and destination entry `j` are the same (see the module doc); `matched`
/// receives how each matched pair was decided.
pub async fn plan_key<F, Fut, E>(
    source: &[Entry],
    destination: &[Entry],
    latest_only: bool,
    on_diverged: OnDiverged,
    mut same: F,
    mut matched: impl FnMut(MatchedBy),
) -> Result<KeyPlan, E>
where
    F: FnMut(usize, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Option<MatchedBy>, E>>,
{
    if latest_only {
        // Only the current entry counts, as in every latest-version sync tool.
        let (Some(current), Some(last)) = (
            source.len().checked_sub(1),
            destination.len().checked_sub(1),
        ) else {
            return Ok(if source.is_empty() {
                KeyPlan::InStep
            } else {
                KeyPlan::Append { from: 0 }
            });
        };
        return Ok(match same(current, last).await? {
            Some(how) => {
                matched(how);
                KeyPlan::InStep
            }
            None => KeyPlan::Append { from: current },
        });
    }
    let mut pairs = Vec::new();
    for (index, entry) in destination.iter().enumerate() {
        let Some(wanted) = source.get(index) else {
            return diverged(
                source,
                destination,
                index,
                format!(
                    "the destination has {} entries, the source {}: its entry {} ({}) is not in the source",
                    destination.len(),
                    source.len(),
                    index + 1,
                    describe(entry)
                ),
                on_diverged,
                same,
            )
            .await;
        };
        match same(index, index).await? {
            Some(how) => pairs.push(how),
            None => {
                return diverged(
                    source,
                    destination,
                    index,
                    format!(
                        "entry {}: the destination has {}, the source {}",
                        index + 1,
                        describe(entry),
                        describe(wanted)
                    ),
                    on_diverged,
                    same,
                )
                .await;
            }
        }
    }
    pairs.into_iter().for_each(&mut matched);
    Ok(if destination.len() == source.len() {
        KeyPlan::InStep
    } else {
        KeyPlan::Append {
            from: destination.len(),
        }
    })
}

/// A diverged key; with `append`, the first source entry after the last one the destination holds in
/// order (entries the destination holds that the source lacks are passed over).
async fn diverged<F, Fut, E>(
    source: &[Entry],
    destination: &[Entry],
    position: usize,
    reason: String,
    on_diverged: OnDiverged,
    mut same: F,
) -> Result<KeyPlan, E>
where
    F: FnMut(usize, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Option<MatchedBy>, E>>,
{
    let append_from = match on_diverged {
        OnDiverged::Skip => None,
        OnDiverged::Append => {
            let mut next = 0;
            for index in 0..destination.len() {
                if next < source.len() && same(next, index).await?.is_some() {
                    next += 1;
                }
            }
            Some(next)
        }
    };
    Ok(KeyPlan::Diverged {
        position,
        reason,
        append_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(id: &str, size: u64, etag: &str) -> Entry {
        Entry {
            key: "k".into(),
            version_id: id.into(),
            is_latest: false,
            last_modified: String::new(),
            kind: EntryKind::Object {
                size,
                etag: format!("\"{etag}\""),
                storage_class: None,
            },
        }
    }

    fn marker(id: &str) -> Entry {
        Entry {
            kind: EntryKind::DeleteMarker,
            ..object(id, 0, "")
        }
    }

    /// Plans with the listing-only comparison (an unverified pair counts as different).
    fn plan(source: &[Entry], destination: &[Entry], latest: bool, mode: OnDiverged) -> KeyPlan {
        let same = |i: usize, j: usize| {
            let found = (likeness(&source[i], &destination[j]) == Likeness::Same)
                .then_some(MatchedBy::Etag);
            std::future::ready(Ok::<_, ()>(found))
        };
        futures::executor::block_on(plan_key(source, destination, latest, mode, same, |_| {}))
            .unwrap()
    }

    #[test]
    fn a_destination_with_the_whole_history_is_in_step_and_a_prefix_gets_the_rest() {
        let source = [object("a", 4, "aa"), marker("m"), object("c", 6, "cc")];
        let copies = [object("x", 4, "aa"), marker("y"), object("z", 6, "cc")];
        assert_eq!(
            plan(&source, &copies, false, OnDiverged::Skip),
            KeyPlan::InStep
        );
        for held in 0..3 {
            assert_eq!(
                plan(&source, &copies[..held], false, OnDiverged::Skip),
                KeyPlan::Append { from: held }
            );
        }
    }

    #[test]
    fn a_foreign_or_missing_entry_diverges_and_append_writes_only_what_is_missing() {
        let source = [
            object("a", 4, "aa"),
            object("b", 4, "bb"),
            object("c", 6, "cc"),
        ];
        // A foreign version after our first copy.
        let foreign = [object("x", 4, "aa"), object("f", 9, "ff")];
        let KeyPlan::Diverged {
            position,
            reason,
            append_from,
        } = plan(&source, &foreign, false, OnDiverged::Skip)
        else {
            panic!("not diverged")
        };
        assert_eq!((position, append_from), (1, None));
        assert!(
            reason.contains("entry 2") && reason.contains("ETag ff"),
            "{reason}"
        );
        assert!(matches!(
            plan(&source, &foreign, false, OnDiverged::Append),
            KeyPlan::Diverged {
                append_from: Some(1),
                ..
            }
        ));
        // Our copies of a and b with a foreign one between them: only c is missing.
        let between = [
            object("x", 4, "aa"),
            object("f", 9, "ff"),
            object("y", 4, "bb"),
        ];
        assert!(matches!(
            plan(&source, &between, false, OnDiverged::Append),
            KeyPlan::Diverged {
                position: 1,
                append_from: Some(2),
                ..
            }
        ));
        // More entries than the source (a version deleted in the source since it was copied).
        let longer = [
            object("x", 4, "aa"),
            object("y", 4, "bb"),
            object("z", 6, "cc"),
            marker("m"),
        ];
        assert!(matches!(
            plan(&source, &longer, false, OnDiverged::Append),
            KeyPlan::Diverged {
                position: 3,
                append_from: Some(3),
                ..
            }
        ));
        // The same size but another ETag (the failed-retry case: AAAA then CCCCCC is not a prefix).
        let skipped = [object("x", 4, "aa"), object("z", 4, "cc")];
        assert!(matches!(
            plan(&source, &skipped, false, OnDiverged::Skip),
            KeyPlan::Diverged { position: 1, .. }
        ));
    }

    #[test]
    fn latest_only_compares_the_current_entries() {
        let source = [object("a", 4, "aa"), object("b", 5, "bb")];
        let current = [object("b", 5, "bb")];
        assert_eq!(
            plan(&current, &[object("x", 5, "bb")], true, OnDiverged::Skip),
            KeyPlan::InStep
        );
        assert_eq!(
            plan(&current, &[object("x", 4, "aa")], true, OnDiverged::Skip),
            KeyPlan::Append { from: 0 }
        );
        assert_eq!(
            plan(&current, &[], true, OnDiverged::Skip),
            KeyPlan::Append { from: 0 }
        );
        // A destination whose current entry is a delete marker gets the current version again.
        assert_eq!(
            plan(
                &current,
                &[object("x", 5, "bb"), marker("d")],
                true,
                OnDiverged::Skip
            ),
            KeyPlan::Append { from: 0 }
        );
        assert_eq!(
            plan(&source[1..], &source, true, OnDiverged::Skip),
            KeyPlan::InStep
        );
    }

    #[test]
    fn unverified_pairs_are_decided_by_etags_then_checksums_then_size() {
        let head = |etag: &str, sse: Option<&str>, checksum: Option<(&str, &str)>| ObjectHead {
            etag: format!("\"{etag}\""),
            server_side_encryption: sse.map(str::to_string),
            checksum: checksum.map(|(a, v)| (a.to_string(), v.to_string())),
            ..ObjectHead::default()
        };
        // Plain MD5 ETags that differ: different bytes, whatever else.
        let crc = Some(("CRC32", "AAAA"));
        assert_eq!(
            by_heads(&head("aa", None, crc), &head("bb", None, crc)),
            None
        );
        // The same ETag once both are read (one was missing from the listing).
        assert_eq!(
            by_heads(&head("aa", None, None), &head("aa", None, None)),
            Some(MatchedBy::Etag)
        );
        // Not comparable (multipart, SSE-KMS): checksums of one algorithm decide, else size.
        let multipart = head("aa-3", None, crc);
        let kms = head("cc", Some("aws:kms"), crc);
        assert_eq!(by_heads(&multipart, &kms), Some(MatchedBy::Checksum));
        let other_bytes = head("dd", Some("aws:kms"), Some(("CRC32", "BBBB")));
        assert_eq!(by_heads(&multipart, &other_bytes), None);
        let sha = head("dd", Some("aws:kms"), Some(("SHA256", "x")));
        assert_eq!(by_heads(&multipart, &sha), Some(MatchedBy::Size));
        assert_eq!(
            by_heads(&head("aa-3", None, None), &head("ee", None, None)),
            Some(MatchedBy::Size)
        );
    }

    #[test]
    fn likeness_needs_kind_size_and_etag() {
        assert_eq!(
            likeness(&object("a", 4, "aa"), &object("b", 4, "aa")),
            Likeness::Same
        );
        assert_eq!(
            likeness(&object("a", 4, "aa"), &object("b", 4, "ab")),
            Likeness::Unverified
        );
        assert_eq!(
            likeness(&object("a", 4, "aa"), &object("b", 5, "aa")),
            Likeness::Different
        );
        assert_eq!(
            likeness(&object("a", 0, ""), &marker("m")),
            Likeness::Different
        );
        assert_eq!(likeness(&marker("m"), &marker("n")), Likeness::Same);
    }
}
