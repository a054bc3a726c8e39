//! Pure detectors used by the correlation: failed-login bursts and
//! out-of-hours checks live here so they can be tested on their own.

/// At least this many failures ...
pub const BURST_MIN: usize = 5;
/// ... within this many seconds make a burst.
pub const BURST_WINDOW_SECS: i64 = 600;

/// Finds failed-login bursts in one key's failure times (unix milliseconds,
/// sorted ascending). A failure is *in a burst* when some window of
/// [`BURST_WINDOW_SECS`] holds it and at least `BURST_MIN - 1` other
/// failures of the same key; a burst is a maximal run of such failures in
/// which consecutive ones are at most the window apart. Returns inclusive
/// `(first, last)` index ranges, in order.
pub fn bursts(times: &[i64]) -> Vec<(usize, usize)> {
    let window = BURST_WINDOW_SECS * 1000;
    let n = times.len();
    let mut in_burst = vec![false; n];
    // Two pointers: for each start j, k is the last index within the
    // window; the window [j, k] qualifies when it holds BURST_MIN failures.
    let mut k = 0usize;
    let mut marked_to: Option<usize> = None;
    for j in 0..n {
        if k < j {
            k = j;
        }
        let Some(&tj) = times.get(j) else { break };
        while let Some(&next) = times.get(k + 1) {
            if next - tj <= window {
                k += 1;
            } else {
                break;
            }
        }
        if k + 1 - j >= BURST_MIN {
            let from = marked_to.map_or(j, |m| (m + 1).max(j));
            for flag in in_burst.iter_mut().take(k + 1).skip(from) {
                *flag = true;
            }
            marked_to = Some(k);
        }
    }
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for (i, &flag) in in_burst.iter().enumerate() {
        if !flag {
            continue;
        }
        let t = times.get(i).copied().unwrap_or_default();
        current = match current {
            Some((first, last)) if t - times.get(last).copied().unwrap_or_default() <= window => {
                Some((first, i))
            }
            Some(done) => {
                out.push(done);
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(done) = current {
        out.push(done);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mins(m: &[f64]) -> Vec<i64> {
        m.iter().map(|m| (m * 60_000.0) as i64).collect()
    }

    #[test]
    fn four_failures_are_not_a_burst() {
        assert!(bursts(&mins(&[0.0, 1.0, 2.0, 3.0])).is_empty());
        assert!(bursts(&[]).is_empty());
    }

    #[test]
    fn five_within_ten_minutes_are_one_burst() {
        assert_eq!(bursts(&mins(&[0.0, 1.0, 2.0, 3.0, 4.0])), vec![(0, 4)]);
        // Exactly ten minutes from first to fifth still counts.
        assert_eq!(bursts(&mins(&[0.0, 2.0, 4.0, 6.0, 10.0])), vec![(0, 4)]);
        // Ten minutes and a second does not.
        let mut t = mins(&[0.0, 2.0, 4.0, 6.0]);
        t.push(600_001);
        assert!(bursts(&t).is_empty());
    }

    #[test]
    fn a_burst_extends_while_the_rate_holds_and_stray_failures_stay_out() {
        // A stray failure an hour before, then twelve failures a minute
        // apart, then one more an hour later.
        let mut m = vec![-60.0];
        m.extend((0..12).map(f64::from));
        m.push(71.0);
        let b = bursts(&mins(&m));
        assert_eq!(b, vec![(1, 12)]);
    }

    #[test]
    fn two_separate_bursts() {
        let mut m: Vec<f64> = (0..5).map(f64::from).collect();
        m.extend((0..6).map(|i| 100.0 + f64::from(i)));
        assert_eq!(bursts(&mins(&m)), vec![(0, 4), (5, 10)]);
    }

    #[test]
    fn slow_failures_never_burst() {
        let m: Vec<f64> = (0..50).map(|i| f64::from(i) * 3.0).collect();
        assert!(bursts(&mins(&m)).is_empty());
    }
}
