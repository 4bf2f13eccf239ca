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
//! Two entries are the same only with proof: the same kind and, for objects, the same size and one of
//! - equal ETags (from the listings, or from a HEAD of each side where a listing had none);
//! - full-object checksums of one algorithm, equal (one HEAD of each side);
//! - with `--compare content`, equal bytes (both read and hashed).
//!
//! Two MD5 ETags that differ, or two checksums of one algorithm that differ, prove the entries
//! different. ETags are not comparable across part layouts, or under SSE-KMS or SSE-C (their ETags are
//! not MD5s and differ per copy); this tool's own copies keep a multipart source's part layout, so
//! its copies' ETags compare. A pair nothing decides is *unproven*: never taken as the same on a guess
//! (equal sizes prove nothing), and the key is left untouched and reported (exit 1) unless
//! `--compare content` reads both or `--compare size` accepts equal sizes (counted in the summary).
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
    /// Size and a full-object checksum of one algorithm (ETags not comparable).
    Checksum,
    /// Size and the bytes, read from both sides (`--compare content`).
    Content,
    /// This machine's record that the destination version is a server-side copy of the source
    /// version (see `replay::Provenance`).
    Record,
    /// Size alone, accepted by `--compare size`: proves nothing.
    Size,
}

impl MatchedBy {
    /// Counts a match whose ETags could not be compared (an ETag match is not counted).
    pub fn count(self, progress: &crate::progress::Progress) {
        use std::sync::atomic::Ordering::Relaxed;
        let counter = match self {
            MatchedBy::Etag => return,
            MatchedBy::Checksum => &progress.matched_by_checksum,
            MatchedBy::Content => &progress.matched_by_content,
            MatchedBy::Record => &progress.matched_by_record,
            MatchedBy::Size => &progress.matched_by_size,
        };
        counter.fetch_add(1, Relaxed);
    }
}

/// What comparing two entries decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Same(MatchedBy),
    Different,
    /// Neither the ETags nor checksums can decide.
    Unproven,
}

impl From<Option<MatchedBy>> for Verdict {
    fn from(matched: Option<MatchedBy>) -> Verdict {
        matched.map_or(Verdict::Different, Verdict::Same)
    }
}

/// How pairs the ETags and checksums cannot decide are compared (`--compare`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compare {
    /// ETags and checksums only: an undecided pair leaves its key untouched and reported (exit 1).
    #[default]
    Metadata,
    /// Read and hash both sides of an undecided pair (bytes read are in the report).
    Content,
    /// Accept equal sizes for an undecided pair (counted in the summary: proves nothing).
    Size,
}

/// Whether two objects of the same size whose listed ETags differ are the same, from a HEAD of each.
pub fn by_heads(theirs: &ObjectHead, ours: &ObjectHead) -> Verdict {
    if theirs.etag == ours.etag {
        // The listing did not give one side's ETag (an inventory without that column).
        return Verdict::Same(MatchedBy::Etag);
    }
    if theirs.etag_is_md5() && ours.etag_is_md5() {
        // Both ETags are MD5s of the bytes: the bytes differ.
        return Verdict::Different;
    }
    match (&theirs.checksum, &ours.checksum) {
        (Some((a, x)), Some((b, y))) if a == b => (x == y).then_some(MatchedBy::Checksum).into(),
        _ => Verdict::Unproven,
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
    /// Nothing proves whether source entry `position` (0-based) and the destination's entry there are
    /// the same: nothing is written.
    Unproven { position: usize, reason: String },
}

fn unproven(position: usize, source: &Entry, destination: &Entry) -> KeyPlan {
    KeyPlan::Unproven {
        position,
        reason: format!(
            "entry {}: nothing proves the destination's {} is the source's {}: their ETags are not \
             comparable (another part layout, SSE-KMS or SSE-C) and they share no checksum",
            position + 1,
            describe(destination),
            describe(source)
        ),
    }
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

/// Plans a key from its source and destination histories (both oldest first). `same(i, j)` compares
/// source entry `i` with destination entry `j` (see the module doc); `matched` receives how each
/// matched pair was decided.
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
    Fut: std::future::Future<Output = Result<Verdict, E>>,
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
            Verdict::Same(how) => {
                matched(how);
                KeyPlan::InStep
            }
            Verdict::Different => KeyPlan::Append { from: current },
            Verdict::Unproven => unproven(current, &source[current], &destination[last]),
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
            Verdict::Same(how) => pairs.push(how),
            Verdict::Unproven => return Ok(unproven(index, wanted, entry)),
            Verdict::Different => {
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
    Fut: std::future::Future<Output = Result<Verdict, E>>,
{
    let append_from = match on_diverged {
        OnDiverged::Skip => None,
        OnDiverged::Append => {
            let mut next = 0;
            for (index, held) in destination.iter().enumerate() {
                if next >= source.len() {
                    continue;
                }
                match same(next, index).await? {
                    Verdict::Same(_) => next += 1,
                    Verdict::Different => {}
                    // Appending after it could write a second copy of that entry.
                    Verdict::Unproven => return Ok(unproven(next, &source[next], held)),
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
            std::future::ready(Ok::<_, ()>(Verdict::from(found)))
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
    fn unverified_pairs_are_decided_by_etags_then_checksums_and_never_by_size() {
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
            Verdict::Different
        );
        // The same ETag once both are read (one was missing from the listing).
        assert_eq!(
            by_heads(&head("aa", None, None), &head("aa", None, None)),
            Verdict::Same(MatchedBy::Etag)
        );
        // Not comparable (multipart, SSE-KMS): checksums of one algorithm decide.
        let multipart = head("aa-3", None, crc);
        let kms = head("cc", Some("aws:kms"), crc);
        assert_eq!(
            by_heads(&multipart, &kms),
            Verdict::Same(MatchedBy::Checksum)
        );
        let other_bytes = head("dd", Some("aws:kms"), Some(("CRC32", "BBBB")));
        assert_eq!(by_heads(&multipart, &other_bytes), Verdict::Different);
        // Nothing decides: unproven, never "the same size, so the same" (issue 25).
        let sha = head("dd", Some("aws:kms"), Some(("SHA256", "x")));
        assert_eq!(by_heads(&multipart, &sha), Verdict::Unproven);
        assert_eq!(
            by_heads(&head("aa-2", None, None), &head("ee", None, None)),
            Verdict::Unproven
        );
    }

    #[test]
    fn an_unproven_pair_leaves_the_key_unproven_in_every_mode() {
        let source = [object("a", 4, "aa"), object("b", 8, "bb-2")];
        let destination = [object("x", 4, "aa"), object("y", 8, "cc")];
        let same = |i: usize, j: usize| {
            let verdict = match likeness(&source[i], &destination[j]) {
                Likeness::Same => Verdict::Same(MatchedBy::Etag),
                Likeness::Unverified => Verdict::Unproven,
                Likeness::Different => Verdict::Different,
            };
            std::future::ready(Ok::<_, ()>(verdict))
        };
        for (latest, mode) in [
            (false, OnDiverged::Skip),
            (false, OnDiverged::Append),
            (true, OnDiverged::Skip),
        ] {
            let plan = futures::executor::block_on(plan_key(
                &source,
                &destination,
                latest,
                mode,
                same,
                |_| {},
            ))
            .unwrap();
            let KeyPlan::Unproven { position, reason } = plan else {
                panic!("{plan:?}")
            };
            assert_eq!(position, 1);
            assert!(
                reason.contains("entry 2") && reason.contains("bb-2"),
                "{reason}"
            );
        }
        // Diverged at entry 1, and the append search meets the unproven pair: nothing is appended.
        let foreign = [
            object("f", 9, "ff"),
            object("x", 4, "aa"),
            object("y", 8, "cc"),
        ];
        let same = |i: usize, j: usize| {
            let verdict = match likeness(&source[i], &foreign[j]) {
                Likeness::Same => Verdict::Same(MatchedBy::Etag),
                Likeness::Unverified => Verdict::Unproven,
                Likeness::Different => Verdict::Different,
            };
            std::future::ready(Ok::<_, ()>(verdict))
        };
        let plan = futures::executor::block_on(plan_key(
            &source,
            &foreign,
            false,
            OnDiverged::Append,
            same,
            |_| {},
        ))
        .unwrap();
        assert!(matches!(plan, KeyPlan::Unproven { .. }), "{plan:?}");
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
