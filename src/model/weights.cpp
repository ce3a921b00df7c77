#include "tune/model/weights.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cstring>
#include <map>
#include <set>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/json.h"
#include "tune/core/log.h"
#include "tune/io/safetensors.h"

namespace tune::model {
namespace stdfs = std::filesystem;

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

std::optional<torch::ScalarType> torch_dtype_of(io::DType d) {
  switch (d) {
    case io::DType::F32: return torch::kFloat32;
    case io::DType::BF16: return torch::kBFloat16;
    case io::DType::F16: return torch::kFloat16;
    case io::DType::F64: return torch::kFloat64;
    default: return std::nullopt;
  }
}

io::DType io_dtype_of(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return io::DType::F32;
    case torch::kBFloat16: return io::DType::BF16;
    case torch::kFloat16: return io::DType::F16;
    case torch::kFloat64: return io::DType::F64;
    default: fail("cannot save tensors of dtype ", c10::toString(t));
  }
}

std::string config_dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    case torch::kFloat64: return "float64";
    default: return "float32";
  }
}

// The opened weight files of a directory and which file holds each tensor.
struct Checkpoint {
  std::map<std::string, io::SafetensorsFile> files;  // by file name
  std::map<std::string, std::string> where;          // tensor -> file name
};

Checkpoint open_checkpoint(const stdfs::path& dir) {
  Checkpoint ckpt;
  auto open = [&](const std::string& name) -> io::SafetensorsFile& {
    auto it = ckpt.files.find(name);
    if (it == ckpt.files.end()) it = ckpt.files.emplace(name, io::SafetensorsFile::open(dir / name)).first;
    return it->second;
  };
  if (stdfs::exists(dir / kIndexFile)) {
    const auto index_path = (dir / kIndexFile).string();
    Json index = read_json_file(dir / kIndexFile);
    if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object())
      fail(index_path, ": key 'weight_map': missing or not an object");
    for (const auto& [tensor, file] : index.at("weight_map").items()) {
      if (!file.is_string()) fail(index_path, ": key 'weight_map.", tensor, "': expected a file name");
      auto name = file.get<std::string>();
      if (name.find('/') != std::string::npos || name == "..")
        fail(index_path, ": key 'weight_map.", tensor, "': file name '", name, "' leaves the directory");
      ckpt.where[tensor] = name;
      open(name);
    }
    // The index must agree with the files it names.
    for (const auto& [tensor, name] : ckpt.where)
      if (!ckpt.files.at(name).find(tensor))
        fail((dir / name).string(), ": tensor '", tensor, "' listed in ", kIndexFile, " is not in this file");
  } else if (stdfs::exists(dir / kSingleFile)) {
    auto& file = open(kSingleFile);
    for (const auto& info : file.tensors()) ckpt.where[info.name] = kSingleFile;
  } else {
    fail(dir.string(), ": no ", kSingleFile, " or ", kIndexFile, " (expected a Hugging Face model directory)");
  }
  return ckpt;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A tensor viewing (or, if misaligned, copying) the file bytes; valid while the file is open.
torch::Tensor tensor_from_file(const io::SafetensorsFile& file, const io::TensorInfo& info, torch::ScalarType type) {
  std::vector<int64_t> shape(info.shape.begin(), info.shape.end());
  auto bytes = file.data(info);
  const size_t elem = torch::elementSize(type);
  if (reinterpret_cast<uintptr_t>(bytes.data()) % elem == 0)
    return torch::from_blob(const_cast<uint8_t*>(bytes.data()), shape, torch::TensorOptions().dtype(type));
  auto copy = torch::empty(shape, torch::TensorOptions().dtype(type));
  std::memcpy(copy.data_ptr(), bytes.data(), bytes.size());
  return copy;
}

}  // namespace

void load_weights(CausalLM& model, const stdfs::path& dir) {
  Checkpoint ckpt = open_checkpoint(dir);
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    torch::Tensor& param = item.value();
    auto it = ckpt.where.find(name);
    if (it == ckpt.where.end())
      fail(dir.string(), ": tensor '", name, "' missing from ",
           stdfs::exists(dir / kIndexFile) ? kIndexFile : kSingleFile);
    const auto& file = ckpt.files.at(it->second);
    const io::TensorInfo* info = file.find(name);
    const std::string where = (dir / it->second).string();
    std::vector<int64_t> shape(info->shape.begin(), info->shape.end());
    if (shape != param.sizes().vec())
      fail(where, ": tensor '", name, "' has shape ", shape_str(shape), ", expected ", shape_str(param.sizes().vec()));
    auto type = torch_dtype_of(info->dtype);
    if (!type)
      fail(where, ": tensor '", name, "' has dtype ", io::dtype_name(info->dtype), " (supported: F32, BF16, F16, F64)");
    param.copy_(tensor_from_file(file, *info, *type));
    used.insert(name);
  }
  std::vector<std::string> extra;
  for (const auto& [name, file] : ckpt.where) {
    if (used.count(name)) continue;
    if (name.ends_with("rotary_emb.inv_freq")) continue;
    // Some exporters store the tied head anyway; the embedding is the one that counts.
    if (name == "lm_head.weight" && model.config().tie_word_embeddings) continue;
    extra.push_back(name);
  }
  if (!extra.empty()) {
    std::vector<std::string> shown(extra.begin(), extra.begin() + std::min<size_t>(extra.size(), 5));
    log::warn(dir.string(), ": ignoring ", extra.size(), " unexpected tensor(s): ", join(shown, ", "),
              extra.size() > shown.size() ? ", ..." : "");
  }
}

std::shared_ptr<CausalLM> load_pretrained(const stdfs::path& dir, torch::ScalarType dtype, torch::Device device) {
  auto config = ModelConfig::load(dir);
  auto model = std::make_shared<CausalLM>(config, torch::TensorOptions().dtype(dtype).device(device));
  load_weights(*model, dir);
  return model;
}

void save_pretrained(CausalLM& model, const stdfs::path& dir, const SaveOptions& options) {
  // Host copies of every tensor, kept alive until written.
  struct Entry {
    std::string name;
    torch::Tensor data;  // CPU, contiguous
  };
  std::vector<Entry> entries;
  std::optional<torch::ScalarType> saved_type = options.dtype;
  {
    torch::NoGradGuard no_grad;
    for (auto& item : model.named_parameters(/*recurse=*/true)) {
      auto t = item.value().detach();
      if (options.dtype) t = t.to(*options.dtype);
      if (!saved_type) saved_type = t.scalar_type();
      entries.push_back({item.key(), t.to(torch::kCPU).contiguous()});
    }
  }
  // Greedy sharding in state-dict order; a tensor larger than the cap gets a shard of its own.
  std::vector<std::vector<size_t>> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const uint64_t n = entries[i].data.nbytes();
    if (!shards.back().empty() && shard_bytes + n > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += n;
    total_bytes += n;
  }

  const auto tmp = fs::temp_sibling(dir);
  fs::ensure_directory(tmp);
  try {
    const std::map<std::string, std::string> metadata = {{"format", "pt"}};
    Json weight_map = Json::object();
    for (size_t s = 0; s < shards.size(); ++s) {
      std::string file = kSingleFile;
      if (shards.size() > 1) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
        file = buf;
      }
      std::vector<io::TensorBytes> tensors;
      for (size_t i : shards[s]) {
        const auto& t = entries[i].data;
        std::vector<uint64_t> shape(t.sizes().begin(), t.sizes().end());
        tensors.push_back({entries[i].name, io_dtype_of(t.scalar_type()), shape,
                           std::span<const uint8_t>(static_cast<const uint8_t*>(t.data_ptr()), t.nbytes())});
        weight_map[entries[i].name] = file;
      }
      io::write_safetensors(tmp / file, tensors, metadata);
    }
    if (shards.size() > 1) {
      Json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
      write_json_file(tmp / kIndexFile, index);
    }
    ModelConfig config = model.config();
    if (saved_type) config.torch_dtype = config_dtype_name(*saved_type);
    write_json_file(tmp / "config.json", config.to_json());
    if (options.copy_files_from) {
      for (const auto& e : stdfs::directory_iterator(*options.copy_files_from)) {
        const auto name = e.path().filename().string();
        if (!e.is_regular_file() || name == "config.json" || name == kIndexFile || name.ends_with(".safetensors"))
          continue;
        stdfs::copy_file(e.path(), tmp / name, stdfs::copy_options::overwrite_existing);
      }
    }
    fs::replace_directory(tmp, dir);
  } catch (...) {
    std::error_code ec;
    stdfs::remove_all(tmp, ec);
    throw;
  }
}

void init_random(CausalLM& model, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double std = model.config().initializer_range;
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    torch::Tensor& p = item.value();
    auto values = torch::empty(p.sizes(), torch::kFloat32);
    if (name.ends_with("norm.weight")) values.fill_(1.0);
    else if (name.ends_with(".bias")) values.zero_();
    else values.normal_(0.0, std, gen);
    p.copy_(values);
  }
}

}  // namespace tune::model
