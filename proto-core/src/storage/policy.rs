//! When to roll the active segment and which old segments retention deletes.
//! Time is a parameter; the driver passes its clock.

/// One partition log's settings (Kafka's `segment.*`, `retention.*`,
/// `index.interval.bytes`, `max.message.bytes`), in one place with defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll the active segment before it would exceed this many bytes.
    pub segment_bytes: u64,
    /// Roll the active segment this long after its first data timestamp.
    pub segment_ms: Option<u64>,
    /// Delete the oldest segments while the log exceeds this size (`None`: keep).
    pub retention_bytes: Option<u64>,
    /// Delete segments whose newest timestamp is this old (`None`: keep).
    pub retention_ms: Option<u64>,
    /// Bytes of batches between two sparse index entries.
    pub index_interval_bytes: u32,
    /// The largest batch the log accepts (also bounds the recovery scan).
    pub max_batch_bytes: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: None,
            retention_bytes: None,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            index_interval_bytes: 4096,
            max_batch_bytes: 1_048_588,
        }
    }
}

/// What roll and retention need to know about a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Kafka offset of the segment's first batch.
    pub base_offset: i64,
    /// Kafka offset after its last data batch.
    pub next_offset: i64,
    /// Raft index of its first entry.
    pub base_raft_index: u64,
    /// Bytes of the segment file.
    pub size_bytes: u64,
    /// Max timestamp of its first data batch (`None` before any data).
    pub first_timestamp: Option<i64>,
    /// Largest data timestamp in it (-1 if none).
    pub max_timestamp: i64,
}

/// Why the active segment is rolled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollReason {
    /// The next batch would pass `segment_bytes` (or the u32 file positions).
    Size,
    /// The segment is older than `segment_ms`.
    Age,
    /// The next entry's relative offset or Raft index would not fit the index.
    IndexRange,
}

/// The entry about to be appended, for [`should_roll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// Bytes of its batch.
    pub len: u64,
    /// Kafka offset after it.
    pub end_offset: i64,
    /// Its Raft index.
    pub raft_index: u64,
}

/// Whether to start a new segment before `incoming` (or now, for a time check
/// with `incoming: None`). A segment holding no data batch is never rolled:
/// the next one would share its base offset, which names the file.
pub fn should_roll(
    active: &SegmentSummary,
    incoming: Option<&Incoming>,
    cfg: &LogConfig,
    now_ms: Option<i64>,
) -> Option<RollReason> {
    if active.next_offset == active.base_offset || active.size_bytes == 0 {
        return None;
    }
    if let Some(i) = incoming {
        let limit = cfg.segment_bytes.min(u64::from(u32::MAX));
        if active.size_bytes + i.len > limit {
            return Some(RollReason::Size);
        }
        let offsets = u64::try_from(i.end_offset - active.base_offset).unwrap_or(u64::MAX);
        let indexes = i.raft_index.saturating_sub(active.base_raft_index);
        if offsets > u64::from(u32::MAX) || indexes > u64::from(u32::MAX) {
            return Some(RollReason::IndexRange);
        }
    }
    match (now_ms, cfg.segment_ms, active.first_timestamp) {
        (Some(now), Some(ms), Some(first)) if now.saturating_sub(first) >= ms as i64 => {
            Some(RollReason::Age)
        }
        _ => None,
    }
}

/// How many of the oldest segments retention deletes now. `segments` is the
/// log in order, the active one last, which is never deleted; only a prefix
/// is, so the log stays contiguous. `keep_from_raft_index` protects entries
/// Raft may still need (e.g. not yet committed).
pub fn segments_to_delete(
    segments: &[SegmentSummary],
    cfg: &LogConfig,
    now_ms: i64,
    keep_from_raft_index: u64,
) -> usize {
    let total: u64 = segments.iter().map(|s| s.size_bytes).sum();
    let mut excess = cfg.retention_bytes.map_or(0, |r| total.saturating_sub(r));
    let mut n = 0;
    for (s, next) in segments.iter().zip(segments.iter().skip(1)) {
        if next.base_raft_index > keep_from_raft_index {
            break;
        }
        let by_size = excess > 0 && s.size_bytes <= excess;
        let by_time = match cfg.retention_ms {
            Some(ms) => s.max_timestamp >= 0 && now_ms.saturating_sub(s.max_timestamp) > ms as i64,
            None => false,
        };
        if !(by_size || by_time) {
            break;
        }
        excess = excess.saturating_sub(s.size_bytes);
        n += 1;
    }
    n
}

/// Like [`segments_to_delete`], but also keeps the segments holding entries
/// at or after `hold_from_raft_index` (the first entry a lagging replica
/// still needs) for as long as that costs at most twice the retention
/// limits: past 2 x `retention.bytes` or 2 x `retention.ms` the hold gives
/// way, so a replica that stays down cannot fill the disk. Kafka holds
/// nothing for followers and truncates one that fell behind the log start;
/// a Raft replica behind the leader's log cannot catch up at all, so a short
/// outage during a retention pass should not cost it its replica.
pub fn segments_to_delete_holding(
    segments: &[SegmentSummary],
    cfg: &LogConfig,
    now_ms: i64,
    keep_from_raft_index: u64,
    hold_from_raft_index: u64,
) -> usize {
    let held = segments_to_delete(
        segments,
        cfg,
        now_ms,
        keep_from_raft_index.min(hold_from_raft_index),
    );
    let doubled = LogConfig {
        retention_bytes: cfg.retention_bytes.map(|b| b.saturating_mul(2)),
        retention_ms: cfg.retention_ms.map(|ms| ms.saturating_mul(2)),
        ..cfg.clone()
    };
    held.max(segments_to_delete(
        segments,
        &doubled,
        now_ms,
        keep_from_raft_index,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_hold_keeps_segments_up_to_twice_the_retention() {
        // Ten 100-byte segments, raft indexes 1, 11, 21, ...; retention 300 bytes.
        let segs: Vec<_> = (0..10).map(|i| seg(i * 10, 100, Some(0), 0)).collect();
        let cfg = LogConfig {
            retention_bytes: Some(300),
            ..LogConfig::default()
        };
        let no_hold = segments_to_delete_holding(&segs, &cfg, 0, u64::MAX, u64::MAX);
        assert_eq!(no_hold, 7, "retention alone keeps 300 bytes");
        // A replica needs raft index 25 (the third segment): the hold keeps
        // it while the log stays within 600 bytes, so only down to 600.
        let held = segments_to_delete_holding(&segs, &cfg, 0, u64::MAX, 25);
        assert_eq!(held, 4, "the hold gives way at twice retention.bytes");
        // A replica that needs little more than retention keeps is protected.
        let near = segments_to_delete_holding(&segs, &cfg, 0, u64::MAX, 65);
        assert_eq!(near, 6);
        // By time: segments 1000 ms old, retention 300 ms; a hold survives
        // until they are 600 ms past due.
        let old: Vec<_> = (0..4).map(|i| seg(i * 10, 100, Some(0), 0)).collect();
        let by_time = LogConfig {
            retention_ms: Some(300),
            ..LogConfig::default()
        };
        assert_eq!(
            segments_to_delete_holding(&old, &by_time, 500, u64::MAX, 1),
            0
        );
        assert_eq!(
            segments_to_delete_holding(&old, &by_time, 700, u64::MAX, 1),
            3
        );
        // The durable marker is never overridden by the doubled limits.
        assert_eq!(segments_to_delete_holding(&segs, &cfg, 0, 11, u64::MAX), 1);
    }

    fn seg(base: i64, size: u64, first_ts: Option<i64>, max_ts: i64) -> SegmentSummary {
        SegmentSummary {
            base_offset: base,
            next_offset: base + 10,
            base_raft_index: base as u64 + 1,
            size_bytes: size,
            first_timestamp: first_ts,
            max_timestamp: max_ts,
        }
    }

    fn incoming(len: u64) -> Incoming {
        Incoming {
            len,
            end_offset: 11,
            raft_index: 11,
        }
    }

    #[test]
    fn rolls_by_size_age_and_index_range() {
        let cfg = LogConfig {
            segment_bytes: 1000,
            segment_ms: Some(500),
            ..LogConfig::default()
        };
        let active = seg(0, 900, Some(1_000), 1_000);
        assert_eq!(should_roll(&active, Some(&incoming(100)), &cfg, None), None);
        assert_eq!(
            should_roll(&active, Some(&incoming(101)), &cfg, None),
            Some(RollReason::Size)
        );
        assert_eq!(should_roll(&active, None, &cfg, Some(1_499)), None);
        assert_eq!(
            should_roll(&active, None, &cfg, Some(1_500)),
            Some(RollReason::Age)
        );
        let far = Incoming {
            len: 1,
            end_offset: 1 << 33,
            raft_index: 11,
        };
        assert_eq!(
            should_roll(&active, Some(&far), &cfg, None),
            Some(RollReason::IndexRange)
        );
    }

    #[test]
    fn never_rolls_a_segment_without_data() {
        let cfg = LogConfig {
            segment_bytes: 10,
            segment_ms: Some(1),
            ..LogConfig::default()
        };
        let raft_only = SegmentSummary {
            next_offset: 0,
            ..seg(0, 500, None, -1)
        };
        assert_eq!(
            should_roll(&raft_only, Some(&incoming(100)), &cfg, Some(10_000)),
            None
        );
    }

    #[test]
    fn retention_deletes_an_old_or_oversized_prefix_but_never_the_active_segment() {
        let cfg = LogConfig {
            retention_bytes: Some(200),
            retention_ms: Some(1_000),
            ..LogConfig::default()
        };
        let segs = [
            seg(0, 100, Some(0), 4_900),
            seg(10, 100, Some(20), 5_000),
            seg(20, 100, None, 9_000),
        ];
        // 300 bytes, 100 over: the first goes by size (it is young); the second stays.
        assert_eq!(segments_to_delete(&segs, &cfg, 5_500, u64::MAX), 1);
        // Everything is old, but the active segment stays.
        assert_eq!(segments_to_delete(&segs, &cfg, 1_000_000, u64::MAX), 2);
        // Raft still needs index 11 (in the second segment): only the first goes.
        assert_eq!(segments_to_delete(&segs, &cfg, 1_000_000, 11), 1);
        assert_eq!(segments_to_delete(&segs, &cfg, 1_000_000, 10), 0);
        let keep = LogConfig {
            retention_bytes: None,
            retention_ms: None,
            ..cfg
        };
        assert_eq!(segments_to_delete(&segs, &keep, i64::MAX, u64::MAX), 0);
    }
}
