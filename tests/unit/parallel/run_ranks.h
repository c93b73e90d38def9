// Test helper for the parallel unit tests: `world` ranks as threads of this process, meeting
// through a TCPStore on a free loopback port and talking through Gloo.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "reef/parallel/process_group.h"

namespace reef::testing {

// A loopback TCP port free at the time of the call.
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Runs body(pg) on `world` ranks, one thread each; fails the test with any rank's error.
inline void run_ranks(int world, const std::function<void(std::shared_ptr<ProcessGroup>)>& body,
                      int timeout_s = 30) {
  const int port = free_port();
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        DistEnv env;
        env.rank = r;
        env.world_size = world;
        env.master_port = port;
        ProcessGroupOptions o;
        o.timeout = std::chrono::seconds(timeout_s);
        body(ProcessGroup::create(env, o));
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

}  // namespace reef::testing
