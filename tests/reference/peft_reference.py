"""Reference LoRA adapters for tests/reference/peft_test.cpp, made and checked with Hugging Face peft.

  peft_reference.py make OUT_DIR
      For each base (tiny random llama and qwen2, saved by transformers in OUT_DIR/<base>/) and
      each adapter case (CASES: q/v or all-linear or a regex, plain LoRA or rsLoRA), peft's
      get_peft_model adds the adapter, its lora_A/lora_B are set to random non-zero values and
      save_pretrained writes OUT_DIR/<base>_<case>/ (adapter_config.json +
      adapter_model.safetensors). OUT_DIR/<base>_<case>/reference.safetensors holds fixed int64
      `input_ids` [2, 10], the float32 `logits` of the peft model and `merged_logits` of
      merge_and_unload(). OUT_DIR/cases.txt lists "<base> <case>" lines.

  peft_reference.py verify BASE_DIR ADAPTER_DIR REEF_LOGITS [BASE_DIR ADAPTER_DIR REEF_LOGITS ...]
      For each triple: loads BASE_DIR with transformers and ADAPTER_DIR (written by Reef) with
      PeftModel.from_pretrained; requires that no adapter key is missing or unexpected and that
      the logits and, after merge_and_unload, the merged logits equal REEF_LOGITS's `logits`
      and `merged_logits` on its `input_ids` within 1e-5. Exit status 1 otherwise.

  peft_reference.py verify-jobs JOBS_JSON
      Both of the above in one process: JOBS_JSON is {"adapters": [[BASE_DIR, ADAPTER_DIR,
      REEF_LOGITS], ...], "merged": [[MERGED_DIR, REFERENCE], ...]}.

  peft_reference.py verify-merged MERGED_DIR REFERENCE [MERGED_DIR REFERENCE ...]
      For each pair: loads MERGED_DIR (a plain model folder Reef merged) with transformers, requires no missing
      or unexpected weights and compares its logits with REFERENCE's `merged_logits`.
"""
import json
import sys
import warnings

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict

transformers.utils.logging.disable_progress_bar()

TOL = 1e-5


def bases():
    T = transformers
    common = dict(vocab_size=80, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=64, rms_norm_eps=1e-6)
    return {
        "llama": T.LlamaConfig(**common, num_key_value_heads=2, tie_word_embeddings=False),
        "qwen2": T.Qwen2Config(**common, num_key_value_heads=2, tie_word_embeddings=True),
    }


CASES = {
    "qv": dict(target_modules=["q_proj", "v_proj"], r=4, lora_alpha=8, use_rslora=False),
    "qv_rslora": dict(target_modules=["q_proj", "v_proj"], r=4, lora_alpha=8, use_rslora=True),
    "all_linear": dict(target_modules="all-linear", r=3, lora_alpha=5, use_rslora=False),
    "all_linear_rslora": dict(target_modules="all-linear", r=8, lora_alpha=16, use_rslora=True),
    "regex": dict(target_modules=r".*\.(k_proj|down_proj)", r=2, lora_alpha=4, use_rslora=False),
}


def randomize(model, std):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, std)


def load_base(folder):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def make(out_dir):
    lines = []
    for i, (base_name, config) in enumerate(bases().items()):
        torch.manual_seed(300 + i)
        base = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        randomize(base, 0.15)
        base.save_pretrained(f"{out_dir}/{base_name}")
        ids = torch.randint(0, config.vocab_size, (2, 10), dtype=torch.int64)
        for j, (case, kwargs) in enumerate(CASES.items()):
            torch.manual_seed(400 + 10 * i + j)
            cfg = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.05, init_lora_weights=False,
                             **kwargs)
            model = get_peft_model(load_base(f"{out_dir}/{base_name}"), cfg)
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if "lora_" in name:
                        p.normal_(0.0, 0.2)
            model.eval()
            folder = f"{out_dir}/{base_name}_{case}"
            model.save_pretrained(folder)
            with torch.no_grad():
                logits = model(input_ids=ids).logits.float().contiguous()
                merged = model.merge_and_unload()
                merged_logits = merged(input_ids=ids).logits.float().contiguous()
            save_file({"input_ids": ids, "logits": logits, "merged_logits": merged_logits},
                      f"{folder}/reference.safetensors")
            lines.append(f"{base_name} {case}")
    with open(f"{out_dir}/cases.txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} adapters with peft")


def max_diff(a, b):
    return (a - b).abs().max().item()


def verify(base_dir, adapter_dir, reef_logits):
    ref = load_file(reef_logits)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(load_base(base_dir), adapter_dir).eval()
    problems = [str(w.message) for w in caught if "key" in str(w.message).lower()]
    # The same check done directly: the adapter's tensors are exactly the model's LoRA weights.
    saved = set(load_file(f"{adapter_dir}/adapter_model.safetensors"))
    wanted = set(get_peft_model_state_dict(model))
    if saved != wanted:
        problems.append(f"missing {sorted(wanted - saved)}, unexpected {sorted(saved - wanted)}")
    if problems:
        print(f"{adapter_dir}: loading problems: {problems}")
        return 1
    with torch.no_grad():
        logits = model(input_ids=ref["input_ids"]).logits.float()
        merged = model.merge_and_unload()(input_ids=ref["input_ids"]).logits.float()
    d1, d2 = max_diff(logits, ref["logits"]), max_diff(merged, ref["merged_logits"])
    print(f"{adapter_dir}: max |logits - peft| = {d1:.3g}, merged {d2:.3g}")
    return 0 if d1 <= TOL and d2 <= TOL else 1


def verify_merged(merged_dir, reference):
    ref = load_file(reference)
    model, info = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32,
                                                       output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                          "mismatched_keys")}
    if bad:
        print(f"{merged_dir}: loading problems {bad}")
        return 1
    with torch.no_grad():
        logits = model.eval()(input_ids=ref["input_ids"]).logits.float()
    d = max_diff(logits, ref["merged_logits"])
    print(f"{merged_dir}: max |logits - peft merge_and_unload| = {d:.3g}")
    return 0 if d <= TOL else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) >= 5 and (len(sys.argv) - 2) % 3 == 0 and sys.argv[1] == "verify":
        a = sys.argv[2:]
        sys.exit(max(verify(*a[i:i + 3]) for i in range(0, len(a), 3)))
    elif len(sys.argv) >= 4 and len(sys.argv) % 2 == 0 and sys.argv[1] == "verify-merged":
        a = sys.argv[2:]
        sys.exit(max(verify_merged(*a[i:i + 2]) for i in range(0, len(a), 2)))
    elif len(sys.argv) == 3 and sys.argv[1] == "verify-jobs":
        with open(sys.argv[2]) as f:
            jobs = json.load(f)
        codes = [verify(*j) for j in jobs.get("adapters", [])]
        codes += [verify_merged(*j) for j in jobs.get("merged", [])]
        sys.exit(max(codes, default=0))
    else:
        sys.exit(__doc__)
