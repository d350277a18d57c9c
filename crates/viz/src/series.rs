//! What line and bar series share: how they are named in errors, their colours and legend,
//! the finite range of their values, the check of their bands and their builder methods.

use crate::chrome::{Legend, Swatch};
use crate::color::{default_series_color, Rgb};
use crate::error::{Error, Result};
use crate::label::clean_text;

/// A series drawn in a colour and named in a legend: [`crate::Series`] and
/// [`crate::BarSeries`].
pub(crate) trait Styled {
    /// The name shown in the legend (none when empty).
    fn name(&self) -> &str;
    /// The colour chosen, if any.
    fn color(&self) -> Option<Rgb>;
}

/// Implements, for a series type with `name`, `band` and `color` fields, the builder
/// methods `with_band` (documented by `$band_doc`) and `with_color`, and [`Styled`]: one
/// copy for line and bar series.
macro_rules! series_methods {
    ($ty:ident, $band_doc:literal) => {
        impl $ty {
            #[doc = $band_doc]
            pub fn with_band(mut self, lower: Vec<f64>, upper: Vec<f64>) -> Self {
                self.band = Some((lower, upper));
                self
            }

            /// The series in colour `color`.
            pub fn with_color(mut self, color: Rgb) -> Self {
                self.color = Some(color);
                self
            }
        }

        impl $crate::series::Styled for $ty {
            fn name(&self) -> &str {
                &self.name
            }

            fn color(&self) -> Option<Rgb> {
                self.color
            }
        }
    };
}
pub(crate) use series_methods;

/// Each series' colour: its own, else the default of its index.
pub(crate) fn series_colors<S: Styled>(series: &[S]) -> Vec<Rgb> {
    series
        .iter()
        .enumerate()
        .map(|(i, s)| s.color().unwrap_or_else(|| default_series_color(i)))
        .collect()
}

/// The legend of the named `series` in their `colors`.
pub(crate) fn series_legend<S: Styled>(series: &[S], colors: &[Rgb], swatch: Swatch) -> Legend {
    Legend::new(
        series
            .iter()
            .zip(colors)
            .map(|(s, c)| (clean_text(s.name()), *c))
            .collect(),
        swatch,
    )
}

/// How a series is named in errors: `series[1] "MLP"`.
pub(crate) fn series_name(i: usize, name: &str) -> String {
    if name.is_empty() {
        format!("series[{i}]")
    } else {
        format!("series[{i}] {name:?}")
    }
}

/// Smallest and largest finite value, if any.
pub(crate) fn finite_range<'a>(values: impl IntoIterator<Item = &'a f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Checks that both bounds of series `i`'s `band` (if any) have `n` values.
pub(crate) fn check_band(
    figure: &'static str,
    i: usize,
    name: &str,
    band: Option<&(Vec<f64>, Vec<f64>)>,
    n: usize,
) -> Result<()> {
    let Some((lower, upper)) = band else {
        return Ok(());
    };
    for (bound, v) in [("lower", lower), ("upper", upper)] {
        if v.len() != n {
            return Err(Error::BandLength {
                figure,
                series: series_name(i, name),
                bound,
                expected: n,
                found: v.len(),
            });
        }
    }
    Ok(())
}
