//! What a journal proves, rebuilt by applying its records in order. The writer keeps the same state live
//! so that compaction can write it out as a minimal journal.

use std::collections::{BTreeMap, HashMap};

use super::record::{JobIdentity, Record};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Entry `index` may or may not have been written: reconcile with the destination before going on.
    Pending {
        index: u32,
        version_id: String,
        previous: Option<String>,
    },
    /// Entries up to and including `index` are written; the last created destination version `written`.
    Written { index: u32, written: Option<String> },
    /// Every entry of the key is written.
    Complete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub index: u32,
    pub version_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub identity: Option<JobIdentity>,
    /// Every key up to and including this one is finished.
    pub watermark: Option<String>,
    /// Keys above the watermark with progress recorded.
    pub keys: HashMap<String, KeyState>,
    pub failed: BTreeMap<String, FailedEntry>,
    /// Multipart uploads not known to be finished: upload id -> destination key.
    pub uploads: HashMap<String, String>,
    pub done_entries: u64,
    pub listed_entries: u64,
    pub updated_unix: u64,
}

impl State {
    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::Job {
                identity,
                created_unix,
            } => {
                self.identity = Some(identity.clone());
                self.updated_unix = self.updated_unix.max(*created_unix);
            }
            Record::Intent {
                key,
                index,
                version_id,
                previous,
            } => {
                self.failed.remove(key);
                self.keys.insert(
                    key.clone(),
                    KeyState::Pending {
                        index: *index,
                        version_id: version_id.clone(),
                        previous: previous.clone(),
                    },
                );
            }
            Record::Done {
                key,
                index,
                written,
            } => {
                self.done_entries += 1;
                self.keys.insert(
                    key.clone(),
                    KeyState::Written {
                        index: *index,
                        written: written.clone(),
                    },
                );
            }
            Record::KeyDone { key } => {
                if !self.below_watermark(key) {
                    self.keys.insert(key.clone(), KeyState::Complete);
                }
            }
            Record::Failed {
                key,
                index,
                version_id,
                reason,
            } => {
                self.keys.remove(key);
                self.failed.insert(
                    key.clone(),
                    FailedEntry {
                        index: *index,
                        version_id: version_id.clone(),
                        reason: reason.clone(),
                    },
                );
            }
            Record::UploadStarted { key, upload_id } => {
                self.uploads.insert(upload_id.clone(), key.clone());
            }
            Record::UploadEnded { upload_id } => {
                self.uploads.remove(upload_id);
            }
            Record::Watermark { key } => {
                // Everything at or below it is finished: its per-key records are no longer needed.
                self.keys.retain(|k, _| k > key);
                self.watermark = Some(key.clone());
            }
            Record::Stats {
                listed_entries,
                done_entries,
                updated_unix,
            } => {
                self.listed_entries = *listed_entries;
                self.done_entries = *done_entries;
                self.updated_unix = *updated_unix;
            }
        }
    }

    pub fn below_watermark(&self, key: &str) -> bool {
        self.watermark.as_deref().is_some_and(|w| key <= w)
    }

    /// A minimal journal that rebuilds this state.
    pub fn records(&self) -> Vec<Record> {
        let mut records = Vec::with_capacity(self.keys.len() + self.failed.len() + 4);
        if let Some(identity) = &self.identity {
            records.push(Record::Job {
                identity: identity.clone(),
                created_unix: self.updated_unix,
            });
        }
        if let Some(key) = &self.watermark {
            records.push(Record::Watermark { key: key.clone() });
        }
        let mut keys: Vec<_> = self.keys.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (key, state) in keys {
            records.push(match state {
                KeyState::Pending {
                    index,
                    version_id,
                    previous,
                } => Record::Intent {
                    key: key.clone(),
                    index: *index,
                    version_id: version_id.clone(),
                    previous: previous.clone(),
                },
                KeyState::Written { index, written } => Record::Done {
                    key: key.clone(),
                    index: *index,
                    written: written.clone(),
                },
                KeyState::Complete => Record::KeyDone { key: key.clone() },
            });
        }
        for (key, failure) in &self.failed {
            records.push(Record::Failed {
                key: key.clone(),
                index: failure.index,
                version_id: failure.version_id.clone(),
                reason: failure.reason.clone(),
            });
        }
        let mut uploads: Vec<_> = self.uploads.iter().collect();
        uploads.sort();
        for (upload_id, key) in uploads {
            records.push(Record::UploadStarted {
                key: key.clone(),
                upload_id: upload_id.clone(),
            });
        }
        // Last, so that it overrides the counts the Done records above add.
        records.push(Record::Stats {
            listed_entries: self.listed_entries,
            done_entries: self.done_entries,
            updated_unix: self.updated_unix,
        });
        records
    }
}
