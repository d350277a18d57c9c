//! Heatmap: SVG content, PNG size, data checks.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_svg_shape, decode_png, small_heatmap, svg_size};
use viz::{Error, Figure, Heatmap, Palette};

#[test]
fn svg_has_title_labels_and_starred_subject_tokens() {
    let svg = small_heatmap().to_svg().unwrap();
    assert_svg_shape(&svg);
    assert!(svg.contains(">Impact of restoring state after corrupted input</text>"));
    assert!(svg.contains(">answer &quot; Paris&quot; (p=0.70)</text>"));
    assert!(svg.contains("> Eiffel*</text>"));
    assert!(svg.contains("> Tower*</text>"));
    assert!(svg.contains(">The</text>"), "unstarred label kept as is");
    assert!(!svg.contains("The*"));
    assert!(svg.contains(">single restored layer within SmolLM2</text>"));
    assert!(svg.contains(">p( Paris)</text>"));
    assert!(svg.contains("rotate(-90"), "colour bar label is vertical");
    assert!(svg.contains("url(#colorbar)"));
    // One cell per value, with a 6-column grid labelled at every column.
    for c in 0..6 {
        assert!(svg.contains(&format!(">{c}</text>")), "column label {c}");
    }
}

#[test]
fn lowest_and_highest_values_take_the_palette_ends() {
    let svg = small_heatmap().to_svg().unwrap();
    let stops = Palette::Purples.stops();
    assert!(svg.contains(&format!("fill=\"{}\"", stops[0].to_hex())));
    assert!(svg.contains(&format!("fill=\"{}\"", stops[8].to_hex())));
}

#[test]
fn wide_heatmaps_label_every_fifth_layer() {
    let mut map = small_heatmap();
    map.values = vec![vec![0.5; 30]; 4];
    map.values[0][0] = 0.0;
    map.vmin = None;
    let svg = map.to_svg().unwrap();
    for c in [0, 5, 10, 15, 20, 25] {
        assert!(svg.contains(&format!(">{c}</text>")), "label {c}");
    }
    for c in [1, 4, 6, 29] {
        assert!(!svg.contains(&format!(">{c}</text>")), "no label {c}");
    }
}

#[test]
fn invisible_tokens_are_drawn_visibly() {
    let mut map = small_heatmap();
    map.row_labels = vec!["\n".into(), " ".into(), String::new(), "a<b&c".into()];
    let svg = map.to_svg().unwrap();
    assert!(svg.contains(">\\n</text>"));
    assert!(svg.contains(">␣*</text>"));
    assert!(svg.contains(">∅*</text>"));
    assert!(svg.contains(">a&lt;b&amp;c</text>"));
    // And the rasteriser accepts the document.
    decode_png(&map.to_png(1.0).unwrap());
}

#[test]
fn nan_cells_are_grey() {
    let mut map = small_heatmap();
    map.values[1][2] = f64::NAN;
    map.values[2][3] = f64::INFINITY;
    let svg = map.to_svg().unwrap();
    let grey = format!("fill=\"{}\"", viz::MISSING_COLOR.to_hex());
    assert_eq!(svg.matches(&grey).count(), 2);
}

#[test]
fn png_has_the_signature_and_the_svg_size_times_scale() {
    let map = small_heatmap();
    let (w, h) = svg_size(&map.to_svg().unwrap());
    for scale in [1.0f32, 2.0, 0.5] {
        let png = map.to_png(scale).unwrap();
        let (pw, ph, _) = decode_png(&png);
        assert_eq!(pw, (w * f64::from(scale)).ceil() as u32, "scale {scale}");
        assert_eq!(ph, (h * f64::from(scale)).ceil() as u32, "scale {scale}");
    }
}

#[test]
fn color_range_defaults_to_the_data() {
    let mut map = small_heatmap();
    map.vmin = None;
    let (lo, hi) = map.color_range().unwrap();
    assert!((lo - 0.05).abs() < 1e-12);
    assert!((hi - (0.05 + 0.3 + 0.25)).abs() < 1e-12);
    map.vmax = Some(1.0);
    assert_eq!(map.color_range().unwrap().1, 1.0);
    // A single value still gets a usable range.
    let one = Heatmap::new(vec![vec![0.4]], vec!["x".into()]);
    let (lo, hi) = one.color_range().unwrap();
    assert!(lo < 0.4 && hi > 0.4);
    assert!(one.to_svg().is_ok());
}

#[test]
fn empty_values_are_an_error() {
    let map = Heatmap::new(Vec::new(), Vec::new());
    let err = map.to_svg().unwrap_err();
    assert!(
        matches!(err, Error::Empty { ref field, .. } if field == "values"),
        "{err}"
    );
    let map = Heatmap::new(vec![Vec::new()], vec!["a".into()]);
    assert!(matches!(map.to_svg(), Err(Error::Empty { .. })));
}

#[test]
fn ragged_rows_name_the_row() {
    let mut map = small_heatmap();
    map.values[2].pop();
    let err = map.to_svg().unwrap_err();
    assert!(
        matches!(
            err,
            Error::RaggedRows {
                row: 2,
                expected: 6,
                found: 5
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("row 2"), "{err}");
}

#[test]
fn label_count_mismatches_name_the_field() {
    let mut map = small_heatmap();
    map.row_labels.pop();
    let err = map.to_svg().unwrap_err();
    assert!(err.to_string().contains("row_labels"), "{err}");
    assert!(matches!(
        err,
        Error::LabelCount {
            expected: 4,
            found: 3,
            ..
        }
    ));

    let mut map = small_heatmap();
    map.col_labels = vec!["0".into(); 5];
    let err = map.to_svg().unwrap_err();
    assert!(err.to_string().contains("col_labels"), "{err}");
}

#[test]
fn starred_rows_must_exist() {
    let mut map = small_heatmap();
    map.starred_rows = vec![1, 4];
    let err = map.to_svg().unwrap_err();
    assert!(
        matches!(err, Error::StarredRowOutOfRange { row: 4, rows: 4 }),
        "{err}"
    );
}

#[test]
fn marked_cells_are_outlined_and_must_exist() {
    let mut map = small_heatmap();
    let plain = map.to_svg().unwrap();
    map.marked_cells = vec![(0, 0), (3, 5)];
    let marked = map.to_svg().unwrap();
    // One outline per marked cell, in the mark colour.
    assert_eq!(marked.matches("#e66101").count(), 2, "{marked}");
    assert_eq!(plain.matches("#e66101").count(), 0);
    map.marked_cells = vec![(1, 6)];
    let err = map.to_svg().unwrap_err();
    assert!(
        matches!(
            err,
            Error::MarkedCellOutOfRange {
                row: 1,
                col: 6,
                rows: 4,
                cols: 6
            }
        ),
        "{err}"
    );
}

#[test]
fn nan_only_values_are_an_error() {
    let mut map = small_heatmap();
    map.values = vec![vec![f64::NAN; 6]; 4];
    let err = map.to_svg().unwrap_err();
    assert!(matches!(err, Error::AllNan { .. }), "{err}");
    assert!(err.to_string().contains("values"));
}

#[test]
fn invalid_color_ranges_are_an_error() {
    let mut map = small_heatmap();
    map.vmin = Some(0.8);
    map.vmax = Some(0.2);
    assert!(matches!(map.to_svg(), Err(Error::InvalidRange { .. })));
    map.vmin = Some(f64::NAN);
    assert!(matches!(map.to_svg(), Err(Error::InvalidRange { .. })));
}

#[test]
fn json_round_trip_keeps_nan() {
    let mut map = small_heatmap();
    map.values[0][0] = f64::NAN;
    let json = serde_json::to_string(&map).unwrap();
    assert!(json.contains("null"));
    let back: Heatmap = serde_json::from_str(&json).unwrap();
    assert!(back.values[0][0].is_nan());
    assert_eq!(back.values[1], map.values[1]);
    assert_eq!(back.row_labels, map.row_labels);
    assert_eq!(back.palette, map.palette);
    // Missing fields take defaults.
    let min: Heatmap = serde_json::from_str(r#"{"values":[[1,2]],"row_labels":["a"]}"#).unwrap();
    assert_eq!(min.palette, Palette::Purples);
    assert!(min.to_svg().is_ok());
}

#[test]
fn bar_marks_draw_a_line_across_the_colour_bar_only_within_range() {
    let plain = small_heatmap().to_svg().unwrap();
    let mut marked = small_heatmap();
    marked.bar_marks = vec![0.3, 99.0];
    let svg = marked.to_svg().unwrap();
    let lines = |s: &str| s.matches("<line").count();
    // 0.3 is inside the colour range: one more line; 99 is outside: none.
    assert_eq!(lines(&svg), lines(&plain) + 1);
}
