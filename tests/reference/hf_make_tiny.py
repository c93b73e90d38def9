"""Reference models for tests/reference/hf_logits_test.cpp, built with Hugging Face transformers.

  hf_make_tiny.py make OUT_DIR
      For each tiny random config (llama MHA/GQA/biases, llama3 and linear RoPE scaling, mistral,
      qwen2, qwen3, gpt2 tied and untied) writes OUT_DIR/<case>/ with save_pretrained
      (config.json + model.safetensors) and OUT_DIR/<case>/reference.safetensors holding fixed
      int64 `input_ids` [2, 12] and the float32 `logits` [2, 12, V] transformers computes.
      OUT_DIR/cases.txt lists the case names, one per line.

  hf_make_tiny.py verify REEF_DIR OUT_DIR
      For each case in OUT_DIR/cases.txt, loads REEF_DIR/<case> (a model folder Reef wrote) with
      AutoModelForCausalLM, requires that no weight is missing or unexpected, and compares its
      logits on the case's reference input_ids with the reference logits. Prints one line per
      case; exit status 1 when any is off by more than 1e-5 or fails to load.
"""
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
        "qwen2": T.Qwen2Config(**base, num_key_value_heads=2, tie_word_embeddings=True),
        "qwen3": T.Qwen3Config(**base, num_key_value_heads=2, head_dim=16,
                               tie_word_embeddings=False),
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


def make(out_dir):
    names = []
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
        save_file({"input_ids": ids, "logits": logits}, f"{folder}/reference.safetensors")
        names.append(name)
    with open(f"{out_dir}/cases.txt", "w") as f:
        f.write("\n".join(names) + "\n")
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


def verify(reef_dir, out_dir):
    with open(f"{out_dir}/cases.txt") as f:
        names = [line.strip() for line in f if line.strip()]
    failures = 0
    for name in names:
        try:
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
    else:
        sys.exit(__doc__)
