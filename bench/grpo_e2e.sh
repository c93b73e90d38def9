#!/usr/bin/env bash
# GRPO end to end on the main job's model, on 2 CPU cores (the figures in docs/alignment.md):
# a short SFT on `reef data synth` (recipes/llama-tiny-sft.yaml, SFT_STEPS steps), greedy exact
# match on the held-out items, GRPO with exact-match rewards (recipes/llama-tiny-grpo.yaml) on
# fresh synth prompts (another seed, the held-out items removed: data/synth-grpo/prompts.jsonl),
# exact match again; then the same GRPO run a second time from the same seed, and a check that
# both runs logged the same numbers at every step (reproducibility).
# Runs the main job first (`make main-job`) when RUN_DIR has no checkpoint.
#   bash bench/grpo_e2e.sh            # RUN_DIR=runs/fortunes SFT_STEPS=120 REEF=build/bin/reef
set -euo pipefail
cd "$(dirname "$0")/.."
B=${REEF:-build/bin/reef}
RUN=${RUN_DIR:-runs/fortunes}
SFT_STEPS=${SFT_STEPS:-120}
PY=${PYTHON:-$HOME/.cache/reef/venv/bin/python}
stamp() { echo "== $(date +%T) $*"; }
em() { grep -o '"exact_match,none": *[0-9.]*' "$1/results.json" | head -1 | sed 's/.*: *//'; }

if ! ls "$RUN"/checkpoints/step_* > /dev/null 2>&1; then
  stamp "main job"
  make main-job RUN_DIR="$RUN"
fi
stamp "synth data and a short SFT ($SFT_STEPS steps)"
$B data synth --output data/synth
$B finetune --config recipes/llama-tiny-sft.yaml --overwrite model.init_from="$RUN" \
  run.dir="$RUN-sft-short" train.max_steps="$SFT_STEPS" train.eval_every=0 logging.progress=off
$B eval --model "$RUN-sft-short" --tasks data/synth/synth.yaml --output "$RUN-sft-short/eval"

stamp "fresh prompts for GRPO"
$B data synth --output data/synth-grpo --seed 777 --train 4000 --test 10
"$PY" - <<'PYEOF'
import json
test = {json.loads(l)["prompt"] for l in open("data/synth/test.jsonl")}
rows = [json.loads(l) for l in open("data/synth-grpo/train.jsonl")]
keep = [r for r in rows if r["prompt"] not in test]
with open("data/synth-grpo/prompts.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in keep)
print(f"{len(keep)} of {len(rows)} fresh prompts kept (the others are held-out items)")
PYEOF

for k in 1 2; do
  stamp "GRPO run $k"
  start=$(date +%s)
  $B align grpo --config recipes/llama-tiny-grpo.yaml --overwrite model.init_from="$RUN-sft-short" \
    run.dir="$RUN-grpo-$k" logging.progress=off
  echo "GRPO run $k: $(( $(date +%s) - start )) s"
  $B eval --model "$RUN-grpo-$k" --tasks data/synth/synth.yaml --output "$RUN-grpo-$k/eval"
done

stamp "results"
echo "exact match: SFT $(em "$RUN-sft-short/eval"), GRPO run 1 $(em "$RUN-grpo-1/eval"), run 2 $(em "$RUN-grpo-2/eval")"
"$PY" - "$RUN-grpo-1/metrics.jsonl" "$RUN-grpo-2/metrics.jsonl" <<'PYEOF'
import json, sys
keep = ("loss", "reward", "grad_norm", "completions/mean_length", "entropy")
a, b = ([{k: r[k] for k in keep if k in r} | {"step": r["step"]} for r in map(json.loads, open(f))]
        for f in sys.argv[1:])
same = a == b
print(f"runs 1 and 2: {len(a)} logged steps, {'identical' if same else 'DIFFERENT'} "
      f"loss/reward/grad_norm/length/entropy curves")
r = [x["reward"] for x in a if "reward" in x]
n = max(1, len(r) // 6)
print("mean reward per sixth of the run:", [round(sum(r[i:i + n]) / len(r[i:i + n]), 3) for i in range(0, len(r), n)])
sys.exit(0 if same else 1)
PYEOF
