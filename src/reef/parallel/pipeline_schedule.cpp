// Implementation of parallel/pipeline_schedule.h.
#include "reef/parallel/pipeline_schedule.h"

#include <algorithm>

namespace reef {

std::vector<PipeOp> one_f_one_b(int stages, int stage, int micro_batches) {
  std::vector<PipeOp> ops;
  const bool first = stage == 0, last = stage == stages - 1;
  auto forward = [&](int m) {
    if (!first) ops.push_back({PipeOpKind::kRecvForward, m});
    ops.push_back({PipeOpKind::kForward, m});
    if (!last) ops.push_back({PipeOpKind::kSendForward, m});
  };
  auto backward = [&](int m) {
    if (!last) ops.push_back({PipeOpKind::kRecvBackward, m});
    ops.push_back({PipeOpKind::kBackward, m});
    if (!first) ops.push_back({PipeOpKind::kSendBackward, m});
  };
  const int warmup = std::min(stages - stage - 1, micro_batches);
  int next_forward = 0, next_backward = 0;
  for (; next_forward < warmup; ++next_forward) forward(next_forward);
  while (next_forward < micro_batches) {  // steady state: one forward, one backward
    forward(next_forward++);
    backward(next_backward++);
  }
  while (next_backward < micro_batches) backward(next_backward++);  // cool-down
  return ops;
}

std::string to_string(const PipeOp& op) {
  static const char* names[] = {"recvF", "F", "sendF", "recvB", "B", "sendB"};
  return names[static_cast<int>(op.kind)] + std::to_string(op.micro);
}

}  // namespace reef
