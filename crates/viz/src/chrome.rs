//! What figures share around their data: sizes, titles, axes, ticks and
//! legends.

use crate::color::Rgb;
use crate::font::text_width;
use crate::svg::{Anchor, SvgDoc, TextStyle};
use crate::ticks::Ticks;

/// Font size of a title's first line.
pub(crate) const TITLE_SIZE: f64 = 15.0;
/// Font size of a title's further lines.
pub(crate) const SUBTITLE_SIZE: f64 = 13.0;
/// Font size of axis and colour-bar labels.
pub(crate) const LABEL_SIZE: f64 = 13.0;
/// Font size of tick labels.
pub(crate) const TICK_SIZE: f64 = 11.5;
/// Font size of legend entries.
pub(crate) const LEGEND_SIZE: f64 = 12.0;
/// Outer margin of every figure.
pub(crate) const PAD: f64 = 14.0;
/// Length of tick marks.
pub(crate) const TICK_LEN: f64 = 4.0;
/// Gap between a tick mark and its label.
pub(crate) const TICK_GAP: f64 = 3.0;
/// Line height, as a multiple of the font size.
pub(crate) const LINE_HEIGHT: f64 = 1.3;
/// Colour of frames and tick marks.
pub(crate) const AXIS_COLOR: Rgb = Rgb::from_hex(0x333333);
/// Colour of grid lines.
pub(crate) const GRID_COLOR: Rgb = Rgb::from_hex(0xe5e5e5);

/// The block of title lines at the top of a figure.
pub(crate) struct TitleBlock {
    lines: Vec<String>,
}

impl TitleBlock {
    pub fn new(lines: Vec<String>) -> Self {
        Self { lines }
    }

    fn size(i: usize) -> f64 {
        if i == 0 {
            TITLE_SIZE
        } else {
            SUBTITLE_SIZE
        }
    }

    /// Height taken, including the gap below it.
    pub fn height(&self) -> f64 {
        if self.lines.is_empty() {
            return 0.0;
        }
        let lines: f64 = (0..self.lines.len())
            .map(|i| Self::size(i) * LINE_HEIGHT)
            .sum();
        lines + 8.0
    }

    /// Width of the widest line.
    pub fn width(&self) -> f64 {
        self.lines
            .iter()
            .enumerate()
            .map(|(i, l)| text_width(l, Self::size(i)))
            .fold(0.0, f64::max)
    }

    /// Draws the lines centred on `centre_x`, starting at `top`.
    pub fn draw(&self, doc: &mut SvgDoc, centre_x: f64, top: f64) {
        let mut y = top;
        for (i, line) in self.lines.iter().enumerate() {
            let h = Self::size(i) * LINE_HEIGHT;
            doc.text(
                centre_x,
                y + h / 2.0,
                line,
                TextStyle::new(Self::size(i), Anchor::Middle),
            );
            y += h;
        }
    }
}

/// A centre `x` near `want` such that a text `width` wide stays inside
/// `[PAD, figure_width - PAD]`.
pub(crate) fn fit_centre(want: f64, width: f64, figure_width: f64) -> f64 {
    let half = width / 2.0;
    let lo = PAD + half;
    let hi = figure_width - PAD - half;
    if lo > hi {
        figure_width / 2.0
    } else {
        want.clamp(lo, hi)
    }
}

/// A rectangle on the page: the plotting area of a figure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Area {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Area {
    pub fn right(&self) -> f64 {
        self.x + self.w
    }
    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }
    pub fn centre_x(&self) -> f64 {
        self.x + self.w / 2.0
    }
    pub fn centre_y(&self) -> f64 {
        self.y + self.h / 2.0
    }
}

/// A linear map from data values to page coordinates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    pub lo: f64,
    pub hi: f64,
    pub px_lo: f64,
    pub px_hi: f64,
}

impl Scale {
    pub fn map(&self, v: f64) -> f64 {
        let span = self.hi - self.lo;
        let t = if span > 0.0 {
            (v - self.lo) / span
        } else {
            0.5
        };
        self.px_lo + t * (self.px_hi - self.px_lo)
    }
}

/// Width of the widest tick label.
pub(crate) fn widest(labels: &[String], size: f64) -> f64 {
    labels
        .iter()
        .map(|l| text_width(l, size))
        .fold(0.0, f64::max)
}

/// Draws a numeric y axis on the left of `area`: grid lines across it (if
/// `grid`), tick marks and labels.
pub(crate) fn draw_y_ticks(doc: &mut SvgDoc, area: Area, scale: Scale, ticks: &Ticks, grid: bool) {
    for (v, label) in ticks.values.iter().zip(ticks.labels()) {
        let y = scale.map(*v);
        if grid {
            doc.line(area.x, y, area.right(), y, GRID_COLOR, 1.0);
        }
        doc.line(area.x - TICK_LEN, y, area.x, y, AXIS_COLOR, 1.0);
        doc.text(
            area.x - TICK_LEN - TICK_GAP,
            y,
            &label,
            TextStyle::new(TICK_SIZE, Anchor::End),
        );
    }
}

/// Draws tick marks and labels below `area` at the given page `x`s.
pub(crate) fn draw_x_ticks(doc: &mut SvgDoc, area: Area, ticks: &[(f64, String)]) {
    for (x, label) in ticks {
        doc.line(
            *x,
            area.bottom(),
            *x,
            area.bottom() + TICK_LEN,
            AXIS_COLOR,
            1.0,
        );
        doc.text(
            *x,
            area.bottom() + TICK_LEN + TICK_GAP + TICK_SIZE * 0.6,
            label,
            TextStyle::new(TICK_SIZE, Anchor::Middle),
        );
    }
}

/// Height taken below an area by x tick labels and an x label.
pub(crate) fn x_axis_height(has_label: bool) -> f64 {
    let ticks = TICK_LEN + TICK_GAP + TICK_SIZE * 1.2;
    if has_label {
        ticks + 6.0 + LABEL_SIZE * LINE_HEIGHT
    } else {
        ticks
    }
}

/// Draws the x label centred under the tick labels of `area`.
pub(crate) fn draw_x_label(doc: &mut SvgDoc, centre_x: f64, area: Area, label: &str) {
    let y = area.bottom() + TICK_LEN + TICK_GAP + TICK_SIZE * 1.2 + 6.0 + LABEL_SIZE * 0.65;
    doc.text(
        centre_x,
        y,
        label,
        TextStyle::new(LABEL_SIZE, Anchor::Middle),
    );
}

/// How a legend entry shows its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Swatch {
    /// A short line (line plots).
    Line,
    /// A filled square (bar plots).
    Square,
}

/// A legend to the right of a plot: one entry a line.
pub(crate) struct Legend {
    entries: Vec<(String, Rgb)>,
    swatch: Swatch,
}

const SWATCH_W: f64 = 22.0;
const SWATCH_GAP: f64 = 6.0;

impl Legend {
    /// A legend of the named entries (entries with an empty name are left out).
    pub fn new(entries: Vec<(String, Rgb)>, swatch: Swatch) -> Self {
        let entries = entries
            .into_iter()
            .filter(|(n, _)| !n.trim().is_empty())
            .collect();
        Self { entries, swatch }
    }

    /// Width taken, including the gap before it (0 when empty).
    pub fn width(&self) -> f64 {
        if self.entries.is_empty() {
            return 0.0;
        }
        let names = self
            .entries
            .iter()
            .map(|(n, _)| text_width(n, LEGEND_SIZE))
            .fold(0.0, f64::max);
        16.0 + SWATCH_W + SWATCH_GAP + names
    }

    /// Height taken.
    pub fn height(&self) -> f64 {
        self.entries.len() as f64 * LEGEND_SIZE * 1.6
    }

    /// Draws the legend with its top left corner after the gap at `(x, y)`.
    pub fn draw(&self, doc: &mut SvgDoc, x: f64, y: f64) {
        let x = x + 16.0;
        let row = LEGEND_SIZE * 1.6;
        for (i, (name, color)) in self.entries.iter().enumerate() {
            let cy = y + row * (i as f64 + 0.5);
            match self.swatch {
                Swatch::Line => {
                    doc.line(x, cy, x + SWATCH_W, cy, *color, 2.5);
                }
                Swatch::Square => {
                    let s = LEGEND_SIZE;
                    doc.rect(x + (SWATCH_W - s) / 2.0, cy - s / 2.0, s, s, *color, None);
                }
            }
            doc.text(
                x + SWATCH_W + SWATCH_GAP,
                cy,
                name,
                TextStyle::new(LEGEND_SIZE, Anchor::Start),
            );
        }
    }
}

/// Width of a page holding `content_w` of content, the `title` and at least `min_width`:
/// the widest of them plus the margins, rounded up to a whole pixel.
pub(crate) fn page_width(content_w: f64, title: &TitleBlock, min_width: f64) -> f64 {
    (content_w + 2.0 * PAD)
        .max(title.width() + 2.0 * PAD)
        .max(min_width)
        .ceil()
}

/// The `w` × `h` area of content `content_w` wide centred on a page `width` wide, `left_w`
/// right of the content's left edge, below the title. Whole pixels, so frames stay sharp.
pub(crate) fn content_area(
    width: f64,
    content_w: f64,
    left_w: f64,
    title: &TitleBlock,
    size: (f64, f64),
) -> Area {
    let offset = ((width - content_w) / 2.0).floor();
    Area {
        x: (offset + left_w).round(),
        y: (PAD + title.height()).round(),
        w: size.0,
        h: size.1,
    }
}

/// A page `width` × `height` with `title` drawn at the top, centred over `centre_x` as far
/// as the page allows.
pub(crate) fn start_page(width: f64, height: f64, title: &TitleBlock, centre_x: f64) -> SvgDoc {
    let mut doc = SvgDoc::new(width, height);
    title.draw(&mut doc, fit_centre(centre_x, title.width(), width), PAD);
    doc
}

/// Draws the frame around `area`.
pub(crate) fn draw_frame(doc: &mut SvgDoc, area: Area) {
    doc.rect_paint(
        area.x,
        area.y,
        area.w,
        area.h,
        "none",
        Some((AXIS_COLOR, 1.0)),
    );
}

/// Draws `label` (unless blank) under the x tick labels of `area`, centred on it as far as
/// a page `width` wide allows.
pub(crate) fn draw_centred_x_label(doc: &mut SvgDoc, area: Area, width: f64, label: &str) {
    if label.trim().is_empty() {
        return;
    }
    let w = text_width(label, LABEL_SIZE);
    draw_x_label(doc, fit_centre(area.centre_x(), w, width), area, label);
}

/// The steps between labelled categories tried, smallest first.
const LABEL_STEPS: [usize; 10] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

/// The smallest step of at least `start` at which labels `widest` wide, one every step of
/// slots `slot_w` wide, keep a gap between them; `None` when no step tried is wide enough.
pub(crate) fn label_step(start: usize, slot_w: f64, widest: f64) -> Option<usize> {
    LABEL_STEPS
        .into_iter()
        .filter(|&s| s >= start)
        .find(|&s| s as f64 * slot_w >= widest + 6.0)
}
