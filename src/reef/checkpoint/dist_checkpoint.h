// Distributed (sharded) checkpoints: every rank writes the pieces of tensors it owns uniquely
// into its own safetensors file, in parallel, and nobody gathers a whole model or optimizer
// state. A JSON index, written last by rank 0, lists for every logical tensor its global shape,
// dtype and pieces (file, key in the file, and the part: an N-D box or a flat range; see
// checkpoint/slices.h). Loading asks for whatever parts the new layout needs and reads only
// those from the files' memory maps, so resharding (ZeRO-1 at dp=2 to dp=4 or one process, a
// tensor-parallel split to whole tensors) is loading with another layout. Layout of the folder:
//
//   rank-00000.safetensors ...   one per writing rank: its pieces; __metadata__ "reef.pieces"
//                                (what each key is) and "reef.xxh64" (checksum of the data)
//   dist_checkpoint.json         the index (format in docs/formats.md)
//
// An interrupted save is never taken for a complete one: without the index the folder is
// refused, and the index names every file with its size and checksum.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "reef/checkpoint/safetensors.h"
#include "reef/checkpoint/slices.h"

namespace reef {

class ProcessGroup;

inline constexpr const char* kDistIndexFile = "dist_checkpoint.json";
inline constexpr int kDistFormatVersion = 1;

// "rank-00003.safetensors".
std::string dist_rank_file(int rank);

// A part of a logical tensor held by this rank.
struct LocalPiece {
  std::string name;                   // the logical tensor ("model.norm.weight", "...exp_avg")
  std::string group = "model";        // what it belongs to: "model", "optimizer", ...
  std::vector<int64_t> global_shape;  // the whole tensor's shape
  TensorSlice slice;                  // which part
  torch::Tensor data;                 // the part: shape slice.local_shape(), any device
};

// Writes `pieces` into `<dir>/rank-<rank>.safetensors` (atomically; nothing when there are
// none) and returns the file name ("" when nothing was written). No collectives.
std::string write_rank_pieces(const std::string& dir, int rank,
                              const std::vector<LocalPiece>& pieces);

// Rank 0, once every writer's file is in place: reads their headers (not their data), checks
// that the pieces of every tensor cover it exactly once with one dtype, and writes the index
// atomically. `writers` are the ranks that wrote a file. Errors name the file or the tensor.
void write_dist_index(const std::string& dir, int world_size, const std::vector<int>& writers);

// The collective save: every rank of `pg` (null: one process) calls it with its own pieces.
// Each rank writes its file, the ranks agree on who wrote (an all-reduce, which is also the
// barrier), then rank 0 writes the index. `dir` must exist and be shared by the ranks.
void save_dist_pieces(const std::string& dir, const std::vector<LocalPiece>& pieces,
                      ProcessGroup* pg);

// True when `dir` holds a distributed checkpoint's index or rank files.
bool looks_distributed(const std::string& dir);

// A distributed checkpoint opened for reading. open() checks the index (bounds, exact cover of
// every tensor, one dtype), that every file it names exists with its recorded size, and that
// every piece is in its file with the recorded dtype and shape; files are mapped, not read. A
// file's checksum is verified the first time a read touches it.
class DistCheckpoint {
 public:
  struct Piece {
    std::string file, key;
    TensorSlice slice;
  };
  struct Tensor {
    std::string group;
    torch::ScalarType dtype;
    std::vector<int64_t> shape;
    std::vector<Piece> pieces;
  };

  static DistCheckpoint open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::string index_path() const;
  // Names of the tensors of `group` (all when empty), sorted.
  std::vector<std::string> names(const std::string& group = "") const;
  bool contains(const std::string& name) const { return tensors_.count(name) > 0; }
  // Throws naming the index when `name` is absent.
  const Tensor& tensor(const std::string& name) const;

  // Copies part `slice` of tensor `name` into `out` (shape slice.local_shape(), any dtype and
  // device: converted), from the pieces that intersect it only.
  void read_into(const std::string& name, const TensorSlice& slice, torch::Tensor out) const;
  // The same into a new CPU tensor of the stored dtype.
  torch::Tensor read(const std::string& name, const TensorSlice& slice) const;
  // The files read so far (for tests: a rank reads only what its layout needs).
  std::set<std::string> files_read() const;

 private:
  const SafetensorsFile& file(const std::string& name) const;

  std::string dir_;
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> xxh64_;  // file -> recorded checksum
  struct Cache;
  std::shared_ptr<Cache> cache_;  // opened files, checksums verified
};

}  // namespace reef
