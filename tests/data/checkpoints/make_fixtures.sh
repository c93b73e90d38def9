#!/usr/bin/env bash
# Writes the checkpoint folders that tests/unit/train/checkpoint_layouts_test.cpp loads: the
# same two-step run of a tiny Llama in each layout Reef has written, one folder per layout.
# They were made by the reef of commit 7d6159f (before the training core had one checkpointer),
# so the test proves that folders written by that code still load:
#   tests/data/checkpoints/make_fixtures.sh path/to/old/reef
set -euo pipefail
REEF=${1:?usage: make_fixtures.sh path/to/reef}
REEF=$(realpath "$REEF")
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 64); do echo "fixture line $i: the quick brown fox jumps over the lazy dog $((i * 7))"; done > "$work/train.txt"
common=(--config ../../../recipes/llama-tiny.yaml model.hidden_size=16 model.n_layers=2
  model.n_heads=2 model.n_kv_heads=2 model.intermediate_size=32 data.seq_len=16
  train.micro_batch_size=4 train.grad_accum=2 train.max_steps=2 train.eval_every=0
  checkpoint.every=2 run.threads=1 logging.progress=off train.precision=fp32
  optim.warmup_steps=1 "data.train_files=[$work/train.txt]" "data.valid_files=[]")
run() {  # run NAME NPROC [overrides...]
  local name=$1 n=$2
  shift 2
  if [ "$n" = 1 ]; then
    "$REEF" pretrain "${common[@]}" run.dir="$work/$name" "$@" > "$work/$name.log" 2>&1
  else
    "$REEF" launch --nproc-per-node "$n" -- "$REEF" pretrain "${common[@]}" run.dir="$work/$name" "$@" \
      > "$work/$name.log" 2>&1
  fi
  rm -rf "$name"
  cp -r "$work/$name/checkpoints/step_2" "$name"
  rm -f "$name/config.yaml.bak"
}
run consolidated 1
run dp2_distributed 2 checkpoint.layout=distributed
run dp2_zero1_distributed 2 parallel.zero=1 checkpoint.layout=distributed
run tp2_distributed 2 parallel.tp=2 checkpoint.layout=distributed
run pp2_distributed 2 parallel.pp=2 checkpoint.layout=distributed
run zero3_distributed 2 parallel.zero=3 checkpoint.layout=distributed
run pp2_consolidated 2 parallel.pp=2 checkpoint.layout=consolidated
du -sh .
