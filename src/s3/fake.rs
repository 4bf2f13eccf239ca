//! An in-memory S3 for unit tests: ListObjectVersions over a fixed set of entries (prefix, delimiter,
//! markers and page size as S3 applies them), every request recorded; any other call is a bug.

use std::sync::Mutex;

use super::api::*;

#[derive(Default)]
pub struct FakeS3 {
    /// The bucket's entries in listing order (keys ascending, newest version first); None: no call
    /// is expected at all.
    pub entries: Option<Vec<Entry>>,
    pub requests: Mutex<Vec<ListRequest>>,
}

impl FakeS3 {
    pub fn listing(entries: Vec<Entry>) -> FakeS3 {
        FakeS3 {
            entries: Some(entries),
            requests: Mutex::default(),
        }
    }
}

impl S3Api for FakeS3 {
    async fn list_versions(&self, request: ListRequest) -> S3Result<ListPage> {
        let entries = self.entries.as_ref().expect("no S3 call was expected");
        self.requests.lock().unwrap().push(request.clone());
        let max = request.max_keys.unwrap_or(1000) as usize;
        let mut page = ListPage::default();
        let after = |entry: &Entry| match (&request.key_marker, &request.version_id_marker) {
            (None, _) => true,
            (Some(marker), None) => entry.key > *marker,
            (Some(marker), Some(_)) => entry.key > *marker, // versions of one key never split a page here
        };
        let mut count = 0;
        for entry in entries
            .iter()
            .filter(|e| e.key.starts_with(&request.prefix) && after(e))
        {
            let rest = &entry.key[request.prefix.len()..];
            let rolled = request.delimiter.as_deref().and_then(|d| {
                rest.find(d)
                    .map(|at| format!("{}{}", request.prefix, &rest[..=at]))
            });
            if count == max {
                let last = page
                    .entries
                    .last()
                    .map(|e| (e.key.clone(), e.version_id.clone()))
                    .or_else(|| {
                        page.common_prefixes
                            .last()
                            .map(|p| (p.clone(), String::new()))
                    });
                page.next = last;
                break;
            }
            match rolled {
                Some(prefix) if page.common_prefixes.last() == Some(&prefix) => {}
                Some(prefix) => {
                    page.common_prefixes.push(prefix);
                    count += 1;
                }
                None => {
                    page.entries.push(entry.clone());
                    count += 1;
                }
            }
        }
        Ok(page)
    }
    async fn copy_object(&self, _: &CopyRequest) -> S3Result<WrittenVersion> {
        unreachable!()
    }
    async fn head_object(&self, _: &VersionRef, _: Option<u32>) -> S3Result<ObjectHead> {
        unreachable!()
    }
    async fn get_tags(&self, _: &VersionRef) -> S3Result<Vec<(String, String)>> {
        unreachable!()
    }
    async fn create_multipart(&self, _: &CreateMultipartRequest) -> S3Result<String> {
        unreachable!()
    }
    async fn upload_part_copy(&self, _: &PartCopyRequest) -> S3Result<CompletedPart> {
        unreachable!()
    }
    async fn complete_multipart(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &[CompletedPart],
    ) -> S3Result<WrittenVersion> {
        unreachable!()
    }
    async fn abort_multipart(&self, _: &str, _: &str, _: &str) -> S3Result<()> {
        unreachable!()
    }
    async fn delete_object(&self, _: &str, _: &str) -> S3Result<WrittenVersion> {
        unreachable!()
    }
    async fn list_uploads(&self, _: &str, _: &str) -> S3Result<Vec<String>> {
        unreachable!()
    }
    async fn head_bucket(&self, _: &str) -> S3Result<()> {
        unreachable!()
    }
    async fn content_digest(&self, _: &VersionRef) -> S3Result<ContentDigest> {
        unreachable!()
    }
    async fn download(&self, _: &str, _: &str, _: &std::path::Path) -> S3Result<u64> {
        unreachable!()
    }
    async fn bucket_versioning(&self, _: &str) -> S3Result<Versioning> {
        unreachable!()
    }
    async fn object_lock(&self, _: &str) -> S3Result<Option<ObjectLock>> {
        unreachable!()
    }
    async fn default_encryption(&self, _: &str) -> S3Result<Option<DefaultEncryption>> {
        unreachable!()
    }
    async fn serves_website(&self, _: &str) -> S3Result<bool> {
        unreachable!()
    }
}
