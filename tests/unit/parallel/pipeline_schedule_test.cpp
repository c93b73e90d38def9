// Tests for parallel/pipeline_schedule.h: for every (stages, micro-batches) pair up to 4 x 8,
// each stage runs every forward and backward once and in micro-batch order, keeps at most
// stages - stage activations alive, and the stages together finish when sends are queued and
// receives block, every receive getting the micro-batch its peer sent; plus the exact
// sequence of a small case and the split of layers into stages.
#include "reef/parallel/pipeline_schedule.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>

#include "reef/base/error.h"
#include "reef/parallel/mesh.h"

namespace reef {
namespace {

std::string describe(const std::vector<PipeOp>& ops) {
  std::string s;
  for (const auto& op : ops) s += (s.empty() ? "" : " ") + to_string(op);
  return s;
}

TEST(PipelineSchedule, EveryStageRunsEachMicroBatchOnceInOrderWithBoundedActivations) {
  for (int stages = 1; stages <= 4; ++stages) {
    for (int micro = 1; micro <= 8; ++micro) {
      for (int s = 0; s < stages; ++s) {
        const auto ops = one_f_one_b(stages, s, micro);
        SCOPED_TRACE(testing::Message() << stages << " stages, " << micro
                                        << " micro-batches, stage " << s << ": " << describe(ops));
        int next_f = 0, next_b = 0, alive = 0, max_alive = 0;
        for (const auto& op : ops) {
          if (op.kind == PipeOpKind::kForward) {
            EXPECT_EQ(op.micro, next_f++);
            max_alive = std::max(max_alive, ++alive);
          } else if (op.kind == PipeOpKind::kBackward) {
            EXPECT_EQ(op.micro, next_b++);
            EXPECT_LT(op.micro, next_f) << "backward before its forward";
            --alive;
          }
          // Receives and sends only where there is a neighbour.
          if (op.kind == PipeOpKind::kRecvForward || op.kind == PipeOpKind::kSendBackward)
            EXPECT_GT(s, 0);
          if (op.kind == PipeOpKind::kSendForward || op.kind == PipeOpKind::kRecvBackward)
            EXPECT_LT(s, stages - 1);
        }
        EXPECT_EQ(next_f, micro);
        EXPECT_EQ(next_b, micro);
        EXPECT_LE(max_alive, stages - s);
        EXPECT_EQ(max_alive, std::min(stages - s, micro))
            << "1F1B fills the pipeline as far as it can";
      }
    }
  }
}

// Runs all stages' op lists with queued sends and blocking receives; every op that depends on
// a neighbour's data must find it. Returns false on a deadlock.
bool simulate(int stages, int micro, std::string* error) {
  std::vector<std::vector<PipeOp>> ops(stages);
  for (int s = 0; s < stages; ++s) ops[s] = one_f_one_b(stages, s, micro);
  std::vector<size_t> pc(stages, 0);
  // Channel (from, to, kind) -> queued micro-batch ids, in send order.
  std::map<std::tuple<int, int, int>, std::deque<int>> channels;
  // Per stage and micro-batch: the data each compute op needs has been received.
  std::vector<std::map<int, bool>> have_input(stages), have_grad(stages);
  std::vector<std::map<int, bool>> done_forward(stages), done_backward(stages);
  for (;;) {
    bool progressed = false, all_done = true;
    for (int s = 0; s < stages; ++s) {
      while (pc[s] < ops[s].size()) {
        const PipeOp& op = ops[s][pc[s]];
        bool ok = true;
        switch (op.kind) {
          case PipeOpKind::kRecvForward: {
            auto& q = channels[{s - 1, s, 0}];
            if (q.empty())
              ok = false;
            else {
              if (q.front() != op.micro) {
                *error = "stage " + std::to_string(s) + " receives activations of micro-batch " +
                         std::to_string(q.front()) + " for " + to_string(op);
                return false;
              }
              q.pop_front();
              have_input[s][op.micro] = true;
            }
            break;
          }
          case PipeOpKind::kRecvBackward: {
            auto& q = channels[{s + 1, s, 1}];
            if (q.empty())
              ok = false;
            else {
              if (q.front() != op.micro) {
                *error = "stage " + std::to_string(s) + " receives gradients of micro-batch " +
                         std::to_string(q.front()) + " for " + to_string(op);
                return false;
              }
              q.pop_front();
              have_grad[s][op.micro] = true;
            }
            break;
          }
          case PipeOpKind::kForward:
            if (s > 0 && !have_input[s][op.micro]) {
              *error =
                  "stage " + std::to_string(s) + " runs " + to_string(op) + " without its input";
              return false;
            }
            done_forward[s][op.micro] = true;
            break;
          case PipeOpKind::kBackward:
            if (!done_forward[s][op.micro] || (s < stages - 1 && !have_grad[s][op.micro])) {
              *error =
                  "stage " + std::to_string(s) + " runs " + to_string(op) + " without its gradient";
              return false;
            }
            done_backward[s][op.micro] = true;
            break;
          case PipeOpKind::kSendForward:
            if (!done_forward[s][op.micro]) {
              *error = "stage " + std::to_string(s) + " sends before computing " + to_string(op);
              return false;
            }
            channels[{s, s + 1, 0}].push_back(op.micro);
            break;
          case PipeOpKind::kSendBackward:
            if (!done_backward[s][op.micro]) {
              *error = "stage " + std::to_string(s) + " sends before computing " + to_string(op);
              return false;
            }
            channels[{s, s - 1, 1}].push_back(op.micro);
            break;
        }
        if (!ok) break;
        ++pc[s];
        progressed = true;
      }
      all_done = all_done && pc[s] == ops[s].size();
    }
    if (all_done) break;
    if (!progressed) {
      *error = "deadlock";
      return false;
    }
  }
  for (auto& [key, q] : channels)
    if (!q.empty()) {
      *error = "a message was sent and never received";
      return false;
    }
  return true;
}

TEST(PipelineSchedule, SendsMatchReceivesWithoutDeadlock) {
  for (int stages = 1; stages <= 4; ++stages)
    for (int micro = 1; micro <= 8; ++micro) {
      std::string error;
      EXPECT_TRUE(simulate(stages, micro, &error))
          << stages << " stages, " << micro << " micro-batches: " << error;
    }
}

TEST(PipelineSchedule, WarmUpSteadyCoolDown) {
  // Stage 0 of 3 with 4 micro-batches: 2 warm-up forwards, then 1F1B, then 2 backwards.
  EXPECT_EQ(describe(one_f_one_b(3, 0, 4)),
            "F0 sendF0 F1 sendF1 F2 sendF2 recvB0 B0 F3 sendF3 recvB1 B1 recvB2 B2 recvB3 B3");
  EXPECT_EQ(describe(one_f_one_b(3, 2, 4)),
            "recvF0 F0 B0 sendB0 recvF1 F1 B1 sendB1 recvF2 F2 B2 sendB2 recvF3 F3 B3 sendB3");
  // Fewer micro-batches than stages: all forwards are warm-up.
  EXPECT_EQ(describe(one_f_one_b(4, 0, 2)), "F0 sendF0 F1 sendF1 recvB0 B0 recvB1 B1");
}

TEST(PipelineSchedule, SplitLayersIsBalancedAndRefusesEmptyStages) {
  auto r = split_layers(10, 4);
  ASSERT_EQ(r.size(), 4u);
  const int64_t want[4][2] = {{0, 3}, {3, 6}, {6, 8}, {8, 10}};
  for (int s = 0; s < 4; ++s) {
    EXPECT_EQ(r[s].begin, want[s][0]);
    EXPECT_EQ(r[s].end, want[s][1]);
  }
  try {
    split_layers(2, 3);
    FAIL() << "expected a usage error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("parallel.pp=3: the model has model.n_layers=2"),
              std::string::npos)
        << e.what();
  }
}

TEST(PipelineSchedule, MeshLayoutIsDataParallelFastest) {
  Mesh m;
  m.dp = 2;
  m.pp = 3;
  EXPECT_EQ(mesh_coord(m, 5).pp_stage, 2);
  EXPECT_EQ(mesh_coord(m, 5).dp_rank, 1);
  EXPECT_EQ(mesh_rank(m, 1, 2), 5);
  EXPECT_EQ(dp_group_ranks(m, 3), (std::vector<int>{2, 3}));
}

TEST(PipelineSchedule, MeshLayoutIsTensorFastestThenDataThenPipeline) {
  Mesh m;
  m.tp = 2;
  m.dp = 2;
  m.pp = 2;
  // rank = (pp_stage * dp + dp_rank) * tp + tp_rank
  for (int r = 0; r < 8; ++r) {
    const MeshCoord c = mesh_coord(m, r);
    EXPECT_EQ(c.tp_rank, r % 2);
    EXPECT_EQ(c.dp_rank, (r / 2) % 2);
    EXPECT_EQ(c.pp_stage, r / 4);
    EXPECT_EQ(mesh_rank(m, c.dp_rank, c.pp_stage, c.tp_rank), r);
  }
  EXPECT_EQ(tp_group_ranks(m, 6), (std::vector<int>{6, 7}));
  EXPECT_EQ(dp_group_ranks(m, 6), (std::vector<int>{4, 6}));
  EXPECT_EQ(dp_group_ranks(m, 1), (std::vector<int>{1, 3}));
}

}  // namespace
}  // namespace reef
