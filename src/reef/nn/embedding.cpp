#include "reef/nn/embedding.h"

#include "reef/nn/init.h"

namespace reef {

EmbeddingImpl::EmbeddingImpl(int64_t n, int64_t dim) {
  weight = register_parameter("weight", torch::empty({n, dim}));
  if (!skip_init()) {
    torch::NoGradGuard no_grad;
    weight.normal_(0.0, 1.0);
  }
}

EmbeddingImpl::EmbeddingImpl(torch::Tensor w) {
  const bool trains = w.requires_grad();
  weight = register_parameter("weight", std::move(w), trains);
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) {
  return torch::embedding(weight, ids);
}

torch::Tensor LogitsHeadImpl::forward(const torch::Tensor& h, const torch::Tensor& weight) {
  return torch::nn::functional::linear(hooked(h), weight);
}

}  // namespace reef
