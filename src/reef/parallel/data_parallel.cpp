// Implementation of parallel/data_parallel.h.
#include "reef/parallel/data_parallel.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "reef/base/error.h"
#include "reef/parallel/mesh.h"

namespace reef {
namespace {

// Runs after AccumulateGrad has written a parameter's .grad for this backward.
struct GradReadyHook : torch::autograd::PostAccumulateGradHook {
  GradReadyHook(GradientSync* sync, size_t index) : sync_(sync), index_(index) {}
  void operator()(const torch::autograd::Variable&) override { sync_->on_grad_ready(index_); }
  GradientSync* sync_;
  size_t index_;
};

}  // namespace

void broadcast_module_from_rank0(torch::nn::Module& module, ProcessGroup& pg) {
  torch::NoGradGuard ng;
  for (auto& p : module.parameters(true)) pg.broadcast(p.detach(), 0);
  for (auto& b : module.buffers(true))
    if (b.defined() && b.is_contiguous()) pg.broadcast(b.detach(), 0);
}

GradientSync::GradientSync(std::vector<torch::Tensor> params, std::shared_ptr<ProcessGroup> pg,
                           double bucket_mb)
    : params_(std::move(params)), pg_(std::move(pg)) {
  std::vector<int64_t> bytes;
  for (auto& p : params_) bytes.push_back(static_cast<int64_t>(p.numel() * p.element_size()));
  auto plan = plan_buckets(bytes, static_cast<int64_t>(bucket_mb * 1024 * 1024));
  bucket_of_.resize(params_.size());
  for (size_t b = 0; b < plan.size(); ++b) {
    Bucket bucket;
    bucket.params = plan[b];
    bucket.pending = plan[b].size();
    for (size_t i : plan[b]) {
      bucket_of_[i] = b;
      bytes_per_step_ += bytes[i];
    }
    buckets_.push_back(std::move(bucket));
  }
  for (size_t i = 0; i < params_.size(); ++i)
    torch::autograd::impl::set_post_acc_grad_hooks(params_[i],
                                                   std::make_unique<GradReadyHook>(this, i));
}

GradientSync::~GradientSync() {
  for (auto& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void GradientSync::on_grad_ready(size_t index) {
  if (!sync_) return;
  Bucket& b = buckets_[bucket_of_[index]];
  if (b.pending > 0) --b.pending;
  launch_ready_buckets(false);
}

void GradientSync::launch_ready_buckets(bool force) {
  torch::NoGradGuard ng;
  while (next_launch_ < buckets_.size() && (force || buckets_[next_launch_].pending == 0)) {
    Bucket& b = buckets_[next_launch_++];
    std::vector<torch::Tensor> parts;
    for (size_t i : b.params) {
      const auto& g = params_[i].grad();
      parts.push_back(g.defined() ? g.detach().reshape({-1})
                                  : torch::zeros({params_[i].numel()}, params_[i].options()));
    }
    b.flat = torch::cat(parts).div_(static_cast<double>(pg_->size()));
    b.work = pg_->all_reduce_sum_async(b.flat);
    b.launched = true;
  }
}

void GradientSync::finish() {
  launch_ready_buckets(true);
  torch::NoGradGuard ng;
  for (auto& b : buckets_) {
    b.work->wait();
    b.work.reset();
    int64_t offset = 0;
    for (size_t i : b.params) {
      auto& p = params_[i];
      auto slice = b.flat.narrow(0, offset, p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(slice);
      else
        p.mutable_grad() = slice.clone();
      offset += p.numel();
    }
    b.flat = torch::Tensor();
    b.pending = b.params.size();
    b.launched = false;
  }
  next_launch_ = 0;
}

}  // namespace reef
