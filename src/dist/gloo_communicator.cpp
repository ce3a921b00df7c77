// The only file that sees c10d's Gloo backend. Debian's libgloo-dev provides the gloo headers
// ProcessGroupGloo.hpp includes; the code itself is LibTorch's own (libtorch_cpu carries gloo),
// so no system gloo library is linked.
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <map>

#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/core/str.h"
#include "tune/dist/connect.h"

namespace tune::dist {

namespace {

using std::chrono::milliseconds;

// Gradients travel in buckets of at most this many bytes (DDP's default cap, 25 MiB): few, large
// messages, and every bucket's all-reduce is in flight before the first is waited for.
constexpr int64_t kBucketBytes = 25 << 20;

// c10d's messages carry a C++ backtrace after the first line, and Gloo's a paragraph of advice
// after its first sentence: what happened is before them.
std::string first_line(const char* message) {
  std::string s(message);
  s = s.substr(0, s.find('\n'));
  if (auto advice = s.find(" This is typically caused"); advice != std::string::npos) s.resize(advice);
  return s;
}

// Collectives in flight over buckets of one dtype, each flattened into one contiguous buffer; wait()
// copies the results back into the tensors.
class BucketedWork final : public train::PendingReduce {
 public:
  template <class Op>
  BucketedWork(std::vector<torch::Tensor> tensors, const char* what, milliseconds timeout, Op op)
      : tensors_(std::move(tensors)), what_(what), timeout_(timeout) {
    std::map<c10::ScalarType, std::vector<size_t>> by_dtype;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      TUNE_CHECK(tensors_[i].defined(), what, ": tensor ", i, " is undefined");
      TUNE_CHECK(tensors_[i].device().is_cpu(), what, ": tensor ", i, " is on ", tensors_[i].device().str(),
                 "; the Gloo communicator reduces CPU tensors");
      by_dtype[tensors_[i].scalar_type()].push_back(i);
    }
    for (auto& [dtype, members] : by_dtype) {
      Bucket b;
      int64_t bytes = 0;
      for (size_t i : members) {
        const int64_t n = tensors_[i].numel() * static_cast<int64_t>(tensors_[i].element_size());
        if (!b.members.empty() && bytes + n > kBucketBytes) {
          buckets_.push_back(std::move(b));
          b = Bucket{};
          bytes = 0;
        }
        b.members.push_back(i);
        bytes += n;
      }
      if (!b.members.empty()) buckets_.push_back(std::move(b));
    }
    torch::NoGradGuard no_grad;
    for (auto& b : buckets_) {
      std::vector<torch::Tensor> flat;
      for (size_t i : b.members) flat.push_back(tensors_[i].detach().reshape({-1}));
      b.buffer = b.members.size() == 1 ? flat[0].contiguous().clone() : torch::cat(flat);
      std::vector<torch::Tensor> one{b.buffer};
      b.work = op(one);
    }
  }

  void wait() override {
    torch::NoGradGuard no_grad;
    for (auto& b : buckets_) {
      try {
        b.work->wait(timeout_);
      } catch (const std::exception& e) {
        fail(what_, " across ranks failed (a rank exited, or none answered within ", timeout_.count() / 1000,
             " s; TUNE_DIST_TIMEOUT_S): ", first_line(e.what()));
      }
      int64_t offset = 0;
      for (size_t i : b.members) {
        auto& t = tensors_[i];
        t.detach().copy_(b.buffer.narrow(0, offset, t.numel()).view(t.sizes()));
        offset += t.numel();
      }
    }
    buckets_.clear();
  }

 private:
  struct Bucket {
    std::vector<size_t> members;
    torch::Tensor buffer;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<torch::Tensor> tensors_;
  const char* what_;
  milliseconds timeout_;
  std::vector<Bucket> buckets_;
};

class GlooCommunicator final : public train::Communicator {
 public:
  GlooCommunicator(const LaunchEnv& env)
      : rank_(env.rank), size_(env.world_size), timeout_(static_cast<int64_t>(env.timeout_s * 1000)) {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<uint16_t>(env.master_port);
    opts.isServer = !env.agent_store && env.rank == 0;
    if (opts.isServer) opts.numWorkers = env.world_size;
    opts.waitWorkers = false;
    opts.timeout = timeout_;
    c10::intrusive_ptr<c10d::Store> store;
    try {
      store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
    } catch (const std::exception& e) {
      fail("data parallelism: rank ", rank_, " could not ", opts.isServer ? "serve" : "reach", " the TCP store at ",
           env.master_addr, ":", env.master_port, " (MASTER_ADDR, MASTER_PORT): ", first_line(e.what()));
    }
    // A prefix of our own: torchrun's agent store holds its keys beside ours.
    store = c10::make_intrusive<c10d::PrefixStore>("tune/", store);

    auto options = c10d::ProcessGroupGloo::Options::create(timeout_);
    if (const char* ifnames = std::getenv("GLOO_SOCKET_IFNAME"); ifnames && *ifnames) {
      for (const auto& name : split(ifnames, ','))
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(std::string(name)));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    try {
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank_, size_, options);
    } catch (const std::exception& e) {
      fail("data parallelism: rank ", rank_, " of ", size_, " could not form the Gloo group within ",
           env.timeout_s, " s (every rank must start; TUNE_DIST_TIMEOUT_S): ", first_line(e.what()));
    }
  }

  int world_size() const override { return size_; }
  int rank() const override { return rank_; }

  void all_reduce_sum(std::vector<torch::Tensor>& tensors) override { start_all_reduce_sum(tensors)->wait(); }

  std::unique_ptr<train::PendingReduce> start_all_reduce_sum(std::vector<torch::Tensor> tensors) override {
    return std::make_unique<BucketedWork>(std::move(tensors), "all-reduce", timeout_, [&](std::vector<torch::Tensor>& one) {
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::SUM;
      o.timeout = timeout_;
      return group_->allreduce(one, o);
    });
  }

  void broadcast(std::vector<torch::Tensor>& tensors, int root) override {
    TUNE_CHECK(root >= 0 && root < size_, "broadcast: root ", root, " is not a rank of ", size_);
    BucketedWork(tensors, "broadcast", timeout_, [&](std::vector<torch::Tensor>& one) {
      c10d::BroadcastOptions o;
      o.rootRank = root;
      o.timeout = timeout_;
      return group_->broadcast(one, o);
    }).wait();
  }

  void barrier() override {
    c10d::BarrierOptions o;
    o.timeout = timeout_;
    try {
      group_->barrier(o)->wait(timeout_);
    } catch (const std::exception& e) {
      fail("barrier across ranks failed (a rank exited, or none arrived within ", timeout_.count() / 1000,
           " s; TUNE_DIST_TIMEOUT_S): ", first_line(e.what()));
    }
  }

 private:
  int rank_;
  int size_;
  milliseconds timeout_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

}  // namespace

std::shared_ptr<train::Communicator> connect(const LaunchEnv& env) {
  if (env.world_size == 1) return std::make_shared<train::LocalCommunicator>();
  log::info("data parallelism: rank ", env.rank, " of ", env.world_size, " (", env.launcher, "), Gloo over ",
            env.master_addr, ":", env.master_port);
  return std::make_shared<GlooCommunicator>(env);
}

}  // namespace tune::dist
