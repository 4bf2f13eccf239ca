//! The journal's records and their framing: one record a line, `CRC32 JSON\n`, so a torn last line (a crash
//! mid-append) is recognised and dropped, while damage anywhere else is reported as corruption.

use serde::{Deserialize, Serialize};

/// What identifies a job: a checkpoint is only valid for the same identity. Tuning options (concurrency,
/// rate limit, part sizes) are left out so a resumed run may change them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobIdentity {
    pub source: String,
    pub destination: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub latest_only: bool,
    pub storage_class: Option<String>,
    pub sse_kms_key_id: Option<String>,
    /// `inventory URI` or `manifest URI` when the entries come from a file instead of a listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// `K/N` when this process copies one shard of the keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Where each side is: its endpoint URL as resolved (`--endpoint-url`, the environment or the
    /// profile; `AWS` for Amazon S3's own) and its region, so the same bucket names on another
    /// endpoint are another job. Bucket names are unique within an endpoint, so these and the
    /// bucket name identify a bucket; a profile name is not recorded (what it points to can change).
    #[serde(default)]
    pub source_endpoint: String,
    #[serde(default)]
    pub destination_endpoint: String,
    /// `--as-of`: the moment the histories are cut at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
}

impl JobIdentity {
    /// The fields that differ from `other`, as `name: ours (now theirs)`.
    pub fn differences(&self, other: &JobIdentity) -> Vec<String> {
        let mut differences = Vec::new();
        let mut compare = |name: &str, ours: String, theirs: String| {
            if ours != theirs {
                differences.push(format!("{name} {ours} (now {theirs})"));
            }
        };
        compare("source", self.source.clone(), other.source.clone());
        compare(
            "destination",
            self.destination.clone(),
            other.destination.clone(),
        );
        compare(
            "--include-prefix",
            format!("{:?}", self.include),
            format!("{:?}", other.include),
        );
        compare(
            "--exclude-prefix",
            format!("{:?}", self.exclude),
            format!("{:?}", other.exclude),
        );
        compare(
            "--latest-only",
            self.latest_only.to_string(),
            other.latest_only.to_string(),
        );
        compare(
            "--storage-class",
            format!("{:?}", self.storage_class),
            format!("{:?}", other.storage_class),
        );
        compare(
            "--sse-kms-key-id",
            format!("{:?}", self.sse_kms_key_id),
            format!("{:?}", other.sse_kms_key_id),
        );
        compare(
            "--shard",
            format!("{:?}", self.shard),
            format!("{:?}", other.shard),
        );
        compare(
            "source endpoint",
            self.source_endpoint.clone(),
            other.source_endpoint.clone(),
        );
        compare(
            "destination endpoint",
            self.destination_endpoint.clone(),
            other.destination_endpoint.clone(),
        );
        compare(
            "--as-of",
            format!("{:?}", self.as_of),
            format!("{:?}", other.as_of),
        );
        compare(
            "input",
            self.input.clone().unwrap_or_else(|| "a listing".into()),
            other.input.clone().unwrap_or_else(|| "a listing".into()),
        );
        differences
    }

    /// A stable 64-bit FNV-1a hash of the identity, naming the default checkpoint file.
    pub fn fingerprint(&self) -> String {
        let text = serde_json::to_string(self).expect("identity serializes");
        format!("{:016x}", crate::digest::fnv1a(text.as_bytes()))
    }
}

/// One journal record. Entries are named by key and position in the key's selected history (oldest = 0)
/// plus the source version id, which resume checks against a fresh listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// The first record of every journal file.
    Job {
        identity: Box<JobIdentity>,
        created_unix: u64,
    },
    /// About to write entry `index` of `key` to the destination; `previous` is the destination version id our
    /// previous write of this key created (None for the key's first write). Durable before the write is sent.
    /// `timeout_ms`: how long one attempt of the write may take before the run gives up on it (the
    /// request that creates the version: CopyObject, CompleteMultipartUpload, DeleteObject) — the time
    /// an abandoned attempt can still land in, which a resume waits out.
    Intent {
        key: String,
        index: u32,
        version_id: String,
        previous: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Entry `index` of `key` was written and created destination version `written`; `last` when it was
    /// the key's last entry (the key is then complete).
    Done {
        key: String,
        index: u32,
        written: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        last: bool,
    },
    /// Every entry of `key` is written.
    KeyDone {
        key: String,
    },
    /// Entry `index` of `key` failed; the key's later entries were not attempted.
    Failed {
        key: String,
        index: u32,
        version_id: String,
        reason: String,
    },
    /// A multipart upload was created for `key` (its destination key) and is not finished yet.
    UploadStarted {
        key: String,
        upload_id: String,
    },
    UploadEnded {
        upload_id: String,
    },
    /// Every key up to and including `key`, in listing order, is finished (written or failed).
    Watermark {
        key: String,
    },
    /// The run listed and replayed every key of the job: the next run is a new pass over everything
    /// (a catch-up that writes only what the destination lacks), never "nothing to do".
    PassComplete {
        finished_unix: u64,
    },
    /// Progress figures for `status`. `finished` when a run wrote it as it ended with no request in
    /// flight (completed, or stopped by Ctrl-C): a resume then has no late write to wait for.
    Stats {
        listed_entries: u64,
        done_entries: u64,
        updated_unix: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        finished: bool,
    },
}

pub fn encode(record: &Record, into: &mut Vec<u8>) {
    let json = serde_json::to_vec(record).expect("record serializes");
    into.extend_from_slice(format!("{:08x} ", crc32fast::hash(&json)).as_bytes());
    into.extend_from_slice(&json);
    into.push(b'\n');
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Record(Box<Record>),
    /// A damaged line; at the end of the file it is a torn append, anywhere else corruption.
    Damaged(&'static str),
}

pub fn decode(line: &[u8]) -> Decoded {
    let Some((crc, json)) = line.split_first_chunk::<9>() else {
        return Decoded::Damaged("line too short");
    };
    let Some(expected) = std::str::from_utf8(&crc[..8])
        .ok()
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
    else {
        return Decoded::Damaged("bad checksum field");
    };
    if crc[8] != b' ' || crc32fast::hash(json) != expected {
        return Decoded::Damaged("checksum mismatch");
    }
    match serde_json::from_slice(json) {
        Ok(record) => Decoded::Record(Box::new(record)),
        Err(_) => Decoded::Damaged("not a record"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let record = Record::Intent {
            key: "a key\nwith newline".into(),
            index: 3,
            version_id: "null".into(),
            previous: Some("v2".into()),
            timeout_ms: Some(31_000),
        };
        let mut bytes = Vec::new();
        encode(&record, &mut bytes);
        assert_eq!(
            bytes.iter().filter(|b| **b == b'\n').count(),
            1,
            "one line, whatever the key"
        );
        let line = &bytes[..bytes.len() - 1];
        assert_eq!(decode(line), Decoded::Record(Box::new(record)));
        assert!(matches!(
            decode(&line[..line.len() - 3]),
            Decoded::Damaged(_)
        ));
        let mut flipped = line.to_vec();
        flipped[20] ^= 1;
        assert!(matches!(decode(&flipped), Decoded::Damaged(_)));
        assert!(matches!(decode(b"garbage"), Decoded::Damaged(_)));
    }

    #[test]
    fn identity_differences_name_the_option() {
        let identity = JobIdentity {
            source: "s3://a/".into(),
            destination: "s3://b/".into(),
            include: vec![],
            exclude: vec![],
            latest_only: false,
            storage_class: None,
            sse_kms_key_id: None,
            input: None,
            shard: None,
            source_endpoint: "AWS us-east-1".into(),
            destination_endpoint: "AWS us-east-1".into(),
            as_of: None,
        };
        let other = JobIdentity {
            destination: "s3://c/".into(),
            latest_only: true,
            destination_endpoint: "http://127.0.0.1:9000 us-east-1".into(),
            ..identity.clone()
        };
        assert_eq!(
            identity.differences(&other),
            [
                "destination s3://b/ (now s3://c/)",
                "--latest-only false (now true)",
                "destination endpoint AWS us-east-1 (now http://127.0.0.1:9000 us-east-1)"
            ]
        );
        assert_ne!(identity.fingerprint(), other.fingerprint());
        assert_eq!(identity.fingerprint(), identity.clone().fingerprint());
    }
}
