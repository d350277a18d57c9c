//! Vector arithmetic on composed list tasks (Todd et al. §5): inputs are lists of items;
//! a task selects an item (A = first, B = last) and transforms it (C = copy, D = the base
//! task, e.g. antonym or country-capital). `v*_BD = v_AD + v_BC − v_AC` is compared with
//! `v_BD` extracted directly and with ICL on BD.
//!
//! Neither the reference repository nor the shared data has the list datasets, so they are
//! generated here from a base task: each input joins `list_len` distinct base inputs with
//! `", "`.

use gpt_core::tch::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::RandomState;
use crate::task::{Pair, Task};

/// Which list item a composed task selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Select {
    /// The first item (A).
    First,
    /// The last item (B).
    Last,
}

/// What a composed task does to the selected item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transform {
    /// Copy it (C).
    Copy,
    /// Apply the base task (D).
    Apply,
}

/// A composed list task of `n` pairs from `base`: each input lists `list_len` distinct base
/// inputs (drawn with `RandomState(seed)`), each output is the selected item, copied or
/// mapped by the base task. Named `{first|last}-{copy|<base>}`.
///
/// # Errors
/// `list_len` of 0 or above the base task's size.
pub fn compose_list_task(
    base: &Task,
    select: Select,
    transform: Transform,
    list_len: usize,
    n: usize,
    seed: u32,
) -> Result<Task> {
    if list_len == 0 || list_len > base.len() {
        return Err(Error::InvalidInput(format!(
            "lists of {list_len} items from a task of {} pairs",
            base.len()
        )));
    }
    let mut rng = RandomState::new(seed);
    let pairs = (0..n)
        .map(|_| {
            let items = rng.choice(base.len(), list_len);
            let chosen = match select {
                Select::First => items[0],
                Select::Last => items[list_len - 1],
            };
            let input = items
                .iter()
                .map(|&i| base.pairs[i].input.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let output = match transform {
                Transform::Copy => base.pairs[chosen].input.clone(),
                Transform::Apply => base.pairs[chosen].output.clone(),
            };
            Pair { input, output }
        })
        .collect();
    let name = format!(
        "{}-{}",
        match select {
            Select::First => "first",
            Select::Last => "last",
        },
        match transform {
            Transform::Copy => "copy".to_string(),
            Transform::Apply => base.name.clone(),
        }
    );
    Task::from_pairs(name, pairs)
}

/// `v*_BD = v_AD + v_BC − v_AC`.
///
/// # Errors
/// Vectors of different shapes.
pub fn compose_vectors(v_ad: &Tensor, v_bc: &Tensor, v_ac: &Tensor) -> Result<Tensor> {
    Ok(v_ad.f_add(v_bc)?.f_sub(v_ac)?)
}
