//! Peak memory of loading a model: prints the resident set before loading (the process with
//! libtorch initialised), the peak after loading (VmHWM), the size of the weights in the
//! compute dtype, and the ratio of the load's peak increase to that size.
//!
//! `cargo run --release -p factscope-gpt-core --example load_memory [-- PATH] [--dtype f32|bf16|f16]`

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{load_model, EditableModel, HookableModel, LoadOptions, WeightId};

fn status_mib(key: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("field");
    kb / 1024.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = match args
        .iter()
        .position(|a| a == "--dtype")
        .map(|i| args[i + 1].as_str())
    {
        None | Some("f32") => Kind::Float,
        Some("bf16") => Kind::BFloat16,
        Some("f16") => Kind::Half,
        Some(other) => panic!("--dtype {other}: expected f32, bf16 or f16"),
    };
    let path = args
        .iter()
        .take_while(|a| *a != "--dtype")
        .next()
        .map_or_else(
            || {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf")
            },
            PathBuf::from,
        );
    // Initialise libtorch first so its own footprint is not counted as loading.
    let _ = Tensor::zeros([1], (Kind::Float, Device::Cpu)).sum(Kind::Float);
    let before = status_mib("VmRSS:");
    let m = load_model(
        &path,
        LoadOptions {
            kind,
            ..LoadOptions::default()
        },
    )
    .expect("load");
    let peak = status_mib("VmHWM:");
    let after = status_mib("VmRSS:");
    let c = m.model.config();
    // Parameter count from the weights themselves (tied embeddings counted once).
    let mut params = m.model.weight(WeightId::Embed).unwrap().numel();
    params += c.n_layers * 2 * c.d_model + c.d_model; // norms
    for l in 0..c.n_layers {
        for id in WeightId::of_layer(gpt_core::Layer(l)) {
            if let Ok(w) = m.model.weight(id) {
                params += w.numel();
            }
        }
    }
    if !c.tied_embeddings {
        params += m.model.weight(WeightId::Unembed).unwrap().numel();
    }
    let weight_mib = params as f64 * kind.elt_size_in_bytes() as f64 / (1024.0 * 1024.0);
    println!(
        "{}: {params} parameters, {weight_mib:.0} MiB in {kind:?}",
        path.display()
    );
    println!("RSS before load {before:.0} MiB, after {after:.0} MiB, peak {peak:.0} MiB");
    println!(
        "peak increase during load: {:.0} MiB = {:.2} x the weight size in {kind:?}",
        peak - before,
        (peak - before) / weight_mib
    );
}
