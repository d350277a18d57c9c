//! A minimal SVG writer: just the elements the figures use.

use std::fmt::Write as _;

use crate::color::Rgb;
use crate::font;

/// Horizontal anchoring of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn as_str(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// How to draw one text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TextStyle {
    pub size: f64,
    pub anchor: Anchor,
    pub color: Rgb,
    /// Rotate by -90° (reading bottom to top) around the anchor point.
    pub vertical: bool,
}

impl TextStyle {
    pub fn new(size: f64, anchor: Anchor) -> Self {
        Self {
            size,
            anchor,
            color: TEXT_COLOR,
            vertical: false,
        }
    }

    pub fn vertical(mut self) -> Self {
        self.vertical = true;
        self
    }
}

/// Colour of text and axes.
pub(crate) const TEXT_COLOR: Rgb = Rgb::from_hex(0x222222);

/// Offset from a line's vertical centre to its baseline, in em: about half
/// the cap height of DejaVu Sans.
const CENTRE_TO_BASELINE_EM: f64 = 0.36;

/// An SVG document being written.
pub(crate) struct SvgDoc {
    width: f64,
    height: f64,
    defs: String,
    body: String,
}

/// A number as SVG wants it: at most two decimals, no trailing zeros.
pub(crate) fn num(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Escapes text for XML content or attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not allowed in XML 1.0; callers clean text first, this is a backstop.
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

impl SvgDoc {
    /// An empty document of the given size, on a white background.
    pub fn new(width: f64, height: f64) -> Self {
        let mut doc = Self {
            width: width.ceil(),
            height: height.ceil(),
            defs: String::new(),
            body: String::new(),
        };
        doc.rect(
            0.0,
            0.0,
            doc.width,
            doc.height,
            Rgb::new(255, 255, 255),
            None,
        );
        doc
    }

    /// Opens a group with the given raw attributes (e.g. `clip-path="url(#c)"`).
    pub fn open_group(&mut self, attrs: &str) {
        let _ = writeln!(self.body, "<g {attrs}>");
    }

    /// Closes the last group opened.
    pub fn close_group(&mut self) {
        self.body.push_str("</g>\n");
    }

    /// Defines a rectangular clip path named `id`.
    pub fn clip_rect(&mut self, id: &str, x: f64, y: f64, w: f64, h: f64) {
        let _ = writeln!(
            self.defs,
            r#"<clipPath id="{id}"><rect x="{}" y="{}" width="{}" height="{}"/></clipPath>"#,
            num(x),
            num(y),
            num(w),
            num(h)
        );
    }

    /// Defines a vertical linear gradient named `id`, from `stops[0]` at the
    /// bottom to the last stop at the top.
    pub fn vertical_gradient(&mut self, id: &str, stops: &[Rgb]) {
        let _ = writeln!(
            self.defs,
            r#"<linearGradient id="{id}" x1="0" y1="1" x2="0" y2="0">"#
        );
        let last = stops.len().saturating_sub(1).max(1) as f64;
        for (i, c) in stops.iter().enumerate() {
            let _ = writeln!(
                self.defs,
                r#"<stop offset="{:.4}" stop-color="{}"/>"#,
                i as f64 / last,
                c.to_hex()
            );
        }
        self.defs.push_str("</linearGradient>\n");
    }

    /// A rectangle; `stroke` is colour and width.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: Rgb, stroke: Option<(Rgb, f64)>) {
        self.rect_paint(x, y, w, h, &fill.to_hex(), stroke);
    }

    /// A rectangle filled with any paint (e.g. `url(#gradient)` or `none`).
    pub fn rect_paint(
        &mut self,
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        fill: &str,
        stroke: Option<(Rgb, f64)>,
    ) {
        let _ = write!(
            self.body,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}""#,
            num(x),
            num(y),
            num(w.max(0.0)),
            num(h.max(0.0))
        );
        if let Some((color, width)) = stroke {
            let _ = write!(
                self.body,
                r#" stroke="{}" stroke-width="{}""#,
                color.to_hex(),
                num(width)
            );
        }
        self.body.push_str("/>\n");
    }

    /// A straight line.
    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, color: Rgb, width: f64) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="{}"/>"#,
            num(x1),
            num(y1),
            num(x2),
            num(y2),
            color.to_hex(),
            num(width)
        );
    }

    /// An open polyline.
    pub fn polyline(&mut self, points: &[(f64, f64)], color: Rgb, width: f64) {
        if points.len() < 2 {
            return;
        }
        let _ = writeln!(
            self.body,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="{}" stroke-linejoin="round" stroke-linecap="round"/>"#,
            points_attr(points),
            color.to_hex(),
            num(width)
        );
    }

    /// A filled polygon with the given fill opacity.
    pub fn polygon(&mut self, points: &[(f64, f64)], fill: Rgb, opacity: f64) {
        if points.len() < 3 {
            return;
        }
        let _ = writeln!(
            self.body,
            r#"<polygon points="{}" fill="{}" fill-opacity="{}"/>"#,
            points_attr(points),
            fill.to_hex(),
            num(opacity)
        );
    }

    /// A filled circle.
    pub fn circle(&mut self, cx: f64, cy: f64, r: f64, fill: Rgb) {
        let _ = writeln!(
            self.body,
            r#"<circle cx="{}" cy="{}" r="{}" fill="{}"/>"#,
            num(cx),
            num(cy),
            num(r),
            fill.to_hex()
        );
    }

    /// A one-line text whose vertical centre is at `y` (for vertical text,
    /// whose horizontal centre is at `x`).
    pub fn text(&mut self, x: f64, y: f64, text: &str, style: TextStyle) {
        let shift = CENTRE_TO_BASELINE_EM * style.size;
        let (bx, by, transform) = if style.vertical {
            let bx = x + shift;
            (
                bx,
                y,
                format!(r#" transform="rotate(-90 {} {})""#, num(bx), num(y)),
            )
        } else {
            (x, y + shift, String::new())
        };
        let _ = writeln!(
            self.body,
            r#"<text x="{}" y="{}" font-size="{}" text-anchor="{}" fill="{}"{transform}>{}</text>"#,
            num(bx),
            num(by),
            num(style.size),
            style.anchor.as_str(),
            style.color.to_hex(),
            escape(text)
        );
    }

    /// The finished document.
    pub fn finish(self) -> String {
        let mut out = String::with_capacity(self.body.len() + self.defs.len() + 512);
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{}" xml:space="preserve">"#,
            font::FAMILY_LIST,
            w = num(self.width),
            h = num(self.height),
        );
        if !self.defs.is_empty() {
            out.push_str("<defs>\n");
            out.push_str(&self.defs);
            out.push_str("</defs>\n");
        }
        out.push_str(&self.body);
        out.push_str("</svg>\n");
        out
    }
}

fn points_attr(points: &[(f64, f64)]) -> String {
    let mut s = String::with_capacity(points.len() * 12);
    for (i, (x, y)) in points.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{},{}", num(*x), num(*y));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.256), "1.26");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(num(120.5), "120.5");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(escape("x\u{0}"), "x\u{fffd}");
    }

    #[test]
    fn document_is_closed() {
        let mut d = SvgDoc::new(10.0, 20.0);
        d.text(1.0, 2.0, "hi", TextStyle::new(12.0, Anchor::Start));
        let s = d.finish();
        assert!(s.starts_with("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
        assert!(s.contains(">hi</text>"));
    }
}
