// tune score: rewards from a reward model (`tune rm` output, full or LoRA layout) for JSONL records
//   {"prompt": P, "response": R}  (or "completion", as `tune generate` writes)  -> + "score"
//   {"messages": [..., {"role": "assistant", ...}]}                          -> + "score"
//   {"prompt": P, "chosen": A, "rejected": B}                                 -> + "chosen_score", "rejected_score"
// With reward_stats.json beside the model, "score_normalized" = (score - mean) / std is added too.
#include <fstream>
#include <iostream>

#include "tune/algo/policy.h"
#include "tune/algo/reward_head.h"
#include "tune/cli/command.h"
#include "tune/cli/model_files.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/log.h"
#include "tune/data/collate.h"
#include "tune/text/chat_mask.h"

namespace tune::cli {
namespace {

struct ScoreArgs {
  std::string reward_model;
  std::string input;
  std::string output;
  std::string base;
  std::string template_name;
  int64_t batch_size = 16;
  int64_t max_seq_len = 4096;
  std::string device = "auto";
  std::string dtype = "auto";
  bool with_ids = false;  // include the scored token ids (checks, debugging)
};

text::Message message_of(const Json& m, const std::string& where) {
  if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["content"].is_string())
    fail(where, ": each message needs string \"role\" and \"content\"");
  return {m["role"].get<std::string>(), m["content"].get<std::string>()};
}

// A record -> the prompt messages and 1 (response) or 2 (chosen, rejected) answers.
struct Item {
  std::vector<text::Message> prompt;
  std::vector<std::string> answers;
};

Item parse_record(const Json& rec, const std::string& where) {
  Item item;
  auto text_field = [&](const char* key) -> std::optional<std::string> {
    if (!rec.contains(key)) return std::nullopt;
    if (!rec[key].is_string()) fail(where, ": \"", key, "\" must be a string");
    return rec[key].get<std::string>();
  };
  if (rec.contains("messages")) {
    if (!rec["messages"].is_array() || rec["messages"].empty()) fail(where, ": \"messages\" must be a non-empty list");
    for (const auto& m : rec["messages"]) item.prompt.push_back(message_of(m, where));
    if (item.prompt.back().role != "assistant") fail(where, ": the last message must be the assistant's answer to score");
    item.answers.push_back(item.prompt.back().content);
    item.prompt.pop_back();
    return item;
  }
  auto prompt = text_field("prompt");
  if (!prompt) fail(where, ": expected \"prompt\" with \"response\" (or \"completion\", or \"chosen\"/\"rejected\"), or \"messages\"");
  item.prompt.push_back({"user", *prompt});
  if (auto c = text_field("chosen")) {
    auto r = text_field("rejected");
    if (!r) fail(where, ": \"chosen\" without \"rejected\"");
    item.answers = {*c, *r};
  } else if (auto resp = text_field("response")) {
    item.answers = {*resp};
  } else if (auto comp = text_field("completion")) {
    item.answers = {*comp};
  } else {
    fail(where, ": no \"response\", \"completion\" or \"chosen\"/\"rejected\" to score");
  }
  return item;
}

int run_score(const ScoreArgs& a) {
  torch::Device device = algo::resolve_device(a.device);
  auto rm = algo::load_reward_model(a.reward_model, algo::resolve_dtype(a.dtype, device), device, a.base);
  auto tokenizer = load_tokenizer(rm.tokenizer_dir);
  text::ChatMasker masker(*tokenizer, text::make_renderer(load_template(rm.tokenizer_dir, a.template_name), *tokenizer));
  const int32_t pad_id = rm.stats.contains("pad_token_id") ? rm.stats["pad_token_id"].get<int32_t>()
                                                           : (tokenizer->special().pad ? *tokenizer->special().pad : 0);
  const bool normalise = rm.stats.contains("mean") && rm.stats.contains("std") && rm.stats["std"].get<double>() > 0;

  std::ifstream in(a.input);
  if (!in) usage_fail("cannot open --input ", a.input);
  std::vector<Json> records;
  std::vector<text::TokenizedSample> seqs;
  std::vector<std::pair<size_t, size_t>> spans;  // per record: first sequence, count
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (trim(line).empty()) continue;
    const std::string where = str(a.input, ":", n);
    Json rec;
    try {
      rec = Json::parse(line);
    } catch (const std::exception&) {
      fail(where, ": not valid JSON");
    }
    Item item = parse_record(rec, where);
    spans.emplace_back(seqs.size(), item.answers.size());
    for (const auto& answer : item.answers) {
      // The same rendering as training: prompt + completion through the chat template.
      text::Sample s;
      s.kind = text::SampleKind::preference;
      s.messages = item.prompt;
      s.chosen = {{"assistant", answer}};
      s.rejected = s.chosen;
      s.where = where;
      auto seq = masker.pair(s).chosen;
      if (static_cast<int64_t>(seq.input_ids.size()) > a.max_seq_len) {
        seq.input_ids.erase(seq.input_ids.begin(), seq.input_ids.end() - a.max_seq_len);  // keep the end
        seq.labels.erase(seq.labels.begin(), seq.labels.end() - a.max_seq_len);
      }
      seqs.push_back(std::move(seq));
    }
    records.push_back(std::move(rec));
  }

  std::vector<double> scores(seqs.size());
  {
    torch::NoGradGuard no_grad;
    data::CollateOptions opts;
    opts.pad_id = pad_id;
    for (size_t i = 0; i < seqs.size(); i += static_cast<size_t>(a.batch_size)) {
      std::vector<const text::TokenizedSample*> chunk;
      for (size_t j = i; j < std::min(seqs.size(), i + static_cast<size_t>(a.batch_size)); ++j) chunk.push_back(&seqs[j]);
      data::Batch b = data::collate(chunk, opts);
      b.input_ids = b.input_ids.to(device);
      b.attention_mask = b.attention_mask.to(device);
      b.position_ids = b.position_ids.to(device);
      torch::Tensor r = algo::sequence_rewards(*rm.model, rm.score, b).to(torch::kCPU).to(torch::kFloat64);  // [B]
      for (size_t j = 0; j < chunk.size(); ++j) scores[i + j] = r[static_cast<int64_t>(j)].item<double>();
    }
  }

  std::string out;
  const double mean = normalise ? rm.stats["mean"].get<double>() : 0.0;
  const double std = normalise ? rm.stats["std"].get<double>() : 1.0;
  for (size_t k = 0; k < records.size(); ++k) {
    Json rec = records[k];
    auto [first, count] = spans[k];
    if (a.with_ids) {
      Json ids = Json::array();
      for (size_t j = first; j < first + count; ++j) ids.push_back(seqs[j].input_ids);
      rec["input_ids"] = ids;
    }
    if (count == 1) {
      rec["score"] = scores[first];
      if (normalise) rec["score_normalized"] = (scores[first] - mean) / std;
    } else {
      rec["chosen_score"] = scores[first];
      rec["rejected_score"] = scores[first + 1];
    }
    out += rec.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  }
  if (a.output.empty()) {
    std::cout << out;
    std::cout.flush();
  } else {
    fs::write_file_atomic(a.output, out);
    log::info("scored ", seqs.size(), " responses of ", records.size(), " records -> ", a.output);
  }
  return 0;
}

}  // namespace

Command add_score(CLI::App& app) {
  auto a = std::make_shared<ScoreArgs>();
  auto* sub = app.add_subcommand("score", "score prompt/response records with a reward model (tune rm output)");
  sub->add_option("--reward-model,-r", a->reward_model, "reward model directory (full or LoRA layout)")->required();
  sub->add_option("--input,-i", a->input, "JSONL: {prompt, response|completion} | {messages} | {prompt, chosen, rejected}")
      ->required();
  sub->add_option("--output,-o", a->output, "write JSONL here instead of stdout");
  sub->add_option("--base", a->base, "base model directory of a LoRA reward model (default: from adapter_config.json)");
  sub->add_option("--template", a->template_name, "built-in chat template instead of the model's own");
  sub->add_option("--batch-size", a->batch_size, "sequences per forward pass")->capture_default_str();
  sub->add_option("--max-seq-len", a->max_seq_len, "longer sequences keep their last tokens")->capture_default_str();
  sub->add_option("--device", a->device, "auto | cpu | cuda[:N]")->capture_default_str();
  sub->add_option("--dtype", a->dtype, "auto | float32 | bfloat16 | float16")->capture_default_str();
  sub->add_flag("--with-ids", a->with_ids, "add \"input_ids\" (one list per scored answer) to each record");
  return {sub, [a] { return run_score(*a); }};
}

}  // namespace tune::cli
