//! The [`Figure`] trait: SVG, PNG and saving to a file, for every figure.

use std::path::Path;

use crate::error::{Error, Result};
use crate::render::svg_to_png;
use crate::save::write_atomic;

/// PNG scale used by [`Figure::save`]: two pixels per SVG unit.
pub const DEFAULT_PNG_SCALE: f32 = 2.0;

/// An image file format, told by a path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// Scalable vector graphics (`.svg`).
    Svg,
    /// Portable network graphics (`.png`).
    Png,
}

impl ImageFormat {
    /// The format named by `path`'s extension (`svg` or `png`, any case).
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("svg") => Ok(ImageFormat::Svg),
            Some("png") => Ok(ImageFormat::Png),
            _ => Err(Error::UnknownExtension {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// A figure that draws itself as SVG, and so as PNG and to a file.
///
/// Drawing checks the data first: empty or inconsistent data gives a typed
/// [`Error`] naming the field, and never a panic.
pub trait Figure {
    /// The figure as a standalone SVG document.
    fn to_svg(&self) -> Result<String>;

    /// The figure as PNG bytes, `scale` pixels per SVG unit (`1.0` gives the
    /// SVG's size in pixels; at most [`crate::MAX_PNG_SCALE`]).
    fn to_png(&self, scale: f32) -> Result<Vec<u8>> {
        svg_to_png(&self.to_svg()?, scale)
    }

    /// Writes the figure to `path`, as SVG or PNG by its extension (PNG at
    /// [`DEFAULT_PNG_SCALE`]). The file is written to a temporary file in the
    /// same folder and renamed into place, so `path` never holds a partial
    /// figure.
    fn save(&self, path: &Path) -> Result<()> {
        self.save_with_scale(path, DEFAULT_PNG_SCALE)
    }

    /// As [`Figure::save`], with the PNG scale given.
    fn save_with_scale(&self, path: &Path, png_scale: f32) -> Result<()> {
        let bytes = match ImageFormat::from_path(path)? {
            ImageFormat::Svg => self.to_svg()?.into_bytes(),
            ImageFormat::Png => self.to_png(png_scale)?,
        };
        write_atomic(path, &bytes)
    }
}
