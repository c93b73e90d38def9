// DecoderBody's shared part and the per-family factories (see body.h).
#include "reef/models/body.h"

#include "reef/base/error.h"
#include "reef/models/family.h"
#include "reef/models/gpt2/gpt2.h"
#include "reef/models/llama/llama.h"

namespace reef {

torch::Tensor Positions::ids() const {
  if (cache) return cache->positions(batch, length, device);
  return torch::arange(length, torch::TensorOptions().dtype(torch::kLong).device(device));
}

std::shared_ptr<torch::nn::Module> DecoderBodyImpl::layer_module(int64_t i) const {
  return layers_->ptr(static_cast<size_t>(i));
}

torch::Tensor DecoderBodyImpl::run_layers(torch::Tensor h, int64_t begin, int64_t end,
                                          const LayerContext& ctx) {
  for (int64_t i = begin; i < end; ++i) {
    DecoderLayerImpl* layer = layer_ptrs_.at(static_cast<size_t>(i));
    if (layer == nullptr) fail("decoder layer {} is not held by this model (pipeline stage)", i);
    h = layer->forward(h, ctx, i);
  }
  return h;
}

DecoderLayerWrapperImpl::DecoderLayerWrapperImpl(std::shared_ptr<torch::nn::Module> inner)
    : inner_(std::move(inner)), layer_(inner_->as<DecoderLayerImpl>()) {
  if (layer_ == nullptr) fail("a decoder layer wrapper needs a DecoderLayer to wrap");
  for (const auto& c : inner_->named_children()) register_module(c.key(), c.value());
  for (const auto& p : inner_->named_parameters(/*recurse=*/false))
    register_parameter(p.key(), p.value(), p.value().requires_grad());
}

void DecoderBodyImpl::set_layers(torch::nn::ModuleList layers) {
  layers_ = layers;
  layer_ptrs_.clear();
  for (const auto& m : *layers) layer_ptrs_.push_back(m->as<DecoderLayerImpl>());
}

std::vector<torch::Tensor> DecoderBodyImpl::embedding_weights() {
  if (!tokens_) return {};
  return {tokens_->weight};
}

void DecoderBodyImpl::register_tokens(const std::string& name, Embedding e) {
  tokens_name_ = name;
  tokens_ = register_module(name, std::move(e));
}

void DecoderBodyImpl::register_layers(const std::string& name, torch::nn::ModuleList layers) {
  layers_name_ = name;
  set_layers(register_module(name, std::move(layers)));
}

void DecoderBodyImpl::replace_tokens(Embedding e) {
  tokens_ = replace_module(tokens_name_, std::move(e));
}

void DecoderBodyImpl::replace_layer(int64_t i, std::shared_ptr<torch::nn::Module> m) {
  torch::nn::ModuleList list;
  for (int64_t j = 0; j < n_layers(); ++j)
    list->push_back(j == i ? m : layers_->ptr(static_cast<size_t>(j)));
  set_layers(replace_module(layers_name_, list));
}

void DecoderBodyImpl::keep_only(int64_t begin, int64_t end, bool keep_tokens, bool keep_positions,
                                bool keep_norm) {
  torch::nn::ModuleList kept;
  for (int64_t i = 0; i < n_layers(); ++i) {
    if (i >= begin && i < end)
      kept->push_back(layers_->ptr(static_cast<size_t>(i)));
    else
      kept->push_back(torch::nn::Identity());  // keeps the indices of the names
  }
  set_layers(replace_module(layers_name_, kept));
  if (!keep_tokens) {
    unregister_module(tokens_name_);
    tokens_ = nullptr;
  }
  if (!keep_positions) drop_positions();
  if (!keep_norm) drop_final_norm();
}

// ---- one factory per family ----
namespace {

struct BodyFactory {
  const char* family;
  const char* name;  // the Hugging Face module name of the body
  std::shared_ptr<DecoderBodyImpl> (*make)(const ModelConfig&);
};

const std::vector<BodyFactory>& body_factories() {
  static const std::vector<BodyFactory> all = {
      {"llama", "model",
       [](const ModelConfig& c) -> std::shared_ptr<DecoderBodyImpl> {
         return std::make_shared<LlamaModelImpl>(c);
       }},
      {"gpt2", "transformer",
       [](const ModelConfig& c) -> std::shared_ptr<DecoderBodyImpl> {
         return std::make_shared<GPT2ModelImpl>(c);
       }},
  };
  return all;
}

const BodyFactory& body_factory(const ModelConfig& cfg) {
  const std::string& family = model_family(cfg.arch).name;
  for (const auto& f : body_factories())
    if (family == f.family) return f;
  fail("model family {} has no decoder body registered (models/body.cpp)", family);
}

}  // namespace

std::shared_ptr<DecoderBodyImpl> make_decoder_body(const ModelConfig& cfg) {
  return body_factory(cfg).make(cfg);
}

std::string body_name(const ModelConfig& cfg) { return body_factory(cfg).name; }

}  // namespace reef
