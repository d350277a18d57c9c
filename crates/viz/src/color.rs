//! Colours: [`Rgb`], the sequential [`Palette`]s of heatmaps and the default
//! colours of series.

use serde::{Deserialize, Serialize};

/// An opaque sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rgb {
    /// Red, 0–255.
    pub r: u8,
    /// Green, 0–255.
    pub g: u8,
    /// Blue, 0–255.
    pub b: u8,
}

impl Rgb {
    /// A colour from its three channels.
    pub const fn new(r: u8, g: u8, b: u8) -> Self {
        Self { r, g, b }
    }

    /// A colour from `0xRRGGBB`.
    pub const fn from_hex(hex: u32) -> Self {
        Self::new((hex >> 16) as u8, (hex >> 8) as u8, hex as u8)
    }

    /// The colour as `#rrggbb`, as used in SVG.
    pub fn to_hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }

    /// Linear interpolation from `self` (at `t = 0`) to `other` (at `t = 1`).
    fn lerp(self, other: Self, t: f64) -> Self {
        let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
        Self::new(
            mix(self.r, other.r),
            mix(self.g, other.g),
            mix(self.b, other.b),
        )
    }
}

/// Colour of heatmap cells whose value is NaN or infinite.
pub const MISSING_COLOR: Rgb = Rgb::from_hex(0xbdbdbd);

/// Sequential colour maps for heatmaps, light (low values) to dark (high
/// values), as matplotlib's maps of the same names (ColorBrewer's 9 classes,
/// interpolated linearly). ROME draws hidden states in purples, MLP outputs in
/// greens and attention outputs in reds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Palette {
    /// Purples: restored hidden states (residual stream).
    #[default]
    Purples,
    /// Greens: restored MLP outputs.
    Greens,
    /// Reds: restored attention outputs.
    Reds,
    /// Blues.
    Blues,
}

const PURPLES: [u32; 9] = [
    0xfcfbfd, 0xefedf5, 0xdadaeb, 0xbcbddc, 0x9e9ac8, 0x807dba, 0x6a51a3, 0x54278f, 0x3f007d,
];
const GREENS: [u32; 9] = [
    0xf7fcf5, 0xe5f5e0, 0xc7e9c0, 0xa1d99b, 0x74c476, 0x41ab5d, 0x238b45, 0x006d2c, 0x00441b,
];
const REDS: [u32; 9] = [
    0xfff5f0, 0xfee0d2, 0xfcbba1, 0xfc9272, 0xfb6a4a, 0xef3b2c, 0xcb181d, 0xa50f15, 0x67000d,
];
const BLUES: [u32; 9] = [
    0xf7fbff, 0xdeebf7, 0xc6dbef, 0x9ecae1, 0x6baed6, 0x4292c6, 0x2171b5, 0x08519c, 0x08306b,
];

impl Palette {
    fn anchors(self) -> &'static [u32; 9] {
        match self {
            Palette::Purples => &PURPLES,
            Palette::Greens => &GREENS,
            Palette::Reds => &REDS,
            Palette::Blues => &BLUES,
        }
    }

    /// The colour at `t` in `[0, 1]` (clamped; NaN gives the lightest colour).
    pub fn color_at(self, t: f64) -> Rgb {
        let anchors = self.anchors();
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let pos = t * (anchors.len() - 1) as f64;
        let i = (pos.floor() as usize).min(anchors.len() - 2);
        Rgb::from_hex(anchors[i]).lerp(Rgb::from_hex(anchors[i + 1]), pos - i as f64)
    }

    /// The anchor colours from light to dark, evenly spaced over `[0, 1]`.
    pub fn stops(self) -> Vec<Rgb> {
        self.anchors().iter().map(|&h| Rgb::from_hex(h)).collect()
    }

    /// A strong colour of the map, for lines and bars that go with its
    /// heatmap (e.g. green for MLP).
    pub fn accent(self) -> Rgb {
        self.color_at(0.75)
    }
}

/// Default colours of series without one: matplotlib's `tab10`.
const CYCLE: [u32; 10] = [
    0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22,
    0x17becf,
];

/// The default colour of the `index`-th series.
pub fn default_series_color(index: usize) -> Rgb {
    Rgb::from_hex(CYCLE[index % CYCLE.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_ends_are_the_anchors() {
        for p in [
            Palette::Purples,
            Palette::Greens,
            Palette::Reds,
            Palette::Blues,
        ] {
            let stops = p.stops();
            assert_eq!(p.color_at(0.0), stops[0]);
            assert_eq!(p.color_at(1.0), stops[8]);
            assert_eq!(p.color_at(0.5), stops[4]);
            assert_eq!(p.color_at(-3.0), stops[0]);
            assert_eq!(p.color_at(f64::NAN), stops[0]);
        }
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(Rgb::from_hex(0x3f007d).to_hex(), "#3f007d");
    }
}
