"""Reference models for tests/reference/hf_logits_test.cpp, built with Hugging Face transformers.

  hf_make_tiny.py make OUT_DIR
      For each tiny random config (llama MHA/GQA/biases, llama3 and linear RoPE scaling, mistral,
      mixtral (sparse MoE, top-2 of 4 experts), qwen2, qwen3, gemma, gpt2 tied and untied) writes
      OUT_DIR/<case>/ with save_pretrained (config.json + model.safetensors) and
      OUT_DIR/<case>/reference.safetensors holding fixed int64 `input_ids` [2, 12] and the
      float32 `logits` [2, 12, V] transformers computes. For MoE cases it also holds what
      MixtralForCausalLM returns with labels=input_ids and output_router_logits=True: `loss`
      (next-token CE + router_aux_loss_coef * aux) and `aux_loss`.
      OUT_DIR/cases.txt lists the case names, one per line. Each case is also saved as variants
      OUT_DIR/<case>_<variant>/ (VARIANTS below): sharded with max_shard_size="20KB" (several
      model-0000K-of-0000N.safetensors + model.safetensors.index.json), and in bf16 and fp16,
      whole or sharded. A half-precision variant's reference.safetensors holds the logits of
      transformers run in float32 on the half weights upcast, i.e. on exactly the values a
      float32 reader gets from the files, and `native_logits`: transformers' logits with the
      folder loaded in that half precision and run in it. OUT_DIR/variants.txt lists the variant folder names.

  hf_make_tiny.py verify REEF_DIR OUT_DIR
      For each case in OUT_DIR/cases.txt, loads REEF_DIR/<case> (a model folder Reef wrote) with
      AutoModelForCausalLM, requires that no weight is missing or unexpected, and compares its
      logits on the case's reference input_ids with the reference logits. Prints one line per
      case; exit status 1 when any is off by more than 1e-5 or fails to load.

  hf_make_tiny.py verify-sharded REEF_DIR OUT_DIR
      The same, and also requires every REEF_DIR/<case> to be sharded: an index whose weight_map
      names more than one shard, its metadata.total_size equal to the tensors' bytes.
"""
import copy
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file
import transformers
from transformers import AutoModelForCausalLM

transformers.utils.logging.disable_progress_bar()

TOL = 1e-5


def cases():
    T = transformers
    base = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=64, rms_norm_eps=1e-6)
    return {
        "llama": T.LlamaConfig(**base, tie_word_embeddings=False),
        "llama_gqa_bias_tied": T.LlamaConfig(**base, num_key_value_heads=2, attention_bias=True,
                                             mlp_bias=True, tie_word_embeddings=True),
        # A short original context puts the head's frequencies in all three llama3 bands.
        "llama3_rope": T.LlamaConfig(**base, num_key_value_heads=2, rope_theta=500000.0,
                                     rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                   "low_freq_factor": 1.0,
                                                   "high_freq_factor": 4.0,
                                                   "original_max_position_embeddings": 16}),
        "llama_linear_rope": T.LlamaConfig(**base, rope_scaling={"rope_type": "linear",
                                                                 "factor": 4.0}),
        "mistral": T.MistralConfig(**base, num_key_value_heads=1, sliding_window=None),
        "mixtral": T.MixtralConfig(**base, num_key_value_heads=2, num_local_experts=4,
                                   num_experts_per_tok=2, router_aux_loss_coef=0.02,
                                   sliding_window=None),
        "qwen2": T.Qwen2Config(**base, num_key_value_heads=2, tie_word_embeddings=True),
        "qwen3": T.Qwen3Config(**base, num_key_value_heads=2, head_dim=16,
                               tie_word_embeddings=False),
        # head_dim 16 != hidden/heads (8), multi-query, tied (as Gemma always is).
        "gemma": T.GemmaConfig(**base, num_key_value_heads=1, head_dim=16,
                               hidden_act="gelu_pytorch_tanh"),
        "gpt2": T.GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                             bos_token_id=0, eos_token_id=0),
        "gpt2_untied": T.GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_inner=80,
                                    n_positions=64, activation_function="gelu",
                                    tie_word_embeddings=False, bos_token_id=0, eos_token_id=0),
    }


def randomize(model):
    # Non-trivial norms and biases too, so a swapped or dropped one shows in the logits.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                is_scale = name.endswith("weight")
                p.copy_((1.0 if is_scale else 0.0) + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.15)


# variant suffix -> (dtype the weights are saved in, max_shard_size or None for one file)
VARIANTS = {
    "sharded": (torch.float32, "20KB"),
    "bf16": (torch.bfloat16, None),
    "fp16": (torch.float16, None),
    "bf16_sharded": (torch.bfloat16, "20KB"),
    "fp16_sharded": (torch.float16, "20KB"),
}


def save_variants(model, name, ids, out_dir):
    folders = []
    for suffix, (dtype, shard_size) in VARIANTS.items():
        folder = f"{out_dir}/{name}_{suffix}"
        saved = copy.deepcopy(model).to(dtype)
        kwargs = {"max_shard_size": shard_size} if shard_size else {}
        saved.save_pretrained(folder, **kwargs)
        has_index = os.path.exists(f"{folder}/model.safetensors.index.json")
        if has_index != bool(shard_size):
            raise RuntimeError(f"{folder}: expected sharded={bool(shard_size)}, got {has_index}")
        if has_index:
            with open(f"{folder}/model.safetensors.index.json") as f:
                shards = set(json.load(f)["weight_map"].values())
            if len(shards) < 2:
                raise RuntimeError(f"{folder}: only {len(shards)} shard")
        # Like with like: float32 on the very values the half-precision files hold. The weights
        # are copied into a float32 model rather than upcasting `saved`, whose buffers (RoPE
        # inv_freq) were rounded by .to(dtype) too; Reef computes those in float32.
        upcast = copy.deepcopy(model).eval()
        with torch.no_grad():
            for p, q in zip(upcast.parameters(), saved.parameters(), strict=True):
                p.copy_(q.float())
        with torch.no_grad():
            logits = upcast(input_ids=ids).logits.float().contiguous()
        tensors = {"input_ids": ids, "logits": logits}
        if dtype != torch.float32:
            # And in the half precision itself, as transformers runs the folder when asked to.
            native = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()
            with torch.no_grad():
                tensors["native_logits"] = native(input_ids=ids).logits.float().contiguous()
        save_file(tensors, f"{folder}/reference.safetensors")
        folders.append(f"{name}_{suffix}")
    return folders


def make(out_dir):
    names = []
    variants = []
    for i, (name, config) in enumerate(cases().items()):
        torch.manual_seed(100 + i)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        randomize(model)
        model.eval()
        folder = f"{out_dir}/{name}"
        model.save_pretrained(folder)
        ids = torch.randint(0, config.vocab_size, (2, 12), dtype=torch.int64)
        with torch.no_grad():
            logits = model(input_ids=ids).logits.float().contiguous()
        ref = {"input_ids": ids, "logits": logits}
        if getattr(config, "num_local_experts", None):
            with torch.no_grad():
                out = model(input_ids=ids, labels=ids, output_router_logits=True)
            ref["loss"] = out.loss.float().reshape(())
            ref["aux_loss"] = out.aux_loss.float().reshape(())
        save_file(ref, f"{folder}/reference.safetensors")
        names.append(name)
        variants += save_variants(model, name, ids, out_dir)
    with open(f"{out_dir}/cases.txt", "w") as f:
        f.write("\n".join(names) + "\n")
    with open(f"{out_dir}/variants.txt", "w") as f:
        f.write("\n".join(variants) + "\n")
    print(f"wrote {len(names)} cases with transformers {transformers.__version__}")


def verify_one(model_dir, reference_file):
    model, info = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                       output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                          "mismatched_keys")}
    if bad:
        print(f"{model_dir}: loading problems {bad}")
        return 1
    ref = load_file(reference_file)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ref["input_ids"]).logits.float()
    diff = (logits - ref["logits"]).abs().max().item()
    print(f"{model_dir}: {type(model).__name__} max abs diff {diff:.3g}")
    return 0 if diff <= TOL else 1


def check_sharded(model_dir):
    with open(f"{model_dir}/model.safetensors.index.json") as f:
        index = json.load(f)
    shards = sorted(set(index["weight_map"].values()))
    if len(shards) < 2 or os.path.exists(f"{model_dir}/model.safetensors"):
        raise RuntimeError(f"not sharded: {shards}")
    total = 0
    for shard in shards:
        tensors = load_file(f"{model_dir}/{shard}")
        for k, t in tensors.items():
            if index["weight_map"].get(k) != shard:
                raise RuntimeError(f"{shard} holds {k}, which the index puts elsewhere")
            total += t.numel() * t.element_size()
    if index["metadata"]["total_size"] != total:
        raise RuntimeError(f"total_size {index['metadata']['total_size']} != {total}")
    print(f"{model_dir}: {len(shards)} shards, {total} bytes")


def verify(reef_dir, out_dir, sharded=False):
    with open(f"{out_dir}/cases.txt") as f:
        names = [line.strip() for line in f if line.strip()]
    failures = 0
    for name in names:
        try:
            if sharded:
                check_sharded(f"{reef_dir}/{name}")
            failures += verify_one(f"{reef_dir}/{name}", f"{out_dir}/{name}/reference.safetensors")
        except Exception as e:  # report every case, not just the first
            print(f"{reef_dir}/{name}: {type(e).__name__}: {e}")
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "verify":
        sys.exit(verify(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "verify-sharded":
        sys.exit(verify(sys.argv[2], sys.argv[3], sharded=True))
    else:
        sys.exit(__doc__)
