// Implementation of train/pipeline_checkpoint.h.
#include "reef/train/pipeline_checkpoint.h"

#include <map>

namespace reef {

std::string save_pipeline_checkpoint(const std::string& run_dir, Pipeline& pipeline,
                                     Optimizer* optimizer, const Tokenizer& tokenizer,
                                     const Config& cfg, const TrainerState& state,
                                     int64_t keep_last) {
  NamedParams opt_state;
  int64_t opt_step = 0;
  if (optimizer) opt_state = optimizer->state_tensors(&opt_step);
  CausalLM full = pipeline.gather_to_rank0(&opt_state);
  if (!full) return "";
  // The whole model's optimizer: the same parameter groups as a single-process run's, holding
  // the gathered moments, so the saved optimizer.safetensors is exactly what one process writes.
  std::unique_ptr<Optimizer> whole;
  if (optimizer) {
    NamedParams params;
    for (const auto& item : full->named_parameters(true))
      params.emplace_back(item.key(), item.value());
    whole = std::make_unique<Optimizer>(params, cfg.optim);
    whole->load_state_tensors(
        std::map<std::string, torch::Tensor>(opt_state.begin(), opt_state.end()), opt_step);
  }
  return save_checkpoint(run_dir, full, whole.get(), tokenizer, cfg, state, keep_last);
}

TrainerState load_pipeline_checkpoint(const std::string& dir, Pipeline& pipeline,
                                      Optimizer* optimizer) {
  CausalLM full = pipeline.make_full_model();
  // The optimizer looks up its own (this stage's) parameters' moments by name.
  TrainerState s = load_checkpoint(dir, full, optimizer);
  pipeline.load_from_full(full);
  return s;
}

}  // namespace reef
