// Implementation of parallel/process_group.h: the one translation unit that includes c10d.
// Only the ProcessGroup API is used (Debian's gloo headers are older than the gloo inside
// libtorch_cpu; the ProcessGroup layer hides the difference).
#include "reef/parallel/process_group.h"

// ProcessGroupGloo.hpp declares its class only under USE_C10D_GLOO (the wheel's own build flag;
// the gloo headers come from Debian's libgloo-dev, the symbols from libtorch_cpu).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(REEF_WITH_CUDA) && defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>

#include "reef/base/error.h"

namespace reef {
namespace {

[[noreturn]] void collective_failed(const char* what, int rank, std::chrono::seconds timeout,
                                    const std::exception& e) {
  std::string msg = e.what();
  if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
  fail("rank {}: {} failed (a peer rank exited, or no answer within parallel.timeout_s={}): {}",
       rank, what, timeout.count(), msg);
}

class C10dWork : public ProcessGroup::Work {
 public:
  C10dWork(c10::intrusive_ptr<c10d::Work> w, const char* what, int rank,
           std::chrono::seconds timeout)
      : work_(std::move(w)), what_(what), rank_(rank), timeout_(timeout) {}
  void wait() override {
    try {
      work_->wait(std::chrono::duration_cast<std::chrono::milliseconds>(timeout_));
    } catch (const std::exception& e) {
      collective_failed(what_, rank_, timeout_, e);
    }
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  const char* what_;
  int rank_;
  std::chrono::seconds timeout_;
};

// The c10d backend of `size` ranks meeting through `store`; `host`: the address gloo binds
// (empty: the default device).
c10::intrusive_ptr<c10d::Backend> make_backend(const std::string& backend, const std::string& host,
                                               const c10::intrusive_ptr<c10d::Store>& store,
                                               int rank, int size, std::chrono::seconds timeout) {
  if (backend == "gloo") {
    auto o = c10d::ProcessGroupGloo::Options::create();
    o->devices.push_back(host.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                      : c10d::ProcessGroupGloo::createDeviceForHostname(host));
    o->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, o);
  }
  if (backend == "nccl") {
#if defined(REEF_WITH_CUDA) && defined(USE_C10D_NCCL)
    auto o = c10d::ProcessGroupNCCL::Options::create();
    o->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, o);
#else
    usage_error(
        "parallel.backend=nccl: this reef was built without NCCL (a CPU libtorch); "
        "use run.device=cpu with the gloo backend, or a CUDA build (-DREEF_CUDA=ON)");
#endif
  }
  usage_error("parallel.backend={}: expected auto, gloo or nccl", backend);
}

class C10dProcessGroup : public ProcessGroup {
 public:
  C10dProcessGroup(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::Backend> pg,
                   std::string backend, std::string host, int rank, int size,
                   std::chrono::seconds timeout)
      : store_(std::move(store)),
        pg_(std::move(pg)),
        backend_(std::move(backend)),
        host_(std::move(host)),
        rank_(rank),
        size_(size),
        timeout_(timeout) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return backend_; }

  std::unique_ptr<Work> all_reduce_sum_async(torch::Tensor t) override {
    bytes_.all_reduce += static_cast<int64_t>(t.nbytes());
    std::vector<at::Tensor> ts = {t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = timeout_;
    return start("all-reduce", [&] { return pg_->allreduce(ts, o); });
  }

  void broadcast(torch::Tensor t, int root) override {
    bytes_.broadcast += static_cast<int64_t>(t.nbytes());
    std::vector<at::Tensor> ts = {t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = timeout_;
    start("broadcast", [&] { return pg_->broadcast(ts, o); })->wait();
  }

  std::unique_ptr<Work> all_gather_async(torch::Tensor out, torch::Tensor in) override {
    TORCH_CHECK(out.numel() == in.numel() * size_, "all_gather: output must hold size * input");
    bytes_.all_gather += static_cast<int64_t>(in.nbytes());
    std::vector<std::vector<at::Tensor>> outs(1);
    for (auto& chunk : out.chunk(size_)) outs[0].push_back(chunk);
    std::vector<at::Tensor> ins = {in.contiguous()};
    c10d::AllgatherOptions o;
    o.timeout = timeout_;
    return start("all-gather", [&] { return pg_->allgather(outs, ins, o); });
  }

  std::unique_ptr<Work> reduce_scatter_sum_async(torch::Tensor out, torch::Tensor in) override {
    TORCH_CHECK(in.numel() == out.numel() * size_, "reduce_scatter: input must hold size * output");
    TORCH_CHECK(out.is_contiguous(), "reduce_scatter: the output must be contiguous");
    bytes_.reduce_scatter += static_cast<int64_t>(in.nbytes());
    ++bytes_.reduce_scatter_calls;
    std::vector<at::Tensor> outs = {out};
    std::vector<std::vector<at::Tensor>> ins(1);
    auto flat = in.contiguous();
    for (auto& chunk : flat.chunk(size_)) ins[0].push_back(chunk);
    c10d::ReduceScatterOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = timeout_;
    return start("reduce-scatter", [&] { return pg_->reduce_scatter(outs, ins, o); });
  }

  void barrier() override {
    c10d::BarrierOptions o;
    o.timeout = timeout_;
    start("barrier", [&] { return pg_->barrier(o); })->wait();
  }

  std::unique_ptr<Work> send_async(torch::Tensor t, int dst, int tag) override {
    TORCH_CHECK(t.is_contiguous(), "send: the tensor must be contiguous");
    bytes_.send += static_cast<int64_t>(t.nbytes());
    std::vector<at::Tensor> ts = {t};
    return start("send", [&] { return pg_->send(ts, dst, tag); });
  }

  void recv(torch::Tensor t, int src, int tag) override {
    TORCH_CHECK(t.is_contiguous(), "recv: the tensor must be contiguous");
    std::vector<at::Tensor> ts = {t};
    start("receive", [&] { return pg_->recv(ts, src, tag); })->wait();
  }

  std::shared_ptr<ProcessGroup> new_group(const std::vector<int>& ranks,
                                          const std::string& name) override {
    auto it = std::find(ranks.begin(), ranks.end(), rank_);
    if (it == ranks.end()) return nullptr;
    const int sub_rank = static_cast<int>(it - ranks.begin());
    const int sub_size = static_cast<int>(ranks.size());
    auto store = c10::make_intrusive<c10d::PrefixStore>("group/" + name + "/", store_);
    c10::intrusive_ptr<c10d::Backend> pg;
    try {
      pg = make_backend(backend_, host_, store, sub_rank, sub_size, timeout_);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
      fail("rank {}: connecting the {} ranks of group {} with {} failed: {}", rank_, sub_size, name,
           backend_, msg);
    }
    return std::make_shared<C10dProcessGroup>(store, pg, backend_, host_, sub_rank, sub_size,
                                              timeout_);
  }

 private:
  template <class F>
  std::unique_ptr<Work> start(const char* what, F&& launch) {
    try {
      return std::make_unique<C10dWork>(launch(), what, rank_, timeout_);
    } catch (const std::exception& e) {
      collective_failed(what, rank_, timeout_, e);
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> pg_;
  std::string backend_, host_;
  int rank_, size_;
  std::chrono::seconds timeout_;
};

}  // namespace

std::shared_ptr<ProcessGroup> ProcessGroup::create(const DistEnv& env,
                                                   const ProcessGroupOptions& opts) {
  const bool cuda = opts.device.rfind("cuda", 0) == 0;
  std::string backend = opts.backend == "auto" ? (cuda ? "nccl" : "gloo") : opts.backend;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = env.world_size;
    so.waitWorkers = true;
    so.timeout = opts.timeout;
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    fail("rank {}: rendezvous at {}:{} ({} ranks) failed within parallel.timeout_s={}: {}",
         env.rank, env.master_addr, env.master_port, env.world_size, opts.timeout.count(), msg);
  }
  // Rank 0's address is reachable by every rank; on one machine loopback is enough.
  const std::string host = env.master_addr == "127.0.0.1" || env.master_addr == "localhost"
                               ? std::string("127.0.0.1")
                               : std::string();
  c10::intrusive_ptr<c10d::Backend> pg;
  try {
    pg = make_backend(backend, host, store, env.rank, env.world_size, opts.timeout);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    fail("rank {}: connecting the {} ranks with {} failed: {}", env.rank, env.world_size, backend,
         msg);
  }
  return std::make_shared<C10dProcessGroup>(store, pg, backend, host, env.rank, env.world_size,
                                            opts.timeout);
}

}  // namespace reef
