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

    /// A multipart source (ETag `…-N`) is copied by parts in its own layout whatever its size, unless
    /// `--part-size` is given: its copy's ETag is then the source's, which proves the copy on every
    /// later comparison (a CopyObject would give it an MD5 ETag no listing can compare).
    pub fn action(&self, entry: &Entry) -> Action {
        match &entry.kind {
            EntryKind::DeleteMarker => Action::DeleteMarker,
            EntryKind::Object { size, .. } if *size > self.multipart_threshold => Action::Multipart,
            EntryKind::Object { size, etag, .. }
                if *size > 0 && self.part_size.is_none() && multipart_parts(etag).is_some() =>
            {
                Action::Multipart
            }
            EntryKind::Object { .. } => Action::Copy,
        }
    }

    /// The part size for an object of `size` bytes whose source layout is not kept (see `action`): the
    /// explicit one, else the default, raised so that no more than 10,000 parts are needed.
    pub fn part_size(&self, size: u64) -> Result<u64, String> {
        let minimum = size.div_ceil(MAX_PARTS);
        if let Some(explicit) = self.part_size {
            if explicit < minimum {
                return Err(format!(
                    "--part-size {explicit} would need more than 10,000 parts for {size} bytes: use at least {minimum}"
                ));
            }
            return Ok(explicit);
        }
        Ok(DEFAULT_PART_SIZE.max(minimum.div_ceil(MIB) * MIB))
    }
}

/// The number of parts of a multipart upload's ETag (`"<32 hex digits>-N"`), None for any other.
pub fn multipart_parts(etag: &str) -> Option<u32> {
    let (digest, parts) = etag.trim_matches('"').rsplit_once('-')?;
    let parts: u32 = parts.parse().ok()?;
    (digest.len() == 32
        && digest.bytes().all(|b| b.is_ascii_hexdigit())
        && (1..=MAX_PARTS as u32).contains(&parts)
        && parts.to_string().len() == etag.trim_matches('"').len() - 33)
        .then_some(parts)
}

/// The sizes of a multipart source's parts from its part count and first part's size, when its parts
/// are all that size but the last (what every uploader does); None when they cannot be.
pub fn uniform_layout(size: u64, parts: u32, first: u64) -> Option<Vec<u64>> {
    let parts = u64::from(parts);
    let full = first.checked_mul(parts.checked_sub(1)?)?;
    let last = size.checked_sub(full)?;
    (first > 0 && last > 0 && last <= first).then(|| {
        let mut sizes = vec![first; parts as usize - 1];
        sizes.push(last);
        sizes
    })
}

/// Whether `sizes` can be a multipart upload of `size` bytes: they add up, and every part but the
/// last is within S3's limits.
pub fn valid_layout(size: u64, sizes: &[u64]) -> bool {
    let Some((_, before_last)) = sizes.split_last() else {
        return false;
    };
    sizes.len() as u64 <= MAX_PARTS
        && sizes.iter().sum::<u64>() == size
        && sizes.iter().all(|&part| part > 0 && part <= MAX_PART)
        && before_last.iter().all(|&part| part >= MIN_PART)
}

/// Inclusive byte ranges of parts of these sizes.
pub fn layout_ranges(sizes: &[u64]) -> Vec<(u64, u64)> {
    let mut first = 0;
    sizes
        .iter()
        .map(|&size| {
            let range = (first, first + size - 1);
            first += size;
            range
        })
        .collect()
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
        // A multipart source keeps its layout at any size, unless --part-size says otherwise.
        let mut multipart = object(6 * MIB);
        multipart.kind = EntryKind::Object {
            size: 6 * MIB,
            etag: "\"0123456789abcdef0123456789abcdef-2\"".into(),
            storage_class: None,
        };
        assert_eq!(settings.action(&multipart), Action::Multipart);
        let explicit = PlanSettings {
            part_size: Some(8 * MIB),
            ..settings
        };
        assert_eq!(explicit.action(&multipart), Action::Copy);
    }

    #[test]
    fn reads_multipart_etags_and_layouts() {
        let hex = "0123456789abcdef0123456789ABCDEF";
        assert_eq!(multipart_parts(&format!("\"{hex}-2\"")), Some(2));
        assert_eq!(multipart_parts(&format!("{hex}-10000")), Some(10_000));
        for other in [
            hex.to_string(),
            format!("{hex}-0"),
            format!("{hex}-10001"),
            format!("{hex}-+2"),
            format!("{hex}-02"),
            format!("{}-2", &hex[1..]),
            "a-b-2".into(),
            String::new(),
        ] {
            assert_eq!(multipart_parts(&other), None, "{other}");
        }
        assert_eq!(
            uniform_layout(12 * MIB, 2, 8 * MIB),
            Some(vec![8 * MIB, 4 * MIB])
        );
        assert_eq!(uniform_layout(16 * MIB, 2, 8 * MIB), Some(vec![8 * MIB; 2]));
        // Parts of other sizes: the first part's size cannot tell the layout.
        assert_eq!(uniform_layout(20 * MIB, 2, 8 * MIB), None);
        assert_eq!(uniform_layout(7 * MIB, 2, 8 * MIB), None);
        assert_eq!(uniform_layout(3, 1, 3), Some(vec![3]));
        assert_eq!(uniform_layout(3, 0, 3), None);
        assert!(valid_layout(12 * MIB, &[8 * MIB, 4 * MIB]));
        assert!(valid_layout(3, &[3]));
        assert!(!valid_layout(12 * MIB, &[4 * MIB, 8 * MIB]));
        assert!(!valid_layout(13 * MIB, &[8 * MIB, 4 * MIB]));
        assert!(!valid_layout(0, &[]));
        assert_eq!(
            layout_ranges(&[8 * MIB, 4 * MIB]),
            vec![(0, 8 * MIB - 1), (8 * MIB, 12 * MIB - 1)]
        );
    }

    #[test]
    fn part_size_prefers_explicit_then_default() {
        let settings = PlanSettings::default();
        assert_eq!(settings.part_size(GIB), Ok(DEFAULT_PART_SIZE));
        // 5 TiB needs parts of at least 525 MiB to stay within 10,000.
        assert_eq!(settings.part_size(5 << 40), Ok(525 * MIB));
        let explicit = PlanSettings {
            part_size: Some(16 * MIB),
            ..settings
        };
        assert_eq!(explicit.part_size(GIB), Ok(16 * MIB));
        assert!(
            explicit
                .part_size(1 << 40)
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
