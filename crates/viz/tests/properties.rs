//! Any data and any label text either draws or gives an error, never a panic,
//! and what draws is SVG the rasteriser accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use viz::{BarPlot, BarSeries, Figure, Heatmap, LinePlot, Series};

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -10.0f64..10.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
    ]
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[ \\n\\t<>&\"'a-z]{0,6}",]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn heatmaps_never_panic(
        rows in 1usize..5,
        cols in 1usize..8,
        values in prop::collection::vec(value(), 40),
        labels in prop::collection::vec(label(), 5),
        title in label(),
        starred in prop::collection::vec(0usize..6, 0..3),
    ) {
        let map = Heatmap {
            values: (0..rows).map(|r| values[r * 8..r * 8 + cols].to_vec()).collect(),
            row_labels: labels[..rows].to_vec(),
            starred_rows: starred,
            title: title.clone(),
            x_label: title.clone(),
            colorbar_label: title,
            ..Heatmap::default()
        };
        if let Ok(svg) = map.to_svg() {
            prop_assert!(svg.starts_with("<svg"));
            prop_assert!(viz::svg_to_png(&svg, 0.25).is_ok());
        }
    }

    #[test]
    fn line_and_bar_plots_never_panic(
        ys in prop::collection::vec(value(), 1..10),
        name in label(),
        title in label(),
    ) {
        let x: Vec<f64> = (0..ys.len()).map(|i| i as f64).collect();
        let plot = LinePlot {
            series: vec![Series::new(name.clone(), x, ys.clone()).with_band(ys.clone(), ys.clone())],
            title: title.clone(),
            x_label: title.clone(),
            y_label: title.clone(),
        };
        if let Ok(svg) = plot.to_svg() {
            prop_assert!(viz::svg_to_png(&svg, 0.25).is_ok());
        }
        let bars = BarPlot {
            categories: (0..ys.len()).map(|i| format!("{i}{name}")).collect(),
            series: vec![BarSeries::new(name, ys)],
            title: title.clone(),
            x_label: title.clone(),
            y_label: title,
        };
        if let Ok(svg) = bars.to_svg() {
            prop_assert!(viz::svg_to_png(&svg, 0.25).is_ok());
        }
    }
}
