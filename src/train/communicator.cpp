#include "tune/train/communicator.h"

#include "tune/core/error.h"

namespace tune::train {

namespace {
std::shared_ptr<Communicator>& world_slot() {
  static std::shared_ptr<Communicator> slot = std::make_shared<LocalCommunicator>();
  return slot;
}
}  // namespace

namespace {
struct Done final : PendingReduce {
  void wait() override {}
};
}  // namespace

std::unique_ptr<PendingReduce> Communicator::start_all_reduce_sum(std::vector<torch::Tensor> tensors) {
  all_reduce_sum(tensors);
  return std::make_unique<Done>();
}

Communicator& world() { return *world_slot(); }

void set_world(std::shared_ptr<Communicator> communicator) {
  TUNE_CHECK(communicator != nullptr, "set_world: no communicator");
  world_slot() = std::move(communicator);
}

std::vector<double> all_reduce_sum(Communicator& comm, std::vector<double> values) {
  if (comm.world_size() == 1 || values.empty()) return values;
  std::vector<torch::Tensor> t{torch::tensor(values, torch::kFloat64)};
  comm.all_reduce_sum(t);
  auto acc = t[0].accessor<double, 1>();
  for (size_t i = 0; i < values.size(); ++i) values[i] = acc[static_cast<int64_t>(i)];
  return values;
}

std::vector<std::string> all_gather_text(Communicator& comm, const std::string& text) {
  if (comm.world_size() == 1) return {text};
  const auto w = static_cast<size_t>(comm.world_size()), me = static_cast<size_t>(comm.rank());
  std::vector<double> lengths(w, 0.0);
  lengths[me] = static_cast<double>(text.size());
  lengths = all_reduce_sum(comm, lengths);
  int64_t longest = 0;
  for (double l : lengths) longest = std::max(longest, static_cast<int64_t>(l));
  // int32 slots: a sum of one non-zero byte and zeros, exact in any reduction order.
  torch::Tensor slots = torch::zeros({static_cast<int64_t>(w), std::max<int64_t>(longest, 1)}, torch::kInt32);
  int32_t* row = slots.data_ptr<int32_t>() + static_cast<int64_t>(me) * slots.size(1);
  for (size_t i = 0; i < text.size(); ++i) row[i] = static_cast<int32_t>(static_cast<unsigned char>(text[i]));
  std::vector<torch::Tensor> t{slots};
  comm.all_reduce_sum(t);
  std::vector<std::string> out(w);
  auto acc = t[0].accessor<int32_t, 2>();
  for (size_t r = 0; r < w; ++r)
    for (int64_t i = 0; i < static_cast<int64_t>(lengths[r]); ++i)
      out[r].push_back(static_cast<char>(static_cast<unsigned char>(acc[static_cast<int64_t>(r)][i])));
  return out;
}

void all_reduce_sums(Communicator& comm, double& scalar, std::map<std::string, double>& sums) {
  if (comm.world_size() == 1) return;
  std::vector<double> values{scalar};
  for (const auto& [k, v] : sums) values.push_back(v);
  values = all_reduce_sum(comm, std::move(values));
  scalar = values[0];
  size_t i = 1;
  for (auto& [k, v] : sums) v = values[i++];
}

std::pair<size_t, size_t> block_share(size_t count, const Communicator& comm) {
  if (!split_evenly(count, comm)) return {0, count};
  const auto w = static_cast<size_t>(comm.world_size()), r = static_cast<size_t>(comm.rank());
  return {count * r / w, count * (r + 1) / w};
}

std::vector<size_t> strided_share(size_t count, const Communicator& comm) {
  std::vector<size_t> out;
  const auto w = static_cast<size_t>(comm.world_size());
  for (size_t i = static_cast<size_t>(comm.rank()); i < count; i += w) out.push_back(i);
  return out;
}

void on_main_rank(Communicator& comm, const char* what, const std::function<void()>& work) {
  if (comm.world_size() == 1) return work();
  std::exception_ptr error;
  if (comm.is_main()) {
    try {
      work();
    } catch (...) {
      error = std::current_exception();
    }
  }
  std::vector<torch::Tensor> failed{torch::tensor({error ? 1.0 : 0.0}, torch::kFloat64)};
  comm.broadcast(failed, 0);
  if (error) std::rethrow_exception(error);
  if (failed[0].item<double>() != 0) fail(what, " failed on rank 0 (its message says why); rank ", comm.rank(), " stops too");
}

namespace {
// Two float64 checksums per tensor: the sum and a position-weighted sum, so that swapped or
// shifted values are caught as well as changed ones.
torch::Tensor checksums(const std::vector<torch::Tensor>& parameters) {
  std::vector<double> sums;
  for (const auto& p : parameters) {
    torch::NoGradGuard no_grad;
    auto flat = p.detach().reshape({-1}).to(torch::kCPU, torch::kFloat64);
    auto weights = torch::arange(1, flat.numel() + 1, flat.options()).remainder(97.0);
    sums.push_back(flat.sum().item<double>());
    sums.push_back((flat * weights).sum().item<double>());
  }
  return torch::tensor(sums, torch::kFloat64);
}
}  // namespace

void verify_equal(Communicator& comm, const std::vector<torch::Tensor>& parameters, const char* what) {
  if (comm.world_size() == 1) return;
  torch::Tensor mine = checksums(parameters);
  std::vector<torch::Tensor> root{mine.clone()};
  comm.broadcast(root, 0);
  // Bit-exact: every rank applied the same all-reduced update to the same start.
  torch::Tensor differs = (mine != root[0]).to(torch::kFloat64);
  std::vector<torch::Tensor> count{differs.clone()};
  comm.all_reduce_sum(count);
  auto bad = count[0].nonzero();
  if (bad.numel() > 0) {
    const int64_t tensor = bad[0][0].item<int64_t>() / 2;
    fail(what, ": the ranks' parameters differ (tensor ", tensor, " of ", parameters.size(), ", on ",
         static_cast<int64_t>(count[0][bad[0][0]].item<double>()), " of ", comm.world_size(),
         " ranks): data parallelism needs the same model and settings on every rank");
  }
}

void broadcast_and_verify(Communicator& comm, const std::vector<torch::Tensor>& parameters, const char* what) {
  if (comm.world_size() == 1) return;
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> data;
    for (const auto& p : parameters) data.push_back(p.detach());
    comm.broadcast(data, 0);
  }
  verify_equal(comm, parameters, what);
}

}  // namespace tune::train
