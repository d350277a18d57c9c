//! Figures of dataset summaries (feature `viz`): averaged heatmaps, line plots with 95% bands,
//! and the severed comparison.

use std::path::{Path, PathBuf};

use viz::{BarPlot, BarSeries, Figure, Heatmap, LinePlot, Series};

use crate::error::{Error, Result};
use crate::summary::{DatasetSummary, Estimate, KindSummary, SeveredSummary, TokenCategory};
use crate::trace::TraceKind;

fn what(k: &KindSummary) -> String {
    match k.kind {
        TraceKind::Hidden => "hidden states".into(),
        TraceKind::Mlp => format!("MLP outputs (window {})", k.window),
        TraceKind::Attn => format!("attention outputs (window {})", k.window),
    }
}

fn x_label(k: &KindSummary, model_name: &str) -> String {
    match k.kind {
        TraceKind::Hidden => format!("single restored layer within {model_name}"),
        _ => format!(
            "center of interval of {} restored {} layers within {model_name}",
            k.window,
            k.kind.name()
        ),
    }
}

fn opt(v: &[Option<f64>]) -> Vec<f64> {
    v.iter().map(|x| x.unwrap_or(f64::NAN)).collect()
}

impl KindSummary {
    /// The averaged trace as a heatmap (ROME's average-effect figure): the six token
    /// categories down, layers across, values = AIE; colours from 0 (as ROME, which
    /// clips the AIE at 0 for this picture) to the largest value.
    pub fn heatmap(&self, model_name: &str) -> Heatmap {
        let te = self.total_effect.mean.unwrap_or(f64::NAN);
        Heatmap {
            values: self.categories.iter().map(|c| opt(&c.aie)).collect(),
            row_labels: TokenCategory::ALL.iter().map(|c| c.label().to_string()).collect(),
            col_labels: (0..self.n_layers).map(|l| l.to_string()).collect(),
            starred_rows: Vec::new(),
            marked_cells: Vec::new(),
            title: format!(
                "Average indirect effect of restoring {}, n = {} prompts\naverage total effect {te:.3}: clean {:.3}, corrupted {:.3}",
                what(self),
                self.cases,
                self.high.unwrap_or(f64::NAN),
                self.low.unwrap_or(f64::NAN),
            ),
            x_label: x_label(self, model_name),
            colorbar_label: "AIE".into(),
            palette: self.kind.palette(),
            vmin: Some(0.0),
            vmax: None,
            bar_marks: Vec::new(),
        }
    }

    /// AIE per layer at the last subject token and the last token, with 95% bands.
    pub fn line_plot(&self, model_name: &str) -> LinePlot {
        let palette = self.kind.palette();
        let x: Vec<f64> = (0..self.n_layers).map(|l| l as f64).collect();
        let series = [
            (TokenCategory::LastSubject, palette.color_at(0.85)),
            (TokenCategory::Last, viz::Rgb::from_hex(0x7f7f7f)),
        ]
        .into_iter()
        .map(|(cat, color)| {
            let c = self.category(cat);
            Series::new(cat.label(), x.clone(), opt(&c.aie))
                .with_band(opt(&c.ci_low), opt(&c.ci_high))
                .with_color(color)
        })
        .collect();
        LinePlot {
            series,
            title: format!(
                "Average indirect effect of restoring {}, n = {} prompts\nmean ± 95% confidence interval",
                what(self),
                self.cases
            ),
            x_label: x_label(self, model_name),
            y_label: "AIE on p(answer)".into(),
        }
    }
}

fn save(figure: &dyn Figure, path: PathBuf, out: &mut Vec<PathBuf>) -> Result<()> {
    figure.save(&path).map_err(|e| Error::Write {
        path: path.clone(),
        error: std::io::Error::other(e.to_string()),
    })?;
    out.push(path);
    Ok(())
}

/// Writes `avg_{kind}.{ext}` (heatmap) and `lines_{kind}.{ext}` (line plot) into `dir`
/// for every kind with at least one case and one finite AIE and every extension of
/// `formats` (`svg`, `png`); returns the paths.
///
/// # Errors
/// [`Error::Write`] naming the file that could not be drawn or written (an unknown
/// extension included).
pub fn save_figures(
    summary: &DatasetSummary,
    dir: &Path,
    model_name: &str,
    formats: &[&str],
) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for k in &summary.kinds {
        let any = k
            .categories
            .iter()
            .flat_map(|c| &c.aie)
            .any(|v| v.is_some_and(f64::is_finite));
        if k.cases == 0 || !any {
            continue;
        }
        let name = k.kind.name();
        let map = k.heatmap(model_name);
        let lines = k.line_plot(model_name);
        for ext in formats {
            save(&map, dir.join(format!("avg_{name}.{ext}")), &mut out)?;
            save(&lines, dir.join(format!("lines_{name}.{ext}")), &mut out)?;
        }
    }
    if let Some(sev) = summary.severed.as_ref().filter(|s| s.cases > 0) {
        let plot = sev.bar_plot();
        for ext in formats {
            save(&plot, dir.join(format!("severed.{ext}")), &mut out)?;
        }
    }
    Ok(out)
}

impl SeveredSummary {
    /// Bars per layer for the three conditions, with 95% error bars.
    pub fn bar_plot(&self) -> BarPlot {
        let value = |e: &Estimate| e.mean.unwrap_or(f64::NAN);
        let series = [
            ("ordinary", &self.ordinary),
            ("MLP severed", &self.mlp_severed),
            ("attention severed", &self.attn_severed),
        ]
        .into_iter()
        .map(|(name, est)| {
            let lo = est.iter().map(|e| e.ci_low.unwrap_or(f64::NAN)).collect();
            let hi = est.iter().map(|e| e.ci_high.unwrap_or(f64::NAN)).collect();
            BarSeries::new(name, est.iter().map(value).collect()).with_band(lo, hi)
        })
        .collect();
        BarPlot {
            categories: (0..self.n_layers).map(|l| l.to_string()).collect(),
            series,
            title: format!(
                "Average effect of restoring the last subject token, n = {} prompts\nordinary, and with MLP or attention severed (mean ± 95% CI)",
                self.cases
            ),
            x_label: "layer of the restored hidden state".into(),
            y_label: "AIE on p(answer)".into(),
        }
    }
}
