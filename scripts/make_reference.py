#!/usr/bin/env python3
"""Generate the Hugging Face `transformers` reference fixtures for factscope.

The Rust side (tch/libtorch) re-implements GPT-2 and Llama forward passes and is
tested against the tensors written here.  Everything is deterministic (fixed
seeds, float32, eager attention, CPU), so running the script again with the
pinned versions reproduces the same files.

How to run
----------
    python3 -m venv .venv-ref
    .venv-ref/bin/pip install -r scripts/requirements-reference.txt
    HF_HUB_OFFLINE=1 .venv-ref/bin/python scripts/make_reference.py --out fixtures

    # only the SmolLM2 CPU timing (writes fixtures/smollm2-timing.json):
    .venv-ref/bin/python scripts/make_reference.py --out fixtures --timing-only

    # only the tiny random models (no GGUF needed):
    .venv-ref/bin/python scripts/make_reference.py --out fixtures --skip-smollm

    # only some of them:
    .venv-ref/bin/python scripts/make_reference.py --out fixtures --skip-smollm --only tiny-qwen2,tiny-mistral

No network access is needed (the hub is never contacted; HF_HUB_OFFLINE=1 is
forced).  The SmolLM2 part needs models/SmolLM2-135M-Instruct.Q4_1.gguf
(see scripts/fetch-model.sh); pass --gguf to use another path.

What it writes (under --out, default `fixtures/`)
-------------------------------------------------
tiny-gpt2/, tiny-llama/, tiny-llama-tied/, tiny-qwen2/ (q/k/v biases),
tiny-mistral/ (sliding window 4), tiny-llama-rope-linear/, tiny-llama-rope-llama3/, tiny-llama-rope-yarn/,
tiny-gemma/ (GeGLU, 1 + w norms, scaled embeddings, head_dim 16),
tiny-gemma2/ (sandwich norms, soft caps, query_pre_attn_scalar, alternating window 4),
tiny-gemma3/ (q/k norms, a rotary base per layer type), tiny-neox/, tiny-neox-sequential/ (use_parallel_residual true / false), tiny-gptj/
                                            (one folder per random tiny model)
    config.json, generation_config.json, model.safetensors   save_pretrained, float32
    tokenizer.json                    byte-level BPE (tokenizers library)
    vocab.json, merges.txt            the same tokenizer in GPT-2 format
    reference.safetensors             reference activations (see below)
    reference.json                    prompts, tokenizer outputs (ids + char
                                      offsets), model facts, tensor list

  reference.safetensors tensors (B = 3 prompts, T = padded length, V = vocab,
  L = number of layers, H = heads, dh = head dim):
    right.input_ids [B,T] i64, right.attention_mask [B,T] i64     right padding,
    right.logits [B,T,V] f32, right.hidden.{0..L} [B,T,D] f32     no position_ids
    left.input_ids, left.attention_mask, left.position_ids [B,T] i64   left padding,
    left.logits, left.hidden.{0..L}          position_ids = clamp(cumsum(mask)-1, 0)
    single.input_ids [1,T] i64, single.logits [1,T,V], single.hidden.{0..L}
    single.attn_out.{l} [1,T,D]   self-attention module output (before residual add)
    single.mlp_out.{l}  [1,T,D]   MLP module output (before residual add)
    single.mlp_post.{l} [1,T,F]   input of GPT-2 mlp.c_proj / Llama mlp.down_proj
    single.z.{l}        [1,T,H,dh] per-head attention output (input of c_proj/o_proj)
    single.resid_post.{l} [1,T,D] output of block l (residual stream, before ln_f/norm)
    single.generated [1,T+8] i64  greedy generate(max_new_tokens=8), no EOS stop
  hidden.{i}: index 0 = embedding output, i = output of block i-1, EXCEPT the
  last one (i = L), which is HF's `last_hidden_state`, i.e. has the final
  LayerNorm/RMSNorm applied (resid_post.{L-1} is the un-normed one).
  Logits/hidden values at padded positions are whatever HF computes; compare
  only where attention_mask == 1.

smollm2-reference.json          GGUF SmolLM2: tokenizer facts (BOS handling,
                                pre-tokenizer/normalizer/decoder JSON), q/k
                                permutation check, top-5 next tokens for factual
                                prompts, tricky-string tokenizations, greedy
                                continuation of the Eiffel prompt.
smollm2-reference.safetensors   Eiffel prompt: full logits [1,T,V] of the last
                                position ("eiffel.last_logits" [V]) and the
                                last-position hidden states ("eiffel.hidden_last"
                                [L+1, D]), plus its input_ids.
smollm2-timing.json             median CPU forward time of an 11x10 batch,
                                torch.set_num_threads(2), inference_mode.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GGUF = REPO_ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _die(msg: str, code: int = 1) -> "None":
    print(f"make_reference.py: error: {msg}", file=sys.stderr)
    sys.exit(code)


try:
    import numpy as np
    import torch
    import safetensors
    import tokenizers
    import transformers
    from safetensors.torch import save_file, load_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Gemma2Config,
        Gemma2ForCausalLM,
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        GemmaConfig,
        GemmaForCausalLM,
        GenerationConfig,
        GPT2Config,
        GPT2LMHeadModel,
        GPTJConfig,
        GPTJForCausalLM,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )
except ImportError as e:  # pragma: no cover - environment problem
    _die(
        f"missing Python package ({e}). Create the venv with:\n"
        "  python3 -m venv .venv-ref && .venv-ref/bin/pip install -r scripts/requirements-reference.txt"
    )

# --------------------------------------------------------------------------
# Tiny tokenizer
# --------------------------------------------------------------------------

EOT = "<|endoftext|>"
TOKENIZER_VOCAB_SIZE = 512

CORPUS = """\
The Eiffel Tower is located in the city of Paris. The Eiffel Tower is located in the city of Paris, the capital of France.
The capital of France is Paris. The capital of Italy is Rome. The capital of Japan is Tokyo. The capital of Germany is Berlin.
The Colosseum is located in the city of Rome. The Statue of Liberty is located in New York.
Mount Fuji is located in the country of Japan. The official language of Japan is Japanese.
The official language of France is French. The mother tongue of Danielle Darrieux is French.
Barack Obama was born in Hawaii. Michael Jordan plays the sport of basketball. Megan Rapinoe plays the sport of soccer.
Apple was founded by Steve Jobs and Steve Wozniak. Microsoft was founded by Bill Gates and Paul Allen.
The city of Paris is on the river Seine. The city of London is on the river Thames. The city of Rome has many old buildings.
Once upon a time there was a small cat who lived in a house near the sea. Every morning the cat walked to the harbour
and watched the boats. The fishermen gave the cat some fish, and the cat was happy. In the evening it went home again.
It's a lovely day, isn't it? We're going to the park; they'll meet us there. I'd like some tea, and you've got coffee.
In 1984 there were 12345 cats and 678 dogs in the town. The year 2024 had 366 days. Call 555-0199 before 9:30!
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000. Prices went from $3.50 to $4.25 (an increase of 21%).
A café in Paris serves crème brûlée – naïve tourists love it. Zürich, São Paulo, and Kraków are cities too.
"Hello," she said. "How are you?" He replied: 'Fine, thanks!' -- and then left... #tags @people & more.
The quick brown fox jumps over the lazy dog. The five boxing wizards jump quickly. Pack my box with five dozen liquor jugs.
Language models predict the next token. A transformer has attention layers and feed-forward layers.
Each layer reads from the residual stream and writes back to it. Facts are stored in the weights of the model.
"""

TOKENIZER_TEXTS = [
    "The Eiffel Tower is located in the city of Paris",
    " Hello world, leading space",
    "In 1984 there were 12345 cats.",
    "It's a café – naïve, isn't it?!",
    "Line one\n\nline two\ttabbed  double  spaces ",
]

TINY_PROMPTS = [
    "The Eiffel Tower is located in the city of",
    "The capital of France is",
    "Once upon a time there was a small cat who lived in a house",
]
TINY_SINGLE = "The Eiffel Tower is located in the city of"


def build_tiny_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB_SIZE,
        min_frequency=1,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Several copies so that the corpus is large enough to reach ~512 tokens;
    # the trainer is deterministic for a given corpus.
    lines = [ln for ln in CORPUS.splitlines() if ln.strip()]
    tok.train_from_iterator(lines, trainer=trainer)
    if tok.token_to_id(EOT) is None:
        _die("trained tokenizer lacks the <|endoftext|> special token")
    return tok


def save_tokenizer(tok: Tokenizer, folder: Path) -> None:
    tok.save(str(folder / "tokenizer.json"), pretty=True)
    written = tok.model.save(str(folder))  # vocab.json + merges.txt (GPT-2 format)
    names = sorted(Path(p).name for p in written)
    if names != ["merges.txt", "vocab.json"]:
        _die(f"unexpected tokenizer model files written: {names}")
    first = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()[0]
    if not first.startswith("#version"):
        _die(f"merges.txt does not start with '#version': {first!r}")
    # tokenizer_config.json so that AutoTokenizer can load the folder too.
    cfg = {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": EOT,
        "eos_token": EOT,
        "unk_token": EOT,
        "add_prefix_space": False,
        "model_max_length": 64,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")


def encode_record(tok: Tokenizer, text: str) -> dict:
    enc = tok.encode(text, add_special_tokens=False)
    return {
        "text": text,
        "ids": list(enc.ids),
        "tokens": list(enc.tokens),
        "offsets": [list(o) for o in enc.offsets],
    }


# --------------------------------------------------------------------------
# Tiny models
# --------------------------------------------------------------------------

INIT_STD = 0.2


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Re-initialise every parameter with N(0, 0.2); norm weights 1 + N(0, 0.2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied params are listed once
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32) * INIT_STD
            is_norm_weight = p.dim() == 1 and name.endswith("weight") and (
                "ln_" in name or "norm" in name
            )
            p.copy_(noise + 1.0 if is_norm_weight else noise)


def make_gpt2(vocab: int, eos: int) -> GPT2LMHeadModel:
    cfg = GPT2Config(
        vocab_size=vocab,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_inner=None,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
        tie_word_embeddings=True,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    return GPT2LMHeadModel(cfg)


def make_llama(vocab: int, eos: int, *, layers: int, kv_heads: int, tied: bool) -> LlamaForCausalLM:
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        hidden_act="silu",
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        attention_bias=False,
        mlp_bias=False,
        tie_word_embeddings=tied,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg)


def make_neox(vocab: int, eos: int, *, parallel: bool) -> GPTNeoXForCausalLM:
    """GPT-NeoX / Pythia: fused per-head q/k/v, rotary on the first half of each head (NeoX's
    half-split pairing), exact GELU, biases, untied `embed_out`; parallel or sequential
    residual."""
    cfg = GPTNeoXConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        hidden_act="gelu",
        rotary_pct=0.5,
        rotary_emb_base=10000,
        max_position_embeddings=64,
        layer_norm_eps=1e-5,
        use_parallel_residual=parallel,
        attention_bias=True,
        tie_word_embeddings=False,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    return GPTNeoXForCausalLM(cfg)


def make_gptj(vocab: int, eos: int) -> GPTJForCausalLM:
    """GPT-J: attention and MLP in parallel from one LayerNorm, rotary on the first 4 of 8
    dimensions with interleaved pairs, no q/k/v bias, `lm_head` with bias."""
    cfg = GPTJConfig(
        vocab_size=vocab,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        rotary_dim=4,
        n_inner=None,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=False,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    return GPTJForCausalLM(cfg)


def make_qwen2(vocab: int, eos: int) -> Qwen2ForCausalLM:
    """Llama plus q/k/v biases (Qwen2 always has them), no sliding window."""
    cfg = Qwen2Config(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_act="silu",
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        use_sliding_window=False,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    return Qwen2ForCausalLM(cfg)


def make_mistral(vocab: int, eos: int) -> MistralForCausalLM:
    """Llama plus a sliding attention window of 4 positions, shorter than the prompts."""
    cfg = MistralConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_act="silu",
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        sliding_window=4,
        tie_word_embeddings=False,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    return MistralForCausalLM(cfg)


def make_gemma(vocab: int, eos: int) -> GemmaForCausalLM:
    """Gemma's details on the Llama layout: GeGLU, RMSNorm scaling by (1 + w), embeddings
    times sqrt(hidden_size), tied unembedding, head_dim (16) wider than hidden_size / heads,
    one key/value head."""
    cfg = GemmaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        hidden_act="gelu_pytorch_tanh",
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    return GemmaForCausalLM(cfg)


def make_gemma2(vocab: int, eos: int) -> Gemma2ForCausalLM:
    """Gemma 2: Gemma's details plus sandwich norms, query_pre_attn_scalar (24, not head_dim),
    small soft caps (so that they bend the random scores and logits), and a sliding window of
    4 on the first of the two layers (layer_types alternate)."""
    cfg = Gemma2Config(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        hidden_activation="gelu_pytorch_tanh",
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        query_pre_attn_scalar=24,
        attn_logit_softcapping=2.0,
        final_logit_softcapping=3.0,
        sliding_window=4,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    return Gemma2ForCausalLM(cfg)


def make_gemma3(vocab: int, eos: int) -> Gemma3ForCausalLM:
    """Gemma 3 (text): Gemma 2's block without soft caps, plus q/k RMSNorms over each head and
    a rotary base (and scaling) per layer type: the sliding layer turns with base 1e4, the full
    one with base 1e6 and linear scaling 2."""
    cfg = Gemma3TextConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        hidden_activation="gelu_pytorch_tanh",
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        query_pre_attn_scalar=24,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
        },
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    return Gemma3ForCausalLM(cfg)


def make_llama_rope(vocab: int, eos: int, rope_parameters: dict) -> LlamaForCausalLM:
    """Llama with rescaled rotary frequencies (`rope_parameters` holds rope_theta too)."""
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_act="silu",
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_parameters=rope_parameters,
        attention_bias=False,
        mlp_bias=False,
        tie_word_embeddings=False,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg)


def pad_batch(tok: Tokenizer, texts: list[str], pad_id: int, side: str):
    seqs = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(seqs), T), dtype=torch.int64)
    for b, s in enumerate(seqs):
        if side == "right":
            ids[b, : len(s)] = torch.tensor(s)
            mask[b, : len(s)] = 1
        else:
            ids[b, T - len(s):] = torch.tensor(s)
            mask[b, T - len(s):] = 1
    return ids, mask


def module_paths(arch: str):
    """(blocks, attn, mlp, attn_out_proj, mlp_out_proj) attribute names per arch."""
    if arch == "gpt2":
        return "transformer.h", "attn", "mlp", "c_proj", "c_proj"
    if arch == "gpt_neox":
        return "gpt_neox.layers", "attention", "mlp", "dense", "dense_4h_to_h"
    if arch == "gptj":
        return "transformer.h", "attn", "mlp", "out_proj", "fc_out"
    return "model.layers", "self_attn", "mlp", "o_proj", "down_proj"


def get_attr(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def greedy_no_eos(model, ids: torch.Tensor, n_new: int, pad_id: int) -> tuple[torch.Tensor, bool]:
    """`model.generate(do_sample=False)` for exactly n_new tokens (EOS stopping disabled),
    cross-checked against a cache-free argmax loop. Returns (ids [1, T+n_new], matches)."""
    saved = model.generation_config
    # generate() falls back to model.generation_config for unset (None) fields, so EOS has
    # to be removed there too, otherwise it stops at the model's EOS token.
    model.generation_config = GenerationConfig(bos_token_id=None, eos_token_id=None, pad_token_id=pad_id)
    try:
        gcfg = GenerationConfig(
            max_new_tokens=n_new, min_new_tokens=0, do_sample=False,
            eos_token_id=None, bos_token_id=None, pad_token_id=pad_id,
        )
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=gcfg)
    finally:
        model.generation_config = saved
    cur = ids
    for _ in range(n_new):
        nxt = model(input_ids=cur).logits[:, -1].argmax(-1, keepdim=True)
        cur = torch.cat([cur, nxt], dim=1)
    if gen.shape != cur.shape:
        _die(f"generate() returned shape {tuple(gen.shape)}, expected {tuple(cur.shape)} (stopped early?)")
    return gen.to(torch.int64), bool(torch.equal(gen, cur))


def run_tiny(model, arch: str, tok: Tokenizer, pad_id: int) -> tuple[dict, dict]:
    model.eval()
    cfg = model.config
    L = cfg.num_hidden_layers
    H = cfg.num_attention_heads
    D = cfg.hidden_size
    dh = getattr(cfg, "head_dim", None) or D // H
    out: dict[str, torch.Tensor] = {}
    facts: dict = {}

    with torch.no_grad():
        # ---- right padding, no position_ids
        ids, mask = pad_batch(tok, TINY_PROMPTS, pad_id, "right")
        r = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        out["right.input_ids"], out["right.attention_mask"] = ids, mask
        out["right.logits"] = r.logits.float()
        if len(r.hidden_states) != L + 1:
            _die(f"{arch}: expected {L + 1} hidden states, got {len(r.hidden_states)}")
        for i, h in enumerate(r.hidden_states):
            out[f"right.hidden.{i}"] = h.float()

        # ---- left padding, explicit position_ids
        ids, mask = pad_batch(tok, TINY_PROMPTS, pad_id, "left")
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        r2 = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True)
        out["left.input_ids"], out["left.attention_mask"], out["left.position_ids"] = ids, mask, pos
        out["left.logits"] = r2.logits.float()
        for i, h in enumerate(r2.hidden_states):
            out[f"left.hidden.{i}"] = h.float()

        # consistency: valid positions must agree between right and left padding
        rm = out["right.attention_mask"].bool()
        lm = mask.bool()
        diff = (out["right.logits"][rm] - out["left.logits"][lm]).abs().max().item()
        facts["max_abs_diff_left_vs_right_valid_logits"] = diff
        if diff > 1e-4:
            _die(f"{arch}: left- vs right-padded logits disagree at valid positions ({diff})")

        # ---- single prompt with hooks
        blocks_path, attn_name, mlp_name, o_name, down_name = module_paths(arch)
        blocks = get_attr(model, blocks_path)
        caught: dict[str, torch.Tensor] = {}
        hooks = []

        def fwd_hook(key):
            def f(_m, _inp, output):
                t = output[0] if isinstance(output, tuple) else output
                caught[key] = t.detach().float().clone()
            return f

        def pre_hook(key):
            def f(_m, args, kwargs=None):
                t = args[0] if args else next(iter(kwargs.values()))
                caught[key] = t.detach().float().clone()
            return f

        for l, blk in enumerate(blocks):
            attn = getattr(blk, attn_name)
            mlp = getattr(blk, mlp_name)
            hooks.append(attn.register_forward_hook(fwd_hook(f"single.attn_out.{l}")))
            hooks.append(mlp.register_forward_hook(fwd_hook(f"single.mlp_out.{l}")))
            hooks.append(getattr(mlp, down_name).register_forward_pre_hook(pre_hook(f"single.mlp_post.{l}")))
            hooks.append(getattr(attn, o_name).register_forward_pre_hook(pre_hook(f"single.z.{l}")))
            hooks.append(blk.register_forward_hook(fwd_hook(f"single.resid_post.{l}")))

        sid = torch.tensor([tok.encode(TINY_SINGLE, add_special_tokens=False).ids], dtype=torch.int64)
        s = model(input_ids=sid, output_hidden_states=True)
        for h in hooks:
            h.remove()
        T = sid.shape[1]
        out["single.input_ids"] = sid
        out["single.logits"] = s.logits.float()
        for i, h in enumerate(s.hidden_states):
            out[f"single.hidden.{i}"] = h.float()
        for l in range(L):
            for k in ("attn_out", "mlp_out", "mlp_post", "resid_post"):
                out[f"single.{k}.{l}"] = caught[f"single.{k}.{l}"]
            z = caught[f"single.z.{l}"]
            if z.shape != (1, T, H * dh):
                _die(f"{arch}: unexpected o_proj/c_proj input shape {tuple(z.shape)}")
            out[f"single.z.{l}"] = z.reshape(1, T, H, dh).contiguous()

        # hidden.{i} for 1 <= i < L must equal resid_post.{i-1}; hidden.{L} is normed
        for i in range(1, L):
            d = (out[f"single.hidden.{i}"] - out[f"single.resid_post.{i-1}"]).abs().max().item()
            if d > 0:
                _die(f"{arch}: hidden.{i} != output of block {i-1} (diff {d})")
        facts["last_hidden_state_has_final_norm"] = not torch.equal(
            out[f"single.hidden.{L}"], out[f"single.resid_post.{L-1}"]
        )
        # residual identity: resid_post = resid_pre + attn_out + mlp_out
        d = (
            out["single.hidden.0"] + out["single.attn_out.0"] + out["single.mlp_out.0"]
            - out["single.resid_post.0"]
        ).abs().max().item()
        facts["residual_identity_block0_max_abs_diff"] = d

        # ---- greedy generation (never stops early: no EOS)
        gen, same = greedy_no_eos(model, sid, 8, pad_id)
        facts["generate_matches_nocache_greedy"] = same
        if not same:
            print(f"  warning: {arch}: generate() differs from the cache-free greedy loop", file=sys.stderr)
        out["single.generated"] = gen

    out = {k: v.contiguous() for k, v in out.items()}
    return out, facts


def write_tiny(out_root: Path, name: str, model, arch: str, tok: Tokenizer, seed: int) -> None:
    folder = out_root / name
    folder.mkdir(parents=True, exist_ok=True)
    eos = tok.token_to_id(EOT)
    randomize_(model, seed)
    model = model.to(torch.float32).eval()
    model.generation_config = GenerationConfig(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    model.save_pretrained(str(folder), safe_serialization=True)
    save_tokenizer(tok, folder)

    tensors, facts = run_tiny(model, arch, tok, eos)
    save_file(tensors, str(folder / "reference.safetensors"), metadata={"generator": "scripts/make_reference.py"})

    # reload check
    back = load_file(str(folder / "reference.safetensors"))
    for k, v in tensors.items():
        if not torch.equal(back[k], v):
            _die(f"{name}: reloaded tensor {k} differs")
    # the saved model must reproduce the logits
    reloaded = type(model).from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        lg = reloaded(input_ids=tensors["single.input_ids"]).logits
    if not torch.equal(lg, tensors["single.logits"]):
        _die(f"{name}: model reloaded from model.safetensors gives different logits")

    cfg = model.config
    ref = {
        "generator": "scripts/make_reference.py",
        "arch": arch,
        "model_class": type(model).__name__,
        "init": f"all params N(0, {INIT_STD}); LayerNorm/RMSNorm weights 1 + N(0, {INIT_STD}); torch.Generator seed {seed}",
        "dtype": "float32",
        "attn_implementation": "eager",
        "n_layers": cfg.num_hidden_layers,
        "d_model": cfg.hidden_size,
        "n_heads": cfg.num_attention_heads,
        "n_kv_heads": getattr(cfg, "num_key_value_heads", cfg.num_attention_heads),
        "d_head": cfg.hidden_size // cfg.num_attention_heads,
        "vocab_size": cfg.vocab_size,
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "eos_token_id": eos,
        "pad_token_id": eos,
        "prompts": TINY_PROMPTS,
        "single_prompt": TINY_SINGLE,
        "single_generated_text": tok.decode(tensors["single.generated"][0].tolist()),
        "facts": facts,
        "hidden_states_note": "hidden.0 = embedding output; hidden.i = output of block i-1 for i < n_layers; "
        "hidden.n_layers = last_hidden_state (final norm applied). Padded positions hold whatever HF computes.",
        "tokenizer": {
            "files": ["tokenizer.json", "vocab.json", "merges.txt"],
            "offsets_unit": "Unicode characters (Python tokenizers binding), end exclusive; in Rust use "
            "Tokenizer::encode_char_offsets (plain encode gives byte offsets)",
            "add_special_tokens": False,
            "encodings": [encode_record(tok, t) for t in TOKENIZER_TEXTS],
            "prompt_encodings": [encode_record(tok, t) for t in TINY_PROMPTS],
        },
        "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in sorted(tensors.items())},
        "versions": versions(),
    }
    (folder / "reference.json").write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"  wrote {folder}  ({len(tensors)} tensors; facts={facts})")


TINY_MODELS = ["tiny-gpt2", "tiny-llama", "tiny-llama-tied", "tiny-qwen2", "tiny-mistral",
               "tiny-llama-rope-linear", "tiny-llama-rope-llama3", "tiny-llama-rope-yarn", "tiny-gemma", "tiny-gemma2", "tiny-gemma3", "tiny-neox", "tiny-neox-sequential",
               "tiny-gptj"]


def make_tiny_models(out_root: Path, only: list[str] | None = None) -> None:
    print("== tiny tokenizer")
    tok = build_tiny_tokenizer()
    vocab = tok.get_vocab_size()
    eos = tok.token_to_id(EOT)
    print(f"  vocab_size={vocab}  eos/pad id={eos}")
    for t in TOKENIZER_TEXTS:
        rt = tok.decode(tok.encode(t, add_special_tokens=False).ids)
        if rt != t:
            _die(f"tiny tokenizer does not round-trip {t!r} -> {rt!r}")

    # d_head 8 and θ 1e4 give wavelengths 6.3, 63, 628, 6283 positions: with an original
    # context of 256, llama3 keeps the first, divides the last two and smooths the second.
    makers = {
        "tiny-gpt2": (lambda: make_gpt2(vocab, eos), "gpt2", 1),
        "tiny-llama": (lambda: make_llama(vocab, eos, layers=2, kv_heads=2, tied=False), "llama", 2),
        "tiny-llama-tied": (lambda: make_llama(vocab, eos, layers=1, kv_heads=4, tied=True), "llama", 3),
        "tiny-qwen2": (lambda: make_qwen2(vocab, eos), "llama", 4),
        "tiny-mistral": (lambda: make_mistral(vocab, eos), "llama", 5),
        "tiny-llama-rope-linear": (
            lambda: make_llama_rope(vocab, eos, {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}),
            "llama", 6),
        "tiny-llama-rope-llama3": (
            lambda: make_llama_rope(vocab, eos, {
                "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 256, "rope_theta": 10000.0}),
            "llama", 7),
        # YaRN over an original context of 2048 without truncation: the ramp runs from
        # dimension 1.01 to 2.51, so the four frequencies are kept, kept, mixed, divided.
        "tiny-llama-rope-yarn": (
            lambda: make_llama_rope(vocab, eos, {
                "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048,
                "truncate": False, "rope_theta": 10000.0}),
            "llama", 11),
        "tiny-gemma": (lambda: make_gemma(vocab, eos), "llama", 12),
        "tiny-gemma2": (lambda: make_gemma2(vocab, eos), "llama", 13),
        "tiny-gemma3": (lambda: make_gemma3(vocab, eos), "llama", 14),
        "tiny-neox": (lambda: make_neox(vocab, eos, parallel=True), "gpt_neox", 8),
        "tiny-neox-sequential": (lambda: make_neox(vocab, eos, parallel=False), "gpt_neox", 9),
        "tiny-gptj": (lambda: make_gptj(vocab, eos), "gptj", 10),
    }
    for name in only or TINY_MODELS:
        make, arch, seed = makers[name]
        print(f"== {name}")
        write_tiny(out_root, name, make(), arch, tok, seed=seed)


# --------------------------------------------------------------------------
# SmolLM2 (GGUF)
# --------------------------------------------------------------------------

SMOL_PROMPTS = [
    "The Eiffel Tower is located in the city of",
    "The capital of France is",
    "The Colosseum is located in the city of",
    "Barack Obama was born in",
    "The mother tongue of Danielle Darrieux is",
    "Michael Jordan plays the sport of",
    "The Statue of Liberty is located in",
    "Mount Fuji is located in the country of",
    "The official language of Japan is",
    "Apple was founded by",
    "Toko Yasuda plays the",
    "Megan Rapinoe plays the sport of",
]

TRICKY_STRINGS = [
    "In 1984 there were 12345 cats",
    "  leading and trailing spaces  ",
    "a\n\nb",
    "café – naïve",
    "It's O'Neal's",
]


def load_smollm(gguf: Path):
    if not gguf.is_file():
        _die(f"GGUF model not found: {gguf} (run scripts/fetch-model.sh or pass --gguf)")
    try:
        import accelerate  # noqa: F401  (transformers requires it for GGUF loading)
        import gguf as _gguf  # noqa: F401
    except ImportError as e:
        _die(f"GGUF loading needs the `gguf` and `accelerate` packages ({e})")
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    print(f"  loaded {gguf.name} in {time.time() - t0:.1f}s")
    return tok, model


def gguf_metadata(gguf: Path) -> dict:
    from gguf import GGUFReader

    r = GGUFReader(str(gguf))
    meta = {}
    for k, f in r.fields.items():
        if k in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.chat_template"):
            continue
        try:
            v = f.contents()
        except Exception:  # pragma: no cover
            continue
        if isinstance(v, (int, float, str, bool)) or (isinstance(v, list) and len(v) < 16):
            meta[k] = v
    return meta, r


def check_qk_permutation(model, reader) -> dict:
    """Compare transformers' q/k weights with the raw dequantised GGUF tensors."""
    from gguf import dequantize

    cfg = model.config
    res = {}
    for gname, attr, nh in (
        ("blk.0.attn_q.weight", "q_proj", cfg.num_attention_heads),
        ("blk.0.attn_k.weight", "k_proj", cfg.num_key_value_heads),
        ("blk.0.attn_v.weight", "v_proj", cfg.num_key_value_heads),
    ):
        t = next(t for t in reader.tensors if t.name == gname)
        raw = torch.from_numpy(np.array(dequantize(t.data, t.tensor_type), dtype=np.float32)).reshape(
            [int(x) for x in reversed(t.shape.tolist())]
        )
        hf = getattr(model.model.layers[0].self_attn, attr).weight.detach()
        dim = raw.shape[0] // nh // 2
        unperm = raw.reshape(nh, dim, 2, raw.shape[1]).swapaxes(2, 1).reshape(raw.shape)
        res[attr] = {
            "equals_raw_gguf": bool(torch.equal(hf, raw)),
            "equals_reverse_permuted_gguf": bool(torch.equal(hf, unperm)),
        }
    res["reverse_permuted"] = bool(res["q_proj"]["equals_reverse_permuted_gguf"] and res["k_proj"]["equals_reverse_permuted_gguf"] and not res["q_proj"]["equals_raw_gguf"])
    res["note"] = (
        "llama.cpp's converter permutes q/k rows (interleaved RoPE pairs); transformers undoes it "
        "when loading: w.reshape(n_head, d_head/2, 2, d_in).swapaxes(1, 2).reshape(d_out, d_in), "
        "n_head = n_kv_heads for k. v is not permuted."
    )
    return res


def tok_record(tok, text: str) -> dict:
    enc = tok.backend_tokenizer.encode(text, add_special_tokens=False)
    hf_ids = tok(text, add_special_tokens=False)["input_ids"]
    if list(enc.ids) != list(hf_ids):
        _die(f"backend tokenizer and AutoTokenizer disagree on {text!r}")
    return {
        "text": text,
        "ids": list(enc.ids),
        "tokens": list(enc.tokens),
        "offsets": [list(o) for o in enc.offsets],
        "ids_with_special_tokens": tok(text, add_special_tokens=True)["input_ids"],
        "decoded": tok.decode(enc.ids),
    }


def digit_split_variant(tok):
    """llama.cpp's `smollm` pre-tokenizer (and the original HF tokenizer.json) first splits
    every digit; transformers' GGUF converter does not. Build that variant for comparison."""
    t = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    t.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    return t


def make_smollm(out_root: Path, gguf: Path, loaded=None) -> None:
    print("== SmolLM2 reference")
    torch.manual_seed(0)
    tok, model = loaded or load_smollm(gguf)
    meta, reader = gguf_metadata(gguf)
    tj = json.loads(tok.backend_tokenizer.to_str())
    model_sec = {k: v for k, v in tj["model"].items() if k not in ("vocab", "merges")}
    model_sec["vocab_size"] = len(tj["model"]["vocab"])
    model_sec["n_merges"] = len(tj["model"]["merges"])

    dv = digit_split_variant(tok)
    records = []
    with torch.inference_mode():
        for p in SMOL_PROMPTS:
            ids = tok(p, add_special_tokens=False)["input_ids"]
            ids_sp = tok(p, add_special_tokens=True)["input_ids"]
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
            probs = torch.softmax(logits, dim=-1)
            top = torch.topk(probs, 5)
            records.append(
                {
                    "prompt": p,
                    "input_ids": ids,
                    "input_ids_with_special_tokens": ids_sp,
                    "special_tokens_change_ids": ids != ids_sp,
                    "ids": top.indices.tolist(),
                    "texts": [tok.decode([i]) for i in top.indices.tolist()],
                    "probs": [float(x) for x in top.values],
                    "logits": [float(logits[i]) for i in top.indices.tolist()],
                }
            )
            print(f"  {p!r:50} -> {records[-1]['texts'][0]!r} p={records[-1]['probs'][0]:.4f}")

        eiffel = SMOL_PROMPTS[0]
        eids = torch.tensor([tok(eiffel, add_special_tokens=False)["input_ids"]])
        r = model(input_ids=eids, output_hidden_states=True)
        extra = {
            "eiffel.input_ids": eids.clone(),
            "eiffel.last_logits": r.logits[0, -1].float().clone(),
            "eiffel.hidden_last": torch.stack([h[0, -1] for h in r.hidden_states]).float().clone(),
        }
        gen_t, gen_same = greedy_no_eos(model, eids, 12, tok.pad_token_id)
        gen = gen_t[0].tolist()
        new = gen[eids.shape[1]:]

    top1 = records[0]
    if top1["texts"][0] != " Paris":
        _die(f"SmolLM2 top-1 for the Eiffel prompt is {top1['texts'][0]!r}, expected ' Paris'")

    tricky = []
    for s in TRICKY_STRINGS:
        rec = tok_record(tok, s)
        alt = dv.encode(s, add_special_tokens=False)
        rec["ids_digit_split_variant"] = list(alt.ids)
        rec["digit_split_variant_differs"] = list(alt.ids) != rec["ids"]
        tricky.append(rec)

    ref = {
        "generator": "scripts/make_reference.py",
        "gguf_file": gguf.name,
        "dtype": "float32",
        "attn_implementation": "eager",
        "config": {
            k: getattr(model.config, k)
            for k in (
                "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings",
                "hidden_act", "head_dim",
            )
            if hasattr(model.config, k)
        },
        "rope": getattr(model.config, "rope_parameters", None) or {"rope_theta": getattr(model.config, "rope_theta", None)},
        "tokenizer": {
            "class": type(tok).__name__,
            "bos_token": tok.bos_token,
            "bos_token_id": tok.bos_token_id,
            "eos_token": tok.eos_token,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
            "unk_token_id": tok.unk_token_id,
            "generation_config_eos_token_id": model.generation_config.eos_token_id,
            "generation_config_bos_token_id": model.generation_config.bos_token_id,
            "adds_bos_with_add_special_tokens_true": any(r["special_tokens_change_ids"] for r in records),
            "note": "input_ids are tokenizer(prompt, add_special_tokens=False); with add_special_tokens=True "
            "they are identical (the converted post_processor adds nothing, GGUF add_bos_token=false). "
            "offsets are Unicode character offsets (end exclusive) from the Python tokenizers binding "
            "(Rust: Tokenizer::encode_char_offsets; plain encode gives byte offsets).",
            "normalizer": tj.get("normalizer"),
            "pre_tokenizer": tj.get("pre_tokenizer"),
            "post_processor": tj.get("post_processor"),
            "decoder": tj.get("decoder"),
            "model": model_sec,
            "added_tokens": tj.get("added_tokens"),
            "digit_split_note": "GGUF says tokenizer.ggml.pre='smollm' (llama.cpp splits each digit first); "
            "transformers' GGUF conversion uses plain ByteLevel(use_regex=True). ids_digit_split_variant shows "
            "what Sequence[Digits(individual), ByteLevel] would give. The transformers ids are the target.",
        },
        "gguf_metadata": meta,
        "qk_permutation": check_qk_permutation(model, reader),
        "prompts": records,
        "tricky_tokenizations": tricky,
        "greedy": {
            "prompt": eiffel,
            "max_new_tokens": 12,
            "eos_stopping": "disabled (eos_token_id=None in the call and in model.generation_config)",
            "generate_matches_nocache_greedy": gen_same,
            "new_tokens": [tok.decode([i]) for i in new],
            "ids": gen,
            "new_ids": new,
            "new_text": tok.decode(new),
            "text": tok.decode(gen),
        },
        "extra_tensors": "smollm2-reference.safetensors: eiffel.input_ids [1,T] i64, eiffel.last_logits [V] f32 "
        "(last position), eiffel.hidden_last [L+1, D] f32 (last position of each output_hidden_states entry; "
        "the last has the final RMSNorm applied)",
        "versions": versions(),
    }
    (out_root / "smollm2-reference.json").write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    save_file({k: v.contiguous() for k, v in extra.items()}, str(out_root / "smollm2-reference.safetensors"),
              # one metadata key only: safetensors writes metadata in hash order
              metadata={"generator": "scripts/make_reference.py"})
    print(f"  greedy: {eiffel!r} + {tok.decode(new)!r}")
    print(f"  q/k reverse-permuted by transformers: {ref['qk_permutation']['reverse_permuted']}")
    print(f"  wrote {out_root / 'smollm2-reference.json'} and smollm2-reference.safetensors")


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------

def make_timing(out_root: Path, gguf: Path, loaded=None, threads: int = 2, warmup: int = 3, runs: int = 10) -> None:
    print("== SmolLM2 timing")
    torch.set_num_threads(threads)
    tok, model = loaded or load_smollm(gguf)
    ids = tok(SMOL_PROMPTS[0], add_special_tokens=False)["input_ids"][:10]
    if len(ids) != 10:
        _die(f"Eiffel prompt has {len(ids)} tokens, expected at least 10")
    batch = torch.tensor([ids] * 11, dtype=torch.int64)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(input_ids=batch)
        for _ in range(runs):
            t0 = time.perf_counter()
            model(input_ids=batch)
            times.append((time.perf_counter() - t0) * 1000.0)
    med = statistics.median(times)
    load = os.getloadavg()  # includes this process's own 2 threads
    if max(times) > 1.5 * min(times):
        print(f"  warning: noisy timing (min {min(times):.1f} ms, max {max(times):.1f} ms); "
              "other processes are probably using the CPU, re-run with --timing-only", file=sys.stderr)
    rec = {
        "what": "SmolLM2-135M (GGUF Q4_1 dequantised to f32) forward, batch 11 x 10 tokens, logits for all positions",
        "median_ms": round(med, 3),
        "min_ms": round(min(times), 3),
        "max_ms": round(max(times), 3),
        "runs_ms": [round(t, 3) for t in times],
        "warmup": warmup,
        "runs": runs,
        "torch_num_threads": torch.get_num_threads(),
        "inference_mode": True,
        "dtype": "float32",
        "attn_implementation": "eager",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "loadavg_1_5_15_after": [round(x, 2) for x in load]},
        "versions": versions(),
    }
    (out_root / "smollm2-timing.json").write_text(json.dumps(rec, indent=1) + "\n", encoding="utf-8")
    print(f"  median {med:.2f} ms over {runs} runs (min {min(times):.2f}, max {max(times):.2f}), threads={torch.get_num_threads()}")


# --------------------------------------------------------------------------

def versions() -> dict:
    import gguf as _g

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "gguf": getattr(_g, "__version__", None) or _pkg_version("gguf"),
    }


def _pkg_version(name: str):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "fixtures", help="output folder (default: fixtures/)")
    ap.add_argument("--gguf", type=Path, default=DEFAULT_GGUF, help="SmolLM2 GGUF file")
    ap.add_argument("--timing-only", action="store_true", help="only measure the SmolLM2 forward time")
    ap.add_argument("--skip-smollm", action="store_true", help="only the tiny random models")
    ap.add_argument("--skip-timing", action="store_true", help="do not run the timing")
    ap.add_argument("--only", default=None,
                    help=f"comma-separated tiny models to write (default: all of {', '.join(TINY_MODELS)})")
    args = ap.parse_args(argv)

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    if not args.skip_smollm and not args.gguf.is_file():
        _die(f"GGUF model not found: {args.gguf} (run scripts/fetch-model.sh, pass --gguf, or use --skip-smollm)")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}")

    if args.timing_only:
        make_timing(args.out, args.gguf)
        return 0
    only = args.only.split(",") if args.only else None
    for name in only or []:
        if name not in TINY_MODELS:
            _die(f"--only: unknown tiny model {name!r} (known: {', '.join(TINY_MODELS)})")
    make_tiny_models(args.out, only)
    if not args.skip_smollm:
        loaded = load_smollm(args.gguf)
        make_smollm(args.out, args.gguf, loaded)
        if not args.skip_timing:
            make_timing(args.out, args.gguf, loaded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
