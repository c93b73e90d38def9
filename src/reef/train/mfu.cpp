// Implementation of train/mfu.h: a short square-matmul benchmark, cached on disk.
#include "reef/train/mfu.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "reef/base/files.h"
#include "reef/base/log.h"

namespace reef {
namespace {

std::string cpu_model() {
  try {
    std::string info = read_file("/proc/cpuinfo");
    auto p = info.find("model name");
    if (p != std::string::npos) {
      auto c = info.find(':', p), e = info.find('\n', p);
      return info.substr(c + 2, e - c - 2);
    }
  } catch (...) {
  }
  return "unknown-cpu";
}

double time_matmuls(const torch::Device& device, torch::ScalarType dtype) {
  const int64_t n = device.is_cuda() ? 8192 : 2048;
  auto opts = torch::TensorOptions().device(device).dtype(dtype);
  auto a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts);
  auto sync = [&] {
#ifdef REEF_WITH_CUDA
    if (device.is_cuda()) torch::cuda::synchronize();
#endif
  };
  torch::NoGradGuard ng;
  torch::mm(a, b);
  sync();
  double best = 0;
  for (int rep = 0; rep < 4; ++rep) {
    int iters = device.is_cuda() ? 20 : 2;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) torch::mm(a, b);
    sync();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * n * n * n * iters / s);
  }
  return best;
}

}  // namespace

double measured_peak_flops(const torch::Device& device, torch::ScalarType dtype) {
  const char* home = std::getenv("HOME");
  std::string dir = join_path(home ? home : "/tmp", ".cache/reef");
  std::string path = join_path(dir, "peak_flops.json");
  std::string key = fmt::format("{}|{}|threads={}|{}|torch " TORCH_VERSION,
                                device.is_cuda() ? "cuda" : cpu_model(), device.str(),
                                torch::get_num_threads(), c10::toString(dtype));
  nlohmann::json cache = nlohmann::json::object();
  try {
    if (path_exists(path)) cache = nlohmann::json::parse(read_file(path));
    if (cache.contains(key)) return cache[key].get<double>();
  } catch (...) {
    cache = nlohmann::json::object();
  }
  double peak = time_matmuls(device, dtype);
  log_info("measured peak matmul throughput: {:.1f} GFLOP/s ({})", peak / 1e9, key);
  try {
    make_dirs(dir);
    cache[key] = peak;
    write_file_atomic(path, cache.dump(2));
  } catch (...) {
  }
  return peak;
}

}  // namespace reef
