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
        /// How long one attempt of the write may take (see `Record::Intent`).
        timeout_ms: Option<u64>,
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
    /// The last record is a run's final `Stats`: no request of that run can still be in flight.
    pub ended_cleanly: bool,
    /// A run went over every key (`PassComplete`): the next run starts a new pass.
    pub pass_complete: bool,
    /// The `(updated_unix, done_entries)` of the `Stats` record before the last one, for the rate a
    /// running job makes (not kept by compaction).
    pub previous_stats: Option<(u64, u64)>,
}

/// How long after an attempt timed out its write can still land, at least (issue 25: a copy held 15 s
/// on its way landed after the run had checked, found nothing and sent it again). A tenth of the
/// attempt's timeout when that is longer.
pub const LATE_WRITE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How often a run touches its journal, so that its last change says when the run died (within this).
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long after a run's journal last changed a write it left in flight can still land: the longest
/// attempt timeout its pending intents record, plus max(5 s, a tenth of it) for a request queued on
/// the way, plus the heartbeat (the run may have died that long after its last touch);
/// `--resume-wait` is the floor (and all there is for a journal written before intents recorded their
/// timeouts).
pub fn in_flight_bound(state: &State, resume_wait: f64) -> std::time::Duration {
    let floor = std::time::Duration::from_secs_f64(resume_wait);
    state.longest_pending_timeout().map_or(floor, |timeout| {
        (timeout + (timeout / 10).max(LATE_WRITE_GRACE) + HEARTBEAT).max(floor)
    })
}

impl State {
    /// The longest any write left pending may take (see `Record::Intent`): after a run died, an
    /// attempt it had sent can land until that long after it died.
    pub fn longest_pending_timeout(&self) -> Option<std::time::Duration> {
        self.keys
            .values()
            .filter_map(|state| match state {
                KeyState::Pending { timeout_ms, .. } => *timeout_ms,
                _ => None,
            })
            .max()
            .map(std::time::Duration::from_millis)
    }

    pub fn apply(&mut self, record: &Record) {
        if !matches!(record, Record::Stats { .. }) {
            self.ended_cleanly = false;
        }
        match record {
            Record::Job {
                identity,
                created_unix,
            } => {
                self.identity = Some(JobIdentity::clone(identity));
                self.updated_unix = self.updated_unix.max(*created_unix);
            }
            Record::Intent {
                key,
                index,
                version_id,
                previous,
                timeout_ms,
            } => {
                self.failed.remove(key);
                self.keys.insert(
                    key.clone(),
                    KeyState::Pending {
                        index: *index,
                        version_id: version_id.clone(),
                        previous: previous.clone(),
                        timeout_ms: *timeout_ms,
                    },
                );
            }
            Record::Done {
                key,
                index,
                written,
                last,
            } => {
                self.done_entries += 1;
                let state = if *last {
                    KeyState::Complete
                } else {
                    KeyState::Written {
                        index: *index,
                        written: written.clone(),
                    }
                };
                if !(*last && self.below_watermark(key)) {
                    self.keys.insert(key.clone(), state);
                }
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
            Record::PassComplete { .. } => self.pass_complete = true,
            Record::Stats {
                listed_entries,
                done_entries,
                updated_unix,
                finished,
            } => {
                self.previous_stats = Some((self.updated_unix, self.done_entries));
                self.ended_cleanly = *finished;
                self.listed_entries = *listed_entries;
                self.done_entries = *done_entries;
                self.updated_unix = *updated_unix;
            }
        }
    }

    pub fn below_watermark(&self, key: &str) -> bool {
        self.watermark.as_deref().is_some_and(|w| key <= w)
    }

    /// How many records `each_record` produces.
    pub fn record_count(&self) -> usize {
        self.keys.len() + self.failed.len() + self.uploads.len() + 4
    }

    /// A minimal journal that rebuilds this state.
    pub fn records(&self) -> Vec<Record> {
        let mut records = Vec::with_capacity(self.record_count());
        self.each_record(|record| records.push(record));
        records
    }

    /// The records of a minimal journal that rebuilds this state, one at a time (it can be large).
    pub fn each_record(&self, mut emit: impl FnMut(Record)) {
        if let Some(identity) = &self.identity {
            emit(Record::Job {
                identity: Box::new(identity.clone()),
                created_unix: self.updated_unix,
            });
        }
        if let Some(key) = &self.watermark {
            emit(Record::Watermark { key: key.clone() });
        }
        let mut keys: Vec<_> = self.keys.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (key, state) in keys {
            emit(match state {
                KeyState::Pending {
                    index,
                    version_id,
                    previous,
                    timeout_ms,
                } => Record::Intent {
                    key: key.clone(),
                    index: *index,
                    version_id: version_id.clone(),
                    previous: previous.clone(),
                    timeout_ms: *timeout_ms,
                },
                KeyState::Written { index, written } => Record::Done {
                    key: key.clone(),
                    index: *index,
                    written: written.clone(),
                    last: false,
                },
                KeyState::Complete => Record::KeyDone { key: key.clone() },
            });
        }
        for (key, failure) in &self.failed {
            emit(Record::Failed {
                key: key.clone(),
                index: failure.index,
                version_id: failure.version_id.clone(),
                reason: failure.reason.clone(),
            });
        }
        let mut uploads: Vec<_> = self.uploads.iter().collect();
        uploads.sort();
        for (upload_id, key) in uploads {
            emit(Record::UploadStarted {
                key: key.clone(),
                upload_id: upload_id.clone(),
            });
        }
        if self.pass_complete {
            emit(Record::PassComplete {
                finished_unix: self.updated_unix,
            });
        }
        // Last, so that it overrides the counts the Done records above add.
        emit(Record::Stats {
            listed_entries: self.listed_entries,
            done_entries: self.done_entries,
            updated_unix: self.updated_unix,
            finished: self.ended_cleanly,
        });
    }
}

#[cfg(test)]
mod tests {
    //! The journal against a reference model: random runs of the executor's recording protocol, cut
    //! at any byte (a crash mid-append), replayed; what the replay proves must be what the model says
    //! the complete records prove, and compaction must not change it.

    use proptest::prelude::*;

    use super::*;
    use crate::checkpoint::record::{Decoded, decode, encode};

    /// What resume does with a key, derived independently from the records that fully reached the disk.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Decision {
        Skip,
        StartAt(u32),
        Reconcile(u32),
        Retry(u32),
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// The next key starts; its entries are written one by one.
        Entry {
            key: usize,
            fail: bool,
            lose_done: bool,
            last: bool,
        },
        Finish {
            key: usize,
        },
        Watermark {
            key: usize,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0..6usize, prop::bool::weighted(0.1), prop::bool::weighted(0.2), prop::bool::weighted(0.15))
                .prop_map(|(key, fail, lose_done, last)| Step::Entry { key, fail, lose_done, last }),
            2 => (0..6usize).prop_map(|key| Step::Finish { key }),
            1 => (0..6usize).prop_map(|key| Step::Watermark { key }),
        ]
    }

    fn name(key: usize) -> String {
        format!("key-{key}")
    }

    /// Turns steps into the records the executor would append, following its rules: entries of a key
    /// in order, a failed key stops, the watermark only passes finished keys.
    fn records(steps: &[Step]) -> Vec<Record> {
        let mut next = [0u32; 6];
        let mut stopped = [false; 6];
        let mut finished = [false; 6];
        let mut out = vec![Record::Job {
            identity: Box::new(JobIdentity {
                source: "s3://a/".into(),
                destination: "s3://b/".into(),
                include: vec![],
                exclude: vec![],
                latest_only: false,
                storage_class: None,
                sse_kms_key_id: None,
                input: None,
                shard: None,
                source_endpoint: String::new(),
                destination_endpoint: String::new(),
                as_of: None,
            }),
            created_unix: 1,
        }];
        let mut watermark = None;
        for step in steps {
            match *step {
                Step::Entry {
                    key,
                    fail,
                    lose_done,
                    last,
                } if !stopped[key] && !finished[key] => {
                    let index = next[key];
                    out.push(Record::Intent {
                        key: name(key),
                        index,
                        version_id: format!("v{index}"),
                        previous: index.checked_sub(1).map(|i| format!("d{i}")),
                        timeout_ms: Some(u64::from(index) * 1000),
                    });
                    if fail {
                        out.push(Record::Failed {
                            key: name(key),
                            index,
                            version_id: format!("v{index}"),
                            reason: "boom".into(),
                        });
                        stopped[key] = true;
                    } else if !lose_done {
                        out.push(Record::Done {
                            key: name(key),
                            index,
                            written: Some(format!("d{index}")),
                            last,
                        });
                        next[key] += 1;
                        finished[key] = last;
                    } else {
                        // The write happened but its Done never reached the disk: the next intent (if any)
                        // still proves it, as the executor only starts entry i+1 after entry i.
                        next[key] += 1;
                    }
                }
                Step::Finish { key } if !stopped[key] && !finished[key] => {
                    out.push(Record::KeyDone { key: name(key) });
                    finished[key] = true;
                }
                Step::Watermark { key } => {
                    // Keys are dispatched in name order; the watermark may pass only finished or failed keys.
                    let up_to = (0..=key).take_while(|k| finished[*k] || stopped[*k]).last();
                    if let Some(up_to) = up_to
                        && watermark.is_none_or(|w| up_to > w)
                    {
                        watermark = Some(up_to);
                        out.push(Record::Watermark { key: name(up_to) });
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The reference model: what each key's resume decision is after `records`.
    fn model(records: &[Record]) -> Vec<Decision> {
        let mut decisions = vec![Decision::StartAt(0); 6];
        let mut watermark: Option<String> = None;
        for record in records {
            let slot = |key: &str| key.trim_start_matches("key-").parse::<usize>().unwrap();
            match record {
                Record::Intent { key, index, .. } => {
                    decisions[slot(key)] = Decision::Reconcile(*index)
                }
                Record::Done {
                    key, last: true, ..
                } => decisions[slot(key)] = Decision::Skip,
                Record::Done { key, index, .. } => {
                    decisions[slot(key)] = Decision::StartAt(index + 1)
                }
                Record::KeyDone { key } => decisions[slot(key)] = Decision::Skip,
                Record::Failed { key, index, .. } => decisions[slot(key)] = Decision::Retry(*index),
                Record::Watermark { key } => watermark = Some(key.clone()),
                _ => {}
            }
        }
        for (key, decision) in decisions.iter_mut().enumerate() {
            let below = watermark
                .as_deref()
                .is_some_and(|w| name(key).as_str() <= w);
            if below && !matches!(decision, Decision::Retry(_)) {
                *decision = Decision::Skip;
            }
        }
        decisions
    }

    fn decide(state: &State) -> Vec<Decision> {
        (0..6)
            .map(|key| {
                let key = name(key);
                if let Some(failure) = state.failed.get(&key) {
                    return Decision::Retry(failure.index);
                }
                if state.below_watermark(&key) {
                    return Decision::Skip;
                }
                match state.keys.get(&key) {
                    None => Decision::StartAt(0),
                    Some(KeyState::Complete) => Decision::Skip,
                    Some(KeyState::Written { index, .. }) => Decision::StartAt(index + 1),
                    Some(KeyState::Pending { index, .. }) => Decision::Reconcile(*index),
                }
            })
            .collect()
    }

    fn replay_bytes(bytes: &[u8]) -> Result<State, usize> {
        let mut state = State::default();
        let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        for (number, line) in lines.iter().enumerate() {
            match decode(line) {
                Decoded::Record(record) => state.apply(&record),
                // Only the last (unterminated) piece may be damaged: a torn append.
                Decoded::Damaged(_) if number + 1 == lines.len() => {}
                Decoded::Damaged(_) => return Err(number),
            }
        }
        Ok(state)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn a_crash_at_any_byte_recovers_what_the_complete_records_prove(
            steps in prop::collection::vec(step(), 0..60),
            cut in 0.0f64..=1.0,
        ) {
            let records = records(&steps);
            let mut bytes = Vec::new();
            let mut ends = Vec::new();
            for record in &records {
                encode(record, &mut bytes);
                ends.push(bytes.len());
            }
            let cut = (bytes.len() as f64 * cut) as usize;
            // A record is on disk once its bytes are, with or without its newline (its CRC covers it).
            let durable = ends.iter().filter(|end| **end - 1 <= cut).count();
            let state = replay_bytes(&bytes[..cut]).expect("a torn tail is not corruption");
            prop_assert_eq!(decide(&state), model(&records[..durable]));

            // Compaction writes a smaller journal that proves the same.
            let mut compacted = Vec::new();
            for record in state.records() {
                encode(&record, &mut compacted);
            }
            let again = replay_bytes(&compacted).unwrap();
            prop_assert_eq!(decide(&again), decide(&state));
            prop_assert_eq!(again.done_entries, state.done_entries);
            prop_assert!(state.records().len() <= durable + 2);
        }

        #[test]
        fn damage_before_the_last_line_is_corruption(
            steps in prop::collection::vec(step(), 5..40),
            at in 0.0f64..1.0,
        ) {
            let records = records(&steps);
            prop_assume!(records.len() >= 3);
            let mut bytes = Vec::new();
            for record in &records {
                encode(record, &mut bytes);
            }
            let damaged = ((records.len() - 2) as f64 * at) as usize;
            let start = bytes.split(|b| *b == b'\n').take(damaged).map(|l| l.len() + 1).sum::<usize>();
            bytes[start + 12] ^= 0x20;
            prop_assert_eq!(replay_bytes(&bytes).err(), Some(damaged));
        }
    }
}
