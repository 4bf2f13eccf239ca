//! A versioned in-memory S3 for unit tests (behind the `testing` feature): buckets with or without
//! versioning, keys with versions and delete markers, multipart uploads, ETags computed as S3 does
//! (MD5 of the content, MD5 of the parts' MD5s with `-N`), and ListObjectVersions paged with prefix,
//! delimiter and markers. Content is symbolic — which bytes of which original write, not the bytes —
//! so a 5 GiB object costs nothing, and a copy can be traced to its original.
//!
//! One `MemoryS3` is one S3 service: its clones share the state, so a destination client's CopyObject
//! reads the source bucket by name, as on S3. Every request is counted by kind.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use md5::Digest;

use super::api::*;

/// Bytes `start..end` of the object written by original write `origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    pub origin: u64,
    pub start: u64,
    pub end: u64,
}

/// An object's content: segments of original writes, adjacent pieces of one write merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Content(Vec<Segment>);

impl Content {
    fn original(origin: u64, size: u64) -> Content {
        Content(vec![Segment {
            origin,
            start: 0,
            end: size,
        }])
    }

    pub fn size(&self) -> u64 {
        self.0.iter().map(|s| s.end - s.start).sum()
    }

    /// Bytes `first..=last`.
    fn range(&self, first: u64, last: u64) -> Content {
        let mut out = Content::default();
        let mut offset = 0;
        for segment in &self.0 {
            let length = segment.end - segment.start;
            let (from, to) = (first.max(offset), (last + 1).min(offset + length));
            if from < to {
                out.push(Segment {
                    origin: segment.origin,
                    start: segment.start + (from - offset),
                    end: segment.start + (to - offset),
                });
            }
            offset += length;
        }
        out
    }

    fn push(&mut self, segment: Segment) {
        match self.0.last_mut() {
            Some(last) if last.origin == segment.origin && last.end == segment.start => {
                last.end = segment.end
            }
            _ => self.0.push(segment),
        }
    }

    /// The MD5 standing in for the MD5 of the bytes.
    fn md5(&self) -> [u8; 16] {
        md5::Md5::digest(format!("{:?}", self.0)).into()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone)]
struct Object {
    content: Content,
    etag: String,
    /// The sizes of the parts it was uploaded in (None: one part).
    parts: Option<Vec<u64>>,
    head: ObjectHead,
    tags: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Stored {
    version_id: String,
    last_modified: String,
    object: Option<Object>,
}

#[derive(Debug, Clone)]
struct Upload {
    key: String,
    head: ObjectHead,
    tags: Vec<(String, String)>,
    parts: BTreeMap<u32, Content>,
}

#[derive(Debug, Default)]
struct Bucket {
    versioning: Option<Versioning>,
    /// Per key, oldest first.
    keys: BTreeMap<String, Vec<Stored>>,
    uploads: BTreeMap<String, Upload>,
}

#[derive(Debug, Default)]
struct State {
    buckets: BTreeMap<String, Bucket>,
    /// Ids of versions, uploads and original writes; also the clock (one second per write).
    next: u64,
}

impl State {
    fn next(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn bucket(&mut self, name: &str) -> S3Result<&mut Bucket> {
        self.buckets
            .get_mut(name)
            .ok_or_else(|| S3Error::NoSuchBucket {
                bucket: name.to_string(),
            })
    }

    /// Adds a version (or a delete marker, `object` None) to `key` as S3 does: a new id on a versioned
    /// bucket, else it replaces the null version. Returns the id a versioned bucket names.
    fn add(&mut self, bucket: &str, key: &str, object: Option<Object>) -> S3Result<WrittenVersion> {
        let tick = self.next();
        let last_modified = format!(
            "2026-01-{:02}T{:02}:{:02}:{:02}.000Z",
            1 + tick / 86_400 % 28,
            tick / 3600 % 24,
            tick / 60 % 60,
            tick % 60
        );
        let target = self.bucket(bucket)?;
        let versioned = target.versioning == Some(Versioning::Enabled);
        let version_id = if versioned {
            format!("v{tick:08}")
        } else {
            "null".to_string()
        };
        let history = target.keys.entry(key.to_string()).or_default();
        if !versioned {
            history.retain(|stored| stored.version_id != "null");
        }
        history.push(Stored {
            version_id: version_id.clone(),
            last_modified,
            object,
        });
        Ok(versioned.then_some(version_id))
    }

    fn version(&mut self, version: &VersionRef) -> S3Result<&Stored> {
        let history = self
            .bucket(&version.bucket)?
            .keys
            .get(&version.key)
            .ok_or_else(|| S3Error::NotFound {
                code: "NoSuchKey".into(),
                message: String::new(),
            })?;
        let found = if version.version_id.is_empty() {
            history.last()
        } else {
            history.iter().find(|s| s.version_id == version.version_id)
        };
        found.ok_or_else(|| S3Error::NotFound {
            code: "NoSuchVersion".into(),
            message: String::new(),
        })
    }

    /// The object of a version; a delete marker answers as S3 does (405 for a named one, 404 current).
    fn object(&mut self, version: &VersionRef) -> S3Result<Object> {
        let named = !version.version_id.is_empty();
        match &self.version(version)?.object {
            Some(object) => Ok(object.clone()),
            None if named => Err(S3Error::Other {
                code: "MethodNotAllowed".into(),
                message: "the specified method is not allowed against a delete marker".into(),
            }),
            None => Err(S3Error::NotFound {
                code: "NoSuchKey".into(),
                message: String::new(),
            }),
        }
    }
}

/// An in-memory S3 service; clones share it.
#[derive(Clone, Default)]
pub struct MemoryS3 {
    state: Arc<Mutex<State>>,
    requests: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

/// One entry of a key's history as the tests compare it: a delete marker, or an object's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    DeleteMarker,
    Object(Content),
}

impl MemoryS3 {
    pub fn new() -> MemoryS3 {
        MemoryS3::default()
    }

    fn count(&self, kind: &'static str) {
        *self
            .requests
            .lock()
            .expect("requests")
            .entry(kind)
            .or_default() += 1;
    }

    /// Requests served, by kind (`CopyObject`, `UploadPartCopy`, ...).
    pub fn requests(&self) -> BTreeMap<&'static str, u64> {
        self.requests.lock().expect("requests").clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("memory s3 state")
    }

    pub fn create_bucket(&self, name: &str, versioning: Versioning) {
        self.state().buckets.insert(
            name.to_string(),
            Bucket {
                versioning: (versioning != Versioning::Never).then_some(versioning),
                ..Bucket::default()
            },
        );
    }

    /// PutBucketVersioning: `Enabled` or `Suspended` (a bucket cannot go back to never versioned).
    pub fn set_versioning(&self, bucket: &str, versioning: Versioning) {
        assert_ne!(
            versioning,
            Versioning::Never,
            "S3 cannot unversion a bucket"
        );
        self.state()
            .buckets
            .get_mut(bucket)
            .expect("bucket exists")
            .versioning = Some(versioning);
    }

    /// PutObject of `size` new bytes (in parts of `parts` sizes when given, as a multipart upload);
    /// returns the version id (`null` on an unversioned bucket).
    pub fn put(&self, bucket: &str, key: &str, size: u64, parts: Option<Vec<u64>>) -> String {
        let mut state = self.state();
        let origin = state.next();
        let content = Content::original(origin, size);
        let etag = match &parts {
            Some(sizes) => {
                let mut offset = 0;
                let mut md5s = Vec::new();
                for size in sizes {
                    md5s.extend(content.range(offset, offset + size - 1).md5());
                    offset += size;
                }
                assert_eq!(offset, size, "part sizes add up to the size");
                format!("\"{}-{}\"", hex(&md5::Md5::digest(&md5s)), sizes.len())
            }
            None => format!("\"{}\"", hex(&content.md5())),
        };
        let object = Object {
            head: ObjectHead {
                size,
                etag: etag.clone(),
                parts_count: parts.as_ref().map(|p| p.len() as u32),
                content_type: Some("application/octet-stream".into()),
                metadata: [("origin".to_string(), origin.to_string())].into(),
                ..ObjectHead::default()
            },
            content,
            etag,
            parts,
            tags: vec![("origin".into(), origin.to_string())],
        };
        state
            .add(bucket, key, Some(object))
            .expect("bucket exists")
            .unwrap_or_else(|| "null".into())
    }

    /// DeleteObject without a version id.
    pub fn delete(&self, bucket: &str, key: &str) {
        let mut state = self.state();
        if state.bucket(bucket).expect("bucket").versioning.is_some() {
            state.add(bucket, key, None).expect("bucket exists");
        } else if let Some(history) = state.bucket(bucket).expect("bucket").keys.get_mut(key) {
            history.clear();
        }
    }

    /// Every key's history, oldest first, as content: what a copy must reproduce.
    pub fn histories(&self, bucket: &str) -> Vec<(String, Vec<Seen>)> {
        let mut state = self.state();
        let bucket = state.bucket(bucket).expect("bucket");
        bucket
            .keys
            .iter()
            .filter(|(_, history)| !history.is_empty())
            .map(|(key, history)| {
                let seen = history
                    .iter()
                    .map(|stored| match &stored.object {
                        Some(object) => Seen::Object(object.content.clone()),
                        None => Seen::DeleteMarker,
                    })
                    .collect();
                (key.clone(), seen)
            })
            .collect()
    }

    /// `(key, ETag)` of every object version in `bucket`, oldest first per key.
    pub fn etags(&self, bucket: &str) -> Vec<(String, String)> {
        let mut state = self.state();
        let bucket = state.bucket(bucket).expect("bucket");
        bucket
            .keys
            .iter()
            .flat_map(|(key, history)| {
                history
                    .iter()
                    .filter_map(|stored| Some((key.clone(), stored.object.as_ref()?.etag.clone())))
            })
            .collect()
    }

    /// The ids of the multipart uploads in progress in `bucket`.
    pub fn uploads(&self, bucket: &str) -> Vec<String> {
        let mut state = self.state();
        state
            .bucket(bucket)
            .expect("bucket")
            .uploads
            .keys()
            .cloned()
            .collect()
    }
}

/// The copy's attributes: CopyObject copies content headers, metadata and tags, and sets the rest from
/// the request.
fn copied_head(source: &ObjectHead, request: &CopyRequest, etag: &str) -> ObjectHead {
    ObjectHead {
        etag: etag.to_string(),
        parts_count: None,
        storage_class: request.storage_class.clone(),
        server_side_encryption: request.server_side_encryption.clone(),
        sse_kms_key_id: request.sse_kms_key_id.clone(),
        bucket_key_enabled: request.bucket_key_enabled.unwrap_or(false),
        website_redirect: request.website_redirect.clone(),
        object_lock: request.object_lock.clone(),
        ..source.clone()
    }
}

impl S3Api for MemoryS3 {
    async fn list_versions(&self, request: ListRequest) -> S3Result<ListPage> {
        self.count(if request.current_only {
            "ListObjectsV2"
        } else {
            "ListObjectVersions"
        });
        let mut state = self.state();
        let bucket = state.bucket(&request.bucket)?;
        let max = request.max_keys.unwrap_or(1000).max(1) as usize;
        let mut page = ListPage::default();
        let mut count = 0;
        let mut last: Option<(String, String)> = None;
        for (key, history) in bucket.keys.range(request.prefix.clone()..) {
            if !key.starts_with(&request.prefix) {
                break;
            }
            if let Some(marker) = &request.key_marker {
                let passed = if request.current_only || request.version_id_marker.is_none() {
                    key <= marker
                } else {
                    key < marker
                };
                if passed {
                    continue;
                }
            }
            let rest = &key[request.prefix.len()..];
            if let Some(delimiter) = request.delimiter.as_deref()
                && let Some(at) = rest.find(delimiter)
            {
                let prefix = format!("{}{}", request.prefix, &rest[..at + delimiter.len()]);
                if page.common_prefixes.last() == Some(&prefix)
                    || request
                        .key_marker
                        .as_ref()
                        .is_some_and(|m| *m >= prefix && m.starts_with(&prefix))
                {
                    continue;
                }
                if count == max {
                    page.next = last;
                    return Ok(page);
                }
                page.common_prefixes.push(prefix.clone());
                last = Some((prefix, String::new()));
                count += 1;
                continue;
            }
            // Newest first; with a version marker inside this key, after it.
            let mut versions: Vec<&Stored> = history.iter().rev().collect();
            if request.current_only {
                versions.truncate(1);
                versions.retain(|stored| stored.object.is_some());
            } else if let (Some(marker), Some(version)) =
                (&request.key_marker, &request.version_id_marker)
                && marker == key
            {
                let at = versions.iter().position(|s| &s.version_id == version);
                versions = versions.split_off(at.map_or(0, |at| at + 1));
            }
            let newest = history.last().map(|s| s.version_id.clone());
            for stored in versions {
                if count == max {
                    page.next = last;
                    return Ok(page);
                }
                page.entries.push(Entry {
                    key: key.clone(),
                    version_id: if request.current_only {
                        "null".into()
                    } else {
                        stored.version_id.clone()
                    },
                    is_latest: Some(&stored.version_id) == newest.as_ref(),
                    last_modified: stored.last_modified.clone(),
                    kind: match &stored.object {
                        Some(object) => EntryKind::Object {
                            size: object.content.size(),
                            etag: object.etag.clone(),
                            storage_class: object.head.storage_class.clone(),
                        },
                        None => EntryKind::DeleteMarker,
                    },
                });
                last = Some((
                    key.clone(),
                    if request.current_only {
                        key.clone()
                    } else {
                        stored.version_id.clone()
                    },
                ));
                count += 1;
            }
        }
        Ok(page)
    }

    async fn head_object(
        &self,
        version: &VersionRef,
        part_number: Option<u32>,
    ) -> S3Result<ObjectHead> {
        self.count("HeadObject");
        let object = self.state().object(version)?;
        let mut head = object.head.clone();
        head.size = object.content.size();
        if let Some(number) = part_number {
            head.part_size = Some(match &object.parts {
                Some(parts) => *parts
                    .get(number as usize - 1)
                    .ok_or_else(|| S3Error::Other {
                        code: "InvalidPartNumber".into(),
                        message: format!("part {number} of {}", parts.len()),
                    })?,
                None => object.content.size(),
            });
        }
        Ok(head)
    }

    async fn get_tags(&self, version: &VersionRef) -> S3Result<Vec<(String, String)>> {
        self.count("GetObjectTagging");
        Ok(self.state().object(version)?.tags)
    }

    async fn copy_object(&self, request: &CopyRequest) -> S3Result<WrittenVersion> {
        self.count("CopyObject");
        let mut state = self.state();
        let source = state.object(&request.source)?;
        if source.content.size() > 5 << 30 {
            return Err(S3Error::Other {
                code: "InvalidRequest".into(),
                message: "the source is larger than 5 GiB".into(),
            });
        }
        let etag = format!("\"{}\"", hex(&source.content.md5()));
        let object = Object {
            head: copied_head(&source.head, request, &etag),
            content: source.content.clone(),
            etag,
            parts: None,
            tags: source.tags.clone(),
        };
        state.add(&request.bucket, &request.key, Some(object))
    }

    async fn create_multipart(&self, request: &CreateMultipartRequest) -> S3Result<String> {
        self.count("CreateMultipartUpload");
        let mut state = self.state();
        let id = format!("upload-{}", state.next());
        state.bucket(&request.bucket)?.uploads.insert(
            id.clone(),
            Upload {
                key: request.key.clone(),
                head: request.head.clone(),
                tags: request.tags.clone(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part_copy(&self, request: &PartCopyRequest) -> S3Result<CompletedPart> {
        self.count("UploadPartCopy");
        let mut state = self.state();
        let source = state.object(&request.source)?;
        if source.etag != request.if_match {
            return Err(S3Error::PreconditionFailed {
                code: "PreconditionFailed".into(),
                message: String::new(),
            });
        }
        let part = source.content.range(request.first_byte, request.last_byte);
        let etag = format!("\"{}\"", hex(&part.md5()));
        let upload = state
            .bucket(&request.bucket)?
            .uploads
            .get_mut(&request.upload_id)
            .filter(|upload| upload.key == request.key)
            .ok_or_else(|| S3Error::NotFound {
                code: "NoSuchUpload".into(),
                message: String::new(),
            })?;
        upload.parts.insert(request.part_number, part);
        Ok(CompletedPart {
            part_number: request.part_number,
            etag,
            checksum: None,
            size: request.last_byte + 1 - request.first_byte,
        })
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> S3Result<WrittenVersion> {
        self.count("CompleteMultipartUpload");
        let mut state = self.state();
        let upload = state
            .bucket(bucket)?
            .uploads
            .get(upload_id)
            .filter(|upload| upload.key == key)
            .cloned()
            .ok_or_else(|| S3Error::NotFound {
                code: "NoSuchUpload".into(),
                message: String::new(),
            })?;
        let mut content = Content::default();
        let mut md5s = Vec::new();
        let mut sizes = Vec::new();
        for part in parts {
            let uploaded = upload
                .parts
                .get(&part.part_number)
                .ok_or_else(|| S3Error::Other {
                    code: "InvalidPart".into(),
                    message: format!("part {} was not uploaded", part.part_number),
                })?;
            if part.etag != format!("\"{}\"", hex(&uploaded.md5())) {
                return Err(S3Error::Other {
                    code: "InvalidPart".into(),
                    message: format!("part {}: wrong ETag", part.part_number),
                });
            }
            md5s.extend(uploaded.md5());
            sizes.push(uploaded.size());
            uploaded.0.iter().for_each(|segment| content.push(*segment));
        }
        let etag = format!("\"{}-{}\"", hex(&md5::Md5::digest(&md5s)), parts.len());
        let object = Object {
            head: ObjectHead {
                etag: etag.clone(),
                parts_count: Some(parts.len() as u32),
                ..upload.head.clone()
            },
            content,
            etag,
            parts: Some(sizes),
            tags: upload.tags.clone(),
        };
        state.bucket(bucket)?.uploads.remove(upload_id);
        state.add(bucket, key, Some(object))
    }

    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<()> {
        self.count("AbortMultipartUpload");
        let mut state = self.state();
        let uploads = &mut state.bucket(bucket)?.uploads;
        match uploads.get(upload_id) {
            Some(upload) if upload.key == key => {
                uploads.remove(upload_id);
                Ok(())
            }
            _ => Err(S3Error::NotFound {
                code: "NoSuchUpload".into(),
                message: String::new(),
            }),
        }
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> S3Result<WrittenVersion> {
        self.count("DeleteObject");
        let mut state = self.state();
        if state.bucket(bucket)?.versioning.is_some() {
            state.add(bucket, key, None)
        } else {
            if let Some(history) = state.bucket(bucket)?.keys.get_mut(key) {
                history.clear();
            }
            Ok(None)
        }
    }

    async fn list_uploads(&self, bucket: &str, key: &str) -> S3Result<Vec<String>> {
        self.count("ListMultipartUploads");
        let mut state = self.state();
        Ok(state
            .bucket(bucket)?
            .uploads
            .iter()
            .filter(|(_, upload)| upload.key == key)
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn head_bucket(&self, bucket: &str) -> S3Result<()> {
        self.count("HeadBucket");
        self.state().bucket(bucket).map(|_| ())
    }

    async fn content_digest(&self, version: &VersionRef) -> S3Result<ContentDigest> {
        use sha2::Digest;
        self.count("GetObject");
        let object = self.state().object(version)?;
        // Equal contents are equal segment lists (adjacent pieces of one write are merged).
        let mut hash = sha2::Sha256::new();
        for segment in &object.content.0 {
            for number in [segment.origin, segment.start, segment.end] {
                hash.update(number.to_le_bytes());
            }
        }
        Ok(ContentDigest {
            size: object.content.size(),
            sha256: hash.finalize().into(),
        })
    }
    async fn download(&self, bucket: &str, key: &str, _: &std::path::Path) -> S3Result<u64> {
        self.count("GetObject");
        let _ = (bucket, key);
        Err(S3Error::Other {
            code: "NotImplemented".into(),
            message: "the in-memory S3 holds no bytes to download".into(),
        })
    }

    async fn bucket_versioning(&self, bucket: &str) -> S3Result<Versioning> {
        self.count("GetBucketVersioning");
        Ok(self
            .state()
            .bucket(bucket)?
            .versioning
            .unwrap_or(Versioning::Never))
    }

    async fn object_lock(&self, bucket: &str) -> S3Result<Option<ObjectLock>> {
        self.count("GetObjectLockConfiguration");
        self.state().bucket(bucket).map(|_| None)
    }

    async fn default_encryption(&self, bucket: &str) -> S3Result<Option<DefaultEncryption>> {
        self.count("GetBucketEncryption");
        self.state().bucket(bucket).map(|_| None)
    }

    async fn serves_website(&self, bucket: &str) -> S3Result<bool> {
        self.count("GetBucketWebsite");
        self.state().bucket(bucket).map(|_| false)
    }
}
