//! What to do with one entry of a key's history: a single CopyObject, a multipart copy, or a delete marker.

use crate::s3::{Entry, EntryKind};

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
/// S3's limits for one part of a multipart upload, and for CopyObject.
pub const MIN_PART: u64 = 5 * MIB;
pub const MAX_PART: u64 = 5 * GIB;
pub const MAX_PARTS: u64 = 10_000;
pub const MAX_SINGLE_COPY: u64 = 5 * GIB;

/// Defaults, from measurement (BENCHMARKS.md, "Multipart threshold"): on the measured server one
/// CopyObject of 1 GiB ran at 268 MiB/s and 64 MiB parts in parallel at 210 MiB/s, so a single copy is
/// used up to S3's 5 GiB limit. Whether parts win when every request carries S3's latency is for the
/// latency-injecting proxy of the throughput benchmarks to show; lower it with --multipart-threshold.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = MAX_SINGLE_COPY;
pub const DEFAULT_PART_SIZE: u64 = 64 * MIB;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Copy,
    Multipart,
    DeleteMarker,
}

#[derive(Debug, Clone, Copy)]
pub struct PlanSettings {
    pub multipart_threshold: u64,
    /// An explicit part size; None keeps the source's layout or picks one.
    pub part_size: Option<u64>,
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings {
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: None,
        }
    }
}

impl PlanSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.multipart_threshold > MAX_SINGLE_COPY {
            return Err(format!(
                "--multipart-threshold {} is above 5GiB, the largest object CopyObject can copy",
                self.multipart_threshold
            ));
        }
        if let Some(size) = self.part_size
            && !(MIN_PART..=MAX_PART).contains(&size)
        {
            return Err(format!(
                "--part-size {size} is outside S3's limits for a part: use 5MiB to 5GiB"
            ));
        }
        Ok(())
    }

    pub fn action(&self, entry: &Entry) -> Action {
        match entry.kind {
            EntryKind::DeleteMarker => Action::DeleteMarker,
            EntryKind::Object { size, .. } if size > self.multipart_threshold => Action::Multipart,
            EntryKind::Object { .. } => Action::Copy,
        }
    }

    /// The part size for an object of `size` bytes: the explicit one, else the source's own layout (which
    /// reproduces its ETag), else the default, raised so that no more than 10,000 parts are needed.
    pub fn part_size(&self, size: u64, source_part_size: Option<u64>) -> Result<u64, String> {
        let minimum = size.div_ceil(MAX_PARTS);
        if let Some(explicit) = self.part_size {
            if explicit < minimum {
                return Err(format!(
                    "--part-size {explicit} would need more than 10,000 parts for {size} bytes: use at least {minimum}"
                ));
            }
            return Ok(explicit);
        }
        if let Some(source) = source_part_size
            && (MIN_PART..=MAX_PART).contains(&source)
            && source >= minimum
        {
            return Ok(source);
        }
        Ok(DEFAULT_PART_SIZE.max(minimum.div_ceil(MIB) * MIB))
    }
}

/// Inclusive byte ranges of the parts.
pub fn part_ranges(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    (0..size.div_ceil(part_size))
        .map(|index| {
            let first = index * part_size;
            (first, (first + part_size).min(size) - 1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(size: u64) -> Entry {
        Entry {
            key: "k".into(),
            version_id: "v".into(),
            is_latest: true,
            last_modified: String::new(),
            kind: EntryKind::Object {
                size,
                etag: String::new(),
                storage_class: None,
            },
        }
    }

    #[test]
    fn chooses_the_action_by_size() {
        let settings = PlanSettings {
            multipart_threshold: 10 * MIB,
            part_size: None,
        };
        assert_eq!(settings.action(&object(0)), Action::Copy);
        assert_eq!(settings.action(&object(10 * MIB)), Action::Copy);
        assert_eq!(settings.action(&object(10 * MIB + 1)), Action::Multipart);
        let mut marker = object(0);
        marker.kind = EntryKind::DeleteMarker;
        assert_eq!(settings.action(&marker), Action::DeleteMarker);
    }

    #[test]
    fn part_size_prefers_explicit_then_source_layout_then_default() {
        let settings = PlanSettings::default();
        assert_eq!(settings.part_size(GIB, Some(8 * MIB)), Ok(8 * MIB));
        assert_eq!(settings.part_size(GIB, None), Ok(DEFAULT_PART_SIZE));
        // A source layout under S3's minimum is not reproducible: fall back.
        assert_eq!(settings.part_size(GIB, Some(MIB)), Ok(DEFAULT_PART_SIZE));
        // 5 TiB needs parts of at least 525 MiB to stay within 10,000.
        assert_eq!(settings.part_size(5 << 40, None), Ok(525 * MIB));
        let explicit = PlanSettings {
            part_size: Some(16 * MIB),
            ..settings
        };
        assert_eq!(explicit.part_size(GIB, Some(8 * MIB)), Ok(16 * MIB));
        assert!(
            explicit
                .part_size(1 << 40, None)
                .unwrap_err()
                .contains("10,000 parts")
        );
    }

    #[test]
    fn validates_limits() {
        let bad_threshold = PlanSettings {
            multipart_threshold: 6 * GIB,
            part_size: None,
        };
        assert!(bad_threshold.validate().unwrap_err().contains("5GiB"));
        let small_part = PlanSettings {
            part_size: Some(MIB),
            ..PlanSettings::default()
        };
        assert!(small_part.validate().unwrap_err().contains("5MiB to 5GiB"));
    }

    #[test]
    fn ranges_cover_the_object_exactly() {
        assert_eq!(part_ranges(10, 4), [(0, 3), (4, 7), (8, 9)]);
        assert_eq!(part_ranges(8, 4), [(0, 3), (4, 7)]);
        let ranges = part_ranges(40 * MIB + 3, 5 * MIB);
        assert_eq!(ranges.len(), 9);
        assert_eq!(ranges.last(), Some(&(40 * MIB, 40 * MIB + 2)));
    }
}
