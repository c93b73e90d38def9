"""Benchmark: rollout generation inside `reef align grpo` against `reef serve` on the same model,
prompts, sampling and batch, one after the other on this machine; and the share of a GRPO step
spent generating.

GRPO: --steps steps of --prompts prompts x --group completions (temperature 1, at most
--max-tokens new tokens, stop at eos or "\\n"), lr 1e-9 so the weights stay the same from step
to step; rollout tokens/s = the completions' tokens / the step's generation time (metrics
`completions/mean_length`, `time/generation_s`), and the generation share of the step's time.
serve: `reef serve --max-batch prompts x group` on the same model, the same prompts sent as
--prompts concurrent /v1/completions requests with n = --group, the same sampling, --steps
times; tokens/s = completion tokens (usage) / the wall time of each round. Prints each side's
median and spread over the rounds and the ratio GRPO / serve (goal: at least 0.9).

  ~/.cache/reef/venv/bin/python bench/grpo_rollouts.py [--model runs/sft-short-60]
      [--prompts data/synth/train.jsonl] [--reef build/bin/reef] [--steps 6] [--threads 2]
"""
import argparse, http.client, json, os, statistics, subprocess, tempfile, threading, time

from reef_bench import ROOT, start_serve


def grpo(a, tmp, prompts_file):
    run = f"{tmp}/grpo"
    cmd = [a.reef, "align", "grpo", "--overwrite", "--model", a.model, f"run.dir={run}",
           f"data.train_files=[{prompts_file}]", "data.seq_len=96", f"run.threads={a.threads}",
           f"train.max_steps={a.steps}", f"train.micro_batch_size={a.prompts * a.group}",
           "train.grad_accum=1", "train.eval_every=0", "optim.lr=1e-9", "optim.min_lr=1e-9",
           "optim.warmup_steps=0", "checkpoint.every=0", "checkpoint.save_optimizer=false",
           f"grpo.num_generations={a.group}", f"grpo.max_completion_length={a.max_tokens}",
           "grpo.temperature=1.0", 'grpo.stop=["\\n"]', "grpo.rewards=[exact_match]",
           "grpo.answer_field=completion", "grpo.save_rollouts=false", "logging.progress=off",
           "logging.tensorboard=false"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if l.strip()]
    rows = [r for r in rows if "time/generation_s" in r]
    seq_len = 96
    out = []
    for r in rows:
        n = a.prompts * a.group
        tokens = r["completions/mean_length"] * n
        step_s = n * seq_len / r["tokens_per_s"]
        out.append((tokens / r["time/generation_s"], r["time/generation_s"] / step_s))
    return out


def serve(a, prompts, tmp):
    p, port = start_serve([a.reef, "serve", "--model", a.model, "--model-name", "m", "--port", "0",
                           "--threads", str(a.threads), "--max-batch", str(a.prompts * a.group)],
                          f"{tmp}/serve.log")
    rates = []
    try:
        for step in range(a.steps):
            batch = prompts[step * a.prompts:(step + 1) * a.prompts]
            counts = [0] * len(batch)

            def one(i):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                body = {"model": "m", "prompt": batch[i], "n": a.group, "max_tokens": a.max_tokens,
                        "temperature": 1.0, "stop": ["\n"], "seed": 1000 + step * 100 + i}
                c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
                r = json.loads(c.getresponse().read())
                if "usage" not in r:
                    print(f"reef serve answered: {r}", flush=True)
                    os._exit(1)
                counts[i] = r["usage"]["completion_tokens"]

            t0 = time.perf_counter()
            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(batch))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rates.append(sum(counts) / (time.perf_counter() - t0))
    finally:
        p.terminate()
        p.wait()
    return rates


def spread(x):
    return f"{statistics.median(x):8.1f} ({min(x):.1f}-{max(x):.1f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=f"{ROOT}/runs/sft-short-60")
    ap.add_argument("--prompts-file", default=f"{ROOT}/data/synth/train.jsonl")
    ap.add_argument("--reef", default=f"{ROOT}/build/bin/reef")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [json.loads(l) for l in open(a.prompts_file) if l.strip()]
        prompts_file = f"{tmp}/prompts.jsonl"
        with open(prompts_file, "w") as f:
            for r in rows[: a.steps * a.prompts]:
                f.write(json.dumps(r) + "\n")
        g = grpo(a, tmp, prompts_file)
        s = serve(a, [r["prompt"] for r in rows], tmp)
    gr = [x for x, _ in g[1:]] or [x for x, _ in g]  # the first step warms up
    share = [y for _, y in g]
    print(f"model {a.model}; {a.steps} rounds of {a.prompts} prompts x {a.group} completions, "
          f"<= {a.max_tokens} tokens, temperature 1; {a.threads} threads")
    print(f"{'side':<28} {'tokens/s median (range)':>28}")
    print(f"{'rollouts inside reef align grpo':<28} {spread(gr):>28}")
    print(f"{'reef serve (same batch)':<28} {spread(s):>28}")
    print(f"ratio grpo / serve: {statistics.median(gr) / statistics.median(s):.2f}")
    print(f"share of a GRPO step spent generating: {spread([100 * y for y in share])} %")


if __name__ == "__main__":
    main()
