//! Token batches: ids, attention mask and positions, with left or right padding.

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Which side of a shorter sequence the padding goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Padding {
    /// Pad after the tokens (Hugging Face's default for GPT-2).
    #[default]
    Right,
    /// Pad before the tokens (so every row's last token is at the last position).
    Left,
}

/// A batch of token sequences ready for a forward pass.
///
/// Positions are derived from the attention mask (`cumsum(mask) - 1`, clamped at 0), so
/// left- and right-padded batches compute the same values for their real tokens.
#[derive(Debug)]
pub struct TokenBatch {
    /// `[batch, pos]` i64 token ids.
    pub ids: Tensor,
    /// `[batch, past + pos]` i64: 1 for real tokens, 0 for padding. Includes cached positions
    /// when used with a [`KvCache`](crate::KvCache).
    pub attention_mask: Tensor,
    /// `[batch, pos]` i64 position of each token.
    pub positions: Tensor,
}

impl TokenBatch {
    /// One unpadded sequence.
    ///
    /// # Errors
    /// [`Error::EmptyPrompt`] for an empty sequence.
    pub fn single(ids: &[i64], device: Device) -> Result<Self> {
        Self::pad(&[ids.to_vec()], Padding::Right, 0, device)
    }

    /// Several sequences padded to the longest with `pad_id`.
    ///
    /// # Errors
    /// [`Error::EmptyPrompt`] if the batch or any sequence is empty.
    pub fn pad(seqs: &[Vec<i64>], padding: Padding, pad_id: i64, device: Device) -> Result<Self> {
        if seqs.is_empty() || seqs.iter().any(|s| s.is_empty()) {
            return Err(Error::EmptyPrompt);
        }
        let len = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(seqs.len() * len);
        let mut mask = Vec::with_capacity(seqs.len() * len);
        for s in seqs {
            let pad = len - s.len();
            let (lead, trail) = match padding {
                Padding::Right => (0, pad),
                Padding::Left => (pad, 0),
            };
            ids.extend(std::iter::repeat_n(pad_id, lead));
            mask.extend(std::iter::repeat_n(0i64, lead));
            ids.extend_from_slice(s);
            mask.extend(std::iter::repeat_n(1i64, s.len()));
            ids.extend(std::iter::repeat_n(pad_id, trail));
            mask.extend(std::iter::repeat_n(0i64, trail));
        }
        let shape = [seqs.len() as i64, len as i64];
        let ids = Tensor::f_from_slice(&ids)?
            .f_reshape(shape)?
            .f_to_device(device)?;
        let attention_mask = Tensor::f_from_slice(&mask)?
            .f_reshape(shape)?
            .f_to_device(device)?;
        Self::from_ids_and_mask(ids, attention_mask)
    }

    /// A batch from ids and a mask (both `[batch, pos]`), positions derived from the mask.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the shapes differ or are not 2-D.
    pub fn from_ids_and_mask(ids: Tensor, attention_mask: Tensor) -> Result<Self> {
        if ids.dim() != 2 || ids.size() != attention_mask.size() {
            return Err(Error::ShapeMismatch {
                name: "attention_mask".into(),
                expected: ids.size(),
                got: attention_mask.size(),
            });
        }
        let positions = attention_mask
            .f_cumsum(1, Kind::Int64)?
            .f_sub_scalar(1)?
            .f_clamp_min(0)?;
        Ok(Self {
            ids,
            attention_mask,
            positions,
        })
    }

    /// A batch with explicit positions (`[batch, pos]`) and a mask (`[batch, past + pos]`).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the shapes disagree.
    pub fn with_positions(ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Result<Self> {
        let (b, t) = ids.size2()?;
        if positions.size() != [b, t] {
            return Err(Error::ShapeMismatch {
                name: "positions".into(),
                expected: vec![b, t],
                got: positions.size(),
            });
        }
        let mask_size = attention_mask.size();
        if mask_size.len() != 2 || mask_size[0] != b || mask_size[1] < t {
            return Err(Error::ShapeMismatch {
                name: "attention_mask".into(),
                expected: vec![b, t],
                got: mask_size,
            });
        }
        Ok(Self {
            ids,
            attention_mask,
            positions,
        })
    }

    /// Batch size.
    pub fn batch_size(&self) -> usize {
        self.ids.size().first().copied().unwrap_or(0) as usize
    }

    /// Number of (new) positions.
    pub fn len(&self) -> usize {
        self.ids.size().get(1).copied().unwrap_or(0) as usize
    }

    /// Whether the batch has no positions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index of each row's last real token, `[batch]` i64 (for right padding this differs
    /// per row; for left padding it is always `len - 1`).
    ///
    /// # Errors
    /// libtorch errors only.
    pub fn last_positions(&self) -> Result<Tensor> {
        let t = self.len() as i64;
        let mask = self
            .attention_mask
            .f_narrow(1, self.attention_mask.size()[1] - t, t)?;
        let idx = Tensor::f_arange(t, (Kind::Int64, mask.device()))?;
        Ok(mask.f_mul(&idx)?.f_amax(1, false)?)
    }
}
