//! Means with 95% confidence intervals.

use serde::{Deserialize, Serialize};

/// The normal quantile of a two-sided 95% interval.
pub const Z95: f64 = 1.96;

/// Mean with a 95% confidence interval `mean ± 1.96·s/√n` (`s`: sample standard deviation,
/// divisor `n − 1`).
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Estimate {
    /// Number of samples.
    pub n: usize,
    /// Mean (`None` without samples).
    pub mean: Option<f64>,
    /// Sample standard deviation (`None` with fewer than 2 samples).
    pub std: Option<f64>,
    /// Lower end of the interval (`None` with fewer than 2 samples).
    pub ci_low: Option<f64>,
    /// Upper end of the interval.
    pub ci_high: Option<f64>,
}

/// The [`Estimate`] of `samples` (normal approximation).
pub fn mean_ci(samples: &[f64]) -> Estimate {
    let n = samples.len();
    if n == 0 {
        return Estimate::default();
    }
    let mean = samples.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Estimate {
            n,
            mean: Some(mean),
            ..Estimate::default()
        };
    }
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    let half = Z95 * std / (n as f64).sqrt();
    Estimate {
        n,
        mean: Some(mean),
        std: Some(std),
        ci_low: Some(mean - half),
        ci_high: Some(mean + half),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn interval_contains_the_mean_and_shrinks_with_n(
            xs in prop::collection::vec(-1e3f64..1e3, 2..40)
        ) {
            let e = mean_ci(&xs);
            let (Some(m), Some(lo), Some(hi)) = (e.mean, e.ci_low, e.ci_high) else {
                return Err(TestCaseError::fail("no interval for n >= 2"));
            };
            prop_assert!(lo <= m && m <= hi);
            let doubled: Vec<f64> = xs.iter().chain(xs.iter()).copied().collect();
            let d = mean_ci(&doubled);
            let (Some(dlo), Some(dhi)) = (d.ci_low, d.ci_high) else {
                return Err(TestCaseError::fail("no interval"));
            };
            prop_assert!(dhi - dlo <= hi - lo + 1e-9);
        }
    }

    #[test]
    fn small_samples() {
        assert_eq!(mean_ci(&[]), Estimate::default());
        let one = mean_ci(&[2.5]);
        assert_eq!((one.n, one.mean, one.std), (1, Some(2.5), None));
        let two = mean_ci(&[1.0, 3.0]);
        assert_eq!(two.mean, Some(2.0));
        assert!((two.std.unwrap_or(0.0) - 2f64.sqrt()).abs() < 1e-12);
    }
}
