//! Grouped bar plots: per category (e.g. layer), one bar per series side by
//! side, e.g. the effect of a restored state as is, with the MLP severed and
//! with attention severed (ROME Figure 7).

use serde::{Deserialize, Serialize};

use crate::chrome::{
    draw_x_label, draw_x_ticks, draw_y_ticks, fit_centre, widest, x_axis_height, Area, Legend,
    Scale, Swatch, TitleBlock, AXIS_COLOR, LABEL_SIZE, PAD, TICK_GAP, TICK_LEN, TICK_SIZE,
};
use crate::color::{default_series_color, Rgb};
use crate::error::{Error, Result};
use crate::figure::Figure;
use crate::font::text_width;
use crate::label::{clean_text, title_lines};
use crate::line::{finite_range, series_name};
use crate::svg::{Anchor, SvgDoc, TextStyle};
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

    /// The series with error bars `(lower, upper)`.
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
                    widen(finite_range(v));
                }
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
        let n = self.categories.len();
        let k = self.series.len();
        let title = TitleBlock::new(title_lines(&self.title));
        let x_label = clean_text(&self.x_label);
        let y_label = clean_text(&self.y_label);
        let categories: Vec<String> = self.categories.iter().map(|c| clean_text(c)).collect();
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
            Swatch::Square,
        );

        // Y range: 5% headroom away from zero on the sides with data.
        let span = if hi > lo { hi - lo } else { 1.0 };
        let y_hi = if hi > 0.0 || lo >= 0.0 {
            hi + 0.05 * span
        } else {
            0.0
        };
        let y_lo = if lo < 0.0 { lo - 0.05 * span } else { 0.0 };
        let y_ticks = ticks_within(y_lo, y_hi, 6);
        let y_tick_labels = y_ticks.labels();

        // Group sizes and which categories get a label.
        let group_w = (TARGET_PLOT_W / n as f64)
            .clamp(k as f64 * 4.0 + 4.0, MAX_GROUP_W)
            .max(MIN_PLOT_W / n as f64);
        let plot_w = group_w * n as f64;
        let bar_w = group_w * FILL / k as f64;
        let widest_cat = widest(&categories, TICK_SIZE);
        let step = [1usize, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
            .into_iter()
            .find(|&s| s as f64 * group_w >= widest_cat + 6.0)
            .unwrap_or(n.max(1));

        let has_y_label = !y_label.trim().is_empty();
        let left_w = widest(&y_tick_labels, TICK_SIZE)
            + TICK_LEN
            + TICK_GAP
            + if has_y_label {
                LABEL_SIZE * 1.2 + 8.0
            } else {
                0.0
            };
        let right_w = legend.width().max(widest_cat / 2.0);
        let content_w = left_w + plot_w + right_w;
        let width = (content_w + 2.0 * PAD)
            .max(title.width() + 2.0 * PAD)
            .ceil();
        let offset = ((width - content_w) / 2.0).floor();
        let plot = Area {
            x: (offset + left_w).round(),
            y: (PAD + title.height()).round(),
            w: plot_w,
            h: PLOT_H,
        };
        let height = (plot.bottom() + x_axis_height(!x_label.trim().is_empty()))
            .max(plot.y + legend.height())
            + PAD;
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
        draw_y_ticks(&mut doc, plot, ys, &y_ticks, true);

        let zero = ys.map(0.0);
        for (si, (s, color)) in self.series.iter().zip(&colors).enumerate() {
            for (ci, &v) in s.values.iter().enumerate() {
                let x =
                    plot.x + ci as f64 * group_w + group_w * (1.0 - FILL) / 2.0 + si as f64 * bar_w;
                if v.is_finite() {
                    let y = ys.map(v);
                    doc.rect(x, y.min(zero), bar_w, (y - zero).abs(), *color, None);
                }
                if let Some((lower, upper)) = &s.band {
                    let (l, u) = (lower[ci], upper[ci]);
                    if l.is_finite() && u.is_finite() {
                        let cx = x + bar_w / 2.0;
                        let cap = (bar_w * 0.3).clamp(1.5, 6.0);
                        let (yl, yu) = (ys.map(l), ys.map(u));
                        doc.line(cx, yl, cx, yu, ERROR_BAR_COLOR, 1.0);
                        doc.line(cx - cap, yl, cx + cap, yl, ERROR_BAR_COLOR, 1.0);
                        doc.line(cx - cap, yu, cx + cap, yu, ERROR_BAR_COLOR, 1.0);
                    }
                }
            }
        }
        if y_lo < 0.0 {
            doc.line(plot.x, zero, plot.right(), zero, AXIS_COLOR, 1.0);
        }
        doc.rect_paint(
            plot.x,
            plot.y,
            plot.w,
            plot.h,
            "none",
            Some((AXIS_COLOR, 1.0)),
        );

        let ticks: Vec<(f64, String)> = (0..n)
            .step_by(step)
            .map(|c| (plot.x + (c as f64 + 0.5) * group_w, categories[c].clone()))
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
