// Implementation of train/checkpointer.h.
#include "reef/train/checkpointer.h"

#include <map>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/checkpoint/safetensors.h"
#include "reef/checkpoint/sharded.h"

namespace reef {
namespace {

// Part `slice` of a whole tensor t (a box: a view; a flat range: of the flattening).
torch::Tensor part(const torch::Tensor& t, const TensorSlice& slice) {
  if (slice.flat) return t.reshape({-1}).narrow(0, slice.start, slice.length);
  torch::Tensor v = t;
  for (size_t d = 0; d < slice.box.offsets.size(); ++d)
    v = v.narrow(static_cast<int64_t>(d), slice.box.offsets[d], slice.box.lengths[d]);
  return v;
}

// One group of a checkpoint's tensors ("model" or "optimizer"), read by part from either
// layout: the pieces of a distributed checkpoint, or the whole tensors of a consolidated file.
class TensorSource {
 public:
  // Distributed.
  explicit TensorSource(const DistCheckpoint& ck) : ck_(&ck) {}
  // Consolidated: `whole` gives each name's whole tensor (a view into a mapped file), `has` says
  // whether there is one, `file` names them in errors.
  TensorSource(std::function<torch::Tensor(const std::string&)> whole,
               std::function<bool(const std::string&)> has, std::string file)
      : whole_(std::move(whole)), has_(std::move(has)), file_(std::move(file)) {}

  // Copies part `slice` of tensor `name`, whose whole shape must be `shape`, into `out`.
  void read_into(const std::string& name, const std::vector<int64_t>& shape,
                 const TensorSlice& slice, torch::Tensor out) const {
    torch::NoGradGuard ng;
    if (ck_) {
      check_shape(name, ck_->tensor(name).shape, shape, ck_->index_path());
      return ck_->read_into(name, slice, out);
    }
    if (!has_(name)) fail("checkpoint: {} has no tensor {}", file_, name);
    torch::Tensor t = whole_(name);
    check_shape(name, t.sizes().vec(), shape, file_);
    out.copy_(part(t, slice).view(out.sizes()));
    // The file's pages are dropped once copied, so the mapping never adds a second copy of the
    // weights to the resident memory (as checkpoint/model_io.h's loader does).
    release_mapped_pages(t.data_ptr(), t.nbytes());
  }
  // Part `slice` of tensor `name` as a new tensor.
  torch::Tensor read(const std::string& name, const TensorSlice& slice) const {
    if (ck_) return ck_->read(name, slice);
    if (!has_(name)) fail("checkpoint: {} has no tensor {}", file_, name);
    return part(whole_(name), slice).clone();
  }

 private:
  static void check_shape(const std::string& name, const std::vector<int64_t>& got,
                          const std::vector<int64_t>& want, const std::string& where) {
    if (got != want)
      fail("checkpoint: {} has {} of shape {} where this model's is {}", where, name,
           c10::str(c10::IntArrayRef(got)), c10::str(c10::IntArrayRef(want)));
  }

  const DistCheckpoint* ck_ = nullptr;
  std::function<torch::Tensor(const std::string&)> whole_;
  std::function<bool(const std::string&)> has_;
  std::string file_;
};

}  // namespace

Checkpointer::Checkpointer(const Config& cfg, Strategy& strategy, const Tokenizer& tokenizer,
                           std::shared_ptr<Peft> peft)
    : cfg_(cfg), strategy_(strategy), tokenizer_(tokenizer), peft_(std::move(peft)) {}

std::string Checkpointer::save(const TrainerState& state) {
  const bool with_optimizer = cfg_.checkpoint.save_optimizer;
  const bool distributed =
      !peft_ && writes_distributed_checkpoints(cfg_.checkpoint, strategy_.world_size());
  return timed_save(distributed, [&] {
    if (distributed) {  // every rank writes its own parts, nothing is gathered
      return write_distributed_checkpoint(
          cfg_.run.dir, strategy_.model(), strategy_.sharded_params(), strategy_.flat_pieces(),
          with_optimizer ? &strategy_.optimizer() : nullptr, tokenizer_, cfg_, state,
          cfg_.checkpoint.keep_last, strategy_.world());
    }
    Consolidated c = strategy_.consolidate(with_optimizer);
    std::string path;
    if (c.model) {
      CheckpointWeightsWriter adapter;
      if (peft_) adapter = [&](const std::string& dir) { return peft_->save(dir, c.model); };
      path = write_consolidated_checkpoint(
          cfg_.run.dir, c.model, with_optimizer ? &c.optimizer_state : nullptr, c.optimizer_step,
          tokenizer_, cfg_, state, cfg_.checkpoint.keep_last, adapter);
    }
    if (c.release) c.release();
    return path;
  });
}

TrainerState Checkpointer::load(const std::string& dir) {
  const std::vector<ShardedParam> params = strategy_.sharded_params();
  std::map<std::string, const ShardedParam*> by_name;
  for (const auto& p : params) by_name[p.name] = &p;

  CheckpointReader weights;
  if (!peft_)
    weights = [&](const std::string& d, const DistCheckpoint* ck, int64_t) {
      std::optional<WeightFiles> files;
      std::optional<TensorSource> src;
      if (ck) {
        src.emplace(*ck);
      } else {
        files = WeightFiles::open(d);
        src.emplace([&](const std::string& n) { return files->tensor(n); },
                    [&](const std::string& n) { return files->contains(n); }, files->source());
      }
      for (const auto& p : params) src->read_into(p.name, p.global_shape, part_of(p), p.local);
      for (const FlatPiece& f : strategy_.flat_pieces())
        src->read_into(f.name, f.shape, TensorSlice::flat_range(f.begin, f.length), f.data);
    };
  CheckpointReader optimizer = [&](const std::string& d, const DistCheckpoint* ck, int64_t step) {
    std::optional<SafetensorsFile> file;
    std::optional<TensorSource> src;
    if (ck) {
      src.emplace(*ck);
    } else if (step > 0) {
      const std::string path = join_path(d, "optimizer.safetensors");
      file = SafetensorsFile::open(path);
      src.emplace([&](const std::string& n) { return file->tensor(n); },
                  [&](const std::string& n) { return file->contains(n); }, path);
    }
    // Only the parts this rank holds: a moment has its parameter's part (a tensor-parallel box,
    // read and then cut to the rank's flat range), or is read as a flat range of the whole.
    strategy_.optimizer().load_local_state(
        [&](const std::string& name, int64_t begin, int64_t length) {
          auto it = by_name.find(name.substr(0, name.rfind(".exp_avg")));
          if (it != by_name.end() && !part_of(*it->second).is_whole(it->second->global_shape))
            return src->read(name, part_of(*it->second))
                .reshape({-1})
                .narrow(0, begin, length)
                .contiguous();
          return src->read(name, TensorSlice::flat_range(begin, length));
        },
        step);
  };
  return read_checkpoint(dir, weights, optimizer);
}

}  // namespace reef
