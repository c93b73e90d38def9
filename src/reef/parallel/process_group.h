// A process group of the ranks of a run: rendezvous through c10d's TCPStore on rank 0's host,
// collectives through c10d's ProcessGroupGloo (CPU tensors) or ProcessGroupNCCL (CUDA builds),
// every collective bounded by a timeout so a dead peer is an error, never a hang. This header
// is free of c10d: only process_group.cpp includes the c10d and gloo headers (build time).
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "reef/parallel/dist_env.h"

namespace reef {

struct ProcessGroupOptions {
  std::chrono::seconds timeout{600};  // rendezvous and every collective
  std::string backend = "auto";       // auto (gloo on CPU, nccl on CUDA), gloo or nccl
  std::string device = "cpu";         // run.device: picks the backend for "auto"
};

// Bytes each kind of collective has moved (payload per rank, as submitted), for bench/ and
// the metrics: an all-reduce of a 1 MB bucket counts 1 MB.
// Point-to-point sends count in `send` (bytes this rank sent).
struct CollectiveBytes {
  int64_t all_reduce = 0, broadcast = 0, all_gather = 0, send = 0;
  int64_t reduce_scatter = 0, reduce_scatter_calls = 0;  // bytes handed in (size * n), calls

  CollectiveBytes& operator+=(const CollectiveBytes& o) {
    all_reduce += o.all_reduce;
    broadcast += o.broadcast;
    all_gather += o.all_gather;
    send += o.send;
    reduce_scatter += o.reduce_scatter;
    reduce_scatter_calls += o.reduce_scatter_calls;
    return *this;
  }
};

class ProcessGroup {
 public:
  // A pending asynchronous collective.
  class Work {
   public:
    virtual ~Work() = default;
    virtual void wait() = 0;  // throws reef::Error on timeout or a lost peer
  };

  // Joins the group described by `env` (blocks until every rank has joined, up to the timeout).
  static std::shared_ptr<ProcessGroup> create(const DistEnv& env, const ProcessGroupOptions& opts);
  virtual ~ProcessGroup() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;

  // Sum over ranks, in place. `t` must be contiguous and stay untouched until wait() returns.
  virtual std::unique_ptr<Work> all_reduce_sum_async(torch::Tensor t) = 0;
  void all_reduce_sum(torch::Tensor t) { all_reduce_sum_async(std::move(t))->wait(); }
  // Rank `root`'s values into `t` on every rank, in place.
  virtual void broadcast(torch::Tensor t, int root) = 0;
  // out [size * n] = concatenation of every rank's `in` [n], in rank order. The async form:
  // `out` (contiguous) holds the result once wait() returns; neither may change before.
  virtual std::unique_ptr<Work> all_gather_async(torch::Tensor out, torch::Tensor in) = 0;
  void all_gather(torch::Tensor out, torch::Tensor in) {
    all_gather_async(std::move(out), std::move(in))->wait();
  }
  // out [n] = the sum over ranks of chunk `rank` of their `in` [size * n] (chunks in rank order).
  // The async form: as all_gather_async.
  virtual std::unique_ptr<Work> reduce_scatter_sum_async(torch::Tensor out, torch::Tensor in) = 0;
  void reduce_scatter_sum(torch::Tensor out, torch::Tensor in) {
    reduce_scatter_sum_async(std::move(out), std::move(in))->wait();
  }
  virtual void barrier() = 0;

  // Point-to-point (pipeline parallelism). `dst`/`src` are ranks of this group; a send and its
  // receive carry the same `tag`, and sends and receives between two ranks with one tag match in
  // order. send_async: `t` (contiguous) must stay untouched until wait() returns. recv fills `t`
  // (contiguous, the sender's shape and dtype) in place and returns once it has arrived.
  virtual std::unique_ptr<Work> send_async(torch::Tensor t, int dst, int tag) = 0;
  virtual void recv(torch::Tensor t, int src, int tag) = 0;

  // A group of the given ranks of this group (in that order: its rank k is ranks[k]), with
  // collectives of its own. Only those ranks call it, all with the same `ranks` and a `name`
  // unique within this group (it prefixes the group's rendezvous keys). Returns null on a rank
  // not in `ranks`.
  virtual std::shared_ptr<ProcessGroup> new_group(const std::vector<int>& ranks,
                                                  const std::string& name) = 0;

  const CollectiveBytes& bytes() const { return bytes_; }

 protected:
  CollectiveBytes bytes_;
};

}  // namespace reef
