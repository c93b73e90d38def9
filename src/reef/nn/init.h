// SkipInitGuard: while one is alive on this thread, Reef's modules allocate their parameters
// without drawing random initial values. For building a model whose every parameter is then
// loaded from a checkpoint (checkpoint/model_io.cpp): the values are never read, and drawing them
// dominated load time. Parameters left uninitialised hold arbitrary memory, so only use it where
// a strict load fills them all.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace reef {

inline thread_local bool skip_init_flag = false;

inline bool skip_init() { return skip_init_flag; }

class SkipInitGuard {
 public:
  SkipInitGuard() : previous_(skip_init_flag) { skip_init_flag = true; }
  ~SkipInitGuard() { skip_init_flag = previous_; }
  SkipInitGuard(const SkipInitGuard&) = delete;
  SkipInitGuard& operator=(const SkipInitGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace reef
