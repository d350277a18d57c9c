//! Figures (feature `viz`): the heads heatmap and the layer-sweep plot.

use viz::{Heatmap, LinePlot, Palette, Series};

use crate::eval::{Accuracy, TaskAccuracy};
use crate::scan::HeadScore;

/// Layers × heads heatmap of the indirect effect (`aie[layer][head]`); each top head's cell is
/// outlined, layers holding a top head are starred and the top heads are listed in the title.
pub fn heads_heatmap(aie: &[Vec<f64>], top: &[HeadScore], model: &str, what: &str) -> Heatmap {
    let mut starred: Vec<usize> = top.iter().map(|h| h.layer).collect();
    starred.sort_unstable();
    starred.dedup();
    let listed = top
        .iter()
        .map(|h| format!("{}.{}", h.layer, h.head))
        .collect::<Vec<_>>()
        .join(" ");
    let n_heads = aie.first().map_or(0, Vec::len);
    Heatmap {
        values: aie.to_vec(),
        row_labels: (0..aie.len()).map(|l| format!("layer {l}")).collect(),
        col_labels: (0..n_heads).map(|h| h.to_string()).collect(),
        starred_rows: starred,
        marked_cells: top.iter().map(|h| (h.layer, h.head)).collect(),
        title: format!(
            "Average indirect effect of each head ({what})\ntop heads (outlined; layer.head, * = layer has one): {listed}"
        ),
        x_label: format!("head within {model}"),
        colorbar_label: "AIE (Δp of answer)".into(),
        palette: Palette::Purples,
        vmin: None,
        vmax: None,
        bar_marks: Vec::new(),
    }
}

fn band(acc: &[Accuracy]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    (
        acc.iter().map(|a| a.rate).collect(),
        acc.iter().map(|a| a.ci_low).collect(),
        acc.iter().map(|a| a.ci_high).collect(),
    )
}

/// Accuracy per layer of the vector's addition (zero-shot and shuffled labels, all test
/// items, 95% Wilson bands), with the no-vector baselines as flat lines.
pub fn layer_sweep_plot(acc: &TaskAccuracy, model: &str) -> LinePlot {
    let x: Vec<f64> = acc.sweep.layers.iter().map(|&l| l as f64).collect();
    let flat = |v: f64| vec![v; x.len()];
    let (zy, zl, zh) = band(&acc.sweep.zero_shot_fv);
    let (sy, sl, sh) = band(&acc.sweep.shuffled_fv);
    LinePlot {
        series: vec![
            Series::new("zero-shot + FV", x.clone(), zy).with_band(zl, zh),
            Series::new("shuffled + FV", x.clone(), sy).with_band(sl, sh),
            Series::new("zero-shot", x.clone(), flat(acc.all.zero_shot.rate)),
            Series::new("shuffled", x.clone(), flat(acc.all.shuffled.rate)),
            Series::new(
                format!("{}-shot ICL", acc.shots),
                x.clone(),
                flat(acc.all.icl.rate),
            ),
        ],
        title: format!(
            "Function vector of {} added at each layer\n{} test items, top-1 of the first answer token",
            acc.task, acc.all.icl.n
        ),
        x_label: format!("layer of {model} (output of block)"),
        y_label: "accuracy".into(),
    }
}
