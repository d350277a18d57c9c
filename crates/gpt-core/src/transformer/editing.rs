//! Weight access by role ([`WeightId`]) and exactly undoable edits.

use super::{Mlp, Transformer};
use crate::edit::{EditUndo, WeightDelta, WeightId};
use crate::error::{Error, Result};
use crate::model::EditableModel;

/// The one mapping from a [`WeightId`] to the tensor that holds it, for shared and exclusive
/// access: `select_weight!(model, id)` is `Result<&Tensor>`, `select_weight!(model, id, mut)`
/// is `Result<&mut Tensor>`.
macro_rules! select_weight {
    ($model:expr, $id:expr $(, $m:tt)?) => {{
        let id: WeightId = $id;
        let n_layers = $model.blocks.len();
        match id.layer() {
            None => match id {
                WeightId::Embed => Ok(& $($m)? $model.embed),
                WeightId::Unembed => Ok(& $($m)? $model.unembed),
                _ => Err(Error::NoSuchWeight { id }),
            },
            Some(layer) => match (& $($m)? $model.blocks).into_iter().nth(layer.0) {
                None => Err(Error::LayerOutOfRange { layer: layer.0, n_layers }),
                Some(block) => match (id, & $($m)? block.mlp) {
                    (WeightId::AttnQ(_), _) => Ok(& $($m)? block.attn.q.weight),
                    (WeightId::AttnK(_), _) => Ok(& $($m)? block.attn.k.weight),
                    (WeightId::AttnV(_), _) => Ok(& $($m)? block.attn.v.weight),
                    (WeightId::AttnOut(_), _) => Ok(& $($m)? block.attn.o.weight),
                    (WeightId::MlpIn(_), Mlp::Gelu { fc_in: lin, .. } | Mlp::Gated { up: lin, .. })
                    | (WeightId::MlpGate(_), Mlp::Gated { gate: lin, .. })
                    | (WeightId::MlpOut(_), Mlp::Gelu { fc_out: lin, .. } | Mlp::Gated { down: lin, .. }) => {
                        Ok(& $($m)? lin.weight)
                    }
                    _ => Err(Error::NoSuchWeight { id }),
                },
            },
        }
    }};
}

impl EditableModel for Transformer {
    fn weight(&self, id: WeightId) -> Result<&tch::Tensor> {
        select_weight!(self, id)
    }

    fn apply(&mut self, delta: &WeightDelta) -> Result<EditUndo> {
        let target = delta.target();
        let (model_id, serial) = (self.id, self.next_serial);
        let w = select_weight!(self, target, mut)?;
        let dense = delta
            .to_dense(&w.size())?
            .f_to_device(w.device())?
            .f_to_kind(w.kind())?;
        let original = tch::no_grad(|| -> Result<tch::Tensor> {
            let original = crate::intervention::copy_of(w)?;
            let _ = w.f_add_(&dense)?;
            Ok(original)
        })?;
        self.next_serial += 1;
        self.edits.push(serial);
        Ok(EditUndo {
            target,
            original,
            model_id,
            serial,
        })
    }

    fn undo(&mut self, undo: &EditUndo) -> Result<()> {
        if undo.model_id != self.id {
            return Err(Error::UndoFromAnotherModel {
                serial: undo.serial,
                target: undo.target,
            });
        }
        if !self.edits.contains(&undo.serial) {
            return Err(Error::AlreadyUndone {
                serial: undo.serial,
                target: undo.target,
            });
        }
        if self.edits.last() != Some(&undo.serial) {
            return Err(Error::UndoOutOfOrder {
                serial: undo.serial,
                target: undo.target,
                open: self.edits.clone(),
            });
        }
        let w = select_weight!(self, undo.target, mut)?;
        tch::no_grad(|| w.f_copy_(&undo.original))?;
        self.edits.pop();
        Ok(())
    }
}
