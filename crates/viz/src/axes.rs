//! The chrome line and bar plots share: the title above the plot, a numeric y axis and its
//! label on the left, a legend on the right, x ticks and the x label below.

use crate::chrome::{
    content_area, draw_centred_x_label, draw_frame, draw_x_ticks, page_width, start_page, widest,
    x_axis_height, Area, Legend, TitleBlock, LABEL_SIZE, PAD, TICK_GAP, TICK_LEN, TICK_SIZE,
};
use crate::label::{clean_text, title_lines};
use crate::svg::{Anchor, SvgDoc, TextStyle};

/// The texts around a plot: title, axis labels and legend.
pub(crate) struct AxesText {
    title: TitleBlock,
    x_label: String,
    y_label: String,
    legend: Legend,
}

impl AxesText {
    /// The texts cleaned for drawing (the title split into lines).
    pub fn new(title: &str, x_label: &str, y_label: &str, legend: Legend) -> Self {
        Self {
            title: TitleBlock::new(title_lines(title)),
            x_label: clean_text(x_label),
            y_label: clean_text(y_label),
            legend,
        }
    }
}

/// Where everything of a line or bar plot goes, and the drawing of its chrome.
pub(crate) struct Axes {
    text: AxesText,
    /// Width left of the plot: y tick labels, ticks and the y label.
    left_w: f64,
    /// The page's width.
    width: f64,
    /// The page's height.
    height: f64,
    /// The plotting area.
    pub plot: Area,
}

impl Axes {
    /// Lays out a plot of `plot_size` (width, height) with y tick labels `y_tick_labels`,
    /// and at least `right_min` on its right (what sticks out of it), centred on the page.
    pub fn new(
        text: AxesText,
        y_tick_labels: &[String],
        plot_size: (f64, f64),
        right_min: f64,
    ) -> Self {
        let y_label_w = if text.y_label.trim().is_empty() {
            0.0
        } else {
            LABEL_SIZE * 1.2 + 8.0
        };
        let left_w = widest(y_tick_labels, TICK_SIZE) + TICK_LEN + TICK_GAP + y_label_w;
        let right_w = text.legend.width().max(right_min);
        let content_w = left_w + plot_size.0 + right_w;
        let width = page_width(content_w, &text.title, 0.0);
        let plot = content_area(width, content_w, left_w, &text.title, plot_size);
        let height = (plot.bottom() + x_axis_height(!text.x_label.trim().is_empty()))
            .max(plot.y + text.legend.height())
            + PAD;
        Self {
            text,
            left_w,
            width,
            height,
            plot,
        }
    }

    /// The page with its title drawn.
    pub fn start(&self) -> SvgDoc {
        start_page(
            self.width,
            self.height,
            &self.text.title,
            self.plot.centre_x(),
        )
    }

    /// Draws the frame, the x `ticks` (page x, label), the axis labels and the legend over
    /// what `doc` holds, and returns the finished SVG.
    pub fn finish(&self, mut doc: SvgDoc, ticks: &[(f64, String)]) -> String {
        let plot = self.plot;
        draw_frame(&mut doc, plot);
        draw_x_ticks(&mut doc, plot, ticks);
        draw_centred_x_label(&mut doc, plot, self.width, &self.text.x_label);
        if !self.text.y_label.trim().is_empty() {
            doc.text(
                plot.x - self.left_w + LABEL_SIZE * 0.6,
                plot.centre_y(),
                &self.text.y_label,
                TextStyle::new(LABEL_SIZE, Anchor::Middle).vertical(),
            );
        }
        self.text.legend.draw(&mut doc, plot.right(), plot.y);
        doc.finish()
    }
}
