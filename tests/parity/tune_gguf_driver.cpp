// Test driver for the GGUF parity tests (tests/parity/test_gguf.py). Torch-free, not a gtest.
//   tune_gguf_driver dequant TYPE IN OUT COUNT   raw blocks of ggml TYPE (e.g. Q4_K) in IN ->
//                                                COUNT float32 values (little-endian) in OUT
//   tune_gguf_driver import GGUF DIR             config.json, tokenizer files and model.safetensors
//                                                (float32, HF names and row order) in DIR
//   tune_gguf_driver tokenizer GGUF DIR          the tokenizer files only
//   tune_gguf_driver render DIR                  chat template of DIR: {"messages": ..., ...} lines ->
//                                                {"text": ...} lines (tune's Jinja renderer)
//   tune_gguf_driver info GGUF                   one JSON object: version, metadata keys, tensors
//   tune_gguf_driver quant TYPE IN OUT           float32 values (little-endian) in IN -> blocks of
//                                                ggml TYPE (F32, F16, BF16, Q8_0) in OUT
//   tune_gguf_driver export DIR GGUF TYPE [PRE]  io::export_gguf (TYPE f32|f16|bf16|q8_0; PRE
//                                                overrides tokenizer.ggml.pre); prints a JSON summary
//   tune_gguf_driver export-tokenizer DIR GGUF   a vocabulary-only GGUF file (tokenizer metadata)
#include <cstring>
#include <iostream>
#include <string>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/json.h"
#include "tune/io/gguf.h"
#include "tune/io/gguf_export.h"
#include "tune/io/gguf_writer.h"
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
  if (cmd == "quant" && argc == 5) {
    const io::GgmlType type = type_by_name(argv[2]);
    const std::string in = fs::read_file(argv[3]);
    std::vector<float> values(in.size() / 4);
    std::memcpy(values.data(), in.data(), values.size() * 4);
    std::vector<uint8_t> out(io::ggml_nbytes(type, values.size()));
    io::quantize(type, values, out);
    fs::write_file_atomic(argv[4], std::string_view(reinterpret_cast<const char*>(out.data()), out.size()));
    return 0;
  }
  if (cmd == "export" && (argc == 5 || argc == 6)) {
    io::GgufExportOptions options;
    const auto type = io::parse_gguf_export_type(argv[4]);
    if (!type) throw UsageError(std::string("unknown export type ") + argv[4]);
    options.type = *type;
    if (argc == 6) options.tokenizer_pre = argv[5];
    const io::GgufExportSummary s = io::export_gguf(argv[2], argv[3], options);
    Json out = {{"architecture", s.architecture}, {"tokenizer_pre", s.tokenizer_pre}, {"tensors", s.tensors},
                {"parameters", s.parameters},     {"file_bytes", s.file_bytes},       {"tensor_types", s.tensor_types}};
    std::cout << out.dump() << "\n";
    return 0;
  }
  if (cmd == "export-tokenizer" && argc == 4) {
    io::GgufMetadata md = io::gguf_tokenizer_metadata(argv[2]);
    md.insert(md.begin(), {"general.architecture", io::GgufValue::string("llama")});
    io::write_gguf(argv[3], md, {});
    return 0;
  }
  std::cerr << "usage: tune_gguf_driver dequant TYPE IN OUT COUNT | import GGUF DIR | tokenizer GGUF DIR | render DIR | "
               "info GGUF | quant TYPE IN OUT | export DIR GGUF TYPE [PRE] | export-tokenizer DIR GGUF\n";
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
