//! A small log-linear latency histogram (HdrHistogram's idea, without the crate):
//! exact below 256 units, then 128 linear sub-buckets per power of two, so every
//! recorded value is known to better than 1 %.

/// Sub-buckets per power of two, as a bit count.
const SUB_BITS: u32 = 7;
/// Values below this are counted exactly.
const LINEAR: u64 = 1 << (SUB_BITS + 1);
/// Buckets needed to cover every `u64`.
const BUCKETS: usize = LINEAR as usize + (64 - (SUB_BITS as usize + 1)) * (1 << SUB_BITS);

/// Counts of recorded values (the bench records microseconds).
#[derive(Clone)]
pub struct Hist {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= SUB_BITS + 1
    let sub = (v >> (e - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    LINEAR as usize + (e - SUB_BITS - 1) as usize * (1 << SUB_BITS) + sub as usize
}

/// The middle of bucket `i`'s value range.
fn value(i: usize) -> u64 {
    if i < LINEAR as usize {
        return i as u64;
    }
    let j = i - LINEAR as usize;
    let e = (j >> SUB_BITS) as u32 + SUB_BITS + 1;
    let sub = (j & ((1 << SUB_BITS) - 1)) as u64;
    let width = 1u64 << (e - SUB_BITS);
    ((1 << SUB_BITS) + sub) * width + width / 2
}

impl Hist {
    /// Counts one value.
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), to within one bucket; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_and_stay_within_one_percent() {
        for v in (0..5000u64).chain([1 << 20, (1 << 40) + 12345, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            let mid = value(i);
            let err = mid.abs_diff(v) as f64 / v.max(1) as f64;
            assert!(err < 0.01, "{v} -> bucket {i} mid {mid}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Hist::default();
        for v in 1..=1000 {
            h.record(v);
        }
        assert!(h.quantile(0.5).abs_diff(500) <= 2);
        assert!(h.quantile(0.99).abs_diff(990) <= 4);
        assert_eq!(h.quantile(1.0), 1000);
        assert_eq!(h.max(), 1000);
    }
}
