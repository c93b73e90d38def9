# Reef's two entry points for a fresh machine:
#   make run   - install what is missing, build, and run the main job (fortunes -> tiny Llama)
#   make test  - install what is missing, build, and run every test under ctest
BUILD ?= build
JOBS ?= $(shell nproc)
RUN_DIR ?= runs/fortunes
CMAKE_FLAGS ?=

.PHONY: setup configure build run test clean main-job demo-sft
setup:
	@scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS) > $(BUILD).configure.log 2>&1 || (cat $(BUILD).configure.log; exit 1)

build: configure
	@ninja -C $(BUILD) -j $(JOBS)

run: build main-job

main-job:
	$(BUILD)/bin/reef data fortunes --output data/fortunes
	$(BUILD)/bin/reef tokenizer train --input data/fortunes/train.jsonl --vocab-size 2048 --output data/fortunes/tokenizer
	$(BUILD)/bin/reef data prepare --input data/fortunes/train.jsonl --tokenizer data/fortunes/tokenizer \
	  --output data/fortunes/train --append-eod
	$(BUILD)/bin/reef data prepare --input data/fortunes/valid.jsonl --tokenizer data/fortunes/tokenizer \
	  --output data/fortunes/valid --append-eod
	$(BUILD)/bin/reef pretrain --config recipes/fortunes-llama.yaml --overwrite run.dir=$(RUN_DIR)
	$(BUILD)/bin/reef generate --checkpoint $(RUN_DIR) --temperature 0.8 --top-k 40 --max-new-tokens 160 \
	  --num-samples 2 --prompt "The meaning of life is" --prompt "A computer"

# After `make run`: the SFT demonstration on the main job's model (docs/finetuning.md): exact
# match on held-out synthetic items before and after fine-tuning.
demo-sft: build
	$(BUILD)/bin/reef data synth --output data/synth
	$(BUILD)/bin/reef eval --model $(RUN_DIR) --tasks data/synth/synth.yaml --output $(RUN_DIR)-synth-eval
	$(BUILD)/bin/reef finetune --config recipes/llama-tiny-sft.yaml --overwrite model.init_from=$(RUN_DIR) \
	  run.dir=$(RUN_DIR)-sft
	$(BUILD)/bin/reef eval --model $(RUN_DIR)-sft --tasks data/synth/synth.yaml --output $(RUN_DIR)-sft/eval

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) $(BUILD).configure.log
