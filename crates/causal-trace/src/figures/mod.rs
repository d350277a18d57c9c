//! Pictures of traces (feature `viz`): a [`TraceGrid`] as a Figure-1 heatmap.

use viz::{Heatmap, Palette};

use crate::trace::{Sever, TraceGrid, TraceKind};

impl TraceKind {
    /// ROME's colour map: purple for hidden states, green for MLP, red for attention.
    pub fn palette(self) -> Palette {
        match self {
            TraceKind::Hidden => Palette::Purples,
            TraceKind::Mlp => Palette::Greens,
            TraceKind::Attn => Palette::Reds,
        }
    }
}

impl TraceGrid {
    /// The grid as a heatmap like the paper's Figure 1: tokens down, layers across, subject
    /// tokens starred, colours from the corrupted score (lightest) up, the answer and its
    /// clean score in the title. `model_name` goes into the x-axis label.
    pub fn to_heatmap(&self, model_name: &str) -> Heatmap {
        let (b, e) = self.subject_range;
        let row_labels = self
            .rows
            .iter()
            .map(|&t| self.tokens.get(t).cloned().unwrap_or_default())
            .collect();
        let starred_rows = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, &t)| t >= b && t < e)
            .map(|(i, _)| i)
            .collect();
        let what = match (self.kind, self.sever) {
            (TraceKind::Hidden, None) => {
                "Impact of restoring state after corrupted input".to_string()
            }
            (TraceKind::Hidden, Some(Sever::Mlp)) => {
                "Impact of restoring state with MLP severed".to_string()
            }
            (TraceKind::Hidden, Some(Sever::Attn)) => {
                "Impact of restoring state with attention severed".to_string()
            }
            (TraceKind::Mlp, _) => "Impact of restoring MLP after corrupted input".to_string(),
            (TraceKind::Attn, _) => {
                "Impact of restoring attention after corrupted input".to_string()
            }
        };
        let x_label = match self.kind {
            TraceKind::Hidden => format!("single restored layer within {model_name}"),
            _ => format!(
                "center of interval of {} restored {} layers",
                self.window,
                self.kind.name()
            ),
        };
        let highest = self
            .scores
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .fold(f64::NEG_INFINITY, f64::max);
        Heatmap {
            values: self.scores.clone(),
            row_labels,
            col_labels: (0..self.n_layers).map(|l| l.to_string()).collect(),
            starred_rows,
            marked_cells: Vec::new(),
            title: format!(
                "{what}\nanswer {:?}: clean {} = {:.3} ({}), corrupted {:.3}\n{}",
                self.answer.text,
                self.metric,
                self.clean_score,
                if self.clean_score <= highest {
                    "line on the colour bar"
                } else {
                    "above every restored cell"
                },
                self.corrupted_score,
                self.setup_line()
            ),
            x_label,
            colorbar_label: self.metric.clone(),
            palette: self.kind.palette(),
            vmin: Some(self.corrupted_score),
            vmax: None,
            bar_marks: vec![self.clean_score],
        }
    }

    /// How the grid was made, for its figure: noise, samples and seed, and for windowed
    /// kinds that windows are cut short at the first and last layers.
    fn setup_line(&self) -> String {
        let mut line = format!(
            "{} noise samples of {}, seed {}",
            self.samples, self.noise, self.seed
        );
        if self.kind != TraceKind::Hidden && self.window > 1 {
            line.push_str(&format!(
                "; windows of {} clamped at the first and last layers",
                self.window
            ));
        }
        line
    }
}

mod summary;
pub use summary::save_figures;
