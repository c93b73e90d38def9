// The 1F1B pipeline schedule (PipeDream-Flush, as Megatron-LM runs it) as a pure function: the
// ordered operations one stage performs for one optimizer step of `micro_batches` micro-batches.
// Stage s first runs min(stages - s - 1, micro_batches) warm-up forwards, then alternates one
// forward and one backward (steady state), then runs the remaining backwards (cool-down), so
// at most stages - s micro-batches' activations are alive on stage s at any time (GPipe's
// all-forwards-then-all-backwards would keep all of them). parallel/pipeline.cpp executes it.
#pragma once

#include <string>
#include <vector>

namespace reef {

enum class PipeOpKind {
  kRecvForward,   // receive micro-batch m's input activations from stage s - 1
  kForward,       // run this stage's layers on micro-batch m
  kSendForward,   // send the output activations to stage s + 1
  kRecvBackward,  // receive the gradient of the output from stage s + 1
  kBackward,      // backward through this stage for micro-batch m
  kSendBackward,  // send the gradient of the input to stage s - 1
};

struct PipeOp {
  PipeOpKind kind;
  int micro;
  bool operator==(const PipeOp& o) const { return kind == o.kind && micro == o.micro; }
};

// The operations of `stage` (0-based, of `stages`). The first stage has no receive of
// activations nor send of gradients, the last no send of activations nor receive of gradients.
// Executed with sends that do not block (queued) and receives that do, every stage finishes
// and every receive gets the micro-batch its peer sent
// (tests/unit/parallel/pipeline_schedule_test).
std::vector<PipeOp> one_f_one_b(int stages, int stage, int micro_batches);

// "F3" / "B3" / "recvF3" ...: for test failure messages.
std::string to_string(const PipeOp& op);

}  // namespace reef
