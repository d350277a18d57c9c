//! Saving by extension (atomically) and the PNG rasteriser's text.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{decode_png, small_bar_plot, small_heatmap, small_line_plot, svg_size, PNG_SIGNATURE};
use viz::{svg_to_png, Error, Figure, ImageFormat};

fn leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn save_writes_svg_and_png_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let figures: Vec<(&str, Box<dyn Figure>)> = vec![
        ("heatmap", Box::new(small_heatmap())),
        ("lines", Box::new(small_line_plot())),
        ("bars", Box::new(small_bar_plot())),
    ];
    for (name, fig) in &figures {
        let svg_path = dir.path().join(format!("{name}.svg"));
        let png_path = dir.path().join(format!("{name}.PNG"));
        fig.save(&svg_path).unwrap();
        fig.save(&png_path).unwrap();
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert_eq!(svg, fig.to_svg().unwrap());
        let png = std::fs::read(&png_path).unwrap();
        assert!(png.starts_with(PNG_SIGNATURE));
        let (w, h) = svg_size(&svg);
        let (pw, ph, _) = decode_png(&png);
        let scale = f64::from(viz::DEFAULT_PNG_SCALE);
        assert_eq!(
            (pw, ph),
            ((w * scale).ceil() as u32, (h * scale).ceil() as u32)
        );
    }
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn save_replaces_an_existing_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fig.svg");
    std::fs::write(&path, "old content that is longer than nothing").unwrap();
    small_line_plot().save(&path).unwrap();
    let now = std::fs::read_to_string(&path).unwrap();
    assert!(now.starts_with("<svg"));
    assert!(!now.contains("old content"));
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn save_with_scale_sets_the_png_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fig.png");
    let map = small_heatmap();
    map.save_with_scale(&path, 1.0).unwrap();
    let (w, h) = svg_size(&map.to_svg().unwrap());
    let (pw, ph, _) = decode_png(&std::fs::read(&path).unwrap());
    assert_eq!((pw, ph), (w.ceil() as u32, h.ceil() as u32));
}

#[test]
fn unknown_extensions_are_an_error_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["fig.pdf", "fig", "fig.svg.bak"] {
        let path = dir.path().join(name);
        let err = small_heatmap().save(&path).unwrap_err();
        assert!(matches!(err, Error::UnknownExtension { .. }), "{err}");
        assert!(err.to_string().contains(name), "{err}");
        assert!(!path.exists());
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert_eq!(
        ImageFormat::from_path("a.Svg".as_ref()).unwrap(),
        ImageFormat::Svg
    );
}

#[test]
fn a_missing_folder_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/folder/fig.svg");
    let err = small_heatmap().save(&path).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("fig.svg"), "{err}");
}

#[test]
fn invalid_scales_are_an_error() {
    let map = small_heatmap();
    for scale in [0.0f32, -1.0, f32::NAN, f32::INFINITY, 100.0] {
        let err = map.to_png(scale).unwrap_err();
        assert!(matches!(err, Error::InvalidScale { .. }), "{scale}: {err}");
    }
}

/// Dark pixels in an RGBA image.
fn dark_pixels(rgba: &[u8]) -> usize {
    rgba.chunks_exact(4)
        .filter(|p| p[3] > 0 && u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2]) < 200)
        .count()
}

#[test]
fn text_renders_from_the_embedded_font() {
    // Only text: if the font were missing, the image would be blank.
    for family in ["sans-serif", "DejaVu Sans", "serif"] {
        let svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="30"><text x="4" y="22" font-size="18" font-family="{family}">Paris</text></svg>"#
        );
        let (w, h, rgba) = decode_png(&svg_to_png(&svg, 1.0).unwrap());
        assert_eq!((w, h), (120, 30));
        assert!(dark_pixels(&rgba) > 40, "{family}: {}", dark_pixels(&rgba));
    }
}

#[test]
fn figure_labels_show_in_the_png() {
    // The same heatmap with and without its texts: the texts add dark pixels.
    let map = small_heatmap();
    let mut bare = map.clone();
    bare.title.clear();
    bare.x_label.clear();
    bare.colorbar_label.clear();
    bare.row_labels = vec![String::from("\u{a0}x"); 4];
    let (_, _, with_text) = decode_png(&map.to_png(1.0).unwrap());
    let (_, _, without) = decode_png(&bare.to_png(1.0).unwrap());
    assert!(dark_pixels(&with_text) > dark_pixels(&without) + 300);
}

#[test]
fn bad_svg_is_a_render_error() {
    assert!(matches!(svg_to_png("<svg", 1.0), Err(Error::Render(_))));
}
