//! `--save-control-vector`: the function vector as a llama.cpp control vector.

use gpt_core::steering::llama_cpp_arch;
use gpt_core::tch::Tensor;
use gpt_core::HookableModel;

use super::Context;

/// Writes the (one) task's vector at `--layer`, times `--control-vector-scale`, as a GGUF
/// control vector when `--save-control-vector` is given (the file was checked to be new
/// before any work); says so on stderr unless `--json`.
pub(super) fn save(cx: &Context<'_>, vectors: &[Tensor]) -> anyhow::Result<()> {
    let (Some(path), Some(v)) = (&cx.args.save_control_vector, vectors.first()) else {
        return Ok(());
    };
    let c = cx.loaded.model.config();
    let layer = cx.layer;
    let steering = function_vectors::vector::steering_vector(v, layer, c.d_model)?
        .scaled(cx.args.control_vector_scale);
    steering.save_control_vector(path, llama_cpp_arch(c))?;
    if !cx.args.json {
        eprintln!(
            "wrote {} (direction.{layer}, scale {})",
            path.display(),
            cx.args.control_vector_scale
        );
    }
    Ok(())
}
