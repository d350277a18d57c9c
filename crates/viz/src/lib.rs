//! Figures of causal tracing, as in Meng et al. 2022, "Locating and Editing
//! Factual Associations in GPT" (ROME): heatmaps of restored states (Figure
//! 1), line plots with confidence bands (Figure 2) and grouped bar plots of
//! "severed" comparisons (Figure 7), as SVG or PNG.
//!
//! No ML dependency and no system font: the figures are written as SVG by
//! this crate, and PNGs are that SVG rasterised by `resvg` with the DejaVu
//! Sans font embedded in the binary (from the `dejavu` crate), so text
//! renders the same on a bare machine.
//!
//! Every figure implements [`Figure`]: [`Figure::to_svg`],
//! [`Figure::to_png`] and [`Figure::save`] (format by extension, written
//! atomically). Data is checked first; problems come back as an [`Error`]
//! naming the field, never a panic.
//!
//! # Example
//!
//! ```
//! use viz::{Figure, Heatmap, Palette};
//!
//! # fn main() -> viz::Result<()> {
//! let map = Heatmap {
//!     values: vec![vec![0.1, 0.5, 0.2], vec![0.3, 0.9, 0.4]],
//!     row_labels: vec!["The".into(), " Eiffel".into()],
//!     starred_rows: vec![1],
//!     title: "Impact of restoring state after corrupted input\nanswer \" Paris\" (p=0.70)".into(),
//!     x_label: "single restored layer within SmolLM2".into(),
//!     colorbar_label: "p( Paris)".into(),
//!     palette: Palette::Purples,
//!     ..Heatmap::default()
//! };
//! let svg = map.to_svg()?;
//! assert!(svg.contains("Eiffel*"));
//! let png = map.to_png(1.0)?;
//! assert_eq!(&png[..4], b"\x89PNG");
//! # Ok(())
//! # }
//! ```

mod axes;
mod bar;
mod chrome;
mod color;
mod error;
mod figure;
mod font;
mod heatmap;
mod label;
mod line;
mod nan_serde;
mod render;
mod save;
mod series;
mod svg;
mod ticks;

pub use bar::{BarPlot, BarSeries};
pub use color::{default_series_color, Palette, Rgb, MISSING_COLOR};
pub use error::{Error, Result};
pub use figure::{Figure, ImageFormat, DEFAULT_PNG_SCALE};
pub use heatmap::Heatmap;
pub use label::{token_label, EMPTY_TOKEN};
pub use line::{LinePlot, Series};
pub use render::{svg_to_png, MAX_PNG_SCALE};
pub use save::write_atomic;
