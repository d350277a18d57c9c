//! Grouped bar plots: per category (e.g. layer), one bar per series side by
//! side, e.g. the effect of a restored state as is, with the MLP severed and
//! with attention severed (ROME Figure 7).

use serde::{Deserialize, Serialize};

use crate::axes::{Axes, AxesText};
use crate::chrome::{draw_y_ticks, label_step, widest, Area, Scale, Swatch, AXIS_COLOR, TICK_SIZE};
use crate::color::Rgb;
use crate::error::{Error, Result};
use crate::figure::Figure;
use crate::label::clean_text;
use crate::series::{
    check_band, finite_range, series_colors, series_legend, series_methods, series_name,
};
use crate::svg::SvgDoc;
use crate::ticks::ticks_within;

const FIGURE: &str = "bar plot";
const PLOT_H: f64 = 280.0;
/// Width of the plot aimed at; groups are narrowed or widened within bounds.
const TARGET_PLOT_W: f64 = 600.0;
const MIN_PLOT_W: f64 = 240.0;
const MAX_GROUP_W: f64 = 90.0;
/// Share of a group's width taken by its bars.
const FILL: f64 = 0.8;
const ERROR_BAR_COLOR: Rgb = Rgb::from_hex(0x333333);

/// One named series of a [`BarPlot`]: one value per category.
///
/// A NaN or infinite value draws no bar.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BarSeries {
    /// The name shown in the legend (no legend entry when empty).
    pub name: String,
    /// One value per category.
    #[serde(with = "crate::nan_serde::vec")]
    pub values: Vec<f64>,
    /// Error bars `(lower, upper)`, one bound per category, e.g. a 95%
    /// confidence interval.
    #[serde(with = "crate::nan_serde::band")]
    pub band: Option<(Vec<f64>, Vec<f64>)>,
    /// The colour; default from a ten-colour cycle by series index.
    pub color: Option<Rgb>,
}

impl BarSeries {
    /// A series without error bars, coloured by default.
    pub fn new(name: impl Into<String>, values: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            values,
            band: None,
            color: None,
        }
    }
}

series_methods!(BarSeries, "The series with error bars `(lower, upper)`.");

/// A grouped bar plot: categories along x, within each one bar per series.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BarPlot {
    /// The categories (e.g. layer numbers), left to right.
    pub categories: Vec<String>,
    /// The series, one bar each per category, left to right within a group.
    pub series: Vec<BarSeries>,
    /// The title; `\n` starts a further, smaller line.
    pub title: String,
    /// The x axis label.
    pub x_label: String,
    /// The y axis label.
    pub y_label: String,
}

impl BarPlot {
    /// Checks the data and returns the y range of the finite values and
    /// error bars, widened to include 0.
    pub fn value_range(&self) -> Result<(f64, f64)> {
        let n = self.categories.len();
        if n == 0 {
            return Err(Error::Empty {
                figure: FIGURE,
                field: "categories".into(),
            });
        }
        if self.series.is_empty() {
            return Err(Error::Empty {
                figure: FIGURE,
                field: "series".into(),
            });
        }
        let mut range: Option<(f64, f64)> = None;
        let mut widen = |r: Option<(f64, f64)>| {
            if let Some((a, b)) = r {
                range = Some(range.map_or((a, b), |(lo, hi)| (lo.min(a), hi.max(b))));
            }
        };
        let mut any_value = false;
        for (i, s) in self.series.iter().enumerate() {
            if s.values.len() != n {
                return Err(Error::SeriesLength {
                    figure: FIGURE,
                    series: series_name(i, &s.name),
                    field: "values",
                    expected: n,
                    found: s.values.len(),
                });
            }
            let r = finite_range(&s.values);
            any_value |= r.is_some();
            widen(r);
            check_band(FIGURE, i, &s.name, s.band.as_ref(), n)?;
            if let Some((lower, upper)) = &s.band {
                widen(finite_range(lower));
                widen(finite_range(upper));
            }
        }
        match range {
            Some((lo, hi)) if any_value => Ok((lo.min(0.0), hi.max(0.0))),
            _ => Err(Error::AllNan {
                figure: FIGURE,
                field: "series[..].values".into(),
            }),
        }
    }
}

impl Figure for BarPlot {
    fn to_svg(&self) -> Result<String> {
        let (lo, hi) = self.value_range()?;
        let categories: Vec<String> = self.categories.iter().map(|c| clean_text(c)).collect();
        let colors = series_colors(&self.series);
        let (y_lo, y_hi) = y_range(lo, hi);
        let y_ticks = ticks_within(y_lo, y_hi, 6);
        let groups = Groups::new(&categories, self.series.len());
        let text = AxesText::new(
            &self.title,
            &self.x_label,
            &self.y_label,
            series_legend(&self.series, &colors, Swatch::Square),
        );
        // Category labels are centred on their groups: half the widest may stick out.
        let axes = Axes::new(
            text,
            &y_ticks.labels(),
            (groups.plot_w, PLOT_H),
            groups.widest_label / 2.0,
        );
        let plot = axes.plot;
        let ys = Scale {
            lo: y_lo,
            hi: y_hi,
            px_lo: plot.bottom(),
            px_hi: plot.y,
        };

        let mut doc = axes.start();
        draw_y_ticks(&mut doc, plot, ys, &y_ticks, true);
        for (si, (s, color)) in self.series.iter().zip(&colors).enumerate() {
            groups.draw_series(&mut doc, plot, ys, (si, s), *color);
        }
        if y_lo < 0.0 {
            let zero = ys.map(0.0);
            doc.line(plot.x, zero, plot.right(), zero, AXIS_COLOR, 1.0);
        }
        let ticks: Vec<(f64, String)> = (0..categories.len())
            .step_by(groups.label_step)
            .map(|c| (plot.x + (c as f64 + 0.5) * groups.w, categories[c].clone()))
            .collect();
        Ok(axes.finish(doc, &ticks))
    }
}

/// The y axis' range for values from `lo` to `hi` (0 included): 5% headroom away from zero
/// on the sides with data.
fn y_range(lo: f64, hi: f64) -> (f64, f64) {
    let span = if hi > lo { hi - lo } else { 1.0 };
    let y_hi = if hi > 0.0 || lo >= 0.0 {
        hi + 0.05 * span
    } else {
        0.0
    };
    let y_lo = if lo < 0.0 { lo - 0.05 * span } else { 0.0 };
    (y_lo, y_hi)
}

/// The sizes of the category groups along x, and which categories get a label.
struct Groups {
    /// Width of one group.
    w: f64,
    /// Width of one bar.
    bar_w: f64,
    /// Width of the plot: all groups.
    plot_w: f64,
    /// Width of the widest category label.
    widest_label: f64,
    /// Every this many categories get a label, so labels never overlap.
    label_step: usize,
}

impl Groups {
    /// Groups for `categories` (cleaned labels) of `k` bars each: as near
    /// [`TARGET_PLOT_W`] in all as the bounds allow.
    fn new(categories: &[String], k: usize) -> Self {
        let n = categories.len();
        let w = (TARGET_PLOT_W / n as f64)
            .clamp(k as f64 * 4.0 + 4.0, MAX_GROUP_W)
            .max(MIN_PLOT_W / n as f64);
        let widest_label = widest(categories, TICK_SIZE);
        Self {
            w,
            bar_w: w * FILL / k as f64,
            plot_w: w * n as f64,
            widest_label,
            label_step: label_step(1, w, widest_label).unwrap_or(n.max(1)),
        }
    }

    /// Draws the bars (and error bars) of series `s`, the `si`-th of each group, in
    /// `color`; non-finite values draw nothing.
    fn draw_series(
        &self,
        doc: &mut SvgDoc,
        plot: Area,
        ys: Scale,
        (si, s): (usize, &BarSeries),
        color: Rgb,
    ) {
        let zero = ys.map(0.0);
        for (ci, &v) in s.values.iter().enumerate() {
            let x =
                plot.x + ci as f64 * self.w + self.w * (1.0 - FILL) / 2.0 + si as f64 * self.bar_w;
            if v.is_finite() {
                let y = ys.map(v);
                doc.rect(x, y.min(zero), self.bar_w, (y - zero).abs(), color, None);
            }
            if let Some((lower, upper)) = &s.band {
                self.draw_error_bar(doc, x, ys, (lower[ci], upper[ci]));
            }
        }
    }

    /// Draws an error bar from `l` to `u` (when both are finite) with caps, over the bar
    /// whose left edge is at `x`.
    fn draw_error_bar(&self, doc: &mut SvgDoc, x: f64, ys: Scale, (l, u): (f64, f64)) {
        if !(l.is_finite() && u.is_finite()) {
            return;
        }
        let cx = x + self.bar_w / 2.0;
        let cap = (self.bar_w * 0.3).clamp(1.5, 6.0);
        let (yl, yu) = (ys.map(l), ys.map(u));
        doc.line(cx, yl, cx, yu, ERROR_BAR_COLOR, 1.0);
        doc.line(cx - cap, yl, cx + cap, yl, ERROR_BAR_COLOR, 1.0);
        doc.line(cx - cap, yu, cx + cap, yu, ERROR_BAR_COLOR, 1.0);
    }
}
