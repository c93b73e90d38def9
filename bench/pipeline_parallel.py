"""Benchmark: pipeline-parallel pretraining throughput, 1 process against parallel.pp=2 on this
machine, and the bytes sent between the stages per step.

Runs the same small pretraining (same global batch: micro_batch_size x grad_accum sequences)
as `reef pretrain` in one process and as `reef launch --nproc-per-node 2 -- reef pretrain
parallel.pp=2`, reads each run's metrics.jsonl (rank 0 = the first stage), and prints the median
tokens/s over the steps after the first two, the ratio pp=2 / 1 process, the activation bytes
stage 0 sends per step (comm_send_bytes: micro-batches x B x T x C x 4) and the final loss
(equal to the single run's within float rounding). The 1F1B bubble is (pp - 1) / (grad_accum +
pp - 1) of the step, so more micro-batches (--accum) shrink it. On a machine with fewer free
cores than ranks the ratio measures contention, not scaling.

  ~/.cache/reef/venv/bin/python bench/pipeline_parallel.py [--reef build/bin/reef] [--steps 10]
      [--hidden 256] [--layers 4] [--accum 8] [--threads 1]
"""
import argparse, os, tempfile

from reef_bench import DEFAULT_REEF, ROOT, median_tokens_per_s, run, step_rows


def metrics(run_dir):
    rows = step_rows(run_dir)
    tps = median_tokens_per_s(rows)
    last = rows[-1]
    return tps, last.get("comm_send_bytes", 0), last.get("comm_all_reduce_bytes", 0), last["loss"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reef", default=DEFAULT_REEF)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--accum", type=int, default=8, help="micro-batches per step (train.grad_accum)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "train.txt")
        with open(corpus, "w") as f:
            for i in range(20000):
                f.write(f"fortune {i * 7919 % 10007} favours the bold and the patient\n\n")
        base = ["pretrain", "--config", "recipes/llama-tiny.yaml", f"model.hidden_size={a.hidden}",
                f"model.n_layers={a.layers}", "model.n_heads=4", "model.n_kv_heads=4", "data.seq_len=128",
                "model.max_seq_len=128", "train.micro_batch_size=2", f"train.grad_accum={a.accum}",
                f"train.max_steps={a.steps}", "train.eval_every=0", "checkpoint.every=0",
                "checkpoint.save_optimizer=false", f"run.threads={a.threads}", "logging.progress=off",
                f"data.train_files=[{corpus}]", "data.valid_files=[]"]
        print(f"model hidden={a.hidden} layers={a.layers}, global batch 2 x {a.accum} x 128 tokens, "
              f"{a.steps} steps, {a.threads} thread(s) per rank, {os.cpu_count()} cores")
        d1 = os.path.join(tmp, "one")
        run([a.reef] + base + [f"run.dir={d1}"], ROOT)
        tps1, _, _, loss1 = metrics(d1)
        print(f"{'layout':<10}{'ranks':>6}{'tokens/s':>12}{'vs 1 rank':>11}{'sent MB/step':>14}"
              f"{'all-reduce B/step':>19}{'final loss':>12}")
        print(f"{'single':<10}{1:>6}{tps1:>12.0f}{1.0:>11.2f}{0:>14.3f}{0:>19.0f}{loss1:>12.5f}")
        d = os.path.join(tmp, "pp2")
        run([a.reef, "launch", "--nproc-per-node", "2", "--", "reef"] + base + ["parallel.pp=2", f"run.dir={d}"], ROOT)
        tps, sent, ar, loss = metrics(d)
        print(f"{'pp=2':<10}{2:>6}{tps:>12.0f}{tps / tps1:>11.2f}{sent / 1e6:>14.3f}{ar:>19.0f}{loss:>12.5f}")


if __name__ == "__main__":
    main()
