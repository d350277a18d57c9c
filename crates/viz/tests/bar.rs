//! Bar plot: SVG content, PNG size, data checks.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_svg_shape, decode_png, small_bar_plot, svg_size};
use viz::{BarPlot, BarSeries, Error, Figure};

#[test]
fn svg_has_one_bar_per_value_legend_and_error_bars() {
    let plot = small_bar_plot();
    let svg = plot.to_svg().unwrap();
    assert_svg_shape(&svg);
    assert!(svg.contains(">Severed comparison</text>"));
    for name in [
        "Effect of single state",
        "with Attn severed",
        "with MLP severed",
    ] {
        assert!(svg.contains(&format!(">{name}</text>")), "{name}");
    }
    for c in 0..5 {
        assert!(svg.contains(&format!(">{c}</text>")));
    }
    // 15 bars + 3 legend swatches + background, each in its series colour.
    for i in 0..3 {
        let fill = format!("fill=\"{}\"", viz::default_series_color(i).to_hex());
        assert_eq!(svg.matches(&fill).count(), 6, "series {i}");
    }
    // Error bars: three lines per bar of the first series.
    let error_bar = "stroke=\"#333333\" stroke-width=\"1\"/>";
    assert!(svg.matches(error_bar).count() >= 15);
}

#[test]
fn negative_values_hang_below_zero() {
    let mut plot = small_bar_plot();
    plot.series[2].values[1] = -0.2;
    let svg = plot.to_svg().unwrap();
    assert!(svg.contains(">0.0</text>"));
    assert!(svg.contains(">-0.2</text>") || svg.contains(">-0.20</text>"));
}

#[test]
fn png_decodes_to_the_svg_size() {
    let plot = small_bar_plot();
    let (w, h) = svg_size(&plot.to_svg().unwrap());
    let (pw, ph, _) = decode_png(&plot.to_png(2.0).unwrap());
    assert_eq!((pw, ph), ((w * 2.0).ceil() as u32, (h * 2.0).ceil() as u32));
}

#[test]
fn value_count_mismatch_names_the_series() {
    let mut plot = small_bar_plot();
    plot.series[2].values.pop();
    let err = plot.to_svg().unwrap_err();
    assert!(matches!(
        err,
        Error::SeriesLength {
            field: "values",
            expected: 5,
            found: 4,
            ..
        }
    ));
    assert!(err.to_string().contains("with MLP severed"), "{err}");
}

#[test]
fn band_length_mismatch_is_an_error() {
    let mut plot = small_bar_plot();
    if let Some((lower, _)) = plot.series[0].band.as_mut() {
        lower.push(0.0);
    }
    let err = plot.to_svg().unwrap_err();
    assert!(
        matches!(err, Error::BandLength { bound: "lower", .. }),
        "{err}"
    );
}

#[test]
fn empty_and_nan_only_data_are_errors() {
    let plot = BarPlot::default();
    assert!(matches!(plot.to_svg(), Err(Error::Empty { ref field, .. }) if field == "categories"));
    let plot = BarPlot {
        categories: vec!["0".into()],
        ..BarPlot::default()
    };
    assert!(matches!(plot.to_svg(), Err(Error::Empty { ref field, .. }) if field == "series"));
    let plot = BarPlot {
        categories: vec!["0".into(), "1".into()],
        series: vec![BarSeries::new("a", vec![f64::NAN, f64::INFINITY])],
        ..BarPlot::default()
    };
    assert!(matches!(plot.to_svg(), Err(Error::AllNan { .. })));
}

#[test]
fn many_categories_thin_out_their_labels() {
    let n = 48;
    let plot = BarPlot {
        categories: (0..n).map(|l| format!("layer {l}")).collect(),
        series: vec![BarSeries::new("a", (0..n).map(f64::from).collect())],
        ..BarPlot::default()
    };
    let svg = plot.to_svg().unwrap();
    let shown = (0..n)
        .filter(|l| svg.contains(&format!(">layer {l}</text>")))
        .count();
    assert!(shown > 2 && shown < n as usize, "{shown}");
}
