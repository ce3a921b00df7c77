#include "tune/core/clock.h"
#include "tune/train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <sstream>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/log.h"
#include "tune/train/stepper.h"
#include "tune/version.h"

namespace tune::train {

namespace stdfs = std::filesystem;

namespace {

constexpr int kFormat = 1;
constexpr const char* kIndexFile = "checkpoints.json";
constexpr const char* kLatestFile = "latest";

std::string checkpoint_name(int64_t step) { return tune::str("checkpoint-", step); }

// Data must reach the disk before the rename publishes the directory, or a power loss could leave a
// complete-looking checkpoint with empty files.
void fsync_path(const stdfs::path& path, bool directory) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) fail("cannot open ", path.string(), " to flush it");
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail("cannot flush ", path.string(), " to disk");
}

void fsync_tree(const stdfs::path& dir) {
  for (const auto& entry : stdfs::directory_iterator(dir))
    if (entry.is_regular_file()) fsync_path(entry.path(), false);
  fsync_path(dir, true);
}


std::string tensor_key(size_t i) { return tune::str("p", i); }

bool is_complete_checkpoint(const stdfs::path& dir) { return stdfs::is_regular_file(dir / "state.json"); }

// "checkpoint-<digits>" -> step; nullopt for anything else (temporaries included).
std::optional<int64_t> step_of(const std::string& name) {
  const std::string prefix = "checkpoint-";
  if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size()) return std::nullopt;
  std::string digits = name.substr(prefix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  return std::stoll(digits);
}

torch::Generator cuda_generator(int index) {
  return torch::globalContext().defaultGenerator(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index)));
}

}  // namespace

torch::Tensor cpu_rng_state() { return torch::globalContext().defaultGenerator(torch::kCPU).get_state(); }

void set_cpu_rng_state(const torch::Tensor& state) {
  auto gen = torch::globalContext().defaultGenerator(torch::kCPU);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

std::string engine_state(const std::mt19937_64& engine) {
  std::ostringstream out;
  out << engine;
  return out.str();
}

void set_engine_state(std::mt19937_64& engine, const std::string& state) {
  std::istringstream in(state);
  std::mt19937_64 restored;
  in >> restored;
  TUNE_CHECK(!in.fail(), "checkpoint: the data-shuffling RNG state is corrupt");
  engine = restored;
}

CheckpointManager::CheckpointManager(stdfs::path run_dir, CheckpointPolicy policy)
    : run_dir_(std::move(run_dir)), policy_(std::move(policy)) {
  if (!stdfs::is_directory(run_dir_)) return;
  // Leftovers of an interrupted save, "checkpoint-<step>.tmp-*": a half-written one, or (a crash in
  // the middle of replacing checkpoint-<step>) the complete previous or new copy moved aside. When
  // checkpoint-<step> itself is missing, the newest complete leftover is that checkpoint: restore it.
  std::map<int64_t, std::vector<stdfs::path>> leftovers;
  for (const auto& entry : stdfs::directory_iterator(run_dir_)) {
    std::string name = entry.path().filename().string();
    const size_t tmp = name.find(".tmp-");
    if (!entry.is_directory() || name.rfind("checkpoint-", 0) != 0 || tmp == std::string::npos) continue;
    if (auto step = step_of(name.substr(0, tmp))) leftovers[*step].push_back(entry.path());
    else leftovers[-1].push_back(entry.path());
  }
  for (auto& [step, dirs] : leftovers) {
    const stdfs::path final_dir = run_dir_ / checkpoint_name(step);
    std::optional<stdfs::path> restore;
    if (step >= 0 && !stdfs::exists(final_dir)) {
      for (const auto& d : dirs)
        if (is_complete_checkpoint(d) &&
            (!restore || stdfs::last_write_time(d / "state.json") > stdfs::last_write_time(*restore / "state.json")))
          restore = d;
    }
    for (const auto& d : dirs) {
      std::error_code ec;
      if (restore && d == *restore) {
        stdfs::rename(d, final_dir, ec);
        if (ec) fail("cannot restore the checkpoint ", d.string(), " to ", final_dir.string(), ": ", ec.message());
        log::warn("restored ", final_dir.string(), " from ", d.filename().string(), ", left by an interrupted save");
        continue;
      }
      log::warn("removing ", d.string(), ", left by an interrupted save");
      stdfs::remove_all(d, ec);
    }
  }
}

stdfs::path CheckpointManager::save(const TrainingState& state, std::optional<double> eval_metric,
                                    std::optional<int64_t> step_override) {
  TUNE_CHECK(state.stepper || step_override, "checkpoint: no stepper and no step given");
  const int64_t step = step_override ? *step_override : state.stepper->steps_done();
  fs::ensure_directory(run_dir_);
  const stdfs::path final_dir = run_dir_ / checkpoint_name(step);
  const stdfs::path tmp = fs::temp_sibling(final_dir);
  fs::ensure_directory(tmp);
  auto stage = [&](std::string_view name) {
    if (on_save_stage) on_save_stage(name);
  };
  try {
    Json names = Json::array();
    {
      torch::serialize::OutputArchive archive;
      for (size_t i = 0; i < state.parameters.size(); ++i) {
        const auto& [name, tensor] = state.parameters[i];
        archive.write(tensor_key(i), tensor.detach().to(torch::kCPU));
        names.push_back(Json{{"name", name}, {"shape", tensor.sizes().vec()}});
      }
      archive.save_to((tmp / "parameters.pt").string());
    }
    stage("parameters");
    if (state.optimizer) {
      torch::serialize::OutputArchive archive;
      state.optimizer->save(archive);
      archive.save_to((tmp / "optimizer.pt").string());
    }
    stage("optimizer");
    {
      torch::serialize::OutputArchive archive;
      archive.write("cpu", cpu_rng_state());
      for (int i = 0; i < static_cast<int>(torch::cuda::device_count()); ++i)
        archive.write(tune::str("cuda", i), cuda_generator(i).get_state());
      archive.save_to((tmp / "rng.pt").string());
    }
    stage("rng");
    Json j{{"format", kFormat},
           {"step", step},
           {"created", utc_timestamp()},
           {"tune_version", TUNE_VERSION},
           {"parameters", names},
           {"stepper", state.stepper ? state.stepper->state() : Json()},
           {"shuffle_rng", state.shuffle_rng ? Json(engine_state(*state.shuffle_rng)) : Json()},
           {"data_position", state.data_position},
           {"metrics", state.metrics},
           {"eval_metric", eval_metric ? Json(*eval_metric) : Json()}};
    write_json_file(tmp / "state.json", j);
    stage("state");
    fsync_tree(tmp);
  } catch (...) {
    std::error_code ec;
    stdfs::remove_all(tmp, ec);
    throw;
  }
  fs::replace_directory(tmp, final_dir);
  fsync_path(run_dir_, true);

  // Bookkeeping after the checkpoint is complete: a crash here loses at most the index update, and
  // latest() falls back to scanning the directory.
  Json index = read_index();
  Json& list = index["checkpoints"];
  Json kept = Json::array();
  for (auto& e : list)
    if (e.at("step").get<int64_t>() != step) kept.push_back(e);
  kept.push_back(Json{{"step", step}, {"dir", checkpoint_name(step)}, {"metric", eval_metric ? Json(*eval_metric) : Json()}});
  std::sort(kept.begin(), kept.end(), [](const Json& a, const Json& b) { return a.at("step") < b.at("step"); });
  list = kept;
  prune(index);
  write_json_file(run_dir_ / kIndexFile, index);
  fs::write_file_atomic(run_dir_ / kLatestFile, checkpoint_name(step) + "\n");
  return final_dir;
}

Json CheckpointManager::read_index() const {
  Json index;
  if (stdfs::exists(run_dir_ / kIndexFile)) index = read_json_file(run_dir_ / kIndexFile);
  if (!index.is_object()) index = Json::object();
  index["metric_name"] = policy_.metric_name;
  index["greater_is_better"] = policy_.greater_is_better;
  if (!index.contains("checkpoints") || !index["checkpoints"].is_array()) index["checkpoints"] = Json::array();
  // Forget entries whose directory is gone (deleted by hand).
  Json present = Json::array();
  for (auto& e : index["checkpoints"])
    if (e.contains("dir") && is_complete_checkpoint(run_dir_ / e["dir"].get<std::string>())) present.push_back(e);
  index["checkpoints"] = present;
  return index;
}

void CheckpointManager::prune(Json& index) const {
  Json& list = index["checkpoints"];
  // The best one by the eval metric (first among equals: the earliest).
  Json best;
  if (!policy_.metric_name.empty()) {
    for (auto& e : list) {
      if (!e["metric"].is_number()) continue;
      double v = e["metric"].get<double>();
      if (best.is_null() || (policy_.greater_is_better ? v > best["metric"].get<double>() : v < best["metric"].get<double>()))
        best = e;
    }
  }
  index["best"] = best.is_null() ? Json() : best["dir"];
  if (policy_.keep_last <= 0) return;
  Json kept = Json::array();
  const size_t n = list.size(), keep = static_cast<size_t>(policy_.keep_last);
  for (size_t i = 0; i < n; ++i) {
    bool recent = i + keep >= n;
    bool is_best = !best.is_null() && list[i]["dir"] == best["dir"];
    if (recent || is_best) {
      kept.push_back(list[i]);
    } else {
      std::error_code ec;
      stdfs::remove_all(run_dir_ / list[i]["dir"].get<std::string>(), ec);
      if (ec) log::warn("cannot remove old checkpoint ", list[i]["dir"].get<std::string>(), ": ", ec.message());
    }
  }
  list = kept;
}

std::optional<stdfs::path> CheckpointManager::latest() const {
  const stdfs::path pointer = run_dir_ / kLatestFile;
  if (stdfs::is_regular_file(pointer)) {
    stdfs::path dir = run_dir_ / std::string(trim(fs::read_file(pointer)));
    if (is_complete_checkpoint(dir)) return dir;
  }
  // No pointer (or it names something gone): the highest complete checkpoint-<step>.
  std::optional<std::pair<int64_t, stdfs::path>> found;
  if (!stdfs::is_directory(run_dir_)) return std::nullopt;
  for (const auto& entry : stdfs::directory_iterator(run_dir_)) {
    auto step = step_of(entry.path().filename().string());
    if (step && is_complete_checkpoint(entry.path()) && (!found || *step > found->first)) found = {{*step, entry.path()}};
  }
  if (!found) return std::nullopt;
  return found->second;
}

std::optional<stdfs::path> CheckpointManager::best() const {
  if (!stdfs::exists(run_dir_ / kIndexFile)) return std::nullopt;
  Json index = read_json_file(run_dir_ / kIndexFile);
  if (!index.contains("best") || !index["best"].is_string()) return std::nullopt;
  stdfs::path dir = run_dir_ / index["best"].get<std::string>();
  if (!is_complete_checkpoint(dir)) return std::nullopt;
  return dir;
}

void CheckpointManager::load(const stdfs::path& dir, TrainingState& state) const {
  TUNE_CHECK(is_complete_checkpoint(dir), "checkpoint ", dir.string(), " is missing or incomplete (no state.json)");
  Json j = read_json_file(dir / "state.json");
  TUNE_CHECK(j.value("format", 0) == kFormat, "checkpoint ", dir.string(), " has format ", j.value("format", 0),
             ", this build reads format ", kFormat);

  // Parameters by name: every trainable parameter must be there with the same shape.
  const Json& names = j.at("parameters");
  std::map<std::string, size_t> index_of;
  for (size_t i = 0; i < names.size(); ++i) index_of[names[i].at("name").get<std::string>()] = i;
  TUNE_CHECK(index_of.size() == state.parameters.size(), "checkpoint ", dir.string(), " holds ", index_of.size(),
             " trainable parameters but the run has ", state.parameters.size(),
             " (different model, LoRA settings or frozen layers?)");
  {
    torch::serialize::InputArchive archive;
    archive.load_from((dir / "parameters.pt").string());
    torch::NoGradGuard no_grad;
    for (auto& [name, tensor] : state.parameters) {
      auto it = index_of.find(name);
      TUNE_CHECK(it != index_of.end(), "checkpoint ", dir.string(), " has no parameter '", name, "'");
      torch::Tensor saved;
      archive.read(tensor_key(it->second), saved);
      TUNE_CHECK(saved.sizes() == tensor.sizes(), "checkpoint ", dir.string(), ": parameter '", name, "' has shape ",
                 saved.sizes(), ", the model has ", tensor.sizes());
      tensor.copy_(saved);
    }
  }
  if (state.optimizer) {
    TUNE_CHECK(stdfs::exists(dir / "optimizer.pt"), "checkpoint ", dir.string(), " has no optimizer state");
    torch::serialize::InputArchive archive;
    auto params = optimizer_parameters(*state.optimizer);
    std::optional<torch::Device> device;
    if (!params.empty()) device = params.front().device();
    archive.load_from((dir / "optimizer.pt").string(), device);
    state.optimizer->load(archive);
  }
  {
    torch::serialize::InputArchive archive;
    archive.load_from((dir / "rng.pt").string());
    torch::Tensor cpu;
    archive.read("cpu", cpu);
    set_cpu_rng_state(cpu);
    for (int i = 0; i < static_cast<int>(torch::cuda::device_count()); ++i) {
      torch::Tensor s;
      if (archive.try_read(tune::str("cuda", i), s)) {
        auto gen = cuda_generator(i);
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(s);
      }
    }
  }
  if (state.stepper) state.stepper->load_state(j.at("stepper"));
  if (state.shuffle_rng) {
    TUNE_CHECK(j.at("shuffle_rng").is_string(), "checkpoint ", dir.string(), " has no data-shuffling RNG state");
    set_engine_state(*state.shuffle_rng, j.at("shuffle_rng").get<std::string>());
  }
  state.data_position = j.at("data_position");
  state.metrics = j.at("metrics");
}

}  // namespace tune::train
