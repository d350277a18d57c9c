//! Bad input gives clear errors naming the file, record and field; nothing is written.

#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;

use function_vectors::file::{self, FvMeta};
use function_vectors::resume::BaseRun;
use function_vectors::{
    add_at_layers, evaluate_items, function_vector, mean_head_activations, model_fingerprint,
    Error, EvalOptions, HeadScore, PromptBuilder, Splits, Task,
};
use gpt_core::tch::{Kind, Tensor};
use gpt_core::{Architecture, HookableModel};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn task_files_are_checked_by_record_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(&dir, "empty.json", "[]");
    let e = Task::load(&empty).unwrap_err();
    assert!(matches!(e, Error::BadTaskFile { .. }), "{e}");
    assert!(
        e.to_string().contains("empty.json") && e.to_string().contains("no records"),
        "{e}"
    );

    let not_list = write(&dir, "obj.json", r#"{"input": "a"}"#);
    assert!(Task::load(&not_list)
        .unwrap_err()
        .to_string()
        .contains("JSON list"));

    let garbage = write(&dir, "bad.json", "[{");
    assert!(Task::load(&garbage)
        .unwrap_err()
        .to_string()
        .contains("not valid JSON"));

    let missing = write(
        &dir,
        "missing.json",
        r#"[{"input": "a", "output": "b"}, {"input": "c"}]"#,
    );
    let e = Task::load(&missing).unwrap_err();
    match &e {
        Error::BadRecord {
            index, field, path, ..
        } => {
            assert_eq!((*index, *field), (1, "output"));
            assert!(path.ends_with("missing.json"));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(
        e.to_string().contains("record 1") && e.to_string().contains("`output`"),
        "{e}"
    );

    let blank = write(
        &dir,
        "blank.json",
        r#"[{"input": "a", "output": "b"}, {"input": "c", "output": "  "}]"#,
    );
    let e = Task::load(&blank).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadRecord {
                index: 1,
                field: "output",
                ..
            }
        ),
        "{e}"
    );

    let number = write(&dir, "num.json", r#"[{"input": 3, "output": "b"}]"#);
    let e = Task::load(&number).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadRecord {
                index: 0,
                field: "input",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn too_few_pairs_and_out_of_range_settings_are_refused() {
    let (model, tok) = common::tiny(Architecture::Gpt2, Kind::Float);
    let c = model.config().clone();
    let task = common::word_task(6);
    let builder = PromptBuilder::new(&tok, &c, &task).unwrap();
    let splits = Splits::new(task.len(), 1);
    let v = Tensor::zeros(
        [c.d_model as i64],
        (Kind::Double, gpt_core::tch::Device::Cpu),
    );
    let mut options = EvalOptions {
        shots: 6,
        layers: vec![0],
        seed: 1,
        max_items: None,
        max_rows: 64,
    };
    let e = evaluate_items(
        &model,
        &builder,
        &splits,
        &v,
        &options,
        &mut gpt_core::progress::ignore,
    )
    .unwrap_err();
    assert!(matches!(e, Error::TooFewPairs { .. }), "{e}");
    assert!(e.to_string().contains("shots + 1"), "{e}");

    options.shots = 2;
    options.layers = vec![c.n_layers];
    let e = evaluate_items(
        &model,
        &builder,
        &splits,
        &v,
        &options,
        &mut gpt_core::progress::ignore,
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::LayerOutOfRange { layer, .. } if layer == c.n_layers),
        "{e}"
    );

    let base = BaseRun::new(&model, &builder.zero_shot(0).unwrap().ids, false).unwrap();
    assert!(matches!(
        add_at_layers(&model, &base, &v, &[c.n_layers + 2], 8).unwrap_err(),
        Error::LayerOutOfRange { .. }
    ));

    let clean = vec![builder.clean(&[0, 1], 2).unwrap()];
    let mean = mean_head_activations(&model, &clean, &mut gpt_core::progress::ignore).unwrap();
    let e = function_vector(
        &model,
        &mean,
        &[HeadScore {
            layer: 0,
            head: c.n_heads,
            score: 0.0,
        }],
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::HeadOutOfRange { head, .. } if head == c.n_heads),
        "{e}"
    );
}

#[test]
fn fv_files_round_trip_and_refuse_another_model() {
    let (gpt2, _) = common::tiny(Architecture::Gpt2, Kind::Float);
    let (llama, _) = common::tiny(Architecture::Llama, Kind::Float);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fv.safetensors");
    let d = gpt2.config().d_model;
    let meta = FvMeta {
        model_fingerprint: model_fingerprint(&gpt2).unwrap(),
        model_type: "gpt2".into(),
        d_model: d,
        n_layers: gpt2.config().n_layers,
        layer: 1,
        heads: vec![HeadScore {
            layer: 1,
            head: 2,
            score: 0.25,
        }],
        tasks: vec!["opposites".into()],
        shots: 3,
        seed: 1,
        mean_trials: 4,
        cie_trials: 2,
    };
    let v = Tensor::arange(d as i64, (Kind::Double, gpt_core::tch::Device::Cpu));
    file::save(&path, &meta, &[v.copy()]).unwrap();
    let (back, vectors) = file::load_for(&path, &gpt2).unwrap();
    assert_eq!(back, meta);
    assert_eq!(
        vectors[0].f_sub(&v).unwrap().abs().max().double_value(&[]),
        0.0
    );

    let e = file::load_for(&path, &llama).unwrap_err();
    assert!(matches!(e, Error::FvFile { .. }), "{e}");
    assert!(e.to_string().contains("another model"), "{e}");
    // The same config with other weights is another model too.
    let other = gpt_core::Transformer::random(
        gpt2.config(),
        gpt_core::RandomInit { seed: 99, std: 0.3 },
        gpt_core::tch::Device::Cpu,
        Kind::Float,
    )
    .unwrap();
    assert!(file::load_for(&path, &other)
        .unwrap_err()
        .to_string()
        .contains("another model"));

    let truncated = dir.path().join("cut.safetensors");
    let bytes = fs::read(&path).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        file::load(&truncated).unwrap_err(),
        Error::FvFile { .. }
    ));
}

#[test]
fn an_output_that_tokenises_to_nothing_is_named_by_record() {
    // The fixture's GPT-2 tokenizer with a normalizer that deletes `~` (and the space before
    // it): `" " + "~~"` then has no tokens, though `"~~"` is not blank.
    let dir = tempfile::tempdir().unwrap();
    let mut json: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(common::fixture("tiny-gpt2").join("tokenizer.json")).unwrap(),
    )
    .unwrap();
    json["normalizer"] = serde_json::json!({
        "type": "Replace",
        "pattern": {"Regex": " ?~+"},
        "content": ""
    });
    let path = dir.path().join("tokenizer.json");
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let tok = gpt_core::Tokenizer::from_file(&path).unwrap();
    assert!(tok.encode(" ~~").unwrap().text_ids().is_empty());
    let (model, _) = common::tiny(Architecture::Gpt2, Kind::Float);

    let mut pairs = common::word_task(6).pairs;
    assert!(PromptBuilder::new(
        &tok,
        model.config(),
        &Task::from_pairs("opposites", pairs.clone()).unwrap()
    )
    .is_ok());
    pairs[4].output = "~~".into();
    let task = Task::from_pairs("opposites", pairs).unwrap();
    let e = PromptBuilder::new(&tok, model.config(), &task).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadRecord {
                index: 4,
                field: "output",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("tokenises to nothing"), "{e}");
}
