// Data parallelism: the launch environment (torchrun, Slurm, mpirun) and the Gloo communicator's
// collectives, with two ranks as two threads of this process on a loopback TCP store.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <thread>

#include "support/error_text.h"
#include "tune/core/error.h"
#include "tune/dist/connect.h"
#include "tune/dist/launch.h"
#include "tune/train/communicator.h"
#include "tune/train/gradient_sync.h"

namespace tune::dist {
namespace {

using tune::test::error_of;

Getenv vars(std::map<std::string, std::string> m) {
  return [m](const std::string& k) -> std::optional<std::string> {
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

TEST(LaunchEnv, NothingSetIsOneProcess) {
  auto e = launch_env(vars({}));
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.launcher, "none");
}

TEST(LaunchEnv, TorchrunSlurmAndMpi) {
  auto t = launch_env(vars({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node0"},
                            {"MASTER_PORT", "29400"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                            {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}));
  EXPECT_EQ(t.launcher, "torchrun");  // torchrun under srun: torchrun's variables win
  EXPECT_EQ(t.rank, 3);
  EXPECT_EQ(t.world_size, 8);
  EXPECT_EQ(t.local_rank, 1);
  EXPECT_EQ(t.master_addr, "node0");
  EXPECT_EQ(t.master_port, 29400);
  EXPECT_TRUE(t.agent_store);
  auto s = launch_env(vars({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "1"}, {"MASTER_ADDR", "n1"}}));
  EXPECT_EQ(s.launcher, "slurm");
  EXPECT_EQ(s.rank, 5);
  EXPECT_EQ(s.world_size, 16);
  EXPECT_EQ(s.master_port, 29500);
  EXPECT_FALSE(s.agent_store);
  auto m = launch_env(vars({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"},
                            {"TUNE_DIST_TIMEOUT_S", "12.5"}}));
  EXPECT_EQ(m.launcher, "mpi");
  EXPECT_EQ(m.rank, 1);
  EXPECT_DOUBLE_EQ(m.timeout_s, 12.5);
  // One task under Slurm needs no master address.
  EXPECT_EQ(launch_env(vars({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}})).world_size, 1);
}

TEST(LaunchEnv, BadValuesNameTheVariable) {
  EXPECT_THROW(launch_env(vars({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}})), UsageError);
  EXPECT_NE(error_of([] { launch_env(vars({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}})); })
                .find("RANK=2 is not below WORLD_SIZE=2"),
            std::string::npos);
  EXPECT_NE(error_of([] { launch_env(vars({{"RANK", "x"}, {"WORLD_SIZE", "2"}})); }).find("RANK='x'"), std::string::npos);
  EXPECT_NE(error_of([] { launch_env(vars({{"RANK", "0"}, {"WORLD_SIZE", "2"}})); }).find("MASTER_ADDR is not set"),
            std::string::npos);
  EXPECT_NE(error_of([] { launch_env(vars({{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}})); }).find("RANK is not set"),
            std::string::npos);
  EXPECT_NE(error_of([] { launch_env(vars({{"TUNE_DIST_TIMEOUT_S", "0"}})); }).find("TUNE_DIST_TIMEOUT_S"),
            std::string::npos);
  EXPECT_THROW(launch_env(vars({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}})),
               UsageError);
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Runs body(rank, communicator) on `world` threads joined into one Gloo group; returns their errors.
std::vector<std::string> on_ranks(int world, const std::function<void(int, train::Communicator&)>& body,
                                  double timeout_s = 30) {
  const int port = free_port();
  std::vector<std::string> errors(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        LaunchEnv env;
        env.rank = r;
        env.world_size = world;
        env.launcher = "test";
        env.master_port = port;
        env.timeout_s = timeout_s;
        auto comm = connect(env);
        body(r, *comm);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

TEST(Gloo, AllReduceBroadcastBarrierOnMixedTensors) {
  auto errors = on_ranks(3, [](int r, train::Communicator& comm) {
    EXPECT_EQ(comm.world_size(), 3);
    EXPECT_EQ(comm.rank(), r);
    // Mixed dtypes, a non-contiguous view and a tensor over the 25 MiB bucket cap (two buckets).
    auto big = torch::full({7 << 20}, static_cast<float>(r + 1));         // 28 MiB of float32
    auto small = torch::arange(5, torch::kFloat64) * (r + 1);
    auto matrix = torch::ones({4, 6}) * (r + 1);
    auto strided = matrix.t();                                            // not contiguous
    auto ints = torch::tensor({r, 10 * r}, torch::kInt64);
    std::vector<torch::Tensor> ts{big, small, strided, ints};
    comm.all_reduce_sum(ts);
    EXPECT_TRUE(torch::all(big == 6).item<bool>());
    EXPECT_TRUE(torch::allclose(small, torch::arange(5, torch::kFloat64) * 6));
    EXPECT_TRUE(torch::all(matrix == 6).item<bool>());  // written through the view
    EXPECT_EQ(ints[1].item<int64_t>(), 30);
    std::vector<torch::Tensor> b{torch::full({3}, static_cast<float>(r)), torch::full({2, 2}, static_cast<double>(r))};
    comm.broadcast(b, 2);
    EXPECT_TRUE(torch::all(b[0] == 2).item<bool>());
    EXPECT_TRUE(torch::all(b[1] == 2).item<bool>());
    comm.barrier();
    auto sums = train::all_reduce_sum(comm, {1.0, static_cast<double>(r)});
    EXPECT_EQ(sums, (std::vector<double>{3.0, 3.0}));
    const std::string mine = r == 1 ? std::string() : std::string(static_cast<size_t>(3 + r), static_cast<char>('a' + r)) + "\xff";
    auto texts = train::all_gather_text(comm, mine);
    EXPECT_EQ(texts, (std::vector<std::string>{"aaa\xff", "", "ccccc\xff"}));
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

TEST(Gloo, ParametersAreBroadcastAndDriftIsCaught) {
  auto errors = on_ranks(2, [](int r, train::Communicator& comm) {
    auto w = torch::randn({5, 3}) + r;  // different on each rank
    train::broadcast_and_verify(comm, {w}, "start");
    std::vector<torch::Tensor> all{w.clone()};
    comm.all_reduce_sum(all);
    EXPECT_TRUE(torch::equal(all[0], 2 * w));  // equal after the broadcast
    if (r == 1) w[2][1] += 1e-6;
    train::verify_equal(comm, {torch::zeros({2}), w}, "checkpoint");
  });
  for (const auto& e : errors) EXPECT_NE(e.find("checkpoint: the ranks' parameters differ (tensor 1 of 2"), std::string::npos) << e;
}

TEST(Gloo, AFailureOnRankZeroStopsEveryRank) {
  auto errors = on_ranks(2, [](int, train::Communicator& comm) {
    train::on_main_rank(comm, "saving the checkpoint", [] { fail("disk full"); });
  });
  EXPECT_EQ(errors[0], "disk full");
  EXPECT_NE(errors[1].find("saving the checkpoint failed on rank 0"), std::string::npos) << errors[1];
}

TEST(Gloo, ARankThatStopsAnsweringTimesOut) {
  double waited = 0;
  auto errors = on_ranks(
      2,
      [&](int r, train::Communicator& comm) {
        if (r == 1) {  // alive and connected, but never joins the all-reduce
          std::this_thread::sleep_for(std::chrono::seconds(6));
          return;
        }
        const auto started = std::chrono::steady_clock::now();
        std::vector<torch::Tensor> t{torch::ones({4})};
        try {
          comm.all_reduce_sum(t);
        } catch (...) {
          waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
          throw;
        }
      },
      /*timeout_s=*/2);
  EXPECT_NE(errors[0].find("all-reduce across ranks failed"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("within 2 s"), std::string::npos) << errors[0];
  EXPECT_GE(waited, 1.5);
  EXPECT_LT(waited, 5.5);
}

TEST(Gloo, ARankThatExitsEndsTheOthersAtOnce) {
  auto errors = on_ranks(2, [](int r, train::Communicator& comm) {
    if (r == 0) comm.barrier();  // rank 1 leaves: its connections close
  });
  EXPECT_NE(errors[0].find("barrier across ranks failed"), std::string::npos) << errors[0];
}

// Gradients of a 4-layer MLP on two ranks with different data, two micro-batches, buckets small
// enough that each layer is one: the synced gradients equal the sum of both ranks' own, most buckets
// leave during backward, and an unused parameter is reduced as zeros.
TEST(Gloo, GradientBucketsOverlapBackwardAndSumOverRanks) {
  auto layers = [](int seed) {
    torch::manual_seed(static_cast<uint64_t>(seed));
    std::vector<torch::Tensor> ps;
    for (int l = 0; l < 4; ++l) ps.push_back((torch::randn({16, 16}) / 4).requires_grad_());
    ps.push_back(torch::zeros({3}).requires_grad_());  // unused
    return ps;
  };
  auto loss_of = [](const std::vector<torch::Tensor>& ps, const torch::Tensor& x) {
    auto h = x;
    for (int l = 0; l < 4; ++l) h = torch::tanh(h.matmul(ps[static_cast<size_t>(l)]));
    return h.pow(2).sum();
  };
  // Drawn here, not in the rank threads: they would share (and race on) the global generator.
  std::vector<std::vector<torch::Tensor>> xs(2);
  for (int r = 0; r < 2; ++r)
    for (int m = 0; m < 2; ++m) xs[static_cast<size_t>(r)].push_back(torch::randn({5, 16}));
  auto data = [&](int rank, int micro) { return xs[static_cast<size_t>(rank)][static_cast<size_t>(micro)]; };
  const auto start = layers(7);
  // The expected sum: both ranks' gradients over both micro-batches, in one process.
  auto expected = layers(7);
  for (int r = 0; r < 2; ++r)
    for (int m = 0; m < 2; ++m) loss_of(expected, data(r, m)).backward();

  std::vector<train::GradientSyncStats> stats(2);
  auto errors = on_ranks(2, [&](int r, train::Communicator& comm) {
    std::vector<torch::Tensor> ps;
    for (const auto& p : start) ps.push_back(p.detach().clone().requires_grad_());
    train::GradientSync sync(ps, comm, /*bucket_bytes=*/16 * 16 * 4);
    loss_of(ps, data(r, 0)).backward();  // first micro-batch: nothing leaves
    sync.arm();
    loss_of(ps, data(r, 1)).backward();
    sync.finish();
    stats[static_cast<size_t>(r)] = sync.last();
    for (size_t k = 0; k < 4; ++k)
      EXPECT_TRUE(torch::allclose(ps[k].grad(), expected[k].grad(), 1e-5, 1e-6)) << "rank " << r << " layer " << k;
    EXPECT_TRUE(torch::equal(ps[4].grad(), torch::zeros({3})));
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
  for (const auto& s : stats) {
    EXPECT_EQ(s.buckets, 5);
    // The unused bias is the last parameter, so its bucket is the first in order: it never
    // completes in backward, and the others wait behind it (order is what pairs collectives up).
    EXPECT_EQ(s.started_in_backward, 0);
  }
}

TEST(Gloo, GradientBucketsLeaveDuringBackward) {
  std::vector<train::GradientSyncStats> stats(2);
  std::vector<torch::Tensor> start;
  for (int l = 0; l < 4; ++l) start.push_back(torch::randn({16, 16}) / 4);
  const auto x = torch::randn({5, 16});
  auto errors = on_ranks(2, [&](int r, train::Communicator& comm) {
    std::vector<torch::Tensor> ps;
    for (const auto& p : start) ps.push_back(p.clone().requires_grad_());
    train::GradientSync sync(ps, comm, 16 * 16 * 4);
    sync.arm();
    auto h = x * (r + 1);
    for (auto& p : ps) h = torch::tanh(h.matmul(p));
    h.sum().backward();
    stats[static_cast<size_t>(r)] = sync.last();
    sync.finish();
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
  for (const auto& s : stats) EXPECT_EQ(s.started_in_backward, 4);  // every bucket, before backward returned
}

TEST(Gloo, ShareHelpersCoverEveryItemOnce) {
  train::LocalCommunicator one;
  EXPECT_EQ(train::strided_share(3, one), (std::vector<size_t>{0, 1, 2}));
  auto errors = on_ranks(3, [](int r, train::Communicator& comm) {
    auto [b, e] = train::block_share(10, comm);
    const size_t begins[] = {0, 3, 6}, ends[] = {3, 6, 10};
    EXPECT_EQ(b, begins[r]);
    EXPECT_EQ(e, ends[r]);
    EXPECT_EQ(train::block_share(2, comm), (std::pair<size_t, size_t>{0, 2}));  // fewer items than ranks
    EXPECT_FALSE(train::split_evenly(2, comm));
    EXPECT_EQ(train::strided_share(7, comm).front(), static_cast<size_t>(r));
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

}  // namespace
}  // namespace tune::dist
