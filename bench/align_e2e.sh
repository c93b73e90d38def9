#!/usr/bin/env bash
# End to end alignment on the main job's model, on 2 CPU cores (the figures in
# docs/alignment.md): SFT on `reef data synth`, then from the SFT model
#   1. a reward model (recipes/llama-tiny-rm.yaml), scored on the held-out pairs by `reef score`;
#   2. DPO on the synth pairs (recipes/llama-tiny-dpo.yaml: rejected = another item's answer);
#   3. DPO on on-policy pairs: fresh synth prompts (another seed, none in the train or test
#      sets) answered by the SFT model; where its greedy answer is wrong, that answer is the
#      rejected one (the other items keep their synth pair);
# with greedy exact match on the held-out items (`reef eval`) before and after each DPO run.
# Runs the main job first (`make main-job`) when RUN_DIR has no checkpoint.
#   bash bench/align_e2e.sh            # RUN_DIR=runs/fortunes REEF=build/bin/reef
set -euo pipefail
cd "$(dirname "$0")/.."
B=${REEF:-build/bin/reef}
RUN=${RUN_DIR:-runs/fortunes}
PY=${PYTHON:-$HOME/.cache/reef/venv/bin/python}
stamp() { echo "== $(date +%T) $*"; }

if ! ls "$RUN"/checkpoints/step_* > /dev/null 2>&1; then
  stamp "main job"
  make main-job RUN_DIR="$RUN"
fi
stamp "synth data and SFT"
$B data synth --output data/synth
$B finetune --config recipes/llama-tiny-sft.yaml --overwrite model.init_from="$RUN" run.dir="$RUN-sft" \
  logging.progress=off
$B eval --model "$RUN-sft" --tasks data/synth/synth.yaml --output "$RUN-sft/eval"

stamp "reward model"
$B align rm --config recipes/llama-tiny-rm.yaml --overwrite model.init_from="$RUN-sft" \
  run.dir="$RUN-rm" logging.progress=off
$B score --model "$RUN-rm" --input data/synth/test_pairs.jsonl --out "$RUN-rm/test_scores.jsonl"

stamp "DPO on the synth pairs"
$B align dpo --config recipes/llama-tiny-dpo.yaml --overwrite model.init_from="$RUN-sft" \
  run.dir="$RUN-dpo" logging.progress=off
$B eval --model "$RUN-dpo" --tasks data/synth/synth.yaml --output "$RUN-dpo/eval"

stamp "on-policy pairs: the SFT model's own greedy answers to fresh prompts"
# Fresh synth items (another seed; none of them in train.jsonl or test.jsonl) are answered by the
# SFT model; where its greedy answer is wrong, that answer is the rejected one (the right answer
# chosen), elsewhere the item keeps its synth pair. Verifiable answers, no held-out data used.
$B data synth --output data/synth_fresh --seed 777 --train 4000 --test 10
"$PY" - <<'PY'
import json
seen = {json.loads(l)["prompt"] for f in ("data/synth/train.jsonl", "data/synth/test.jsonl") for l in open(f)}
rows = [json.loads(l) for l in open("data/synth_fresh/train.jsonl")]
with open("data/synth_fresh/prompts.jsonl", "w") as f:
    for r in rows:
        if r["prompt"] not in seen:
            f.write(json.dumps(r) + "\n")
PY
sed -e 's/^task: synth$/task: fresh/' -e 's/test: test.jsonl/test: prompts.jsonl/' \
  data/synth/synth.yaml > data/synth_fresh/fresh.yaml
$B eval --model "$RUN-sft" --tasks data/synth_fresh/fresh.yaml --output "$RUN-sft/eval_fresh"
"$PY" - "$RUN-sft/eval_fresh/samples_fresh.jsonl" data/synth_fresh/pairs.jsonl \
  data/synth_fresh/onpolicy_pairs.jsonl <<'PY'
import json, sys
samples = [json.loads(l) for l in open(sys.argv[1])]
synth = {}
for l in open(sys.argv[2]):
    r = json.loads(l)
    synth.setdefault(r["prompt"], r)
wrong = kept = 0
with open(sys.argv[3], "w") as f:
    for s in samples:
        doc, pred = s["doc"], s["prediction"]
        if pred.strip() != doc["completion"].strip() and pred.strip():
            # The model's own answer, ended as the completions are.
            tail = doc["completion"][len(doc["completion"].rstrip()):]
            f.write(json.dumps({"prompt": doc["prompt"], "chosen": doc["completion"],
                                "rejected": pred.rstrip() + tail}) + "\n")
            wrong += 1
        elif doc["prompt"] in synth:
            f.write(json.dumps(synth[doc["prompt"]]) + "\n")
            kept += 1
print(f"on-policy pairs: {wrong} with the model's own wrong answer, {kept} synth pairs kept")
PY
$B align dpo --config recipes/llama-tiny-dpo.yaml --overwrite model.init_from="$RUN-sft" \
  run.dir="$RUN-dpo-onpolicy" data.train_files=[data/synth_fresh/onpolicy_pairs.jsonl] \
  train.max_steps=200 logging.progress=off
$B eval --model "$RUN-dpo-onpolicy" --tasks data/synth/synth.yaml --output "$RUN-dpo-onpolicy/eval"

stamp "summary"
"$PY" - "$RUN" <<'PY'
import json, sys
run = sys.argv[1]
def last(path, key):
    v = [json.loads(l).get(key) for l in open(path)]
    v = [x for x in v if x is not None]
    return v[-1] if v else float("nan")
def em(d):
    return json.load(open(f"{d}/eval/results.json"))["results"]["synth"]["exact_match,none"]
print(f"SFT exact match {em(run + '-sft'):.3f}")
print(f"RM held-out accuracy {last(run + '-rm/metrics.jsonl', 'eval_accuracy'):.3f}")
for d in ("dpo", "dpo-onpolicy"):
    print(f"{d}: held-out implicit-reward accuracy "
          f"{last(f'{run}-{d}/metrics.jsonl', 'eval_rewards/accuracies'):.3f}, "
          f"exact match {em(f'{run}-{d}'):.3f}")
PY
stamp done
