// The checkpoint folder and its files, under train/checkpointer.h (which is what the train step
// calls): <run.dir>/checkpoints/step_<N>/ holding a Hugging Face model folder
// (model.safetensors, config.json, generation_config.json, tokenizer files) plus
// optimizer.safetensors, trainer_state.json and config.yaml. Each is written into a temporary
// folder that is renamed into place, so a step_<N> folder is complete by construction; the
// sizes and xxh64 of all files are recorded in trainer_state.json and checked at load, so a
// truncated or corrupted checkpoint is an error, never a silent wrong resume.
//
// The distributed layout (checkpoint.layout): each rank writes its own pieces in parallel
// (checkpoint/dist_checkpoint.h) and nothing is gathered; the folder holds rank-XXXXX.safetensors
// files and dist_checkpoint.json in place of model.safetensors and optimizer.safetensors, beside
// the same config, tokenizer and state files.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "reef/checkpoint/dist_checkpoint.h"
#include "reef/config/config.h"
#include "reef/models/causal_lm.h"
#include "reef/parallel/optimizer.h"
#include "reef/parallel/process_group.h"
#include "reef/parallel/strategy.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

struct TrainerState {
  int64_t step = 0;              // optimizer steps completed
  int64_t tokens_seen = 0;       // training tokens consumed
  int64_t consumed_samples = 0;  // training samples drawn so far: the data position
  // The training samples' fingerprint (hex) and the data settings that produced them; a
  // resume into different data is refused rather than continuing some other order.
  std::string data_fingerprint;
  nlohmann::json data_spec = nlohmann::json::object();
  std::string rng_cpu_hex;  // torch's default CPU generator state
  double lr = 0.0;          // learning rate of the last step
  int64_t optimizer_step = 0;
};

// Writes a checkpoint's weights into a folder and returns the names of the files it wrote.
using CheckpointWeightsWriter = std::function<std::vector<std::string>(const std::string& dir)>;

// Whether a run of `world_size` ranks writes distributed checkpoints: checkpoint.layout
// "distributed", or "auto" with several ranks.
bool writes_distributed_checkpoints(const CheckpointConfig& c, int world_size);

// The consolidated folder for `state.step`, written by one rank: `model`'s weights (or, with
// `write_weights`, what it writes: a PEFT adapter) and the optimizer's named state (null: none).
// Keeps the newest `keep_last` (0: all). Returns its path.
std::string write_consolidated_checkpoint(const std::string& run_dir, CausalLM& model,
                                          const NamedParams* optimizer_state,
                                          int64_t optimizer_step, const Tokenizer& tokenizer,
                                          const Config& cfg, const TrainerState& state,
                                          int64_t keep_last,
                                          const CheckpointWeightsWriter& write_weights = nullptr);

// The distributed folder: a collective that every rank of `pg` (null: one process) calls.
// `params` says which part of which tensor this rank holds; each replica set's parts are spread
// over its ranks by size. The optimizer's moments have the parameters' local shapes; ZeRO-1
// slices of them are written as boxes of the whole tensor when the parameter is itself a part.
// `flat_params` (FSDP: each rank's flat slices) are written as they are; the optimizer state of
// a parameter not in `params` must then be sharded (flat ranges of the whole moments). Rank 0
// writes the config, tokenizer, config.yaml and trainer_state.json, then (after every rank's
// file is in place) the index, renames the folder into place and prunes to `keep_last`.
std::string write_distributed_checkpoint(const std::string& run_dir, CausalLM& model,
                                         const std::vector<ShardedParam>& params,
                                         const std::vector<FlatPiece>& flat_params,
                                         Optimizer* optimizer, const Tokenizer& tokenizer,
                                         const Config& cfg, const TrainerState& state,
                                         int64_t keep_last, ProcessGroup* pg);

// Runs `save`, then logs the folder, the layout, the time it took and the peak RSS during it.
std::string timed_save(bool distributed, const std::function<std::string()>& save);

// Where a parameter's part lies in the whole tensor.
TensorSlice part_of(const ShardedParam& p);

// Reads part of a checkpoint: given the folder, the opened distributed checkpoint (null:
// consolidated) and the optimizer step.
using CheckpointReader = std::function<void(const std::string&, const DistCheckpoint*, int64_t)>;

// Verifies every file against trainer_state.json (throws naming the file that is missing,
// truncated or corrupt), calls `read_weights` and `read_optimizer` (null: not read; refused when
// the checkpoint holds no optimizer state) and returns the trainer state.
TrainerState read_checkpoint(const std::string& dir, const CheckpointReader& read_weights,
                             const CheckpointReader& read_optimizer);

// The newest step_<N> folder under <run_dir>/checkpoints, if any.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);

// Captures / restores torch's default CPU generator.
std::string capture_rng_state();
void restore_rng_state(const std::string& hex);

}  // namespace reef
