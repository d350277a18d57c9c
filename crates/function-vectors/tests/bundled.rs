//! On the bundled SmolLM2-135M (grouped-query attention: 9 query heads over 3 key/value
//! heads) with a shared task: the splits, the prompt's answer token, and the fast head scan
//! against the naive oracle (≤ 1e-4). Reads `../shared/data`: runs with the feature
//! `shared-data`.

#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use function_vectors::extract::draw_prompts;
use function_vectors::rng::RandomState;
use function_vectors::{
    mean_head_activations, scan_prompt, Bos, PromptBuilder, Schedule, Splits, Task,
};
use gpt_core::HookableModel;

#[test]
#[cfg_attr(
    not(feature = "shared-data"),
    ignore = "reads ../shared/data: enable the feature shared-data"
)]
fn fast_scan_equals_naive_on_the_bundled_model() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model_path = root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        model_path.is_file(),
        "the bundled model {} is absent: run `bash scripts/setup.sh`, which installs it with libtorch",
        model_path.display()
    );
    let m = gpt_core::load_model(&model_path, Default::default()).unwrap();
    let task =
        Task::load(&root.join("../shared/data/function_vectors/country-capital.json")).unwrap();
    assert_eq!(task.len(), 197);
    let builder = PromptBuilder::new(&m.tokenizer, m.model.config(), &task).unwrap();
    // SmolLM2's tokenizer adds no BOS: `<|endoftext|>` (id 0) is put first.
    assert_eq!(builder.bos(), Bos::Inserted(0));
    let splits = Splits::new(task.len(), 42);
    assert_eq!(
        (splits.train.len(), splits.valid.len(), splits.test.len()),
        (137, 18, 42)
    );
    let z = builder.zero_shot(splits.test[0]).unwrap();
    assert_eq!(z.ids[0], 0);
    let answer = &task.pairs[splits.test[0]].output;
    assert_eq!(
        z.answer,
        gpt_core::first_target_token(&m.tokenizer, answer)
            .unwrap()
            .id
    );

    let mut rng = RandomState::new(1);
    let clean = draw_prompts(
        &builder,
        &splits.train,
        &splits.valid,
        5,
        5,
        false,
        &mut rng,
    )
    .unwrap();
    let mean = mean_head_activations(&m.model, &clean, &mut gpt_core::progress::ignore).unwrap();
    let p = &draw_prompts(&builder, &splits.train, &splits.valid, 5, 1, true, &mut rng).unwrap()[0];
    let (p0f, fast) = scan_prompt(&m.model, p, &mean, Schedule::Fast, 512).unwrap();
    let (p0n, naive) = scan_prompt(&m.model, p, &mean, Schedule::Naive, 1).unwrap();
    assert!((p0f - p0n).abs() <= 1e-5);
    let mut max_diff = 0.0f64;
    for (a, b) in fast.iter().flatten().zip(naive.iter().flatten()) {
        max_diff = max_diff.max((a - b).abs());
    }
    assert!(max_diff <= 1e-4, "max |fast − naive| = {max_diff}");
    assert_eq!(fast.len(), 30);
    assert_eq!(fast[0].len(), 9);
}
