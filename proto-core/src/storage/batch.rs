//! Kafka record batches (magic v2): parse and validate a header, check the
//! CRC, split a produce request's `records` into batches, rewrite the two
//! header fields the broker owns, and encode a batch.
//!
//! Layout (big-endian): baseOffset i64, batchLength i32 (bytes after this
//! field), partitionLeaderEpoch i32, magic i8, crc u32 (CRC-32C over
//! attributes..end), attributes i16, lastOffsetDelta i32, baseTimestamp i64,
//! maxTimestamp i64, producerId i64, producerEpoch i16, baseSequence i32,
//! recordCount i32, records. baseOffset and partitionLeaderEpoch sit before the
//! CRC, so the broker can set them without re-checksumming.

use std::ops::Range;

/// Bytes of a v2 batch header, records excluded.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` starts counting: baseOffset and batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// The only message format Chronik stores.
pub const MAGIC_V2: i8 = 2;
/// Attribute bit of a transactional batch.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit of a control batch (transaction markers; Chronik's Raft entries).
pub const ATTR_CONTROL: i16 = 0x20;
/// Attribute bits holding the compression codec.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;

const EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

/// Why bytes are not a valid v2 record batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than the header or the declared length needs.
    #[error("record batch needs {needed} bytes, only {available} present")]
    Truncated {
        /// Bytes the batch needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// `batchLength` is smaller than a header.
    #[error("record batch length {0} is invalid")]
    BadLength(i32),
    /// A message format other than v2 (v0/v1 keep magic at the same position).
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// The stored CRC does not match the bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// `recordCount` or `lastOffsetDelta` cannot describe a batch.
    #[error("record batch counts are invalid: {record_count} records, last offset delta {last_offset_delta}")]
    BadCounts {
        /// The header's record count.
        record_count: i32,
        /// The header's last offset delta.
        last_offset_delta: i32,
    },
    /// A record inside the batch does not decode.
    #[error("malformed record inside the batch")]
    BadRecord,
}

/// A parsed v2 batch header; what storage and Produce need without touching records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Kafka's leader epoch; Chronik stores the Raft term here.
    pub partition_leader_epoch: i32,
    /// Message format version (always 2 once parsed).
    pub magic: i8,
    /// CRC-32C over attributes..end.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id (-1 when none).
    pub producer_id: i64,
    /// Idempotent producer epoch.
    pub producer_epoch: i16,
    /// Sequence of the first record.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the header at the start of `buf` (which may hold more bytes, or
    /// only the header): magic must be 2 and `batchLength` at least a header.
    /// The CRC is checked separately by [`BatchHeader::verify_crc`].
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() <= MAGIC_AT {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC_AT] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let batch_length = be_i32(buf, 8);
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadLength(batch_length));
        }
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let h = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length,
            partition_leader_epoch: be_i32(buf, EPOCH_AT),
            magic,
            crc: be_i32(buf, CRC_AT) as u32,
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        };
        if h.record_count < 0 || h.last_offset_delta < -1 {
            return Err(BatchError::BadCounts {
                record_count: h.record_count,
                last_offset_delta: h.last_offset_delta,
            });
        }
        Ok(h)
    }

    /// Bytes of the whole batch, header included.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// The offset after the batch's last record: where the next batch starts.
    pub fn end_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta) + 1
    }

    /// Whether this is a control batch (never produced by clients).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Checks the CRC-32C of `raw`, the whole batch this header was parsed from.
    pub fn verify_crc(&self, raw: &[u8]) -> Result<(), BatchError> {
        let len = self.total_len();
        if raw.len() < len {
            return Err(BatchError::Truncated {
                needed: len,
                available: raw.len(),
            });
        }
        let computed = crc32c::crc32c(&raw[ATTRIBUTES_AT..len]);
        if computed != self.crc {
            return Err(BatchError::CrcMismatch {
                stored: self.crc,
                computed,
            });
        }
        Ok(())
    }
}

/// Parses and fully validates one batch that is exactly `raw`: header, length
/// and CRC. What storage requires of every batch it accepts.
pub fn validate(raw: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(raw)?;
    if raw.len() != h.total_len() {
        return Err(BatchError::Truncated {
            needed: h.total_len(),
            available: raw.len(),
        });
    }
    h.verify_crc(raw)?;
    Ok(h)
}

/// Splits a produce request's `records` into the byte ranges of its batches.
/// Each range holds one whole batch by its declared length; a trailing partial
/// batch or an unsupported magic is an error (CRCs are checked per batch later).
pub fn split_batches(records: &[u8]) -> Result<Vec<Range<usize>>, BatchError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let h = BatchHeader::parse(&records[at..])?;
        let end = at + h.total_len();
        if end > records.len() {
            return Err(BatchError::Truncated {
                needed: h.total_len(),
                available: records.len() - at,
            });
        }
        out.push(at..end);
        at = end;
    }
    Ok(out)
}

/// Sets `baseOffset` of a parsed batch (outside the CRC, so it stays valid).
///
/// # Panics
/// If `batch` is shorter than a header: call it on a batch that parsed.
pub fn set_base_offset(batch: &mut [u8], offset: i64) {
    batch[..8].copy_from_slice(&offset.to_be_bytes());
}

/// Sets `partitionLeaderEpoch` of a parsed batch (outside the CRC).
///
/// # Panics
/// If `batch` is shorter than a header: call it on a batch that parsed.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[EPOCH_AT..EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// The header fields of a batch to encode; the rest (length, CRC, counts,
/// max timestamp) follow from the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSpec {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Leader epoch (Raft term).
    pub partition_leader_epoch: i32,
    /// Attribute bits; compression must be 0 (records are written plain).
    pub attributes: i16,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Producer id (-1 for none).
    pub producer_id: i64,
    /// Producer epoch (-1 for none).
    pub producer_epoch: i16,
    /// Base sequence (-1 for none).
    pub base_sequence: i32,
}

/// One uncompressed record to encode; offset delta is its position in the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Milliseconds after the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The key (`None`: null).
    pub key: Option<&'a [u8]>,
    /// The value (`None`: null).
    pub value: Option<&'a [u8]>,
}

/// Encodes an uncompressed v2 batch with a valid CRC. Chronik frames its Raft
/// entries with it, and tests build client batches with it.
pub fn encode_batch(spec: &BatchSpec, records: &[Record<'_>]) -> Vec<u8> {
    encode_with_last_delta(spec, records, records.len() as i32 - 1)
}

pub(crate) fn encode_with_last_delta(
    spec: &BatchSpec,
    records: &[Record<'_>],
    last_offset_delta: i32,
) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let mut rec = vec![0u8]; // record attributes
        put_varint(&mut rec, r.timestamp_delta);
        put_varint(&mut rec, i as i64);
        for field in [r.key, r.value] {
            match field {
                Some(b) => {
                    put_varint(&mut rec, b.len() as i64);
                    rec.extend_from_slice(b);
                }
                None => put_varint(&mut rec, -1),
            }
        }
        put_varint(&mut rec, 0); // no headers
        put_varint(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let max_delta = records.iter().map(|r| r.timestamp_delta).max().unwrap_or(0);
    let max_timestamp = if spec.base_timestamp < 0 {
        spec.base_timestamp
    } else {
        spec.base_timestamp + max_delta
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&spec.base_offset.to_be_bytes());
    out.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    out.extend_from_slice(&spec.partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]); // CRC, filled below
    out.extend_from_slice(&spec.attributes.to_be_bytes());
    out.extend_from_slice(&last_offset_delta.to_be_bytes());
    out.extend_from_slice(&spec.base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&spec.producer_id.to_be_bytes());
    out.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    out.extend_from_slice(&spec.base_sequence.to_be_bytes());
    out.extend_from_slice(&(records.len() as i32).to_be_bytes());
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The record fields of an uncompressed record, borrowed from the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawRecord<'a> {
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
}

/// Decodes the first record of an uncompressed batch's records section.
pub(crate) fn first_record(records: &[u8]) -> Result<RawRecord<'_>, BatchError> {
    let mut at = 0;
    let len = get_varint(records, &mut at)?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| at.checked_add(l))
        .filter(|&e| e <= records.len())
        .ok_or(BatchError::BadRecord)?;
    let rec = &records[..end];
    at += 1; // record attributes
    get_varint(rec, &mut at)?; // timestamp delta
    get_varint(rec, &mut at)?; // offset delta
    let key = get_bytes(rec, &mut at)?;
    let value = get_bytes(rec, &mut at)?;
    Ok(RawRecord { key, value })
}

/// Every record's key and value of an uncompressed batch (`batch` is the
/// whole batch, header included): how internal topics Chronik writes itself,
/// such as the consumer offsets, are read back. Compressed batches are refused.
pub fn records(batch: &[u8]) -> Result<Vec<RecordKv<'_>>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.attributes & 0x07 != 0 {
        return Err(BatchError::BadRecord);
    }
    let end = header.total_len().min(batch.len());
    let body = batch.get(HEADER_LEN..end).ok_or(BatchError::BadRecord)?;
    let count = usize::try_from(header.record_count).map_err(|_| BatchError::BadRecord)?;
    // Every record takes at least 7 bytes: a count beyond that is a lie.
    if count > body.len() / 7 + 1 {
        return Err(BatchError::BadRecord);
    }
    let mut out = Vec::with_capacity(count);
    let mut at = 0;
    for _ in 0..count {
        let len = get_varint(body, &mut at)?;
        let rec_end = usize::try_from(len)
            .ok()
            .and_then(|l| at.checked_add(l))
            .filter(|&e| e <= body.len())
            .ok_or(BatchError::BadRecord)?;
        let rec = &body[..rec_end];
        let mut r = at + 1; // record attributes
        get_varint(rec, &mut r)?; // timestamp delta
        get_varint(rec, &mut r)?; // offset delta
        let key = get_bytes(rec, &mut r)?;
        let value = get_bytes(rec, &mut r)?;
        out.push(RecordKv { key, value });
        at = rec_end;
    }
    Ok(out)
}

/// A record's key and value, borrowed from its batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordKv<'a> {
    /// The key (`None`: null).
    pub key: Option<&'a [u8]>,
    /// The value (`None`: null, a tombstone).
    pub value: Option<&'a [u8]>,
}

fn get_bytes<'a>(b: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, BatchError> {
    let len = get_varint(b, at)?;
    if len < 0 {
        return Ok(None);
    }
    let end = at
        .checked_add(len as usize)
        .filter(|&e| e <= b.len())
        .ok_or(BatchError::BadRecord)?;
    let out = &b[*at..end];
    *at = end;
    Ok(Some(out))
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> Result<i64, BatchError> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or(BatchError::BadRecord)?;
        *at += 1;
        z |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    Err(BatchError::BadRecord)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(base_offset: i64) -> BatchSpec {
        BatchSpec {
            base_offset,
            partition_leader_epoch: 3,
            attributes: 0,
            base_timestamp: 1_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }

    fn two_records() -> Vec<u8> {
        encode_batch(
            &spec(5),
            &[
                Record {
                    timestamp_delta: 0,
                    key: Some(b"k"),
                    value: Some(b"v1"),
                },
                Record {
                    timestamp_delta: 7,
                    key: None,
                    value: Some(b"v2"),
                },
            ],
        )
    }

    #[test]
    fn encoded_batch_parses_back() {
        let raw = two_records();
        let h = validate(&raw).expect("valid");
        assert_eq!(h.base_offset, 5);
        assert_eq!(h.partition_leader_epoch, 3);
        assert_eq!(h.last_offset_delta, 1);
        assert_eq!(h.record_count, 2);
        assert_eq!(h.max_timestamp, 1_007);
        assert_eq!(h.end_offset(), 7);
        assert_eq!(h.total_len(), raw.len());
        let rec = first_record(&raw[HEADER_LEN..]).expect("record");
        assert_eq!(rec.key, Some(&b"k"[..]));
        assert_eq!(rec.value, Some(&b"v1"[..]));
    }

    #[test]
    fn rewriting_offset_and_epoch_keeps_the_crc() {
        let mut raw = two_records();
        set_base_offset(&mut raw, 1 << 40);
        set_partition_leader_epoch(&mut raw, 99);
        let h = validate(&raw).expect("still valid");
        assert_eq!(h.base_offset, 1 << 40);
        assert_eq!(h.partition_leader_epoch, 99);
    }

    #[test]
    fn flipped_record_byte_fails_the_crc() {
        let mut raw = two_records();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(matches!(
            validate(&raw),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn old_magic_and_short_length_are_refused() {
        let mut raw = two_records();
        raw[MAGIC_AT] = 1;
        assert_eq!(
            BatchHeader::parse(&raw),
            Err(BatchError::UnsupportedMagic(1))
        );
        let mut raw = two_records();
        raw[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(BatchHeader::parse(&raw), Err(BatchError::BadLength(10)));
        assert!(matches!(
            BatchHeader::parse(&two_records()[..40]),
            Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: 40
            })
        ));
    }

    #[test]
    fn split_finds_each_batch_and_refuses_a_partial_tail() {
        let a = two_records();
        let b = encode_batch(&spec(9), &[]);
        let mut all = a.clone();
        all.extend_from_slice(&b);
        let ranges = split_batches(&all).expect("two batches");
        assert_eq!(ranges, vec![0..a.len(), a.len()..a.len() + b.len()]);
        assert!(matches!(
            split_batches(&all[..all.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        assert_eq!(split_batches(&[]), Ok(vec![]));
    }

    #[test]
    fn records_reads_back_what_encode_batch_wrote() {
        let spec = BatchSpec {
            base_offset: 5,
            partition_leader_epoch: 1,
            attributes: 0,
            base_timestamp: 1000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        };
        let recs = [
            Record {
                timestamp_delta: 0,
                key: Some(b"k1"),
                value: Some(b"v1"),
            },
            Record {
                timestamp_delta: 3,
                key: Some(b"k2"),
                value: None,
            },
        ];
        let raw = encode_batch(&spec, &recs);
        let got = records(&raw).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].key, Some(&b"k1"[..]));
        assert_eq!(got[0].value, Some(&b"v1"[..]));
        assert_eq!(got[1].value, None);
        // Cut anywhere inside the records: an error, never a panic.
        for cut in HEADER_LEN..raw.len() {
            assert!(records(&raw[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn varints_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 64, 300, -300, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut at = 0;
            assert_eq!(get_varint(&out, &mut at), Ok(v));
            assert_eq!(at, out.len());
        }
        assert_eq!(get_varint(&[0x80], &mut 0), Err(BatchError::BadRecord));
    }
}
