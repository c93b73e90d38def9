// Implementation of base/threads.h.
#include "reef/base/threads.h"

#include <algorithm>
#include <thread>

namespace reef {

int thread_count(int64_t requested) {
  if (requested > 0) return static_cast<int>(requested);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace reef
