//! The few statistics the cluster bench reports over a handful of values
//! (ten failovers), where a histogram would be overkill.

/// The median and the largest of a set of values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MedianMax {
    /// The middle value; with an even count, the mean of the two middle ones.
    pub median: f64,
    pub max: f64,
}

/// The median and maximum of `values`; `None` when there are none. NaNs are
/// not expected (every value is a measured duration) and sort last.
pub fn median_max(values: &[f64]) -> Option<MedianMax> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let max = *sorted.last()?;
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Some(MedianMax { median, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_count_takes_the_middle_value() {
        assert_eq!(
            median_max(&[0.9, 0.3, 0.7]),
            Some(MedianMax {
                median: 0.7,
                max: 0.9
            })
        );
        assert_eq!(
            median_max(&[0.5]),
            Some(MedianMax {
                median: 0.5,
                max: 0.5
            })
        );
    }

    #[test]
    fn even_count_averages_the_middle_two() {
        let ten = [0.61, 0.72, 0.58, 0.69, 1.40, 0.66, 0.70, 0.64, 0.71, 0.63];
        let s = median_max(&ten).unwrap();
        assert!((s.median - 0.675).abs() < 1e-9, "{s:?}");
        assert_eq!(s.max, 1.40);
    }

    #[test]
    fn nothing_has_no_median() {
        assert_eq!(median_max(&[]), None);
    }
}
