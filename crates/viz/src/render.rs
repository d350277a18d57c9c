//! SVG to PNG, with the embedded font only.

use std::sync::{Arc, OnceLock};

use resvg::{tiny_skia, usvg};

use crate::error::{Error, Result};
use crate::font;

/// The largest PNG scale factor accepted.
pub const MAX_PNG_SCALE: f32 = 16.0;

/// The font database: the embedded font alone, also standing for the
/// generic families. No system font is ever loaded.
fn fontdb() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_source(usvg::fontdb::Source::Binary(Arc::new(font::regular())));
        db.set_sans_serif_family(font::FAMILY);
        db.set_serif_family(font::FAMILY);
        db.set_monospace_family(font::FAMILY);
        Arc::new(db)
    })
    .clone()
}

/// Rasterises an SVG document at `scale` pixels per SVG unit, on white.
///
/// Works for any SVG text, but is meant for those this crate makes.
pub fn svg_to_png(svg: &str, scale: f32) -> Result<Vec<u8>> {
    if !(scale.is_finite() && scale > 0.0 && scale <= MAX_PNG_SCALE) {
        return Err(Error::InvalidScale {
            scale,
            max: MAX_PNG_SCALE,
        });
    }
    let options = usvg::Options {
        font_family: font::FAMILY.to_string(),
        fontdb: fontdb(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options)
        .map_err(|e| Error::Render(format!("parsing SVG: {e}")))?;
    let size = tree.size();
    let width = (size.width() * scale).ceil() as u32;
    let height = (size.height() * scale).ceil() as u32;
    let mut pixmap = tiny_skia::Pixmap::new(width, height)
        .ok_or_else(|| Error::Render(format!("cannot allocate a {width}×{height} image")))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| Error::Render(format!("encoding PNG: {e}")))
}
