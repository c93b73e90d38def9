"""Benchmark: saving a ZeRO-1 checkpoint at dp=2, the old way against the new.

  consolidated  (checkpoint.layout=consolidated) every rank all-gathers the full AdamW state,
                then rank 0 writes model.safetensors + optimizer.safetensors alone;
  distributed   (checkpoint.layout=distributed) every rank writes its own pieces (its ZeRO-1
                slices, half of the weights) in parallel, rank 0 writes the index.

Runs `reef launch --nproc-per-node 2 -- reef pretrain ... parallel.zero=1` once per layout,
saving a checkpoint after every step, and reads rank 0's log lines
  "checkpoint ... (layout) saved in S s; RSS B MB before, peak P MB during the save"
(the trainer resets the kernel's peak-RSS record before each save). Prints, per layout, the
median save time and the median peak RSS during the save and its growth over the RSS before
it (rank 0; both ranks gather in the consolidated layout), and the ratios old / new.

  ~/.cache/reef/venv/bin/python bench/dist_checkpoint.py [--reef build/bin/reef] [--steps 3]
      [--hidden 512] [--layers 8]
"""
import argparse, os, re, statistics, sys, tempfile

from reef_bench import DEFAULT_REEF, ROOT, run

LINE = re.compile(r"checkpoint (\S+) \((\w+)\) saved in ([0-9.]+) s; RSS ([0-9.]+) MB before, peak ([0-9.]+) MB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reef", default=DEFAULT_REEF)
    ap.add_argument("--steps", type=int, default=3, help="steps, each followed by a save")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("REEF_BENCH_TMP")) as tmp:
        corpus = os.path.join(tmp, "train.txt")
        with open(corpus, "w") as f:
            for i in range(5000):
                f.write(f"fortune {i * 7919 % 10007} favours the bold and the patient\n\n")
        base = ["pretrain", "--config", "recipes/llama-tiny.yaml", f"model.hidden_size={a.hidden}",
                f"model.n_layers={a.layers}", "model.n_heads=8", "model.n_kv_heads=8", "data.seq_len=64",
                "train.micro_batch_size=2", "train.grad_accum=2", f"train.max_steps={a.steps}",
                "train.eval_every=0", "checkpoint.every=1", "checkpoint.keep_last=1", "run.threads=1",
                "logging.progress=off", "parallel.zero=1", f"data.train_files=[{corpus}]", "data.valid_files=[]"]
        results = {}
        for layout in ("consolidated", "distributed"):
            d = os.path.join(tmp, layout)
            out, _ = run([a.reef, "launch", "--nproc-per-node", "2", "--", "reef"] + base +
                      [f"checkpoint.layout={layout}", f"run.dir={d}"], ROOT)
            saves = [m for m in LINE.finditer(out) if m.group(2) == layout]
            if not saves:
                sys.exit(f"no save lines for {layout} in the output:\n{out[-3000:]}")
            ck = saves[-1].group(1)
            size = sum(os.path.getsize(os.path.join(ck, f)) for f in os.listdir(ck))
            results[layout] = (statistics.median(float(m.group(3)) for m in saves),
                               statistics.median(float(m.group(5)) for m in saves),
                               statistics.median(float(m.group(5)) - float(m.group(4)) for m in saves),
                               len(saves), size)
        print(f"ZeRO-1 at dp=2, llama hidden={a.hidden} layers={a.layers}; {os.cpu_count()} cores; "
              f"rank 0's figures, median of the saves")
        print(f"{'layout':<14}{'saves':>6}{'folder MB':>11}{'save s':>9}{'peak RSS MB':>13}{'growth MB':>11}")
        for layout, (t, peak, growth, n, size) in results.items():
            print(f"{layout:<14}{n:>6}{size / 1e6:>11.1f}{t:>9.3f}{peak:>13.1f}{growth:>11.1f}")
        (t0, p0, g0, _, _), (t1, p1, g1, _, _) = results["consolidated"], results["distributed"]
        print(f"old/new: save time {t0 / t1:.2f}x, peak RSS {p0 / p1:.2f}x; "
              f"RSS growth during the save {g0:.1f} MB vs {g1:.1f} MB")


if __name__ == "__main__":
    main()
