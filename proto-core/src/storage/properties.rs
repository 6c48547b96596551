//! Properties of the format over random logs: the recovery scan keeps exactly
//! the whole valid batches before a cut or a damaged byte, and index lookups
//! never start past the batch they look for.

use quickcheck::{Arbitrary, Gen, QuickCheck};

use super::batch::{encode_batch, BatchSpec, Record};
use super::index::{self, IndexBuilder, IndexedBatch, OffsetIndexEntry, TimeIndexEntry};
use super::raft_entry;
use super::recovery::scan;

const MAX_BATCH: usize = 1 << 20;

#[derive(Clone, Debug)]
enum GenEntry {
    Data { values: Vec<Vec<u8>>, ts: i64 },
    Raft(Vec<u8>),
}

/// A valid segment: its bytes and where each batch starts.
#[derive(Clone, Debug)]
struct GenLog {
    base_offset: i64,
    entries: Vec<(GenEntry, i32)>,
}

impl Arbitrary for GenEntry {
    fn arbitrary(g: &mut Gen) -> Self {
        let small = |g: &mut Gen| -> Vec<u8> {
            let n = usize::arbitrary(g) % 40;
            (0..n).map(|_| u8::arbitrary(g)).collect()
        };
        if u8::arbitrary(g) % 4 == 0 {
            GenEntry::Raft(small(g))
        } else {
            let n = 1 + usize::arbitrary(g) % 4;
            GenEntry::Data {
                values: (0..n).map(|_| small(g)).collect(),
                ts: i64::from(u16::arbitrary(g)),
            }
        }
    }
}

impl Arbitrary for GenLog {
    fn arbitrary(g: &mut Gen) -> Self {
        let n = 1 + usize::arbitrary(g) % 30;
        let mut epoch = i32::from(u8::arbitrary(g) % 3);
        let entries = (0..n)
            .map(|_| {
                epoch += i32::from(u8::arbitrary(g) % 5 == 0);
                (GenEntry::arbitrary(g), epoch)
            })
            .collect();
        GenLog {
            base_offset: i64::from(u16::arbitrary(g)),
            entries,
        }
    }
}

impl GenLog {
    /// The segment bytes and the byte range of each batch.
    fn build(&self) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
        let mut out = Vec::new();
        let mut ranges = Vec::new();
        let mut next = self.base_offset;
        for (e, epoch) in &self.entries {
            let raw = match e {
                GenEntry::Raft(p) => raft_entry::encode(next, *epoch, p),
                GenEntry::Data { values, ts } => {
                    let records: Vec<Record<'_>> = values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| Record {
                            timestamp_delta: i as i64,
                            key: None,
                            value: Some(v),
                        })
                        .collect();
                    next += values.len() as i64;
                    let spec = BatchSpec {
                        base_offset: next - values.len() as i64,
                        partition_leader_epoch: *epoch,
                        attributes: 0,
                        base_timestamp: *ts,
                        producer_id: -1,
                        producer_epoch: -1,
                        base_sequence: -1,
                    };
                    encode_batch(&spec, &records)
                }
            };
            ranges.push(out.len()..out.len() + raw.len());
            out.extend_from_slice(&raw);
        }
        (out, ranges)
    }
}

fn qc() -> QuickCheck {
    QuickCheck::new().tests(300)
}

#[test]
fn a_valid_log_scans_whole() {
    fn prop(log: GenLog) -> bool {
        let (bytes, ranges) = log.build();
        let s = scan(&bytes, log.base_offset, 0, MAX_BATCH);
        s.stop.is_none()
            && s.valid_len == bytes.len() as u64
            && s.batches.len() == ranges.len()
            && s.batches
                .iter()
                .zip(&ranges)
                .all(|(b, r)| b.position == r.start as u64)
    }
    qc().quickcheck(prop as fn(GenLog) -> bool);
}

#[test]
fn a_cut_keeps_exactly_the_whole_batches_before_it() {
    fn prop(log: GenLog, cut: usize) -> bool {
        let (bytes, ranges) = log.build();
        let cut = cut % (bytes.len() + 1);
        let s = scan(&bytes[..cut], log.base_offset, 0, MAX_BATCH);
        let whole = ranges.iter().filter(|r| r.end <= cut).count();
        let expected_len = ranges.get(whole.wrapping_sub(1)).map_or(0, |r| r.end);
        s.batches.len() == whole
            && s.valid_len == expected_len as u64
            && s.stop.is_some() == (cut != expected_len)
    }
    qc().quickcheck(prop as fn(GenLog, usize) -> bool);
}

#[test]
fn a_damaged_byte_ends_the_log_at_its_batch() {
    fn prop(log: GenLog, at: usize, mask: u8) -> bool {
        let (mut bytes, ranges) = log.build();
        let at = at % bytes.len();
        let k = ranges
            .iter()
            .position(|r| r.contains(&at))
            .expect("in a batch");
        // The leader epoch is outside Kafka's CRC; the scan cannot see damage there.
        if (12..16).contains(&(at - ranges[k].start)) {
            return true;
        }
        bytes[at] ^= mask.max(1);
        let s = scan(&bytes, log.base_offset, 0, MAX_BATCH);
        s.batches.len() == k && s.valid_len == ranges[k].start as u64 && s.stop.is_some()
    }
    qc().quickcheck(prop as fn(GenLog, usize, u8) -> bool);
}

#[test]
fn index_lookups_never_start_past_their_target() {
    fn prop(log: GenLog, interval: u16, ts: u16) -> bool {
        let (bytes, _) = log.build();
        let s = scan(&bytes, log.base_offset, 0, MAX_BATCH);
        let mut builder = IndexBuilder::new(u32::from(interval % 512));
        let (mut offsets, mut times): (Vec<OffsetIndexEntry>, Vec<TimeIndexEntry>) =
            (vec![], vec![]);
        for (i, b) in s.batches.iter().enumerate() {
            let (o, t) = builder.push(&IndexedBatch {
                at: OffsetIndexEntry {
                    relative_offset: (b.header.base_offset - log.base_offset) as u32,
                    relative_raft_index: i as u32,
                    position: b.position as u32,
                },
                len: b.header.total_len() as u32,
                max_timestamp: (!b.is_raft).then_some(b.header.max_timestamp),
            });
            offsets.extend(o);
            times.extend(t);
        }
        let rel = |o: i64| (o - log.base_offset) as u32;
        let by_offset = s.batches.iter().filter(|b| !b.is_raft).all(|b| {
            (b.header.base_offset..b.header.end_offset())
                .all(|o| u64::from(index::floor_by_offset(&offsets, rel(o)).position) <= b.position)
        });
        let by_raft = s.batches.iter().enumerate().all(|(i, b)| {
            u64::from(index::floor_by_raft_index(&offsets, i as u32).position) <= b.position
        });
        let ts = i64::from(ts);
        let first_at_ts = s
            .batches
            .iter()
            .find(|b| !b.is_raft && b.header.max_timestamp >= ts);
        let by_time = first_at_ts.is_none_or(|b| {
            let start = index::floor_by_offset(&offsets, index::time_lower_bound(&times, ts));
            u64::from(start.position) <= b.position
        });
        by_offset && by_raft && by_time
    }
    qc().quickcheck(prop as fn(GenLog, u16, u16) -> bool);
}
