"""Benchmark: data- and tensor-parallel pretraining throughput, 1 rank against 2 ranks on this
machine, per layout (dp, dp + ZeRO-1, dp + ZeRO-3 / FSDP, tp, tp + sequence parallelism), the
bytes each collective moves
per step and the peak RSS of the largest process (for 2 ranks: the larger rank).

Runs the same small pretraining (same global batch) as `reef pretrain` in one process and as
`reef launch --nproc-per-node 2 -- reef pretrain` with parallel.zero=0, 1 and 3 and with
parallel.tp=2 (Megatron tensor parallelism: every layer's two all-reduces forward and two
backward, on activations, instead of one gradient all-reduce per step) and with
parallel.sequence_parallel=true (each all-reduce becomes a reduce-scatter + an all-gather, and
the norms and residuals hold half of the sequence), reads each run's
metrics.jsonl, and prints the median tokens/s over the steps after the first two, the ratio of
the 2-rank run to the 1-rank run, the all-reduce / all-gather / reduce-scatter payload per step
and rank, and the peak RSS (ru_maxrss of the run: the launcher and its ranks' largest).
On a machine with fewer free cores than ranks the ratio measures contention, not scaling.

  ~/.cache/reef/venv/bin/python bench/data_parallel.py [--reef build/bin/reef] [--steps 12]
      [--hidden 256] [--layers 4] [--seq-len 128] [--threads 1] [--layouts "dp=2,tp=2 sp"]

With --baseline OLD_REEF it compares two builds instead: every layout (single and pp=2
included) runs with OLD_REEF and with --reef alternately, --repeat times each, and the table
gives each build's median tokens/s, the ratio new / old of the medians, and the lowest and
highest ratio of the paired runs (the spread the shared machine adds).
"""
import argparse, os, statistics, tempfile

from reef_bench import DEFAULT_REEF, ROOT, median_tokens_per_s, run, step_rows


LAYOUTS = [("dp=2", []), ("dp=2 zero=1", ["parallel.zero=1"]), ("dp=2 zero=3", ["parallel.zero=3"]),
           ("tp=2", ["parallel.tp=2"]), ("tp=2 sp", ["parallel.tp=2", "parallel.sequence_parallel=true"])]


def metrics(run_dir):
    rows = step_rows(run_dir)
    tps = median_tokens_per_s(rows)
    last = rows[-1]
    return (tps, last.get("comm_all_reduce_bytes", 0), last.get("comm_all_gather_bytes", 0),
            last.get("comm_reduce_scatter_bytes", 0), last["loss"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reef", default=DEFAULT_REEF)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    ap.add_argument("--layouts", default="", help="comma-separated layout names to run (default: all)")
    ap.add_argument("--baseline", default="", help="another reef binary to compare --reef against")
    ap.add_argument("--repeat", type=int, default=3, help="paired runs per layout with --baseline")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "train.txt")
        with open(corpus, "w") as f:
            for i in range(20000):
                f.write(f"fortune {i * 7919 % 10007} favours the bold and the patient\n\n")
        base = ["pretrain", "--config", "recipes/llama-tiny.yaml", f"model.hidden_size={a.hidden}",
                f"model.n_layers={a.layers}", "model.n_heads=4", "model.n_kv_heads=4", f"data.seq_len={a.seq_len}",
                f"model.max_seq_len={a.seq_len}", "train.micro_batch_size=4", "train.grad_accum=2",
                f"train.max_steps={a.steps}", "train.eval_every=0", "checkpoint.every=0",
                "checkpoint.save_optimizer=false", f"run.threads={a.threads}", "logging.progress=off",
                f"data.train_files=[{corpus}]", "data.valid_files=[]"]
        print(f"model hidden={a.hidden} layers={a.layers}, global batch 8 x {a.seq_len} tokens, {a.steps} steps, "
              f"{a.threads} thread(s) per rank, {os.cpu_count()} cores")
        if a.baseline:
            return compare(a, base, tmp)
        d1 = os.path.join(tmp, "one")
        _, rss1 = run([a.reef] + base + [f"run.dir={d1}"], ROOT)
        tps1, _, _, _, loss1 = metrics(d1)
        print(f"{'layout':<14}{'ranks':>6}{'tokens/s':>10}{'vs 1 rank':>11}{'all-reduce MB':>15}"
              f"{'all-gather MB':>15}{'red-scat MB':>13}{'peak RSS MB':>13}{'final loss':>12}")
        print(f"{'single':<14}{1:>6}{tps1:>10.0f}{1.0:>11.2f}{0:>15.2f}{0:>15.2f}{0:>13.2f}{rss1 / 1e6:>13.0f}"
              f"{loss1:>12.5f}")
        layouts = LAYOUTS
        wanted = [n.strip() for n in a.layouts.split(",") if n.strip()]
        unknown = set(wanted) - {n for n, _ in layouts}
        if unknown:
            ap.error(f"--layouts: unknown {sorted(unknown)}; choose from {[n for n, _ in layouts]}")
        for name, extra in layouts:
            if wanted and name not in wanted:
                continue
            d = os.path.join(tmp, name.replace(" ", "_").replace("=", ""))
            _, rss = run([a.reef, "launch", "--nproc-per-node", "2", "--", "reef"] + base + extra + [f"run.dir={d}"], ROOT)
            tps, ar, ag, rs, loss = metrics(d)
            print(f"{name:<14}{2:>6}{tps:>10.0f}{tps / tps1:>11.2f}{ar / 1e6:>15.2f}{ag / 1e6:>15.2f}{rs / 1e6:>13.2f}"
                  f"{rss / 1e6:>13.0f}{loss:>12.5f}")


def compare(a, base, tmp):
    layouts = [("single", [])] + [(n, x) for n, x in LAYOUTS] + [("pp=2", ["parallel.pp=2"])]
    wanted = [n.strip() for n in a.layouts.split(",") if n.strip()]
    print(f"{'layout':<14}{'old tok/s':>11}{'new tok/s':>11}{'new/old':>9}{'lowest':>9}{'highest':>9}"
          f"{'old loss':>11}{'new loss':>11}")
    for name, extra in layouts:
        if wanted and name not in wanted:
            continue
        tps = {"old": [], "new": []}
        loss = {}
        for i in range(a.repeat):
            for which, binary in (("old", a.baseline), ("new", a.reef)):
                d = os.path.join(tmp, f"{which}-{i}-" + name.replace(" ", "_").replace("=", ""))
                cmd = [binary] + base + extra + [f"run.dir={d}"]
                if name != "single":
                    cmd = [binary, "launch", "--nproc-per-node", "2", "--", "reef"] + cmd[1:]
                run(cmd, ROOT)
                t, _, _, _, loss[which] = metrics(d)
                tps[which].append(t)
        ratios = [n / o for n, o in zip(tps["new"], tps["old"])]
        old, new = statistics.median(tps["old"]), statistics.median(tps["new"])
        print(f"{name:<14}{old:>11.0f}{new:>11.0f}{new / old:>9.3f}{min(ratios):>9.3f}{max(ratios):>9.3f}"
              f"{loss['old']:>11.5f}{loss['new']:>11.5f}")


if __name__ == "__main__":
    main()
