// Pipeline parallelism applied to a built model from outside: the decoder layers are split into
// parallel.pp balanced stages (mesh.h's split_layers), the first stage also runs the embeddings,
// the last the final norm, LM head and loss. Every rank builds the whole model from the same
// seed (so a pp run starts from exactly the weights of a pp=1 run) and then releases what its
// stage does not run (CausalLM::keep_only). A step runs the 1F1B schedule
// (pipeline_schedule.h) over its micro-batches; activations [B, T, C] and their gradients travel
// between neighbouring stages as float32 with ProcessGroup send/recv, their shapes known from the
// config (no handshake). Tied embeddings: the last stage keeps its own copy of the token
// embedding as the head's matrix, and after each step's backward the two copies' gradients are
// summed between the first and last stage (as Megatron-LM does), so both copies stay equal.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "reef/models/causal_lm.h"
#include "reef/parallel/data_parallel.h"
#include "reef/parallel/mesh.h"
#include "reef/parallel/process_group.h"

namespace reef {

class Pipeline {
 public:
  // Input ids [B, T] of micro-batch m (called on the first stage only).
  using InputFn = std::function<torch::Tensor(int64_t m)>;
  // The last stage's objective for micro-batch m from its logits [B, T, V]: the scalar to
  // backpropagate (already scaled for accumulation). Called on the last stage only.
  using LossFn = std::function<torch::Tensor(const torch::Tensor& logits, int64_t m)>;
  // Runs one forward computation (the trainer wraps it in its autocast scope).
  using ForwardScope = std::function<void(const std::function<void()>&)>;

  // Partitions `model` (built whole and identically on every rank) for this rank's stage.
  // `world`: the run's group, mesh.pp * mesh.dp ranks laid out as mesh.h says. Creates the
  // stage's data-parallel sub-group when mesh.dp > 1 (a collective of the world). Usage errors
  // for more stages than decoder layers and for a MoE model with the router aux loss.
  Pipeline(CausalLM model, const Mesh& mesh, std::shared_ptr<ProcessGroup> world);

  int stage() const { return stage_; }
  int stages() const { return mesh_.pp; }
  bool is_first() const { return stage_ == 0; }
  bool is_last() const { return stage_ == mesh_.pp - 1; }
  LayerRange layers() const { return layers_; }
  // Tensor parallelism inside the stages (parallel.tp > 1, applied to this stage's model after
  // the split): which parameters are split over the tp group (for the gradient norm), and the
  // group (for the byte counts). Peers are the ranks of the same tp rank. With sequence
  // parallelism the activations between stages are each tp rank's 1/sequence_shards of the
  // sequence.
  void set_tensor_parallel(std::function<bool(const std::string&)> is_sharded,
                           std::shared_ptr<ProcessGroup> tp_group, int64_t sequence_shards = 1);
  // Whether this stage owns parameter `name` of the whole model (its layers; the embeddings on
  // the first stage, the final norm and LM head on the last). A tied copy of the token
  // embedding on the last stage is owned by the first.
  bool owns(const std::string& name) const;
  // This stage's data-parallel group (null when dp == 1).
  std::shared_ptr<ProcessGroup> dp_group() const { return dp_group_; }
  // Bytes moved by this rank over the world group and its dp group together.
  CollectiveBytes bytes() const;

  // One optimizer step on this stage: forwards and backwards of `micro_batches` micro-batches
  // of `rows` sequences of `seq_len` tokens in 1F1B order; gradients accumulate in .grad.
  // With `grad_sync` (dp > 1) the last backward all-reduces over the stage's dp group and
  // finish() runs here. Then the tied embedding's gradient is summed between first and last
  // stage. Every rank of the run calls it.
  void train_step(int64_t micro_batches, int64_t rows, int64_t seq_len, const InputFn& inputs,
                  const LossFn& loss, GradientSync* grad_sync, const ForwardScope& scope);
  // Forward only (validation, no graph): micro-batch m has rows[m] sequences; `loss` sees the
  // logits of each on the last stage (its result is ignored).
  void forward_only(const std::vector<int64_t>& rows, int64_t seq_len, const InputFn& inputs,
                    const LossFn& loss, const ForwardScope& scope);

  // Clips the global L2 norm of the whole model's gradients (every stage, the tied embedding
  // once) to max_norm (0: no clipping); returns the norm before clipping. A collective.
  double clip_grad_norm(double max_norm);

  // Whole-model tensors on world rank 0 (a collective of the world): returns there a CausalLM
  // holding every stage's weights (null elsewhere). `optimizer_state` holds this stage's named
  // optimizer tensors ("<param>.exp_avg" ...) in and, on rank 0, the whole model's out (in
  // parameter order); empty in (no state yet) stays empty.
  CausalLM gather_to_rank0(std::vector<std::pair<std::string, torch::Tensor>>* optimizer_state);
  // A whole model of this run's architecture, uninitialised (to load a checkpoint into).
  CausalLM make_full_model() const;
  // Copies this stage's parameters from a whole model (by name).
  void load_from_full(CausalLM& full);

 private:
  int peer(int stage) const { return mesh_rank(mesh_, dp_rank_, stage, tp_rank_); }
  void wait_sends();
  void sum_tied_gradients();

  CausalLM model_;
  Mesh mesh_;
  std::shared_ptr<ProcessGroup> world_, dp_group_;
  int stage_ = 0, dp_rank_ = 0, tp_rank_ = 0;
  std::function<bool(const std::string&)> is_sharded_;  // tensor parallel: split parameters
  std::shared_ptr<ProcessGroup> tp_group_;
  int64_t sequence_shards_ = 1;  // sequence parallelism: activations hold 1/tp of the sequence
  LayerRange layers_;
  torch::Tensor tied_copy_;  // last stage with tied embeddings: its copy of the token embedding
  // Every parameter of the whole model in order: name, shape, owning stage.
  struct ParamInfo {
    std::string name;
    std::vector<int64_t> shape;
    int stage;
    torch::ScalarType dtype;
  };
  std::vector<ParamInfo> all_params_;
  struct PendingSend {
    torch::Tensor buffer;
    std::unique_ptr<ProcessGroup::Work> work;
  };
  std::vector<PendingSend> sends_;
};

}  // namespace reef
