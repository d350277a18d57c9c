//! The crate's error type.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while checking, drawing or saving a figure.
///
/// Messages name the figure kind (`heatmap`, `line plot`, `bar plot`) and the
/// field, row or series concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field that must hold data is empty.
    #[error("{figure}: `{field}` is empty")]
    Empty {
        /// The figure kind.
        figure: &'static str,
        /// The empty field, e.g. `values` or `series[1].x`.
        field: String,
    },

    /// A heatmap row whose length differs from the first row's.
    #[error("heatmap: row {row} of `values` has {found} values, expected {expected} (the length of row 0)")]
    RaggedRows {
        /// Index of the offending row.
        row: usize,
        /// Length of row 0.
        expected: usize,
        /// Length of the offending row.
        found: usize,
    },

    /// A list of labels whose length does not match the data.
    #[error("{figure}: `{field}` has {found} labels, expected {expected}")]
    LabelCount {
        /// The figure kind.
        figure: &'static str,
        /// The label field, e.g. `row_labels`.
        field: &'static str,
        /// The number the data calls for.
        expected: usize,
        /// The number given.
        found: usize,
    },

    /// Data with no finite value at all: nothing to scale the axes by.
    #[error("{figure}: `{field}` has no finite value (all NaN or infinite)")]
    AllNan {
        /// The figure kind.
        figure: &'static str,
        /// The field, e.g. `values`.
        field: String,
    },

    /// A data vector of a series whose length does not match the series' others.
    #[error("{figure}: {series}: `{field}` has length {found}, expected {expected}")]
    SeriesLength {
        /// The figure kind.
        figure: &'static str,
        /// The series, by index and name, e.g. `series[1] "MLP severed"`.
        series: String,
        /// The field, e.g. `y` or `values`.
        field: &'static str,
        /// The length it should have.
        expected: usize,
        /// The length it has.
        found: usize,
    },

    /// A confidence band (or error bar) bound of the wrong length.
    #[error("{figure}: {series}: band {bound} bound has length {found}, expected {expected}")]
    BandLength {
        /// The figure kind.
        figure: &'static str,
        /// The series, by index and name.
        series: String,
        /// `lower` or `upper`.
        bound: &'static str,
        /// The length it should have.
        expected: usize,
        /// The length it has.
        found: usize,
    },

    /// A marked cell outside the grid.
    #[error("heatmap: `marked_cells` names cell ({row}, {col}), but the grid is {rows} x {cols}")]
    MarkedCellOutOfRange {
        /// The cell's row.
        row: usize,
        /// The cell's column.
        col: usize,
        /// Rows of the grid.
        rows: usize,
        /// Columns of the grid.
        cols: usize,
    },
    /// A starred (subject) row index beyond the last row.
    #[error("heatmap: `starred_rows` names row {row}, but there are only {rows} rows")]
    StarredRowOutOfRange {
        /// The index given.
        row: usize,
        /// The number of rows.
        rows: usize,
    },

    /// A colour range that is not finite or where `vmin >= vmax`.
    #[error("heatmap: invalid colour range vmin = {vmin}, vmax = {vmax} (after defaults from the data): both must be finite and vmin < vmax")]
    InvalidRange {
        /// The lower end used.
        vmin: f64,
        /// The upper end used.
        vmax: f64,
    },

    /// A PNG scale factor that is not finite and positive, or too large.
    #[error("PNG scale must be finite, positive and at most {max}, got {scale}")]
    InvalidScale {
        /// The scale given.
        scale: f32,
        /// The largest scale accepted.
        max: f32,
    },

    /// A file name whose extension names no supported format.
    #[error("{}: unknown figure format: expected a `.svg` or `.png` extension", path.display())]
    UnknownExtension {
        /// The path given.
        path: PathBuf,
    },

    /// An I/O error while saving.
    #[error("{}: I/O error while {context}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The rasteriser failed (should not happen for SVG made by this crate).
    #[error("rendering the figure failed: {0}")]
    Render(String),
}
