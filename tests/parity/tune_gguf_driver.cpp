// Test driver for the GGUF parity tests (tests/parity/test_gguf.py). Torch-free, not a gtest.
//   tune_gguf_driver dequant TYPE IN OUT COUNT   raw blocks of ggml TYPE (e.g. Q4_K) in IN ->
//                                                COUNT float32 values (little-endian) in OUT
//   tune_gguf_driver import GGUF DIR             config.json, tokenizer files and model.safetensors
//                                                (float32, HF names and row order) in DIR
//   tune_gguf_driver tokenizer GGUF DIR          the tokenizer files only
//   tune_gguf_driver render DIR                  chat template of DIR: {"messages": ..., ...} lines ->
//                                                {"text": ...} lines (tune's Jinja renderer)
//   tune_gguf_driver info GGUF                   one JSON object: version, metadata keys, tensors
#include <cstring>
#include <iostream>
#include <string>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/json.h"
#include "tune/io/gguf.h"
#include "tune/io/gguf_hf.h"
#include "tune/io/safetensors.h"
#include "tune/text/chat_template.h"

namespace {

using namespace tune;

io::GgmlType type_by_name(const std::string& name) {
  for (uint32_t id = 0; id < 64; ++id)
    if (auto t = io::ggml_type_traits(id); t && t->name == name) return t->type;
  throw UsageError("unknown ggml type " + name);
}

int run(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "dequant" && argc == 6) {
    const io::GgmlType type = type_by_name(argv[2]);
    const std::string in = fs::read_file(argv[3]);
    std::vector<float> out(std::stoull(argv[5]));
    io::dequantize(type, {reinterpret_cast<const uint8_t*>(in.data()), in.size()}, out);
    fs::write_file_atomic(argv[4], std::string_view(reinterpret_cast<const char*>(out.data()), out.size() * 4));
    return 0;
  }
  if (cmd == "import" && argc == 4) {
    const io::GgufFile file = io::GgufFile::open(argv[2]);
    const std::filesystem::path dir = argv[3];
    io::write_gguf_hf_metadata(file, dir);
    std::vector<std::vector<float>> data;
    std::vector<io::TensorBytes> tensors;
    const auto hf = io::gguf_hf_tensors(file);
    data.reserve(hf.size());
    for (const auto& t : hf) {
      data.push_back(io::gguf_hf_tensor_data(file, t));
      std::vector<uint64_t> shape(t.shape.begin(), t.shape.end());
      tensors.push_back({t.hf_name, io::DType::F32, shape,
                         {reinterpret_cast<const uint8_t*>(data.back().data()), data.back().size() * 4}});
    }
    io::write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
    return 0;
  }
  if (cmd == "tokenizer" && argc == 4) {
    io::write_gguf_hf_tokenizer(io::GgufFile::open(argv[2]), argv[3]);
    return 0;
  }
  if (cmd == "render" && argc == 3) {
    auto tmpl = text::load_chat_template(argv[2]);
    if (!tmpl) throw Error(std::string(argv[2]) + ": no chat template");
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.empty()) continue;
      Json out = {{"text", tmpl->render(Json::parse(line))}};
      std::cout << out.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    }
    return 0;
  }
  if (cmd == "info" && argc == 3) {
    const io::GgufFile file = io::GgufFile::open(argv[2]);
    Json out;
    out["version"] = file.version();
    out["alignment"] = file.alignment();
    out["data_offset"] = file.data_offset();
    Json meta = Json::object();
    for (const auto& key : file.metadata_order()) meta[key] = file.metadata().at(key).describe();
    out["metadata"] = meta;
    Json tensors = Json::array();
    for (const auto& t : file.tensors())
      tensors.push_back({{"name", t.name}, {"dims", t.dims}, {"type", io::ggml_type_name(t.type)}, {"offset", t.offset}});
    out["tensors"] = tensors;
    std::cout << out.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::cerr << "usage: tune_gguf_driver dequant TYPE IN OUT COUNT | import GGUF DIR | tokenizer GGUF DIR | render DIR | info GGUF\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const tune::UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
