//! Heatmaps of causal traces: tokens down, layers across (ROME Figure 1).

use serde::{Deserialize, Serialize};

use crate::chrome::{
    content_area, draw_centred_x_label, draw_frame, draw_x_ticks, label_step, page_width,
    start_page, widest, x_axis_height, Area, TitleBlock, AXIS_COLOR, LABEL_SIZE, PAD, TICK_GAP,
    TICK_LEN, TICK_SIZE,
};
use crate::color::{Palette, Rgb, MISSING_COLOR};
use crate::error::{Error, Result};
use crate::figure::Figure;
use crate::font::text_width;
use crate::label::{clean_text, title_lines, token_label};
use crate::svg::{Anchor, SvgDoc, TextStyle};
use crate::ticks::{ticks_within, Ticks};

const FIGURE: &str = "heatmap";
/// Width of one cell, unless the grid would be narrower than [`MIN_GRID_W`].
const CELL_W: f64 = 16.0;
/// Height of one cell (one token), unless the grid would be lower than the
/// colour bar needs.
const CELL_H: f64 = 20.0;
/// Narrowest grid: few columns get wider cells.
const MIN_GRID_W: f64 = 200.0;
/// Font size of the token labels.
const ROW_LABEL_SIZE: f64 = 12.5;
/// Gap between the grid and the colour bar.
const BAR_GAP: f64 = 18.0;
/// Width of the colour bar.
const BAR_W: f64 = 14.0;
/// Outline of marked cells: a saturated orange that stands out on every palette.
const MARK_COLOR: Rgb = Rgb {
    r: 230,
    g: 97,
    b: 1,
};
/// Shortest colour bar (and so grid): few rows get taller cells.
const BAR_MIN_H: f64 = 120.0;

/// A heatmap of one causal trace: one row per token (first token at the
/// top), one column per layer, one coloured cell per value, with a colour
/// bar on the right.
///
/// `title` may hold several lines separated by `\n`; lines after the first
/// are drawn smaller (e.g. `answer " Paris" (p=0.70)`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Heatmap {
    /// Values, rows × columns (tokens × layers). NaN or infinite values are
    /// drawn grey. (Serialised with NaN as `null`.)
    #[serde(with = "crate::nan_serde::matrix")]
    pub values: Vec<Vec<f64>>,
    /// One label per row: the token texts, shown through [`token_label`]
    /// (so `"\n"` shows as `\n` and a lone space as `␣`).
    pub row_labels: Vec<String>,
    /// One label per column (e.g. layer numbers), or empty for `0, 1, 2, …`.
    /// Every column is labelled when there are at most 10, else every 5th
    /// (or fewer, so labels never overlap).
    pub col_labels: Vec<String>,
    /// Rows whose label gets a `*` appended: the subject's tokens.
    pub starred_rows: Vec<usize>,
    /// Cells `(row, column)` drawn with an orange outline (e.g. the top heads of a head scan).
    pub marked_cells: Vec<(usize, usize)>,
    /// The title; `\n` starts a further, smaller line.
    pub title: String,
    /// The x axis label, e.g. `single restored layer within SmolLM2`.
    pub x_label: String,
    /// The colour bar's label, e.g. `p( Paris)`.
    pub colorbar_label: String,
    /// The colour map.
    pub palette: Palette,
    /// The value drawn lightest; default the smallest finite value (ROME
    /// passes the corrupted run's score here).
    pub vmin: Option<f64>,
    /// The value drawn darkest; default the largest finite value.
    pub vmax: Option<f64>,
    /// Values marked on the colour bar by a dark line across it (e.g. the clean run's
    /// score, which restorations approach); values outside the colour range are not drawn.
    /// Say what the line means in the title.
    pub bar_marks: Vec<f64>,
}

impl Heatmap {
    /// A heatmap of `values` with one label per row, and defaults elsewhere.
    pub fn new(values: Vec<Vec<f64>>, row_labels: Vec<String>) -> Self {
        Self {
            values,
            row_labels,
            ..Self::default()
        }
    }

    /// Checks the data and returns the colour range `(vmin, vmax)` used.
    pub fn color_range(&self) -> Result<(f64, f64)> {
        let rows = self.values.len();
        let cols = self.values.first().map_or(0, Vec::len);
        if rows == 0 || cols == 0 {
            return Err(Error::Empty {
                figure: FIGURE,
                field: "values".into(),
            });
        }
        if let Some((row, r)) = self
            .values
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != cols)
        {
            return Err(Error::RaggedRows {
                row,
                expected: cols,
                found: r.len(),
            });
        }
        if self.row_labels.len() != rows {
            return Err(Error::LabelCount {
                figure: FIGURE,
                field: "row_labels",
                expected: rows,
                found: self.row_labels.len(),
            });
        }
        if !self.col_labels.is_empty() && self.col_labels.len() != cols {
            return Err(Error::LabelCount {
                figure: FIGURE,
                field: "col_labels",
                expected: cols,
                found: self.col_labels.len(),
            });
        }
        if let Some(&row) = self.starred_rows.iter().find(|&&r| r >= rows) {
            return Err(Error::StarredRowOutOfRange { row, rows });
        }
        if let Some(&(row, col)) = self
            .marked_cells
            .iter()
            .find(|&&(r, c)| r >= rows || c >= cols)
        {
            return Err(Error::MarkedCellOutOfRange {
                row,
                col,
                rows,
                cols,
            });
        }
        let finite = self
            .values
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if lo > hi {
            return Err(Error::AllNan {
                figure: FIGURE,
                field: "values".into(),
            });
        }
        let (vmin, vmax) = match (self.vmin, self.vmax) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) => (a, if hi > a { hi } else { a + span_pad(a) }),
            (None, Some(b)) => (if lo < b { lo } else { b - span_pad(b) }, b),
            (None, None) if hi > lo => (lo, hi),
            (None, None) => (lo - span_pad(lo), hi + span_pad(hi)),
        };
        if !(vmin.is_finite() && vmax.is_finite() && vmin < vmax) {
            return Err(Error::InvalidRange { vmin, vmax });
        }
        Ok((vmin, vmax))
    }

    /// The labels drawn for the rows: token texts made visible, starred rows
    /// with `*` appended.
    pub fn display_row_labels(&self) -> Vec<String> {
        self.row_labels
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut l = token_label(t);
                if self.starred_rows.contains(&i) {
                    l.push('*');
                }
                l
            })
            .collect()
    }

    fn col_label(&self, i: usize) -> String {
        self.col_labels
            .get(i)
            .map_or_else(|| i.to_string(), |l| clean_text(l))
    }

    /// Which columns get a tick label: every one up to 10 columns, else every
    /// 5th, or a wider step if labels would overlap.
    fn col_tick_step(&self, cols: usize, cell_w: f64) -> usize {
        let widest_label = (0..cols)
            .map(|i| text_width(&self.col_label(i), TICK_SIZE))
            .fold(0.0, f64::max);
        let start = if cols <= 10 { 1 } else { 5 };
        // Past the widest step tried, labels may overlap: columns are then too many to read.
        label_step(start, cell_w, widest_label).unwrap_or(1000)
    }
}

/// How much to widen a one-value colour range on each side.
fn span_pad(v: f64) -> f64 {
    if v == 0.0 {
        1.0
    } else {
        v.abs() * 0.1
    }
}

impl Figure for Heatmap {
    fn to_svg(&self) -> Result<String> {
        let (vmin, vmax) = self.color_range()?;
        let layout = Layout::new(self, vmin, vmax);
        let grid = layout.grid;
        let mut doc = start_page(layout.width, layout.height, &layout.title, grid.centre_x());
        self.draw_cells(&mut doc, &layout, (vmin, vmax));
        self.draw_marks(&mut doc, &layout);
        draw_frame(&mut doc, grid);
        // Row labels (tokens) with tick marks.
        for (r, label) in layout.row_labels.iter().enumerate() {
            let y = grid.y + (r as f64 + 0.5) * layout.cell_h;
            doc.line(grid.x - TICK_LEN, y, grid.x, y, AXIS_COLOR, 1.0);
            doc.text(
                grid.x - TICK_LEN - TICK_GAP,
                y,
                label,
                TextStyle::new(ROW_LABEL_SIZE, Anchor::End),
            );
        }
        let cols = self.values.first().map_or(0, Vec::len);
        let step = self.col_tick_step(cols, layout.cell_w);
        let x_ticks: Vec<(f64, String)> = (0..cols)
            .step_by(step)
            .map(|c| (grid.x + (c as f64 + 0.5) * layout.cell_w, self.col_label(c)))
            .collect();
        draw_x_ticks(&mut doc, grid, &x_ticks);
        draw_centred_x_label(&mut doc, grid, layout.width, &layout.x_label);
        self.draw_colorbar(&mut doc, &layout, (vmin, vmax));
        Ok(doc.finish())
    }
}

/// Where everything of a heatmap goes, and the texts it draws.
struct Layout {
    title: TitleBlock,
    row_labels: Vec<String>,
    x_label: String,
    bar_label: String,
    /// The colour bar's ticks and their labels.
    bar_ticks: (Ticks, Vec<String>),
    cell_w: f64,
    cell_h: f64,
    /// The cells.
    grid: Area,
    /// The colour bar, as tall as the grid.
    bar: Area,
    width: f64,
    height: f64,
}

impl Layout {
    /// Sizes `map`'s cells so that the colour bar (colour range `vmin..vmax`) gets its
    /// height and its label fits beside it, and centres grid and bar on the page.
    fn new(map: &Heatmap, vmin: f64, vmax: f64) -> Self {
        let rows = map.values.len();
        let cols = map.values.first().map_or(0, Vec::len);
        let title = TitleBlock::new(title_lines(&map.title));
        let row_labels = map.display_row_labels();
        let x_label = clean_text(&map.x_label);
        let bar_label = clean_text(&map.colorbar_label);

        let cell_w = CELL_W.max(MIN_GRID_W / cols as f64).round();
        let bar_label_w = text_width(&bar_label, LABEL_SIZE);
        let cell_h = CELL_H
            .max(BAR_MIN_H / rows as f64)
            .max((bar_label_w + 10.0) / rows as f64)
            .ceil();
        let grid_w = cols as f64 * cell_w;
        let grid_h = rows as f64 * cell_h;
        let bar_ticks = ticks_within(vmin, vmax, (grid_h / 35.0).clamp(3.0, 6.0) as usize);
        let bar_tick_labels = bar_ticks.labels();

        let left_w = widest(&row_labels, ROW_LABEL_SIZE) + TICK_LEN + TICK_GAP;
        let right_w = BAR_GAP
            + BAR_W
            + TICK_LEN
            + TICK_GAP
            + widest(&bar_tick_labels, TICK_SIZE)
            + if bar_label.trim().is_empty() {
                0.0
            } else {
                8.0 + LABEL_SIZE * 1.2
            };
        let content_w = left_w + grid_w + right_w;
        let width = page_width(
            content_w,
            &title,
            text_width(&x_label, LABEL_SIZE) + 2.0 * PAD,
        );
        let grid = content_area(width, content_w, left_w, &title, (grid_w, grid_h));
        let bar = Area {
            x: grid.right() + BAR_GAP,
            y: grid.y,
            w: BAR_W,
            h: grid_h,
        };
        let height = grid.bottom() + x_axis_height(!x_label.trim().is_empty()) + PAD;
        Self {
            title,
            row_labels,
            x_label,
            bar_label,
            bar_ticks: (bar_ticks, bar_tick_labels),
            cell_w,
            cell_h,
            grid,
            bar,
            width,
            height,
        }
    }
}

impl Heatmap {
    /// Draws one cell per value, coloured by `range`; non-finite values grey.
    fn draw_cells(&self, doc: &mut SvgDoc, layout: &Layout, (vmin, vmax): (f64, f64)) {
        let (grid, cell_w, cell_h) = (layout.grid, layout.cell_w, layout.cell_h);
        doc.open_group(r#"shape-rendering="crispEdges""#);
        for (r, row) in self.values.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let color = if v.is_finite() {
                    self.palette.color_at((v - vmin) / (vmax - vmin))
                } else {
                    MISSING_COLOR
                };
                doc.rect(
                    grid.x + c as f64 * cell_w,
                    grid.y + r as f64 * cell_h,
                    cell_w,
                    cell_h,
                    color,
                    None,
                );
            }
        }
        doc.close_group();
    }

    /// Outlines the marked cells, inset by half the outline's width so that neighbours'
    /// marks stay apart.
    fn draw_marks(&self, doc: &mut SvgDoc, layout: &Layout) {
        let (grid, cell_w, cell_h) = (layout.grid, layout.cell_w, layout.cell_h);
        for &(r, c) in &self.marked_cells {
            let w = (cell_w.min(cell_h) / 6.0).clamp(1.0, 2.5);
            doc.rect_paint(
                grid.x + c as f64 * cell_w + w / 2.0,
                grid.y + r as f64 * cell_h + w / 2.0,
                cell_w - w,
                cell_h - w,
                "none",
                Some((MARK_COLOR, w)),
            );
        }
    }

    /// Draws the colour bar for colour range `range`: the gradient, the bar marks within
    /// it, the ticks and the label.
    fn draw_colorbar(&self, doc: &mut SvgDoc, layout: &Layout, (vmin, vmax): (f64, f64)) {
        let bar = layout.bar;
        let (bar_ticks, bar_tick_labels) = &layout.bar_ticks;
        doc.vertical_gradient("colorbar", &self.palette.stops());
        doc.rect_paint(
            bar.x,
            bar.y,
            bar.w,
            bar.h,
            "url(#colorbar)",
            Some((AXIS_COLOR, 1.0)),
        );
        let to_y = |v: f64| bar.bottom() - (v - vmin) / (vmax - vmin) * bar.h;
        for &v in self
            .bar_marks
            .iter()
            .filter(|v| v.is_finite() && **v >= vmin && **v <= vmax)
        {
            let y = to_y(v);
            doc.line(bar.x - TICK_LEN, y, bar.right(), y, AXIS_COLOR, 2.0);
        }
        for (v, label) in bar_ticks.values.iter().zip(bar_tick_labels) {
            let y = to_y(*v);
            doc.line(bar.right(), y, bar.right() + TICK_LEN, y, AXIS_COLOR, 1.0);
            doc.text(
                bar.right() + TICK_LEN + TICK_GAP,
                y,
                label,
                TextStyle::new(TICK_SIZE, Anchor::Start),
            );
        }
        if !layout.bar_label.trim().is_empty() {
            let x = bar.right()
                + TICK_LEN
                + TICK_GAP
                + widest(bar_tick_labels, TICK_SIZE)
                + 8.0
                + LABEL_SIZE * 0.5;
            doc.text(
                x,
                bar.centre_y(),
                &layout.bar_label,
                TextStyle::new(LABEL_SIZE, Anchor::Middle).vertical(),
            );
        }
    }
}
