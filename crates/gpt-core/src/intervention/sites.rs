//! [`Sites`]: which `(row, position[, head])` entries of an activation a position-wise
//! intervention writes.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::hook::HookPoint;

/// Which batch rows a [`Sites`] selects.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rows {
    /// Every row of the activation.
    All,
    /// These rows, in this order.
    These(Vec<usize>),
}

/// Which positions a [`Sites`] selects in its rows. Negative positions count from the end
/// (`-1` is the last position), as in Python.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Positions {
    /// Every position.
    All,
    /// The same positions in every selected row.
    These(Vec<i64>),
    /// One position per selected row (`positions[i]` in the `i`-th selected row), e.g. each
    /// prompt's last subject token in a right-padded batch.
    PerRow(Vec<i64>),
}

/// The entries of an activation `[batch, pos, ...]` (for `hook_z`: `[batch, pos, head,
/// d_head]`) that a position-wise intervention reads or writes: pairs `(row, position)`,
/// optionally narrowed to one attention head.
///
/// The selected pairs are ordered row-major (rows outer, positions inner); values given for
/// them are read in that order (see [`SiteWrite`](crate::intervention::SiteWrite)).
///
/// ```
/// use gpt_core::intervention::Sites;
/// let last_token = Sites::position(-1);                 // every row, last position
/// let subject = Sites::positions([2, 3, 4]).rows([1, 2]); // rows 1 and 2, positions 2..5
/// let per_row = Sites::per_row([4, 6, 5]);             // row i at its own position
/// let head = Sites::position(-1).head(7);              // one head of hook_z
/// # let _ = (last_token, subject, per_row, head);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sites {
    rows: Rows,
    positions: Positions,
    head: Option<usize>,
}

/// [`Sites`] resolved against one activation's shape: index tensors of equal length.
#[derive(Debug)]
pub struct ResolvedSites {
    /// `[n]` i64 row of each selected entry.
    pub rows: Tensor,
    /// `[n]` i64 position of each selected entry.
    pub positions: Tensor,
    /// `[n]` i64 head of each selected entry (`hook_z` with a head only).
    pub heads: Option<Tensor>,
    /// Number of selected entries.
    pub len: usize,
    /// Number of selected rows.
    pub n_rows: usize,
    /// Whether every selected row has the same positions (then `len / n_rows` per row).
    pub same_positions: bool,
    /// The shape of one entry (the activation's dimensions after those indexed).
    pub entry_shape: Vec<i64>,
}

impl ResolvedSites {
    /// The index list for `Tensor::index` / `index_put`.
    pub fn indices(&self) -> Vec<Option<Tensor>> {
        let mut ix = vec![
            Some(self.rows.shallow_clone()),
            Some(self.positions.shallow_clone()),
        ];
        if let Some(h) = &self.heads {
            ix.push(Some(h.shallow_clone()));
        }
        ix
    }
}

impl Sites {
    /// Every row and every position.
    pub fn all() -> Self {
        Self {
            rows: Rows::All,
            positions: Positions::All,
            head: None,
        }
    }

    /// One position (negative: from the end) in every row.
    pub fn position(position: i64) -> Self {
        Self::positions([position])
    }

    /// These positions in every row.
    pub fn positions(positions: impl IntoIterator<Item = i64>) -> Self {
        Self {
            rows: Rows::All,
            positions: Positions::These(positions.into_iter().collect()),
            head: None,
        }
    }

    /// One position per row: row `i` (of the selected rows) at `positions[i]`.
    pub fn per_row(positions: impl IntoIterator<Item = i64>) -> Self {
        Self {
            rows: Rows::All,
            positions: Positions::PerRow(positions.into_iter().collect()),
            head: None,
        }
    }

    /// Restricts the sites to these rows (in this order).
    #[must_use]
    pub fn rows(mut self, rows: impl IntoIterator<Item = usize>) -> Self {
        self.rows = Rows::These(rows.into_iter().collect());
        self
    }

    /// Narrows every site to one attention head (for `blocks.{l}.attn.hook_z`).
    #[must_use]
    pub fn head(mut self, head: usize) -> Self {
        self.head = Some(head);
        self
    }

    /// The same sites on every row (keeping positions and head): how a batch-1 source is
    /// read when it is patched into a larger batch.
    #[must_use]
    pub fn with_all_rows(&self) -> Self {
        Self {
            rows: Rows::All,
            ..self.clone()
        }
    }

    /// The selected rows.
    pub fn selected_rows(&self) -> &Rows {
        &self.rows
    }

    /// The selected positions.
    pub fn selected_positions(&self) -> &Positions {
        &self.positions
    }

    /// The selected head.
    pub fn selected_head(&self) -> Option<usize> {
        self.head
    }

    /// Resolves the sites against an activation of shape `shape` seen at `point`.
    ///
    /// # Errors
    /// [`Error::SiteOutOfRange`] for a row, position or head outside the activation;
    /// [`Error::InvalidSites`] for per-row positions whose count differs from the rows', or
    /// a head on an activation without a head dimension.
    pub fn resolve(
        &self,
        point: HookPoint,
        shape: &[i64],
        device: tch::Device,
    ) -> Result<ResolvedSites> {
        let invalid = |reason: String| Error::InvalidSites { point, reason };
        let min_dims = if self.head.is_some() { 4 } else { 2 };
        if shape.len() < min_dims {
            return Err(invalid(if self.head.is_some() {
                format!("a head was selected, but the activation {shape:?} has no head dimension (use blocks.{{l}}.attn.hook_z)")
            } else {
                format!("the activation {shape:?} has no position dimension")
            }));
        }
        let (b, t) = (shape[0], shape[1]);
        let out_of_range = |what: &'static str, index: i64, len: i64| Error::SiteOutOfRange {
            point,
            what,
            index,
            len,
        };
        let rows: Vec<i64> = match &self.rows {
            Rows::All => (0..b).collect(),
            Rows::These(rs) => rs
                .iter()
                .map(|&r| {
                    let r = r as i64;
                    if r < b {
                        Ok(r)
                    } else {
                        Err(out_of_range("row", r, b))
                    }
                })
                .collect::<Result<_>>()?,
        };
        let position = |p: i64| {
            let q = if p < 0 { p + t } else { p };
            if (0..t).contains(&q) {
                Ok(q)
            } else {
                Err(out_of_range("position", p, t))
            }
        };
        let (mut row_ix, mut pos_ix) = (Vec::new(), Vec::new());
        let same_positions = !matches!(self.positions, Positions::PerRow(_));
        match &self.positions {
            Positions::All | Positions::These(_) => {
                let ps: Vec<i64> = match &self.positions {
                    Positions::These(ps) => {
                        ps.iter().map(|&p| position(p)).collect::<Result<_>>()?
                    }
                    _ => (0..t).collect(),
                };
                for &r in &rows {
                    for &p in &ps {
                        row_ix.push(r);
                        pos_ix.push(p);
                    }
                }
            }
            Positions::PerRow(ps) => {
                if ps.len() != rows.len() {
                    return Err(invalid(format!(
                        "{} per-row positions for {} selected rows",
                        ps.len(),
                        rows.len()
                    )));
                }
                for (&r, &p) in rows.iter().zip(ps) {
                    row_ix.push(r);
                    pos_ix.push(position(p)?);
                }
            }
        }
        let heads = match self.head {
            None => None,
            Some(h) => {
                let n_heads = shape[2];
                if h as i64 >= n_heads {
                    return Err(out_of_range("head", h as i64, n_heads));
                }
                Some(Tensor::f_full(
                    [row_ix.len() as i64],
                    h as i64,
                    (Kind::Int64, device),
                )?)
            }
        };
        let indexed = if self.head.is_some() { 3 } else { 2 };
        Ok(ResolvedSites {
            len: row_ix.len(),
            n_rows: rows.len(),
            same_positions,
            rows: Tensor::f_from_slice(&row_ix)?.f_to_device(device)?,
            positions: Tensor::f_from_slice(&pos_ix)?.f_to_device(device)?,
            heads,
            entry_shape: shape[indexed..].to_vec(),
        })
    }
}
