// tune generate: completions from a model directory (optionally with a PEFT adapter), one prompt
// from --prompt or JSON lines from --input ({"prompt": "..."} or {"messages": [...]}), through the
// rollout engine (one sample per prompt).
#include <fstream>
#include <iostream>

#include "tune/algo/policy.h"
#include "tune/cli/command.h"
#include "tune/cli/model_files.h"
#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/lora/peft.h"
#include "tune/model/weights.h"
#include "tune/rollout/engine.h"
#include "tune/rollout/sampling.h"
#include "tune/text/chat_mask.h"

namespace tune::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::string adapter;
  std::string prompt;
  std::string input;
  std::string template_name;
  bool raw = false;  // no chat template: the prompt text is encoded as is
  int64_t max_new_tokens = 128;
  double temperature = 0.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  double repetition_penalty = 1.0;
  std::vector<std::string> stop;
  uint64_t seed = 0;
  int64_t batch_size = 16;
  std::string device = "auto";
  std::string dtype = "auto";
  bool logprobs = false;
  bool merge_lora = false;
};

struct Request {
  Json messages;   // chat prompt, or null
  std::string text;  // raw prompt
  Json record;     // echoed back in JSONL mode
};

std::vector<Request> read_requests(const GenerateArgs& a) {
  std::vector<Request> out;
  if (!a.prompt.empty()) {
    Request r;
    r.text = a.prompt;
    if (!a.raw) r.messages = Json::array({Json{{"role", "user"}, {"content", a.prompt}}});
    out.push_back(r);
    return out;
  }
  std::ifstream in(a.input);
  if (!in) usage_fail("cannot open --input ", a.input);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (trim(line).empty()) continue;
    Json rec;
    try {
      rec = Json::parse(line);
    } catch (const std::exception&) {
      fail(a.input, ":", n, ": not valid JSON");
    }
    Request r;
    r.record = rec;
    if (rec.contains("messages") && rec["messages"].is_array()) {
      r.messages = rec["messages"];
    } else if (rec.contains("prompt") && rec["prompt"].is_string()) {
      r.text = rec["prompt"].get<std::string>();
      if (!a.raw) r.messages = Json::array({Json{{"role", "user"}, {"content", r.text}}});
    } else {
      fail(a.input, ":", n, ": expected \"prompt\" (string) or \"messages\" (list)");
    }
    out.push_back(std::move(r));
  }
  return out;
}

int run_generate(const GenerateArgs& a) {
  if (a.prompt.empty() == a.input.empty()) usage_fail("give exactly one of --prompt TEXT or --input FILE.jsonl");
  const auto model_dir = model_dir_option(a.model);
  auto tokenizer = load_tokenizer(model_dir);
  auto requests = read_requests(a);

  torch::Device device = algo::resolve_device(a.device);
  auto model = model::load_pretrained(model_dir, algo::resolve_dtype(a.dtype, device), device);
  lora::LoraSet adapter;
  if (!a.adapter.empty()) adapter = lora::load_adapter(*model, a.adapter);

  std::optional<text::RenderFn> render;
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& r : requests) {
    if (r.messages.is_null()) {
      prompts.push_back(tokenizer->encode(r.text, /*add_special_tokens=*/true));
    } else {
      if (!render) render = text::make_renderer(load_template(model_dir, a.template_name), *tokenizer);
      prompts.push_back(tokenizer->encode((*render)(r.messages, true), false));
    }
  }

  rollout::SamplingConfig sampling;
  sampling.max_new_tokens = a.max_new_tokens;
  sampling.temperature = a.temperature;
  sampling.top_k = a.top_k;
  sampling.top_p = a.top_p;
  sampling.repetition_penalty = a.repetition_penalty;
  sampling.stop_strings = a.stop;
  rollout::EngineConfig engine_config;
  engine_config.merge_lora = a.merge_lora;
  rollout::RolloutEngine engine(*model, rollout::engine_options(*tokenizer, engine_config, &adapter));
  // One stream for the whole run: every batch continues it, so a seed fixes every output.
  torch::Generator generator = rollout::make_generator(device, a.seed);

  for (size_t start = 0; start < prompts.size(); start += static_cast<size_t>(a.batch_size)) {
    size_t end = std::min(prompts.size(), start + static_cast<size_t>(a.batch_size));
    std::vector<std::vector<int32_t>> chunk(prompts.begin() + start, prompts.begin() + end);
    auto outs = engine.rollout(chunk, 1, sampling, generator);
    torch::Tensor logprobs = a.logprobs ? outs.logprobs.to(torch::kCPU).contiguous() : torch::Tensor();  // [n, Tc]
    for (size_t i = 0; i < outs.samples.size(); ++i) {
      const auto& sample = outs.samples[i];
      if (!a.prompt.empty()) {
        std::cout << sample.text << "\n";
        continue;
      }
      Json rec = requests[start + i].record;
      rec["completion"] = sample.text;
      // "stop" for an EOS id or a stop string (the OpenAI convention), else "length".
      rec["finish_reason"] = sample.finish == rollout::FinishReason::length ? "length" : "stop";
      if (a.logprobs) {
        const float* row = logprobs[static_cast<int64_t>(i)].data_ptr<float>();
        rec["logprobs"] = std::vector<float>(row, row + sample.completion_length);
      }
      std::cout << rec.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    }
  }
  std::cout.flush();
  return 0;
}

}  // namespace

Command add_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  auto* sub = app.add_subcommand("generate", "generate completions (KV cache, batched, greedy or sampled)");
  sub->add_option("--model,-m", a->model, "Hugging Face model directory, or builtin:tiny")->required();
  sub->add_option("--adapter", a->adapter, "PEFT LoRA adapter directory to apply");
  sub->add_option("--prompt,-p", a->prompt, "one user prompt (rendered with the chat template unless --raw)");
  sub->add_option("--input,-i", a->input, "JSONL of {\"prompt\": ...} or {\"messages\": [...]}; writes records with \"completion\"");
  sub->add_option("--template", a->template_name, "built-in chat template instead of the model's own");
  sub->add_flag("--raw", a->raw, "encode prompts as plain text (no chat template)");
  sub->add_option("--max-new-tokens", a->max_new_tokens, "tokens to generate at most")->capture_default_str();
  sub->add_option("--temperature,-t", a->temperature, "0 = greedy")->capture_default_str();
  sub->add_option("--top-k", a->top_k, "0 = off")->capture_default_str();
  sub->add_option("--top-p", a->top_p, "1 = off")->capture_default_str();
  sub->add_option("--repetition-penalty", a->repetition_penalty, "1 = off")->capture_default_str();
  sub->add_option("--stop", a->stop, "a text that ends a completion (repeatable; kept in the output)");
  sub->add_option("--seed", a->seed, "sampling seed")->capture_default_str();
  sub->add_option("--batch-size", a->batch_size, "prompts generated together")->capture_default_str();
  sub->add_option("--device", a->device, "auto | cpu | cuda[:N]")->capture_default_str();
  sub->add_option("--dtype", a->dtype, "auto | float32 | bfloat16 | float16")->capture_default_str();
  sub->add_flag("--merge-lora", a->merge_lora, "fold the adapter into the weights while generating (faster)");
  sub->add_flag("--logprobs", a->logprobs, "JSONL mode: include the log-prob of each generated token");
  return {sub, [a] { return run_generate(*a); }};
}

}  // namespace tune::cli
