// Test helper: a training checkpoint's tensors, whatever its layout. Header-only: for test
// binaries that link the checkpoint layer (the integration tests).
#pragma once

#include <map>
#include <string>

#include "reef/base/files.h"
#include "reef/checkpoint/dist_checkpoint.h"
#include "reef/checkpoint/safetensors.h"

namespace reef::testing {

// The whole tensors of `group` ("model" or "optimizer") of checkpoint folder `dir`: read from a
// distributed checkpoint's pieces, or from model.safetensors / optimizer.safetensors.
inline std::map<std::string, torch::Tensor> checkpoint_tensors(const std::string& dir,
                                                               const std::string& group) {
  if (path_exists(join_path(dir, kDistIndexFile))) {
    auto ck = DistCheckpoint::open(dir);
    std::map<std::string, torch::Tensor> out;
    for (const auto& name : ck.names(group))
      out[name] = ck.read(name, TensorSlice::whole(ck.tensor(name).shape));
    return out;
  }
  return load_safetensors(join_path(dir, group + ".safetensors"));
}

}  // namespace reef::testing
