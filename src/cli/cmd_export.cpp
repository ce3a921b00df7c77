// tune export --model DIR [--adapter DIR] --gguf FILE --type f16|bf16|q8_0|f32: a GGUF file for
// llama.cpp / Ollama. An adapter is first merged into a temporary Hugging Face directory (the same
// merge as `tune merge`); the conversion itself is torch-free (io/gguf_export).
#include "tune/cli/command.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/log.h"
#include "tune/io/gguf_export.h"
#include "tune/lora/peft.h"

namespace tune::cli {

Command add_export(CLI::App& app) {
  struct Args {
    std::string model, adapter, gguf, type = "f16", name;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("export", "a GGUF file (llama.cpp, Ollama) from a model directory, an adapter merged in");
  sub->add_option("--model,-m", a->model, "Hugging Face model directory (the base when --adapter is given)")->required();
  sub->add_option("--adapter", a->adapter, "PEFT LoRA adapter merged into the model first");
  sub->add_option("--gguf,-o", a->gguf, "GGUF file to write (replaced only once complete)")->required();
  sub->add_option("--type", a->type, "f16 | bf16 | q8_0 | f32")->capture_default_str();
  sub->add_option("--name", a->name, "general.name (default: the model directory's name)");
  return {sub, [a] {
            auto type = io::parse_gguf_export_type(a->type);
            if (!type) usage_fail("--type must be f16, bf16, q8_0 or f32, not '", a->type, "'");
            io::GgufExportOptions opt;
            opt.type = *type;
            const std::filesystem::path model(a->model);
            opt.name = !a->name.empty() ? a->name : std::filesystem::absolute(model).lexically_normal().filename().string();
            std::filesystem::path source = model;
            std::filesystem::path merged;
            if (!a->adapter.empty()) {
              merged = fs::temp_sibling(std::filesystem::path(a->gguf).replace_extension(".merged"));
              lora::merge_adapter_to_dir(model, a->adapter, merged);
              source = merged;
            }
            io::GgufExportSummary s;
            try {
              s = io::export_gguf(source, a->gguf, opt);
            } catch (...) {
              std::error_code ec;
              if (!merged.empty()) std::filesystem::remove_all(merged, ec);
              throw;
            }
            std::error_code ec;
            if (!merged.empty()) std::filesystem::remove_all(merged, ec);
            log::info("wrote ", a->gguf, ": ", s.architecture, ", ", s.tensors, " tensors, ", s.parameters,
                      " parameters, ", s.file_bytes, " bytes, tokenizer pre '", s.tokenizer_pre, "'");
            return 0;
          }};
}

}  // namespace tune::cli
