//! The embedded font (DejaVu Sans, from the `dejavu` crate) and text
//! measurement for layout.
//!
//! Nothing is read from the system: PNG text is drawn from these bytes, and
//! the SVG names the same family (with generic fallbacks for viewers that
//! lack it).

use std::sync::OnceLock;

/// The family name of the embedded font, as written in the SVG.
pub(crate) const FAMILY: &str = "DejaVu Sans";

/// The `font-family` list written in the SVG.
pub(crate) const FAMILY_LIST: &str = "'DejaVu Sans', Verdana, Arial, sans-serif";

/// The bytes of DejaVu Sans (regular).
pub(crate) fn regular() -> &'static [u8] {
    dejavu::sans::regular()
}

/// Average advance of a glyph, in em, used when the font cannot tell.
const FALLBACK_ADVANCE_EM: f64 = 0.6;

fn face() -> Option<&'static ttf_parser::Face<'static>> {
    static FACE: OnceLock<Option<ttf_parser::Face<'static>>> = OnceLock::new();
    FACE.get_or_init(|| ttf_parser::Face::parse(regular(), 0).ok())
        .as_ref()
}

/// The advance width of `text` set at `size` pixels, in pixels (no kerning,
/// so a hair wider than what the rasteriser draws).
pub(crate) fn text_width(text: &str, size: f64) -> f64 {
    let Some(face) = face() else {
        return text.chars().count() as f64 * FALLBACK_ADVANCE_EM * size;
    };
    let per_unit = size / f64::from(face.units_per_em().max(1));
    text.chars()
        .map(|c| {
            face.glyph_index(c)
                .and_then(|g| face.glyph_hor_advance(g))
                .map_or(FALLBACK_ADVANCE_EM * size, |adv| f64::from(adv) * per_unit)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn font_parses_and_widths_grow() {
        assert!(face().is_some());
        let a = text_width("Paris", 12.0);
        let b = text_width("Paris is", 12.0);
        assert!(a > 20.0 && a < 45.0, "{a}");
        assert!(b > a);
        assert_eq!(text_width("", 12.0), 0.0);
    }

    #[test]
    fn font_has_the_glyphs_used_for_invisible_tokens() {
        let face = face();
        assert!(face.is_some());
        if let Some(face) = face {
            for c in ['␣', '∅', '·', '↵'] {
                assert!(face.glyph_index(c).is_some(), "{c}");
            }
        }
    }
}
