"""Reference GRPO losses for tests/reference/grpo_test.cpp, computed with trl's GRPOTrainer.

  grpo_reference.py loss MODEL_DIR OUT_DIR
      MODEL_DIR: a transformers causal LM with its tokenizer (dpo_reference.py make's model).
      Fixed inputs (written to OUT_DIR/inputs.json): 2 prompts x 3 completions of random token
      ids (the prompts of one length, as trl's left padding would otherwise shift positions),
      completions of different lengths right-padded, rewards, and old / reference per-token
      log-probs (the model's own, perturbed, so ratios differ from 1 and clip). For every case
      of CASES, GRPOTrainer._compute_loss on those inputs (one micro-batch, no accumulation)
      gives the loss and, after backward, every parameter's gradient: OUT_DIR/results.json holds
      {"CASE": {"loss": ..., settings}} and OUT_DIR/grads_CASE.safetensors; the advantages come from
      trl's sum-then-normalise rule with its nanstd, for each reward scaling.
"""
import json
import os
import sys
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402
import transformers  # noqa: E402
from datasets import Dataset  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402
from trl.trainer.utils import nanstd  # noqa: E402

transformers.utils.logging.set_verbosity_error()

G = 3
MAX_COMPLETION = 7
TEMPERATURE = 0.7
# name: (loss_type, importance_sampling_level, beta, epsilon, epsilon_high, use_bias_correction_kl)
CASES = {
    "grpo": ("grpo", "token", 0.0, 0.2, None, True),
    "bnpo": ("bnpo", "token", 0.0, 0.2, None, True),
    "dr_grpo": ("dr_grpo", "token", 0.0, 0.2, None, True),
    "dapo": ("dapo", "token", 0.0, 0.2, 0.28, True),
    "grpo_kl": ("grpo", "token", 0.04, 0.2, None, True),
    "grpo_kl_uncorrected": ("grpo", "token", 0.04, 0.2, None, False),
    "dapo_kl": ("dapo", "token", 0.1, 0.2, 0.28, True),
    "gspo": ("grpo", "sequence", 0.0, 3e-4, 4e-4, True),
    "gspo_kl": ("bnpo", "sequence", 0.04, 0.05, None, True),
}


def advantages(rewards, scale):
    rewards = torch.tensor(rewards, dtype=torch.float64)
    mean = torch.nanmean(rewards.view(-1, G), dim=1).repeat_interleave(G)
    if scale == "batch":
        std = nanstd(rewards).expand_as(rewards)
    else:
        std = nanstd(rewards.view(-1, G), dim=1).repeat_interleave(G)
    adv = rewards - mean
    if scale != "none":
        adv = adv / (std + 1e-4)
    return torch.nan_to_num(adv, nan=0.0).tolist()


def main():
    model_dir, out = sys.argv[2], sys.argv[3]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(3)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    V = model.config.vocab_size
    prompts = torch.randint(3, V, (2, 5))
    prompt_ids = prompts.repeat_interleave(G, dim=0)
    prompt_mask = torch.ones_like(prompt_ids)
    lengths = [7, 3, 5, 1, 6, 4]
    completion_ids = torch.randint(3, V, (6, MAX_COMPLETION))
    completion_mask = torch.zeros_like(completion_ids)
    for i, n in enumerate(lengths):
        completion_mask[i, :n] = 1
        completion_ids[i, n:] = tok.pad_token_id
    rewards = [1.0, 0.0, 0.5, float("nan"), 1.0, 0.0]
    adv = {s: advantages(rewards, s) for s in ("group", "batch", "none")}

    args = GRPOConfig(output_dir="/tmp/reef-grpo-ref", per_device_train_batch_size=6, num_generations=G,
                      max_completion_length=MAX_COMPLETION, temperature=TEMPERATURE, use_cpu=True,
                      report_to="none", logging_steps=1000, save_strategy="no", beta=0.0, bf16=False)
    trainer = GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
                          args=args, train_dataset=Dataset.from_list([{"prompt": "a"}] * 6),
                          processing_class=tok)
    model = trainer.model
    model.train()
    trainer.current_gradient_accumulation_steps = 1  # one micro-batch per optimizer step
    input_ids = torch.cat([prompt_ids, completion_ids], 1)
    attention = torch.cat([prompt_mask, completion_mask], 1)
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(model, input_ids, attention, MAX_COMPLETION)
    g = torch.Generator().manual_seed(5)
    old = (logps + 0.3 * torch.randn(logps.shape, generator=g)).detach()
    ref = (logps + 0.5 * torch.randn(logps.shape, generator=g)).detach()
    inputs_json = {"prompt_ids": prompt_ids.tolist(), "completion_ids": completion_ids.tolist(),
                   "completion_mask": completion_mask.tolist(), "rewards": [None if r != r else r for r in rewards],
                   "advantages": adv, "old_logps": old.tolist(), "ref_logps": ref.tolist(), "logps": logps.tolist(),
                   "group": G, "max_completion_length": MAX_COMPLETION, "temperature": TEMPERATURE}
    with open(f"{out}/inputs.json", "w") as f:
        json.dump(inputs_json, f)
    results = {}
    for name, (loss_type, level, beta, eps, eps_high, corrected) in CASES.items():
        trainer.args.use_bias_correction_kl = corrected
        trainer.loss_type = loss_type
        trainer.importance_sampling_level = level
        trainer.beta = beta
        trainer.epsilon_low = eps
        trainer.epsilon_high = eps_high if eps_high is not None else eps
        inputs = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
                  "completion_mask": completion_mask,
                  "advantages": torch.tensor(adv["group"], dtype=torch.float32),
                  "old_per_token_logps": old, "ref_per_token_logps": ref,
                  "num_items_in_batch": completion_mask.sum()}
        model.zero_grad(set_to_none=True)
        loss = trainer._compute_loss(model, inputs)
        loss.backward()
        grads = {n: p.grad.detach().clone().contiguous() for n, p in model.named_parameters() if p.grad is not None}
        save_file(grads, f"{out}/grads_{name}.safetensors")
        results[name] = {"loss": loss.item(), "loss_type": loss_type, "level": level, "beta": beta,
                         "epsilon": eps, "epsilon_high": eps_high if eps_high is not None else 0.0,
                         "use_bias_correction_kl": corrected}
    with open(f"{out}/results.json", "w") as f:
        json.dump(results, f, indent=1)
    print(out)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "loss":
        sys.exit(__doc__)
    main()
