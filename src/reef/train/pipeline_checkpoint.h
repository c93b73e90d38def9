// Checkpoints of a pipeline-parallel run in the normal (single-process) layout: every stage's
// weights and optimizer state are gathered to rank 0, which writes the ordinary checkpoint
// folder, so a pp run's checkpoint loads in one process, and a normal checkpoint resumes at any
// parallel.pp (each rank loads the whole checkpoint and keeps its stage's tensors).
#pragma once

#include <string>

#include "reef/config/config.h"
#include "reef/parallel/pipeline.h"
#include "reef/tokenizer/tokenizer.h"
#include "reef/train/checkpointing.h"
#include "reef/train/optim.h"

namespace reef {

// A collective of every rank of the pipeline's run (after optimizer->gather_state() under
// ZeRO). Returns the checkpoint's path on rank 0, "" elsewhere.
std::string save_pipeline_checkpoint(const std::string& run_dir, Pipeline& pipeline,
                                     Optimizer* optimizer, const Tokenizer& tokenizer,
                                     const Config& cfg, const TrainerState& state,
                                     int64_t keep_last);

// load_checkpoint for one stage: the stage's parameters and (if given) optimizer state, by name.
TrainerState load_pipeline_checkpoint(const std::string& dir, Pipeline& pipeline,
                                      Optimizer* optimizer);

}  // namespace reef
