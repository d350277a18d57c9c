//! Line plot: SVG content, PNG size, data checks.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_svg_shape, decode_png, small_line_plot, svg_size};
use viz::{Error, Figure, LinePlot, Palette, Series};

#[test]
fn svg_has_title_axes_legend_lines_and_band() {
    let plot = small_line_plot();
    let svg = plot.to_svg().unwrap();
    assert_svg_shape(&svg);
    assert!(svg.contains(">Average indirect effect</text>"));
    assert!(svg.contains(">layer</text>"));
    assert!(svg.contains(">AIE</text>"));
    assert!(svg.contains(">hidden state</text>"));
    assert!(svg.contains(">MLP</text>"));
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert_eq!(svg.matches("<polygon").count(), 1, "one band");
    assert!(svg.contains(&Palette::Greens.accent().to_hex()));
    assert!(svg.contains(&viz::default_series_color(0).to_hex()));
}

#[test]
fn png_decodes_to_the_svg_size() {
    let plot = small_line_plot();
    let (w, h) = svg_size(&plot.to_svg().unwrap());
    let (pw, ph, _) = decode_png(&plot.to_png(1.5).unwrap());
    assert_eq!((pw, ph), ((w * 1.5).ceil() as u32, (h * 1.5).ceil() as u32));
}

#[test]
fn non_finite_points_break_the_line() {
    let mut plot = small_line_plot();
    plot.series[1].y[3] = f64::NAN;
    let svg = plot.to_svg().unwrap();
    assert_eq!(svg.matches("<polyline").count(), 3);
}

#[test]
fn band_length_mismatch_names_the_series_and_bound() {
    let mut plot = small_line_plot();
    if let Some((_, upper)) = plot.series[0].band.as_mut() {
        upper.pop();
    }
    let err = plot.to_svg().unwrap_err();
    assert!(
        matches!(
            err,
            Error::BandLength {
                bound: "upper",
                expected: 8,
                found: 7,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("series[0]") && msg.contains("hidden state"),
        "{msg}"
    );
}

#[test]
fn y_length_mismatch_is_an_error() {
    let mut plot = small_line_plot();
    plot.series[1].y.push(1.0);
    let err = plot.to_svg().unwrap_err();
    assert!(
        matches!(err, Error::SeriesLength { field: "y", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("series[1] \"MLP\""), "{err}");
}

#[test]
fn empty_and_nan_only_data_are_errors() {
    let plot = LinePlot::default();
    assert!(matches!(plot.to_svg(), Err(Error::Empty { ref field, .. }) if field == "series"));
    let plot = LinePlot {
        series: vec![Series::new("a", Vec::new(), Vec::new())],
        ..LinePlot::default()
    };
    assert!(matches!(plot.to_svg(), Err(Error::Empty { ref field, .. }) if field == "series[0].x"));
    let plot = LinePlot {
        series: vec![Series::new("a", vec![0.0, 1.0], vec![f64::NAN; 2])],
        ..LinePlot::default()
    };
    assert!(matches!(plot.to_svg(), Err(Error::AllNan { .. })));
}

#[test]
fn a_single_point_still_draws() {
    let plot = LinePlot {
        series: vec![Series::new("", vec![3.0], vec![0.5])],
        ..LinePlot::default()
    };
    let svg = plot.to_svg().unwrap();
    assert!(svg.contains("<circle"));
    decode_png(&plot.to_png(1.0).unwrap());
}

#[test]
fn json_round_trip() {
    let mut plot = small_line_plot();
    plot.series[0].y[2] = f64::NAN;
    let json = serde_json::to_string(&plot).unwrap();
    let back: LinePlot = serde_json::from_str(&json).unwrap();
    assert!(back.series[0].y[2].is_nan());
    // serde_json reads floats back to within an ulp or so.
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
    assert_eq!(back.series[1].name, plot.series[1].name);
    assert_eq!(back.series[1].color, plot.series[1].color);
    assert!(close(&back.series[1].y, &plot.series[1].y));
    let (lo, hi) = back.series[0].band.clone().unwrap();
    let (lo0, hi0) = plot.series[0].band.clone().unwrap();
    assert!(close(&lo, &lo0) && close(&hi, &hi0));
}
