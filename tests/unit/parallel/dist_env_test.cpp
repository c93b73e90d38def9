// Tests for parallel/dist_env.h: each launcher convention, precedence, and one clear error for
// every partial or inconsistent environment.
#include "reef/parallel/dist_env.h"

#include <gtest/gtest.h>

#include "reef/base/error.h"

namespace reef {
namespace {

using Env = std::map<std::string, std::string>;

// The usage error's message for `env` ("" when it parses).
std::string error_of(const Env& env) {
  try {
    dist_env_from(env);
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    return e.what();
  }
  return "";
}

TEST(DistEnv, NothingSetIsOneProcess) {
  DistEnv d = dist_env_from({{"HOME", "/root"}});
  EXPECT_EQ(d.rank, 0);
  EXPECT_EQ(d.world_size, 1);
  EXPECT_FALSE(d.distributed());
  EXPECT_EQ(d.source, "none");
}

TEST(DistEnv, Torchrun) {
  DistEnv d = dist_env_from({{"RANK", "3"},
                             {"WORLD_SIZE", "8"},
                             {"LOCAL_RANK", "1"},
                             {"LOCAL_WORLD_SIZE", "2"},
                             {"MASTER_ADDR", "node0"},
                             {"MASTER_PORT", "29400"}});
  EXPECT_EQ(d.source, "torchrun");
  EXPECT_EQ(d.rank, 3);
  EXPECT_EQ(d.world_size, 8);
  EXPECT_EQ(d.local_rank, 1);
  EXPECT_EQ(d.local_world_size, 2);
  EXPECT_EQ(d.master_addr, "node0");
  EXPECT_EQ(d.master_port, 29400);
  EXPECT_TRUE(d.distributed());
}

TEST(DistEnv, TorchrunSingleProcessNeedsNoMaster) {
  DistEnv d = dist_env_from({{"RANK", "0"}, {"WORLD_SIZE", "1"}});
  EXPECT_FALSE(d.distributed());
  EXPECT_EQ(d.local_rank, 0);
}

TEST(DistEnv, TorchrunPartialOrInconsistent) {
  EXPECT_NE(error_of({{"RANK", "1"}}).find("WORLD_SIZE is not set but RANK is"), std::string::npos);
  EXPECT_NE(error_of({{"WORLD_SIZE", "2"}}).find("RANK is not set but WORLD_SIZE is"),
            std::string::npos);
  EXPECT_NE(
      error_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "1"}})
          .find("RANK=2 is outside WORLD_SIZE=2"),
      std::string::npos);
  EXPECT_NE(error_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}}).find("RANK='x'"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "-1"}, {"WORLD_SIZE", "2"}}).find("RANK='-1'"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "0"}}).find("WORLD_SIZE=0"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "29500"}})
                .find("MASTER_ADDR is not set"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}})
                .find("MASTER_PORT is not set"),
            std::string::npos);
  EXPECT_NE(
      error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}})
          .find("MASTER_PORT=70000"),
      std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"},
                      {"WORLD_SIZE", "2"},
                      {"LOCAL_RANK", "5"},
                      {"MASTER_ADDR", "h"},
                      {"MASTER_PORT", "1"}})
                .find("LOCAL_RANK=5"),
            std::string::npos);
}

TEST(DistEnv, OpenMpi) {
  DistEnv d = dist_env_from({{"OMPI_COMM_WORLD_RANK", "1"},
                             {"OMPI_COMM_WORLD_SIZE", "4"},
                             {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                             {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                             {"MASTER_ADDR", "10.0.0.1"},
                             {"MASTER_PORT", "1234"}});
  EXPECT_EQ(d.source, "openmpi");
  EXPECT_EQ(d.rank, 1);
  EXPECT_EQ(d.world_size, 4);
  EXPECT_EQ(d.local_rank, 1);
  EXPECT_EQ(d.local_world_size, 2);
  EXPECT_EQ(d.master_addr, "10.0.0.1");
  EXPECT_NE(error_of({{"OMPI_COMM_WORLD_RANK", "1"}}).find("OMPI_COMM_WORLD_SIZE is not set"),
            std::string::npos);
  EXPECT_NE(error_of({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}})
                .find("MASTER_ADDR is not set (Open MPI"),
            std::string::npos);
}

TEST(DistEnv, Slurm) {
  DistEnv d = dist_env_from({{"SLURM_PROCID", "5"},
                             {"SLURM_NTASKS", "8"},
                             {"SLURM_LOCALID", "1"},
                             {"SLURM_NTASKS_PER_NODE", "4(x2)"},
                             {"SLURM_LAUNCH_NODE_IPADDR", "10.1.2.3"}});
  EXPECT_EQ(d.source, "slurm");
  EXPECT_EQ(d.rank, 5);
  EXPECT_EQ(d.world_size, 8);
  EXPECT_EQ(d.local_rank, 1);
  EXPECT_EQ(d.local_world_size, 4);
  EXPECT_EQ(d.master_addr, "10.1.2.3");
  EXPECT_EQ(d.master_port, 29500);
  // MASTER_ADDR/PORT win over Slurm's launch node; srun's step task count over the allocation's.
  d = dist_env_from({{"SLURM_PROCID", "0"},
                     {"SLURM_NTASKS", "8"},
                     {"SLURM_STEP_NUM_TASKS", "2"},
                     {"MASTER_ADDR", "n1"},
                     {"MASTER_PORT", "4000"},
                     {"SLURM_LAUNCH_NODE_IPADDR", "x"}});
  EXPECT_EQ(d.world_size, 2);
  EXPECT_EQ(d.master_addr, "n1");
  EXPECT_EQ(d.master_port, 4000);
  EXPECT_NE(error_of({{"SLURM_PROCID", "0"}}).find("SLURM_NTASKS is not set but SLURM_PROCID is"),
            std::string::npos);
  EXPECT_NE(error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}})
                .find("MASTER_ADDR is not set and Slurm"),
            std::string::npos);
  EXPECT_NE(error_of({{"SLURM_PROCID", "4"}, {"SLURM_NTASKS", "4"}, {"MASTER_ADDR", "h"}})
                .find("SLURM_PROCID=4 is outside"),
            std::string::npos);
}

TEST(DistEnv, TorchrunWinsInsideSlurmAndMpi) {
  DistEnv d = dist_env_from({{"RANK", "1"},
                             {"WORLD_SIZE", "2"},
                             {"MASTER_ADDR", "a"},
                             {"MASTER_PORT", "9"},
                             {"SLURM_PROCID", "0"},
                             {"SLURM_NTASKS", "1"},
                             {"OMPI_COMM_WORLD_RANK", "0"},
                             {"OMPI_COMM_WORLD_SIZE", "1"}});
  EXPECT_EQ(d.source, "torchrun");
  EXPECT_EQ(d.rank, 1);
}

TEST(DistEnv, CurrentEnvironmentReadsProcessVariables) {
  ::setenv("REEF_DIST_ENV_TEST", "a=b", 1);
  EXPECT_EQ(current_environment()["REEF_DIST_ENV_TEST"], "a=b");
}

}  // namespace
}  // namespace reef
