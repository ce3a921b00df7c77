#include "tune/text/synthetic.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <optional>
#include <random>
#include <set>

#include "tune/core/error.h"

namespace tune::text {
namespace {

Json chat_record(const std::string& prompt, const std::string& answer) {
  return Json{{"messages", Json::array({Json{{"role", "user"}, {"content", prompt}},
                                        Json{{"role", "assistant"}, {"content", answer}}})},
              {"answer", answer}};
}

int64_t pow10(int digits) {
  int64_t p = 1;
  for (int i = 0; i < digits; ++i) p *= 10;
  return p;
}

// A plausible wrong answer: one digit off by one, the usual slip of a half-trained model.
// `leading_zero_ok`: reversals may start with 0; sums may not.
std::string digit_slip(const std::string& s, bool leading_zero_ok, std::mt19937_64& rng) {
  while (true) {
    std::string wrong = s;
    size_t pos = std::uniform_int_distribution<size_t>(0, wrong.size() - 1)(rng);
    int digit = wrong[pos] - '0';
    int delta = std::uniform_int_distribution<int>(0, 1)(rng) ? 1 : -1;
    int nd = (digit + delta + 10) % 10;
    if (!leading_zero_ok && pos == 0 && nd == 0 && wrong.size() > 1) continue;
    wrong[pos] = static_cast<char>('0' + nd);
    if (wrong != s) return wrong;
  }
}

// A plausible wrong reversal: half the time two neighbouring digits swapped (order slips), else a
// digit off by one; never the right answer.
std::string reversal_slip(const std::string& s, std::mt19937_64& rng) {
  bool swappable = false;
  for (size_t i = 0; i + 1 < s.size(); ++i) swappable |= s[i] != s[i + 1];
  if (!swappable || std::uniform_int_distribution<int>(0, 1)(rng)) return digit_slip(s, true, rng);
  while (true) {
    size_t pos = std::uniform_int_distribution<size_t>(0, s.size() - 2)(rng);
    if (s[pos] == s[pos + 1]) continue;
    std::string wrong = s;
    std::swap(wrong[pos], wrong[pos + 1]);
    return wrong;
  }
}

}  // namespace

std::vector<std::string> synthetic_task_names() {
  return {"addition", "reverse", "addition_pref", "reverse_pref", "json_answer"};
}

std::vector<std::string> synthetic_format_names() { return {"default", "prompt"}; }

std::string synthetic_answer(const std::string& prompt) {
  if (prompt.rfind("reverse ", 0) == 0) {
    std::string s = prompt.substr(8);
    std::reverse(s.begin(), s.end());
    return s;
  }
  if (prompt.rfind("What is ", 0) == 0 && prompt.size() > 9 && prompt.back() == '?') {
    // json_answer: "What is 57 + 38?" -> "95"
    auto plus = prompt.find(" + ");
    if (plus == std::string::npos) return "";
    try {
      return std::to_string(std::stoll(prompt.substr(8, plus - 8)) + std::stoll(prompt.substr(plus + 3)));
    } catch (const std::exception&) {
      return "";
    }
  }
  auto plus = prompt.find('+');
  if (plus == std::string::npos || prompt.empty() || prompt.back() != '=') return "";
  try {
    int64_t a = std::stoll(prompt.substr(0, plus));
    int64_t b = std::stoll(prompt.substr(plus + 1, prompt.size() - plus - 2));
    return std::to_string(a + b);
  } catch (const std::exception&) {
    return "";
  }
}

std::vector<Json> make_synthetic(const SynthOptions& o) {
  auto names = synthetic_task_names();
  if (std::find(names.begin(), names.end(), o.task) == names.end())
    usage_fail("synthetic: unknown task '", o.task, "' (choose from ", join(names, ", "), ")");
  if (o.digits < 1 || o.digits > 9) usage_fail("synthetic: digits must be in [1, 9], got ", o.digits);
  if (o.count < 0) usage_fail("synthetic: count must be >= 0");
  auto formats = synthetic_format_names();
  if (std::find(formats.begin(), formats.end(), o.format) == formats.end())
    usage_fail("synthetic: unknown format '", o.format, "' (choose from ", join(formats, ", "), ")");
  const bool rl_prompts = o.format == "prompt";
  const bool reversal = o.task == "reverse" || o.task == "reverse_pref";
  const bool preference = o.task == "addition_pref" || o.task == "reverse_pref";
  std::mt19937_64 rng(o.seed);
  std::set<std::string> seen(o.exclude_prompts.begin(), o.exclude_prompts.end());
  const int64_t hi = pow10(o.digits);
  const int64_t space = reversal ? hi : hi * hi;  // distinct prompts: digit strings, or operand pairs
  if (static_cast<int64_t>(seen.size()) + o.count > space)
    usage_fail("synthetic: cannot make ", o.count, " distinct '", o.task, "' prompts with ", o.digits, " digits");
  std::vector<Json> out;
  std::uniform_int_distribution<int64_t> operand(0, hi - 1);
  while (static_cast<int64_t>(out.size()) < o.count) {
    std::string prompt, answer;
    if (reversal) {
      std::string digits;
      for (int i = 0; i < o.digits; ++i) digits += static_cast<char>('0' + operand(rng) % 10);
      prompt = "reverse " + digits;
      answer.assign(digits.rbegin(), digits.rend());
    } else if (o.task == "json_answer") {
      int64_t a = operand(rng), b = operand(rng);
      prompt = str("What is ", a, " + ", b, "?");
      answer = std::to_string(a + b);
    } else {
      int64_t a = operand(rng), b = operand(rng);
      prompt = str(a, "+", b, "=");
      answer = std::to_string(a + b);
    }
    if (!seen.insert(prompt).second) continue;
    if (rl_prompts) {
      out.push_back(Json{{"prompt", prompt}, {"reference", answer}});
    } else if (o.task == "json_answer") {
      // The format is the lesson: the prompt does not ask for it, the answer always has it.
      Json rec = chat_record(prompt, str("{\"answer\": ", answer, "}"));
      out.push_back(rec);
    } else if (!preference) {
      out.push_back(chat_record(prompt, answer));
    } else {
      std::string rejected = reversal ? reversal_slip(answer, rng) : digit_slip(answer, false, rng);
      out.push_back(Json{{"prompt", prompt}, {"chosen", answer}, {"rejected", rejected}});
    }
  }
  return out;
}

std::string synthetic_jsonl(const std::vector<Json>& records) {
  std::string out;
  for (const auto& r : records) out += r.dump() + "\n";
  return out;
}

namespace {

// The prompt of a chat record (its first message) or of a preference / prompt record; nullopt else.
std::optional<std::string> prompt_of(const Json& rec) {
  if (rec.contains("prompt") && rec["prompt"].is_string()) return rec["prompt"].get<std::string>();
  if (rec.contains("messages") && rec["messages"].is_array() && !rec["messages"].empty() &&
      rec["messages"][0].contains("content") && rec["messages"][0]["content"].is_string())
    return rec["messages"][0]["content"].get<std::string>();
  return std::nullopt;
}

// A parameter value of a synthetic source: a plain decimal integer in [lo, hi].
template <class T>
T source_integer(const std::string& source, const std::string& key, std::string_view value, T lo, T hi) {
  T v{};
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || end != value.data() + value.size() || value.empty() || v < lo || v > hi)
    usage_fail("synthetic source '", source, "': ", key, " must be an integer in [", lo, ", ", hi, "], got '", value, "'");
  return v;
}

// The records of a synthetic source; an impossible request names the source.
std::vector<Json> source_records(const std::string& source) {
  SynthOptions options = parse_synthetic_source(source);
  try {
    return make_synthetic(options);
  } catch (const UsageError& e) {
    std::string why = e.what();
    if (why.rfind("synthetic: ", 0) == 0) why = why.substr(11);
    usage_fail("synthetic source '", source, "': ", why);
  }
}

}  // namespace

std::vector<std::string> prompts_of_source(const std::string& source) {
  std::vector<std::string> prompts;
  if (is_synthetic_source(source)) {
    for (const auto& rec : source_records(source))
      if (auto p = prompt_of(rec)) prompts.push_back(*p);
    return prompts;
  }
  std::ifstream in(source);
  if (!in) usage_fail("cannot open the exclusion file ", source);
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (trim(line).empty()) continue;
    Json rec;
    try {
      rec = Json::parse(line);
    } catch (const Json::parse_error&) {
      fail(source, ":", line_no, ": invalid JSON");
    }
    if (auto p = prompt_of(rec)) prompts.push_back(*p);
  }
  return prompts;
}

bool is_synthetic_source(std::string_view path) { return path.rfind(kSynthPrefix, 0) == 0; }

SynthOptions parse_synthetic_source(const std::string& source) {
  if (!is_synthetic_source(source)) usage_fail("not a synthetic source (synth:<task>?...): '", source, "'");
  std::string_view rest = std::string_view(source).substr(std::string_view(kSynthPrefix).size());
  SynthOptions o;
  const size_t q = rest.find('?');
  o.task = std::string(rest.substr(0, q));
  auto names = synthetic_task_names();
  if (std::find(names.begin(), names.end(), o.task) == names.end())
    usage_fail("synthetic source '", source, "': unknown task '", o.task, "' (choose from ", join(names, ", "), ")");
  std::set<std::string> seen;
  std::string_view params = q == std::string_view::npos ? std::string_view() : rest.substr(q + 1);
  while (!params.empty()) {
    const size_t eq = params.find('=');
    if (eq == std::string_view::npos)
      usage_fail("synthetic source '", source, "': expected key=value, got '", params.substr(0, params.find('&')), "'");
    std::string key(params.substr(0, eq));
    if (!seen.insert(key).second) usage_fail("synthetic source '", source, "': ", key, " is given twice");
    if (key == "exclude") {
      // The rest of the string, '&' included, is the excluded source: exclusions can nest.
      std::string excluded(params.substr(eq + 1));
      if (excluded.empty()) usage_fail("synthetic source '", source, "': exclude is empty");
      o.exclude_prompts = prompts_of_source(excluded);
      break;
    }
    const size_t amp = params.find('&');
    std::string_view value = params.substr(eq + 1, amp == std::string_view::npos ? std::string_view::npos : amp - eq - 1);
    if (key == "count") o.count = source_integer<int64_t>(source, key, value, 0, INT64_MAX);
    else if (key == "seed") o.seed = source_integer<uint64_t>(source, key, value, 0, UINT64_MAX);
    else if (key == "digits") o.digits = source_integer<int>(source, key, value, 1, 9);
    else if (key == "format") o.format = std::string(value);  // checked by make_synthetic
    else usage_fail("synthetic source '", source, "': unknown parameter '", key, "' (count, seed, digits, format, exclude)");
    if (amp == std::string_view::npos) break;
    params = params.substr(amp + 1);
    if (params.empty()) usage_fail("synthetic source '", source, "': ends with '&'");
  }
  return o;
}

std::string synthetic_source_jsonl(const std::string& source) {
  return synthetic_jsonl(source_records(source));
}

}  // namespace tune::text
