// Training checkpoints: <run.dir>/checkpoints/step_<N>/ holding a Hugging Face model folder
// (model.safetensors, config.json, generation_config.json, tokenizer files) plus
// optimizer.safetensors, trainer_state.json and config.yaml. Each is written into a temporary
// folder that is renamed into place, so a step_<N> folder is complete by construction; the
// sizes and xxh64 of all files are recorded in trainer_state.json and checked at load, so a
// truncated or corrupted checkpoint is an error, never a silent wrong resume.
//
// Runs on several ranks write distributed checkpoints instead (checkpoint.layout): each rank
// writes its own pieces in parallel (checkpoint/dist_checkpoint.h) and nothing is gathered;
// the folder holds rank-XXXXX.safetensors files and dist_checkpoint.json in place of
// model.safetensors and optimizer.safetensors, beside the same config, tokenizer and state files.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "reef/checkpoint/dist_checkpoint.h"
#include "reef/config/config.h"
#include "reef/models/causal_lm.h"
#include "reef/parallel/process_group.h"
#include "reef/tokenizer/tokenizer.h"
#include "reef/train/optim.h"

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

// Saves a checkpoint for `state.step`; keeps the newest `keep_last` (0: all). Returns its path.
// `write_weights` (PEFT: the adapter files) replaces the model folder's weights and configs; the
// tokenizer files are written either way.
std::string save_checkpoint(const std::string& run_dir, CausalLM& model, Optimizer* optimizer,
                            const Tokenizer& tokenizer, const Config& cfg,
                            const TrainerState& state, int64_t keep_last,
                            const CheckpointWeightsWriter& write_weights = nullptr);

// The same with the optimizer state given as named tensors (null: none), e.g. gathered from
// tensor-parallel shards.
std::string save_checkpoint_named(const std::string& run_dir, CausalLM& model,
                                  const NamedParams* optimizer_state, int64_t optimizer_step,
                                  const Tokenizer& tokenizer, const Config& cfg,
                                  const TrainerState& state, int64_t keep_last,
                                  const CheckpointWeightsWriter& write_weights = nullptr);

// Whether a run of `world_size` ranks writes distributed checkpoints: checkpoint.layout
// "distributed", or "auto" with several ranks.
bool writes_distributed_checkpoints(const CheckpointConfig& c, int world_size);

// A distributed checkpoint for `state.step`: a collective that every rank of `pg` (null: one
// process) calls. Model parameters are whole tensors spread over the ranks by size (each rank
// writes about 1/world of the weights); the optimizer state is each rank's own: its ZeRO-1
// slices, or without ZeRO the moments of the parameters it writes. With `fsdp` (ZeRO-3) each rank
// writes its parameter slices and their moments, as flat ranges of the named tensors. Rank 0 writes
// the config, tokenizer, config.yaml and trainer_state.json, then (after every rank's file is in
// place) the index, renames the folder into place and prunes to `keep_last`. Returns its path.
std::string save_distributed_checkpoint(const std::string& run_dir, CausalLM& model,
                                        Optimizer* optimizer, const Tokenizer& tokenizer,
                                        const Config& cfg, const TrainerState& state,
                                        int64_t keep_last, ProcessGroup* pg, Fsdp* fsdp = nullptr);

// One parameter as this rank holds it, for distributed checkpoints of sharded runs (tensor or
// pipeline parallelism): its part of the whole tensor and who else holds the same part.
struct ShardedParam {
  std::string name;                   // the whole model's name
  torch::Tensor local;                // this rank's part: the parameter itself
  std::vector<int64_t> global_shape;  // the whole tensor's shape
  std::vector<int64_t> offsets;       // where `local` starts in it (empty: all zeros)
  // The ranks holding this same part: each lists the parameters of one `replicas` tag in the
  // same order, and the tag's parts are spread over them by size (replica_index: this rank).
  std::string replicas = "all";
  int replica_index = 0, n_replicas = 1;
  bool write = true;              // false: another rank's copy is the one written (a tied copy)
  bool write_zero_slices = true;  // ZeRO-1: whether this rank writes its slices of the moments
};

// The same for a sharded model: `params` says which part of which tensor this rank holds. The
// optimizer's moments have the parameters' local shapes; ZeRO-1 slices of them are written as
// boxes of the whole tensor when the parameter is itself a part. `extra_pieces` (FSDP: each
// rank's flat slices of the weights) are written as they are; the optimizer state of a
// parameter not in `params` must then be sharded (flat ranges of the whole moments).
std::string save_distributed_checkpoint(const std::string& run_dir, CausalLM& model,
                                        const std::vector<ShardedParam>& params,
                                        Optimizer* optimizer, const Tokenizer& tokenizer,
                                        const Config& cfg, const TrainerState& state,
                                        int64_t keep_last, ProcessGroup* pg,
                                        std::vector<LocalPiece> extra_pieces = {});

// What the trainer calls at a checkpoint step, on every rank: a distributed checkpoint when
// writes_distributed_checkpoints(), otherwise the consolidated one (ZeRO-1 state gathered
// from every rank, then written by rank 0 alone). `optimizer` null: no optimizer state. Logs
// the time the save took and the peak RSS during it. Returns the folder ("" on ranks > 0 of a
// consolidated save). `write_weights` (PEFT: the adapter files) always takes the consolidated
// layout: the adapter and its optimizer state are small, and the base weights are not saved.
// `sharded` (tensor / pipeline parallel runs, distributed layout only): the parts this rank holds.
// `fsdp` (ZeRO-3): the consolidated layout gathers every unit for rank 0 and releases them after.
std::string save_training_checkpoint(const Config& cfg, CausalLM& model, Optimizer* optimizer,
                                     const Tokenizer& tokenizer, const TrainerState& state,
                                     ProcessGroup* pg,
                                     const CheckpointWeightsWriter& write_weights = nullptr,
                                     const std::vector<ShardedParam>* sharded = nullptr,
                                     Fsdp* fsdp = nullptr);

// The newest step_<N> folder under <run_dir>/checkpoints, if any.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);

// Verifies every file against trainer_state.json, loads weights (and optimizer state if given)
// and returns the trainer state. Throws naming the file that is missing, truncated or corrupt.
// Reads both layouts into any layout: from a distributed checkpoint a ZeRO-1 rank reads only
// its own slices of the optimizer state. load_weights=false leaves the model as it is (a PEFT
// checkpoint: the adapter is loaded when it is attached, the base weights come from the base
// model's folder).
TrainerState load_checkpoint(const std::string& dir, CausalLM& model, Optimizer* optimizer,
                             bool load_weights = true);
// The same, handing the optimizer's named tensors to the caller (null: not read) instead of
// loading them into an Optimizer.
TrainerState load_checkpoint_named(const std::string& dir, CausalLM& model,
                                   std::map<std::string, torch::Tensor>* optimizer_state,
                                   bool load_weights = true);

// load_checkpoint for a sharded model (tensor parallelism) from a distributed checkpoint: each
// parameter's part and (if given) this rank's optimizer state, reading only those parts.
TrainerState load_sharded_checkpoint(const std::string& dir,
                                     const std::vector<ShardedParam>& params, Optimizer* optimizer);

// Captures / restores torch's default CPU generator.
std::string capture_rng_state();
void restore_rng_state(const std::string& hex);

}  // namespace reef
