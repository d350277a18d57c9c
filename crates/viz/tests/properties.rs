//! Any data and any label text either draws or gives an error, never a panic,
//! and what draws is SVG the rasteriser accepts.
#![allow(clippy::disallowed_methods)]
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
        let any_finite = map.values.iter().flatten().any(|v| v.is_finite());
        let starred_ok = map.starred_rows.iter().all(|&r| r < rows);
        match map.to_svg() {
            Ok(svg) => {
                prop_assert!(any_finite && starred_ok, "drew invalid data");
                prop_assert!(svg.starts_with("<svg"));
                let png = viz::svg_to_png(&svg, 0.25);
                prop_assert!(png.is_ok(), "rasterising failed: {:?}", png.err());
            }
            Err(e) => prop_assert!(
                !any_finite || !starred_ok,
                "valid data did not draw: {}",
                e
            ),
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
        let any_finite = ys.iter().any(|v| v.is_finite());
        match plot.to_svg() {
            Ok(svg) => {
                prop_assert!(any_finite, "drew a plot without finite values");
                let png = viz::svg_to_png(&svg, 0.25);
                prop_assert!(png.is_ok(), "rasterising failed: {:?}", png.err());
            }
            Err(e) => prop_assert!(!any_finite, "valid line plot did not draw: {}", e),
        }
        let bars = BarPlot {
            categories: (0..ys.len()).map(|i| format!("{i}{name}")).collect(),
            series: vec![BarSeries::new(name, ys)],
            title: title.clone(),
            x_label: title.clone(),
            y_label: title,
        };
        match bars.to_svg() {
            Ok(svg) => {
                prop_assert!(any_finite, "drew bars without finite values");
                let png = viz::svg_to_png(&svg, 0.25);
                prop_assert!(png.is_ok(), "rasterising failed: {:?}", png.err());
            }
            Err(e) => prop_assert!(!any_finite, "valid bar plot did not draw: {}", e),
        }
    }
}
