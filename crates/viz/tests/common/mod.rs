//! Helpers shared by the integration tests.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use viz::{BarPlot, BarSeries, Heatmap, LinePlot, Palette, Series};

/// PNG signature.
pub const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Width, height and RGBA pixels of PNG bytes.
pub fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    assert!(bytes.starts_with(PNG_SIGNATURE), "not a PNG");
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    buf.truncate(info.buffer_size());
    assert_eq!(info.color_type, png::ColorType::Rgba);
    (info.width, info.height, buf)
}

/// The `width` and `height` attributes of an SVG's root element.
pub fn svg_size(svg: &str) -> (f64, f64) {
    let root_end = svg.find('>').expect("root element");
    let root = &svg[..root_end];
    let attr = |name: &str| -> f64 {
        let key = format!(" {name}=\"");
        let start = root.find(&key).expect("attribute") + key.len();
        let len = root[start..].find('"').expect("closing quote");
        root[start..start + len].parse().expect("number")
    };
    (attr("width"), attr("height"))
}

/// Checks what every SVG made by the crate should satisfy.
pub fn assert_svg_shape(svg: &str) {
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
    let (w, h) = svg_size(svg);
    assert!(w > 0.0 && h > 0.0);
}

/// A small heatmap: 4 tokens × 6 layers with a bump, subject rows 1–2.
pub fn small_heatmap() -> Heatmap {
    let values = (0..4)
        .map(|r| {
            (0..6)
                .map(|c| 0.05 + 0.1 * r as f64 + 0.05 * c as f64)
                .collect()
        })
        .collect();
    Heatmap {
        values,
        row_labels: vec![
            "The".into(),
            " Eiffel".into(),
            " Tower".into(),
            " is".into(),
        ],
        col_labels: Vec::new(),
        starred_rows: vec![1, 2],
        marked_cells: Vec::new(),
        title: "Impact of restoring state after corrupted input\nanswer \" Paris\" (p=0.70)".into(),
        x_label: "single restored layer within SmolLM2".into(),
        colorbar_label: "p( Paris)".into(),
        palette: Palette::Purples,
        vmin: Some(0.05),
        vmax: None,
        bar_marks: Vec::new(),
    }
}

/// A small line plot: two series, one with a band.
pub fn small_line_plot() -> LinePlot {
    let x: Vec<f64> = (0..8).map(f64::from).collect();
    let y1: Vec<f64> = x.iter().map(|v| (v / 3.0).sin()).collect();
    let y2: Vec<f64> = x.iter().map(|v| v / 10.0).collect();
    let lower = y1.iter().map(|v| v - 0.1).collect();
    let upper = y1.iter().map(|v| v + 0.1).collect();
    LinePlot {
        series: vec![
            Series::new("hidden state", x.clone(), y1).with_band(lower, upper),
            Series::new("MLP", x, y2).with_color(Palette::Greens.accent()),
        ],
        title: "Average indirect effect".into(),
        x_label: "layer".into(),
        y_label: "AIE".into(),
    }
}

/// A small bar plot: 5 layers × 3 series, one with error bars.
pub fn small_bar_plot() -> BarPlot {
    let ordinary = vec![0.1, 0.3, 0.4, 0.2, 0.05];
    let lower = ordinary.iter().map(|v| v - 0.02).collect();
    let upper = ordinary.iter().map(|v| v + 0.02).collect();
    BarPlot {
        categories: (0..5).map(|l| l.to_string()).collect(),
        series: vec![
            BarSeries::new("Effect of single state", ordinary).with_band(lower, upper),
            BarSeries::new("with Attn severed", vec![0.09, 0.28, 0.37, 0.19, 0.05]),
            BarSeries::new("with MLP severed", vec![0.05, 0.1, 0.15, 0.2, 0.05]),
        ],
        title: "Severed comparison".into(),
        x_label: "layer".into(),
        y_label: "AIE".into(),
    }
}
