"""Benchmark: peak memory (RSS) and speed of fine-tuning one model fully against LoRA and prompt
tuning, same model, same data, same batch, one run each.

Makes a base model folder with `reef pretrain` (one step, byte tokenizer; a Llama of --hidden x
--layers), writes a synthetic SFT set with `reef data synth`, then runs `reef finetune` with
peft.method=none, lora (r=16 on every linear layer) and prompt_tuning, each as its own process,
and prints each run's peak RSS (the kernel's ru_maxrss of that process), the median tokens/s
after the first two steps, the trainable parameter count, and the ratios against full
fine-tuning. The model's fp32 weights alone are reported for scale: full fine-tuning holds them
plus gradients and two AdamW moments (about 4x); LoRA holds the weights plus a small adapter's.

  ~/.cache/reef/venv/bin/python bench/finetune_memory.py [--reef build/bin/reef] [--hidden 768]
      [--layers 8] [--steps 6] [--seq-len 256] [--batch 4] [--threads 2]
"""
import argparse, json, os, re, statistics, subprocess, sys, tempfile


def run(cmd, cwd):
    """Runs cmd to completion; returns (output, peak RSS in bytes) of that process alone."""
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(cmd)}\n{out[-3000:]}")
    return out, usage.ru_maxrss * 1024  # Linux reports KiB


def main():
    ap = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--reef", default=os.path.join(root, "build/bin/reef"))
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    heads = max(1, a.hidden // 64)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "text.txt"), "w") as f:
            f.write("The quick brown fox jumps over the lazy dog.\n\n" * 200)
        common = [f"run.threads={a.threads}", "logging.progress=off", "logging.tensorboard=false"]
        run([a.reef, "pretrain", "--config", "recipes/llama-tiny.yaml", f"run.dir={tmp}/base",
             f"data.train_files=[{tmp}/text.txt]", "data.valid_files=[]", "train.eval_every=0",
             f"model.hidden_size={a.hidden}", f"model.n_layers={a.layers}", f"model.n_heads={heads}",
             f"model.n_kv_heads={heads}", f"model.max_seq_len={a.seq_len}", "data.seq_len=32",
             "train.max_steps=1", "checkpoint.save_optimizer=false"] + common, root)
        run([a.reef, "data", "synth", "--output", f"{tmp}/synth", "--train", "4000", "--test", "10"], root)
        results = {}
        for method in ("none", "lora", "prompt_tuning"):
            extra = {"none": [], "lora": ["peft.lora_r=16", "peft.lora_alpha=32", "peft.target_modules=[all-linear]"],
                     "prompt_tuning": ["data.packing=false", "peft.num_virtual_tokens=20"]}[method]
            out, rss = run([a.reef, "finetune", "--model", f"{tmp}/base", f"run.dir={tmp}/{method}",
                            f"data.train_files=[{tmp}/synth/train.jsonl]", f"data.seq_len={a.seq_len}",
                            f"train.max_steps={a.steps}", f"train.micro_batch_size={a.batch}",
                            "train.eval_every=0", "checkpoint.save_optimizer=false",
                            f"peft.method={method}"] + extra + common, root)
            rows = [json.loads(l) for l in open(f"{tmp}/{method}/metrics.jsonl") if l.strip()]
            tps = statistics.median(r["tokens_per_s"] for r in rows[2:] or rows)
            m = re.search(r"peft: \S+ with (\d+) trainable parameters", out)
            p = re.search(r"with ([\d.]+)M parameters", out)
            total = float(p.group(1)) * 1e6 if p else float("nan")
            results[method] = (rss, tps, int(m.group(1)) if m else int(total))
        total = results["none"][2]
        print(f"model: llama hidden {a.hidden} x {a.layers} layers, {total / 1e6:.1f}M parameters "
              f"({total * 4 / 2**20:.0f} MiB as fp32); batch {a.batch} x {a.seq_len} tokens, {a.steps} steps, "
              f"{a.threads} threads")
        print(f"{'method':<14} {'trainable':>12} {'peak RSS MiB':>13} {'vs full':>8} {'tokens/s':>10} {'vs full':>8}")
        base_rss, base_tps = results["none"][0], results["none"][1]
        for method, (rss, tps, n) in results.items():
            print(f"{method:<14} {n:>12,} {rss / 2**20:>13.0f} {rss / base_rss:>8.2f} {tps:>10.0f} {tps / base_tps:>8.2f}")


if __name__ == "__main__":
    main()
