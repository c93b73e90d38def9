"""Benchmark: DPO training speed of `reef align dpo` against trl's DPOTrainer, same model, same
pairs, same batch, same threads, one run each on this machine; and the peak memory of LoRA-DPO
against full DPO.

Makes a random fp32 Llama (--hidden x --layers, GQA 4:1 heads of 64) with transformers and a
byte-level BPE tokenizer of --vocab tokens trained on the pairs, makes
--steps x --batch standard pairs (prompt / chosen / rejected strings) from Debian's fortunes
(`reef data fortunes`: a quote's first half, its second half, the next quote's second half), then
trains --steps optimizer steps of --batch pairs with the sigmoid loss (beta 0.1, AdamW lr 1e-5,
no clipping) in each of:

  reef full      reef align dpo, every weight (reference log-probs cached before step 1)
  reef grouped   the same with data.group_by_length=true (micro-batches of similar length)
  reef lora      reef align dpo peft.method=lora (r 16 on every linear layer)
  trl full       DPOTrainer (reference: a frozen copy, computed online every step)
  trl precompute DPOTrainer(precompute_ref_log_probs=True) (a reference pass before step 1)

Prints, per run: the training pairs/s (pairs over the time of all the optimizer steps, from
Reef's per-step metrics and trl's step callbacks; a reference pass before step 1 is not in it),
the same as tokens/s (the pairs' real tokens, prompt counted once per
sequence, padding excluded), the wall time of the whole process (startup, reference pass and
every step), its peak RSS, and the ratios against trl's default DPOTrainer.

  ~/.cache/reef/venv/bin/python bench/dpo.py [--reef build/bin/reef] [--hidden 512] [--layers 8]
      [--vocab 4096] [--steps 12] [--batch 8] [--threads 2]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

from reef_bench import DEFAULT_REEF, ROOT, run, step_rows

TRL_RUN = r'''
import json, os, sys, time, resource
os.environ["TQDM_DISABLE"] = "1"
import torch
torch.set_num_threads(int(sys.argv[4]))
import transformers
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer
transformers.utils.logging.set_verbosity_error()
model_dir, data, steps, threads, batch, precompute = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6] == "1"
rows = [json.loads(l) for l in open(data) if l.strip()]
times = []
class Clock(TrainerCallback):
    def on_step_begin(self, args, state, control, **kw):
        if not times:
            times.append(time.perf_counter())
    def on_step_end(self, args, state, control, **kw):
        times.append(time.perf_counter())
args = DPOConfig(output_dir="/tmp/reef-bench-trl", per_device_train_batch_size=batch, max_steps=steps,
                 learning_rate=1e-5, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                 max_grad_norm=0.0, use_cpu=True, logging_steps=1000, report_to="none",
                 save_strategy="no", seed=1, beta=0.1, loss_type=["sigmoid"], max_length=1024,
                 precompute_ref_log_probs=precompute, dataloader_num_workers=0, disable_dropout=True)
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
t0 = time.perf_counter()
trainer = DPOTrainer(model=model, args=args, processing_class=tok, train_dataset=Dataset.from_list(rows),
                     callbacks=[Clock()])
trainer.train()
print(json.dumps({"step_s": (times[-1] - times[0]) / (len(times) - 1), "train_s": time.perf_counter() - t0}))
'''

MAKE_MODEL = r'''
import json, sys, torch, transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
out, data, hidden, layers, vocab = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rows = [json.loads(l) for l in open(data) if l.strip()]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator([r["prompt"] + r["chosen"] + r["rejected"] for r in rows], trainers.BpeTrainer(
    vocab_size=vocab, special_tokens=["<|endoftext|>", "<|im_end|>"],
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
fast.save_pretrained(out)
heads = max(1, hidden // 64)
torch.manual_seed(0)
cfg = transformers.LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=hidden * 8 // 3 // 64 * 64,
                               num_hidden_layers=layers, num_attention_heads=heads,
                               num_key_value_heads=max(1, heads // 4), max_position_embeddings=512,
                               tie_word_embeddings=False, eos_token_id=fast.eos_token_id,
                               pad_token_id=fast.pad_token_id, bos_token_id=None)
transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32).save_pretrained(out)
'''

COUNT_TOKENS = r'''
import json, sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
n, longest = 0, 0
for l in open(sys.argv[2]):
    r = json.loads(l)
    for a in ("chosen", "rejected"):
        k = len(tok(r["prompt"] + r[a] + tok.eos_token)["input_ids"])
        n, longest = n + k, max(longest, k)
print(json.dumps({"tokens": n, "longest": longest}))
'''


def python(code, *args):
    t0 = time.perf_counter()
    out, rss = run([sys.executable, "-c", code, *map(str, args)])
    return out, rss, time.perf_counter() - t0


def last_json(out):
    return json.loads([l for l in out.splitlines() if l.startswith("{")][-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reef", default=DEFAULT_REEF)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-chars", type=int, default=300, help="quotes of min-chars..2*min-chars characters")
    ap.add_argument("--workdir", default="", help="keep the model, pairs and runs here")
    ap.add_argument("--only", default="", help="comma-separated runs to do (default all)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = a.workdir or scratch
        os.makedirs(tmp, exist_ok=True)
        # Pairs from Debian's fortunes: the first half of a quote is the prompt, its second half
        # the chosen answer, the second half of the next quote the rejected one.
        run([a.reef, "data", "fortunes", "--output", f"{tmp}/fortunes"])
        texts = [json.loads(l)["text"] for l in open(f"{tmp}/fortunes/train.jsonl")]
        texts = [t for t in texts if a.min_chars <= len(t) <= 2 * a.min_chars]
        pairs = f"{tmp}/pairs.jsonl"
        with open(pairs, "w") as g:
            for i in range(a.steps * a.batch):
                t, u = texts[i], texts[i + 1]
                g.write(json.dumps({"prompt": t[: len(t) // 2], "chosen": t[len(t) // 2:],
                                    "rejected": u[len(u) // 2:]}) + "\n")
        python(MAKE_MODEL, f"{tmp}/model", pairs, a.hidden, a.layers, a.vocab)
        count = last_json(python(COUNT_TOKENS, f"{tmp}/model", pairs)[0])
        tokens_per_pair = count["tokens"] / (a.steps * a.batch)
        seq_len = 2 * count["longest"] + 8
        results = {}
        wanted = lambda name: not a.only or name in a.only.split(",")
        for name, extra in (("reef full", []),
                            ("reef grouped", ["data.group_by_length=true"]),
                            ("reef lora", ["peft.method=lora", "peft.lora_r=16", "peft.lora_alpha=32",
                                           "peft.target_modules=[all-linear]"])):
            if not wanted(name):
                continue
            t0 = time.perf_counter()
            _, rss = run([a.reef, "align", "dpo", "--overwrite", "--model", f"{tmp}/model", f"run.dir={tmp}/{name[5:]}",
                          f"data.train_files=[{pairs}]", f"data.seq_len={seq_len}", "dpo.max_length=0",
                          f"train.max_steps={a.steps}", f"train.micro_batch_size={a.batch}",
                          "train.grad_accum=1", "train.eval_every=0", "train.clip_grad=0",
                          "optim.lr=1e-5", "optim.min_lr=1e-5", "optim.schedule=constant", "optim.warmup_steps=0",
                          "checkpoint.every=0", "checkpoint.save_optimizer=false",
                          f"run.threads={a.threads}", "logging.progress=off",
                          "logging.tensorboard=false"] + extra)
            wall = time.perf_counter() - t0
            rows = step_rows(f"{tmp}/{name[5:]}")
            step_s = statistics.mean(seq_len * a.batch / r["tokens_per_s"] for r in rows)
            results[name] = (a.batch / step_s, wall, rss)
        for name, pre in (("trl full", 0), ("trl precompute", 1)):
            if not wanted(name):
                continue
            out, rss, wall = python(TRL_RUN, f"{tmp}/model", pairs, a.steps, a.threads, a.batch, pre)
            r = last_json(out)
            results[name] = (a.batch / r["step_s"], wall, rss)
        print(f"model: llama hidden {a.hidden} x {a.layers} layers, vocab {a.vocab}; {a.steps} steps of "
              f"{a.batch} pairs ({tokens_per_pair:.0f} real tokens per pair, longest sequence "
              f"{count['longest']}); {a.threads} threads")
        first = next(iter(results.values()), (1.0, 1.0, 1.0))
        base = results.get("trl full", first)
        full_rss = results.get("reef full", first)[2]
        print(f"{'run':<15} {'pairs/s':>8} {'tokens/s':>9} {'vs trl':>7} {'wall s':>7} {'vs trl':>7} "
              f"{'peak RSS MiB':>13} {'vs reef full':>13}")
        for name, (pps, wall, rss) in results.items():
            print(f"{name:<15} {pps:>8.2f} {pps * tokens_per_pair:>9.0f} {pps / base[0]:>7.2f} {wall:>7.1f} "
                  f"{base[1] / wall:>7.2f} {rss / 2**20:>13.0f} {rss / full_rss:>13.2f}")


if __name__ == "__main__":
    main()
