// tune import --gguf FILE --out DIR: a Hugging Face model directory from a llama.cpp GGUF file of
// the Llama family (config.json, model.safetensors, tokenizer files, chat template, generation
// config with every EOS id). The reading, dequantising and name mapping are torch-free (io/gguf*);
// this command only converts each tensor to the chosen dtype and publishes the directory at once.
#include <fstream>

#include "tune/cli/command.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/json.h"
#include "tune/core/log.h"
#include "tune/io/gguf.h"
#include "tune/io/gguf_hf.h"
#include "tune/io/safetensors.h"

#include <torch/torch.h>

namespace tune::cli {
namespace {

void import_gguf(const std::filesystem::path& gguf, const std::filesystem::path& out, const std::string& dtype_name) {
  if (dtype_name != "float32" && dtype_name != "bfloat16" && dtype_name != "float16")
    usage_fail("--dtype must be float32, bfloat16 or float16 (got '", dtype_name, "')");
  const torch::ScalarType dtype = dtype_name == "float32" ? torch::kFloat32
                                  : dtype_name == "bfloat16" ? torch::kBFloat16 : torch::kFloat16;
  const io::DType file_dtype = dtype_name == "float32" ? io::DType::F32
                               : dtype_name == "bfloat16" ? io::DType::BF16 : io::DType::F16;
  if (std::filesystem::exists(out) && !std::filesystem::is_empty(out))
    usage_fail(out.string(), " exists and is not empty: choose a new --out directory");

  auto file = io::GgufFile::open(gguf);
  auto tensors = io::gguf_hf_tensors(file);  // every name and shape checked before anything is written
  const auto tmp = fs::temp_sibling(out);
  std::filesystem::create_directories(tmp);
  try {
    io::write_gguf_hf_metadata(file, tmp);
    {
      auto config = Json::parse(fs::read_file(tmp / "config.json"));
      config["torch_dtype"] = dtype_name;
      fs::write_file_atomic(tmp / "config.json", config.dump(2) + "\n");
    }
    // Each tensor is converted as it is dequantised, so memory holds the output dtype only.
    std::vector<torch::Tensor> kept;
    std::vector<io::TensorBytes> entries;
    int64_t values = 0;
    for (const auto& t : tensors) {
      std::vector<float> w = io::gguf_hf_tensor_data(file, t);
      kept.push_back(torch::from_blob(w.data(), t.shape, torch::kFloat32).to(dtype).contiguous().clone());
      values += kept.back().numel();
    }
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto& x = kept[i];
      std::vector<uint64_t> shape(x.sizes().begin(), x.sizes().end());
      entries.push_back({tensors[i].hf_name, file_dtype, shape,
                         std::span<const uint8_t>(static_cast<const uint8_t*>(x.data_ptr()), x.nbytes())});
    }
    io::write_safetensors(tmp / "model.safetensors", entries, {{"format", "pt"}});
    fs::replace_directory(tmp, out);
    log::info("imported ", gguf.string(), ": ", tensors.size(), " tensors, ", values, " parameters (", dtype_name,
              ") -> ", out.string());
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace

Command add_import(CLI::App& app) {
  struct Args {
    std::string gguf, out, dtype = "float32";
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("import", "a Hugging Face model directory from a GGUF file (Llama, Qwen2, Qwen3)");
  sub->add_option("--gguf", a->gguf, "GGUF file (F32/F16/BF16, Q4_0..Q8_0, K-quants)")->required();
  sub->add_option("--out,-o", a->out, "output directory (written atomically; must not exist or be empty)")->required();
  sub->add_option("--dtype", a->dtype, "float32 | bfloat16 | float16")->capture_default_str();
  return {sub, [a] {
            import_gguf(a->gguf, a->out, a->dtype);
            return 0;
          }};
}

}  // namespace tune::cli
