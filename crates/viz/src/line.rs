//! Line plots with optional confidence bands (e.g. average indirect effect
//! per layer, ROME Figure 2).

use serde::{Deserialize, Serialize};

use crate::chrome::{
    draw_x_label, draw_x_ticks, draw_y_ticks, fit_centre, widest, x_axis_height, Area, Legend,
    Scale, Swatch, TitleBlock, AXIS_COLOR, GRID_COLOR, LABEL_SIZE, PAD, TICK_GAP, TICK_LEN,
    TICK_SIZE,
};
use crate::color::{default_series_color, Rgb};
use crate::error::{Error, Result};
use crate::figure::Figure;
use crate::font::text_width;
use crate::label::{clean_text, title_lines};
use crate::svg::{Anchor, SvgDoc, TextStyle};
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

    /// The series with a band `(lower, upper)`.
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
            if let Some((lower, upper)) = &s.band {
                for (bound, v) in [("lower", lower), ("upper", upper)] {
                    if v.len() != n {
                        return Err(Error::BandLength {
                            figure: FIGURE,
                            series: series_name(i, &s.name),
                            bound,
                            expected: n,
                            found: v.len(),
                        });
                    }
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
        let title = TitleBlock::new(title_lines(&self.title));
        let x_label = clean_text(&self.x_label);
        let y_label = clean_text(&self.y_label);
        let colors: Vec<Rgb> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| s.color.unwrap_or_else(|| default_series_color(i)))
            .collect();
        let legend = Legend::new(
            self.series
                .iter()
                .zip(&colors)
                .map(|(s, c)| (clean_text(&s.name), *c))
                .collect(),
            Swatch::Line,
        );

        let (x_lo, x_hi) = padded_range(x_lo, x_hi, X_PAD);
        let (y_lo, y_hi) = padded_range(y_lo, y_hi, 0.05);
        let x_ticks = ticks_within(x_lo, x_hi, 7);
        let y_ticks = ticks_within(y_lo, y_hi, 6);
        let y_tick_labels = y_ticks.labels();
        let x_tick_labels = x_ticks.labels();

        let has_y_label = !y_label.trim().is_empty();
        let left_w = widest(&y_tick_labels, TICK_SIZE)
            + TICK_LEN
            + TICK_GAP
            + if has_y_label {
                LABEL_SIZE * 1.2 + 8.0
            } else {
                0.0
            };
        let last_tick_overhang = x_tick_labels
            .last()
            .map_or(0.0, |l| text_width(l, TICK_SIZE) / 2.0);
        let right_w = legend.width().max(last_tick_overhang);
        let content_w = left_w + PLOT_W + right_w;
        let width = (content_w + 2.0 * PAD)
            .max(title.width() + 2.0 * PAD)
            .ceil();
        let offset = ((width - content_w) / 2.0).floor();
        let plot = Area {
            x: (offset + left_w).round(),
            y: (PAD + title.height()).round(),
            w: PLOT_W,
            h: PLOT_H,
        };
        let height = (plot.bottom() + x_axis_height(!x_label.trim().is_empty()))
            .max(plot.y + legend.height())
            + PAD;
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

        let mut doc = SvgDoc::new(width, height);
        title.draw(
            &mut doc,
            fit_centre(plot.centre_x(), title.width(), width),
            PAD,
        );
        for &v in &x_ticks.values {
            let x = xs.map(v);
            doc.line(x, plot.y, x, plot.bottom(), GRID_COLOR, 1.0);
        }
        draw_y_ticks(&mut doc, plot, ys, &y_ticks, true);

        // Data, clipped to the plot.
        doc.clip_rect("plot-area", plot.x, plot.y, plot.w, plot.h);
        doc.open_group(r#"clip-path="url(#plot-area)""#);
        for (s, color) in self.series.iter().zip(&colors) {
            if let Some((lower, upper)) = &s.band {
                let ok =
                    |j: usize| s.x[j].is_finite() && lower[j].is_finite() && upper[j].is_finite();
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
                    doc.polygon(&pts, *color, BAND_OPACITY);
                }
            }
        }
        for (s, color) in self.series.iter().zip(&colors) {
            let ok = |j: usize| s.x[j].is_finite() && s.y[j].is_finite();
            let n_ok = (0..s.x.len()).filter(|&j| ok(j)).count();
            for run in runs(s.x.len(), ok) {
                let pts: Vec<(f64, f64)> = run
                    .iter()
                    .map(|&j| (xs.map(s.x[j]), ys.map(s.y[j])))
                    .collect();
                doc.polyline(&pts, *color, 2.0);
                if n_ok <= MAX_MARKED_POINTS || pts.len() == 1 {
                    for (x, y) in pts {
                        doc.circle(x, y, 2.6, *color);
                    }
                }
            }
        }
        doc.close_group();
        doc.rect_paint(
            plot.x,
            plot.y,
            plot.w,
            plot.h,
            "none",
            Some((AXIS_COLOR, 1.0)),
        );

        let ticks: Vec<(f64, String)> = x_ticks
            .values
            .iter()
            .map(|&v| xs.map(v))
            .zip(x_tick_labels)
            .collect();
        draw_x_ticks(&mut doc, plot, &ticks);
        if !x_label.trim().is_empty() {
            let w = text_width(&x_label, LABEL_SIZE);
            draw_x_label(
                &mut doc,
                fit_centre(plot.centre_x(), w, width),
                plot,
                &x_label,
            );
        }
        if has_y_label {
            doc.text(
                plot.x - left_w + LABEL_SIZE * 0.6,
                plot.centre_y(),
                &y_label,
                TextStyle::new(LABEL_SIZE, Anchor::Middle).vertical(),
            );
        }
        legend.draw(&mut doc, plot.right(), plot.y);
        Ok(doc.finish())
    }
}
