//! Axis ranges, "nice" tick positions and tick label formatting.

/// Tick positions on a numeric axis and how to print them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ticks {
    /// Tick values, increasing.
    pub values: Vec<f64>,
    /// The spacing between ticks.
    pub step: f64,
}

impl Ticks {
    /// The label of each tick.
    pub fn labels(&self) -> Vec<String> {
        self.values
            .iter()
            .map(|&v| format_tick(v, self.step))
            .collect()
    }
}

/// Number of multiples of `step` inside `[lo, hi]` (up to rounding).
fn count_within(lo: f64, hi: f64, step: f64) -> f64 {
    ((hi / step + 1e-9).floor() - (lo / step - 1e-9).ceil() + 1.0).max(0.0)
}

/// About `target` nice ticks inside `[lo, hi]` (both ends included up to
/// rounding): the step of 1, 2 or 5 times a power of ten whose tick count is
/// nearest `target`, more ticks winning ties.
pub(crate) fn ticks_within(lo: f64, hi: f64, target: usize) -> Ticks {
    let (lo, hi) = if hi > lo && (hi - lo).is_finite() {
        (lo, hi)
    } else {
        (lo, lo + 1.0)
    };
    let target = target.max(2) as f64;
    let raw = (hi - lo) / target;
    let mag = 10f64.powf(raw.log10().floor());
    let mut step = mag;
    let mut best = f64::INFINITY;
    for m in [mag / 10.0, mag, mag * 10.0] {
        for f in [1.0, 2.0, 5.0] {
            let s = f * m;
            let miss = (count_within(lo, hi, s) - target).abs();
            if s > 0.0 && s.is_finite() && miss < best {
                best = miss;
                step = s;
            }
        }
    }
    let eps = step * 1e-9;
    let mut values = Vec::new();
    let mut k = (lo / step - 1e-9).ceil();
    while k * step <= hi + eps && values.len() < 1000 {
        let v = k * step;
        values.push(if v.abs() < eps { 0.0 } else { v });
        k += 1.0;
    }
    Ticks { values, step }
}

/// The data range `[lo, hi]` padded by `pad` of its span on each side (a
/// degenerate range is widened), as the range of an axis.
pub(crate) fn padded_range(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    if hi > lo {
        let d = (hi - lo) * pad;
        (lo - d, hi + d)
    } else {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    }
}

/// Prints `v` with as many decimals as the tick step needs.
pub(crate) fn format_tick(v: f64, step: f64) -> String {
    let big = v.abs().max(step.abs());
    if big >= 1e6 || (step > 0.0 && step < 1e-4) {
        return format!("{v:.1e}");
    }
    let mut decimals = 0usize;
    let mut s = step.abs();
    while decimals < 6 && (s - s.round()).abs() > 1e-6 * s.max(1e-12) {
        s *= 10.0;
        decimals += 1;
    }
    let text = format!("{v:.decimals$}");
    if text.starts_with('-') && text[1..].chars().all(|c| c == '0' || c == '.') {
        text[1..].to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        let t = ticks_within(0.0, 1.0, 5);
        assert_eq!(t.labels(), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t = ticks_within(0.03, 0.71, 5);
        assert_eq!(
            t.labels(),
            ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
        );
        let t = ticks_within(0.0, 29.0, 6);
        assert_eq!(t.labels(), ["0", "5", "10", "15", "20", "25"]);
        let t = ticks_within(-0.05, 0.05, 4);
        assert_eq!(t.labels(), ["-0.04", "-0.02", "0.00", "0.02", "0.04"]);
        let t = ticks_within(0.0, 0.4, 6);
        assert_eq!(t.labels(), ["0.0", "0.1", "0.2", "0.3", "0.4"]);
    }

    #[test]
    fn tick_labels_have_the_needed_decimals() {
        assert_eq!(format_tick(0.25, 0.25), "0.25");
        assert_eq!(format_tick(10.0, 5.0), "10");
        assert_eq!(format_tick(-0.0, 0.1), "0.0");
        assert_eq!(format_tick(2e7, 1e7), "2.0e7");
    }

    #[test]
    fn degenerate_ranges_widen() {
        assert_eq!(padded_range(2.0, 2.0, 0.05), (1.8, 2.2));
        assert_eq!(padded_range(0.0, 0.0, 0.05), (-1.0, 1.0));
        let (lo, hi) = padded_range(0.0, 10.0, 0.05);
        assert!((lo + 0.5).abs() < 1e-12 && (hi - 10.5).abs() < 1e-12);
    }
}
