//! Writes sample figures of synthetic causal traces to a folder, as SVG and
//! PNG: three heatmaps (hidden / MLP / attention, 10 tokens × 30 layers), a
//! line plot with 95% bands and a "severed" bar plot.
//!
//! ```text
//! cargo run -p factscope-viz --example demo_figures -- [OUT_DIR]
//! ```
//!
//! `OUT_DIR` defaults to `target/viz-demo`.

#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

use viz::{BarPlot, BarSeries, Figure, Heatmap, LinePlot, Palette, Series};

const LAYERS: usize = 30;

/// A bump of height `h` centred on `c` with width `w`.
fn bump(x: f64, c: f64, w: f64, h: f64) -> f64 {
    h * (-((x - c) / w).powi(2)).exp()
}

/// Synthetic trace: early site at the subject's last token, late site at the
/// prompt's last token.
fn trace(early: (f64, f64), late: (f64, f64), low: f64) -> Vec<Vec<f64>> {
    (0..10)
        .map(|row| {
            (0..LAYERS)
                .map(|l| {
                    let l = l as f64;
                    let v = match row {
                        3 => bump(l, early.0, 5.0, early.1),
                        1 | 2 => bump(l, early.0 - 2.0, 4.0, early.1 * 0.35),
                        9 => bump(l, late.0, 6.0, late.1) + 0.5 * late.1 * (l / 29.0).powi(3),
                        _ => 0.02 * ((row * 7 + l as usize) % 5) as f64,
                    };
                    (low + v).min(1.0)
                })
                .collect()
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/viz-demo"), PathBuf::from);
    std::fs::create_dir_all(&out)?;

    let tokens: Vec<String> = [
        "The", " Space", " Need", "le", " is", " located", " in", " the", " city", " of",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let kinds = [
        (
            "hidden",
            "state",
            Palette::Purples,
            (8.0, 0.75),
            (22.0, 0.55),
        ),
        ("mlp", "MLP", Palette::Greens, (6.0, 0.45), (20.0, 0.1)),
        ("attn", "Attn", Palette::Reds, (4.0, 0.05), (20.0, 0.5)),
    ];
    for (file, what, palette, early, late) in kinds {
        let low = 0.06;
        let map = Heatmap {
            values: trace(early, late, low),
            row_labels: tokens.clone(),
            col_labels: Vec::new(),
            starred_rows: vec![1, 2, 3],
            marked_cells: Vec::new(),
            title: format!(
                "Impact of restoring {what} after corrupted input\nanswer \" Seattle\" (p=0.82)"
            ),
            x_label: "single restored layer within SmolLM2".into(),
            colorbar_label: "p( Seattle)".into(),
            palette,
            vmin: Some(low),
            vmax: None,
            bar_marks: vec![0.78],
        };
        for ext in ["svg", "png"] {
            let path = out.join(format!("heatmap_{file}.{ext}"));
            map.save(&path)?;
            println!("wrote {}", path.display());
        }
    }

    // Odd tokens, missing values and a few columns: every label stays visible.
    let odd = Heatmap {
        values: vec![
            vec![0.1, 0.2, f64::NAN, 0.4, 0.5, 0.6],
            vec![0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
            vec![0.2, f64::NAN, 0.9, 0.9, 0.2, 0.2],
            vec![0.3, 0.3, 0.3, 0.7, 0.7, 0.7],
        ],
        row_labels: vec![
            "\n".into(),
            " ".into(),
            " Supercalifragilistic".into(),
            String::new(),
        ],
        col_labels: (0..6).map(|l| format!("L{}", 4 * l)).collect(),
        starred_rows: vec![2],
        marked_cells: vec![(2, 2)],
        title: "Odd tokens and missing (grey) values".into(),
        x_label: "center of interval of 10 restored MLP layers".into(),
        colorbar_label: "p(\" answer\")".into(),
        palette: Palette::Blues,
        vmin: None,
        vmax: Some(1.0),
        bar_marks: Vec::new(),
    };
    for ext in ["svg", "png"] {
        let path = out.join(format!("heatmap_odd.{ext}"));
        odd.save(&path)?;
        println!("wrote {}", path.display());
    }

    // Average indirect effect per layer, with 95% bands.
    let x: Vec<f64> = (0..LAYERS).map(|l| l as f64).collect();
    let curve =
        |c: f64, h: f64| -> Vec<f64> { x.iter().map(|&l| 0.02 + bump(l, c, 5.0, h)).collect() };
    let series: Vec<Series> = [
        ("hidden state", Palette::Purples, curve(9.0, 0.35)),
        ("MLP", Palette::Greens, curve(6.0, 0.22)),
        ("attention", Palette::Reds, curve(20.0, 0.12)),
    ]
    .into_iter()
    .map(|(name, palette, y)| {
        let lower = y.iter().map(|v| v - 0.03 - v * 0.15).collect();
        let upper = y.iter().map(|v| v + 0.03 + v * 0.15).collect();
        Series::new(name, x.clone(), y)
            .with_band(lower, upper)
            .with_color(palette.accent())
    })
    .collect();
    let lines = LinePlot {
        series,
        title: "Average indirect effect at the last subject token\n1000 facts, 95% confidence"
            .into(),
        x_label: "layer".into(),
        y_label: "average indirect effect on p(o)".into(),
    };
    for ext in ["svg", "png"] {
        let path = out.join(format!("lines.{ext}"));
        lines.save(&path)?;
        println!("wrote {}", path.display());
    }

    // Severed comparison per layer.
    let ordinary = curve(9.0, 0.35);
    let mlp_severed: Vec<f64> = ordinary
        .iter()
        .zip(&x)
        .map(|(v, &l)| if l < 12.0 { v * 0.45 } else { *v })
        .collect();
    let attn_severed: Vec<f64> = ordinary.iter().map(|v| v * 0.92).collect();
    let ci = |v: &Vec<f64>| -> (Vec<f64>, Vec<f64>) {
        (
            v.iter().map(|y| y - 0.025).collect(),
            v.iter().map(|y| y + 0.025).collect(),
        )
    };
    let mk = |name: &str, v: Vec<f64>, palette: Palette| {
        let (lo, hi) = ci(&v);
        BarSeries::new(name, v)
            .with_band(lo, hi)
            .with_color(palette.accent())
    };
    let bars = BarPlot {
        categories: (0..LAYERS).map(|l| l.to_string()).collect(),
        series: vec![
            mk("Effect of single state", ordinary, Palette::Purples),
            mk("with Attn severed", attn_severed, Palette::Reds),
            mk("with MLP severed", mlp_severed, Palette::Greens),
        ],
        title: "Average indirect effect of a single hidden state, MLP or Attn severed".into(),
        x_label: "layer at which the single hidden state is restored".into(),
        y_label: "average indirect effect on p(o)".into(),
    };
    for ext in ["svg", "png"] {
        let path = out.join(format!("bars.{ext}"));
        bars.save(&path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
