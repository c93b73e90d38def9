// How many compute threads a setting asks for: run.threads, --threads and the BPE trainer's
// threads all mean "this many, or every core when 0". Base links no torch, so the callers that
// run torch pass the count on to torch::set_num_threads themselves.
#pragma once

#include <cstdint>

namespace reef {

// `requested` when > 0, else every core (at least 1).
int thread_count(int64_t requested);

}  // namespace reef
