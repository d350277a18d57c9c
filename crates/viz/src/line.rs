//! Line plots with optional confidence bands (e.g. average indirect effect
//! per layer, ROME Figure 2).

use serde::{Deserialize, Serialize};

use crate::axes::{Axes, AxesText};
use crate::chrome::{draw_y_ticks, Scale, Swatch, GRID_COLOR, TICK_SIZE};
use crate::color::Rgb;
use crate::error::{Error, Result};
use crate::figure::Figure;
use crate::font::text_width;
use crate::series::{
    check_band, finite_range, series_colors, series_legend, series_methods, series_name,
};
use crate::svg::SvgDoc;
use crate::ticks::{padded_range, ticks_within};

const FIGURE: &str = "line plot";
/// Size of the plotting area.
const PLOT_W: f64 = 480.0;
const PLOT_H: f64 = 300.0;
/// Share of the x range added on each side, so end markers show whole.
const X_PAD: f64 = 0.02;
/// Opacity of bands.
const BAND_OPACITY: f64 = 0.22;
/// Series with at most this many points get point markers.
const MAX_MARKED_POINTS: usize = 64;

/// One line of a [`LinePlot`].
///
/// Points where `x` or `y` is NaN or infinite are left out and break the
/// line; likewise for the band.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Series {
    /// The name shown in the legend (no legend entry when empty).
    pub name: String,
    /// X values.
    #[serde(with = "crate::nan_serde::vec")]
    pub x: Vec<f64>,
    /// Y values, one per x.
    #[serde(with = "crate::nan_serde::vec")]
    pub y: Vec<f64>,
    /// A shaded band, `(lower, upper)`, one bound per x: e.g. a 95%
    /// confidence interval.
    #[serde(with = "crate::nan_serde::band")]
    pub band: Option<(Vec<f64>, Vec<f64>)>,
    /// The colour; default from a ten-colour cycle by series index.
    pub color: Option<Rgb>,
}

impl Series {
    /// A series without band, coloured by default.
    pub fn new(name: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            x,
            y,
            band: None,
            color: None,
        }
    }
}

series_methods!(Series, "The series with a band `(lower, upper)`.");

/// A line plot of one or more series, each with an optional band, and a
/// legend on the right for named series.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LinePlot {
    /// The lines, drawn in order (later ones on top).
    pub series: Vec<Series>,
    /// The title; `\n` starts a further, smaller line.
    pub title: String,
    /// The x axis label.
    pub x_label: String,
    /// The y axis label.
    pub y_label: String,
}

fn merge(a: Option<(f64, f64)>, b: Option<(f64, f64)>) -> Option<(f64, f64)> {
    match (a, b) {
        (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Runs of consecutive indices where `ok(i)` holds.
fn runs(n: usize, ok: impl Fn(usize) -> bool) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for i in 0..n {
        if ok(i) {
            cur.push(i);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl LinePlot {
    /// Checks the data and returns the data ranges `((x_lo, x_hi), (y_lo,
    /// y_hi))` over finite points, bands included.
    pub fn data_range(&self) -> Result<((f64, f64), (f64, f64))> {
        if self.series.is_empty() {
            return Err(Error::Empty {
                figure: FIGURE,
                field: "series".into(),
            });
        }
        let mut x_range = None;
        let mut y_range = None;
        for (i, s) in self.series.iter().enumerate() {
            let n = s.x.len();
            if n == 0 {
                return Err(Error::Empty {
                    figure: FIGURE,
                    field: format!("series[{i}].x"),
                });
            }
            if s.y.len() != n {
                return Err(Error::SeriesLength {
                    figure: FIGURE,
                    series: series_name(i, &s.name),
                    field: "y",
                    expected: n,
                    found: s.y.len(),
                });
            }
            let ok = |j: usize| s.x[j].is_finite() && s.y[j].is_finite();
            x_range = merge(
                x_range,
                finite_range((0..n).filter(|&j| ok(j)).map(|j| &s.x[j])),
            );
            y_range = merge(
                y_range,
                finite_range((0..n).filter(|&j| ok(j)).map(|j| &s.y[j])),
            );
            check_band(FIGURE, i, &s.name, s.band.as_ref(), n)?;
            if let Some((lower, upper)) = &s.band {
                for v in [lower, upper] {
                    let in_x = (0..n).filter(|&j| s.x[j].is_finite()).map(|j| &v[j]);
                    y_range = merge(y_range, finite_range(in_x));
                }
            }
        }
        match (x_range, y_range) {
            (Some(x), Some(y)) => Ok((x, y)),
            _ => Err(Error::AllNan {
                figure: FIGURE,
                field: "series[..].x/y".into(),
            }),
        }
    }
}

impl Figure for LinePlot {
    fn to_svg(&self) -> Result<String> {
        let ((x_lo, x_hi), (y_lo, y_hi)) = self.data_range()?;
        let colors = series_colors(&self.series);
        let (x_lo, x_hi) = padded_range(x_lo, x_hi, X_PAD);
        let (y_lo, y_hi) = padded_range(y_lo, y_hi, 0.05);
        let x_ticks = ticks_within(x_lo, x_hi, 7);
        let y_ticks = ticks_within(y_lo, y_hi, 6);
        let x_tick_labels = x_ticks.labels();
        // The last x tick label is centred on the plot's right edge: half of it sticks out.
        let last_tick_overhang = x_tick_labels
            .last()
            .map_or(0.0, |l| text_width(l, TICK_SIZE) / 2.0);
        let text = AxesText::new(
            &self.title,
            &self.x_label,
            &self.y_label,
            series_legend(&self.series, &colors, Swatch::Line),
        );
        let axes = Axes::new(
            text,
            &y_ticks.labels(),
            (PLOT_W, PLOT_H),
            last_tick_overhang,
        );
        let plot = axes.plot;
        let xs = Scale {
            lo: x_lo,
            hi: x_hi,
            px_lo: plot.x,
            px_hi: plot.right(),
        };
        let ys = Scale {
            lo: y_lo,
            hi: y_hi,
            px_lo: plot.bottom(),
            px_hi: plot.y,
        };

        let mut doc = axes.start();
        for &v in &x_ticks.values {
            let x = xs.map(v);
            doc.line(x, plot.y, x, plot.bottom(), GRID_COLOR, 1.0);
        }
        draw_y_ticks(&mut doc, plot, ys, &y_ticks, true);
        // Data, clipped to the plot.
        doc.clip_rect("plot-area", plot.x, plot.y, plot.w, plot.h);
        doc.open_group(r#"clip-path="url(#plot-area)""#);
        // Every band below every line, so no band hides a line.
        for (s, color) in self.series.iter().zip(&colors) {
            draw_band(&mut doc, s, *color, xs, ys);
        }
        for (s, color) in self.series.iter().zip(&colors) {
            draw_line(&mut doc, s, *color, xs, ys);
        }
        doc.close_group();

        let ticks: Vec<(f64, String)> = x_ticks
            .values
            .iter()
            .map(|&v| xs.map(v))
            .zip(x_tick_labels)
            .collect();
        Ok(axes.finish(doc, &ticks))
    }
}

/// Draws the band of `s` (if any), one polygon per run of finite points.
fn draw_band(doc: &mut SvgDoc, s: &Series, color: Rgb, xs: Scale, ys: Scale) {
    let Some((lower, upper)) = &s.band else {
        return;
    };
    let ok = |j: usize| s.x[j].is_finite() && lower[j].is_finite() && upper[j].is_finite();
    for run in runs(s.x.len(), ok) {
        let mut pts: Vec<(f64, f64)> = run
            .iter()
            .map(|&j| (xs.map(s.x[j]), ys.map(upper[j])))
            .collect();
        pts.extend(
            run.iter()
                .rev()
                .map(|&j| (xs.map(s.x[j]), ys.map(lower[j]))),
        );
        doc.polygon(&pts, color, BAND_OPACITY);
    }
}

/// Draws the line of `s`, one polyline per run of finite points, with point markers when
/// it has few points (and for a run of one point, which a polyline cannot show).
fn draw_line(doc: &mut SvgDoc, s: &Series, color: Rgb, xs: Scale, ys: Scale) {
    let ok = |j: usize| s.x[j].is_finite() && s.y[j].is_finite();
    let n_ok = (0..s.x.len()).filter(|&j| ok(j)).count();
    for run in runs(s.x.len(), ok) {
        let pts: Vec<(f64, f64)> = run
            .iter()
            .map(|&j| (xs.map(s.x[j]), ys.map(s.y[j])))
            .collect();
        doc.polyline(&pts, color, 2.0);
        if n_ok <= MAX_MARKED_POINTS || pts.len() == 1 {
            for (x, y) in pts {
                doc.circle(x, y, 2.6, color);
            }
        }
    }
}
