// The decoder body every model family builds, as one interface: a token embedding, a list of
// decoder layers and what happens around them. CausalLM (causal_lm.h) runs every forward through
// it in one path; parallel/ reshapes it from outside by replacing modules (a vocabulary-parallel
// lookup in place of the token embedding, FSDP's gathering wrapper around each layer), never by
// fields the model keeps for it.
//
// A family's body subclasses DecoderBodyImpl, registering its token embedding and layer list
// under its Hugging Face names, and is built by make_decoder_body() (body.cpp lists one factory
// per family).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reef/config/config.h"
#include "reef/nn/embedding.h"
#include "reef/nn/kv_cache.h"

namespace reef {

// The positions of a forward's tokens: `length` per row, those the cache gives when there is
// one (after its history), 0..length-1 otherwise. `length` is always the whole sequence's, also
// where sequence parallelism hands each rank a slice of the hidden states.
struct Positions {
  int64_t batch = 0, length = 0;
  AttentionCache* cache = nullptr;
  torch::Device device = torch::kCPU;
  // [B, T] from the cache, or [T] = 0..T-1.
  torch::Tensor ids() const;
};

// What every decoder layer of one forward takes besides its input.
struct LayerContext {
  Positions positions;
  torch::Tensor cos, sin;  // RoPE tables for the positions; undefined for a body without RoPE
  // MoE layers append their router logits [B*T, E] here, in layer order, when set.
  std::vector<torch::Tensor>* router_logits = nullptr;
};

class DecoderLayerImpl : public torch::nn::Module {
 public:
  // x [B, T, C] -> [B, T, C]; `layer` is the index the cache stores this layer's keys under.
  virtual torch::Tensor forward(const torch::Tensor& x, const LayerContext& ctx, int64_t layer) = 0;
};

// A module in a decoder layer's place that runs the layer it wraps (FSDP's gathering unit, a
// test's probe): it holds the wrapped layer's children under the same names, so the model's
// parameter names do not change, and forward() decides what happens around inner().forward().
class DecoderLayerWrapperImpl : public DecoderLayerImpl {
 public:
  explicit DecoderLayerWrapperImpl(std::shared_ptr<torch::nn::Module> inner);
  DecoderLayerImpl& inner() { return *layer_; }
  const std::shared_ptr<torch::nn::Module>& inner_module() const { return inner_; }

 private:
  std::shared_ptr<torch::nn::Module> inner_;
  DecoderLayerImpl* layer_;
};

class DecoderBodyImpl : public torch::nn::Module {
 public:
  // The token embedding (Hugging Face's get_input_embeddings()).
  Embedding& tokens() { return tokens_; }
  const Embedding& tokens() const { return tokens_; }
  int64_t n_layers() const { return static_cast<int64_t>(layers_->size()); }
  // The module at layer i: a DecoderLayerImpl, or a placeholder after keep_only().
  std::shared_ptr<torch::nn::Module> layer_module(int64_t i) const;
  // Layers [begin, end) over h [B, T, C].
  torch::Tensor run_layers(torch::Tensor h, int64_t begin, int64_t end, const LayerContext& ctx);

  // The family's pieces around the layers.
  // Token embeddings [B, T, C] (prefix vectors included) -> the first layer's input.
  virtual torch::Tensor prepare(const torch::Tensor& embeds, const Positions& p) = 0;
  // The context for positions p with activations of `dtype`.
  virtual LayerContext context(const Positions& p, torch::ScalarType dtype) = 0;
  // Last layer's output -> final hidden states (the final norm).
  virtual torch::Tensor final_norm(const torch::Tensor& h) = 0;
  // Every embedding table: the token embedding first, then any position embedding.
  virtual std::vector<torch::Tensor> embedding_weights();

  // Module surgery for parallel/: the same parameters under the same names.
  void replace_tokens(Embedding e);
  void replace_layer(int64_t i, std::shared_ptr<torch::nn::Module> m);
  // Releases what a pipeline stage does not run: layers outside [begin, end) become
  // parameterless placeholders (indices and names of the kept ones stay), the token embedding
  // goes unless keep_tokens, position embeddings unless keep_positions, the final norm unless
  // keep_norm.
  void keep_only(int64_t begin, int64_t end, bool keep_tokens, bool keep_positions, bool keep_norm);

 protected:
  void register_tokens(const std::string& name, Embedding e);
  void register_layers(const std::string& name, torch::nn::ModuleList layers);
  virtual void drop_positions() {}
  virtual void drop_final_norm() = 0;

 private:
  void set_layers(torch::nn::ModuleList layers);  // the registered list; layer_ptrs_ follow

  Embedding tokens_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  std::vector<DecoderLayerImpl*> layer_ptrs_;  // null for a placeholder (keep_only)
  std::string tokens_name_, layers_name_;
};

// The body of `cfg`'s family (cfg resolved), registered by the caller under body_name().
std::shared_ptr<DecoderBodyImpl> make_decoder_body(const ModelConfig& cfg);
// The Hugging Face name of the body module: "model", or "transformer" for gpt2.
std::string body_name(const ModelConfig& cfg);

}  // namespace reef
