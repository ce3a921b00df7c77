#include "text/sentencepiece.h"

#include <algorithm>
#include <cfloat>
#include <cstdio>
#include <cstring>
#include <queue>

#include "text/unicode.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"

namespace tune::text {

namespace {

constexpr const char* kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped space
constexpr size_t kSpaceBytes = 3;
constexpr float kUnkPenalty = 10.0f;

// ---- protobuf wire format ----------------------------------------------------------------------

class WireReader {
 public:
  WireReader(std::string_view data, const std::string& source) : data_(data), source_(source) {}
  bool done() const { return pos_ >= data_.size(); }

  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      TUNE_CHECK(pos_ < data_.size(), source_, ": truncated protobuf varint at byte ", pos_);
      uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      value |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return value;
    }
    fail(source_, ": protobuf varint longer than 10 bytes at byte ", pos_);
  }
  // Reads a field header; returns (field number, wire type).
  std::pair<uint32_t, uint32_t> tag() {
    uint64_t t = varint();
    return {static_cast<uint32_t>(t >> 3), static_cast<uint32_t>(t & 7)};
  }
  std::string_view bytes() {
    uint64_t len = varint();
    TUNE_CHECK(len <= data_.size() - pos_, source_, ": protobuf field length ", len, " runs past the end");
    std::string_view out = data_.substr(pos_, len);
    pos_ += len;
    return out;
  }
  uint32_t fixed32() {
    TUNE_CHECK(pos_ + 4 <= data_.size(), source_, ": truncated protobuf fixed32");
    uint32_t v;
    std::memcpy(&v, data_.data() + pos_, 4);  // little-endian on every platform we build for
    pos_ += 4;
    return v;
  }
  void skip(uint32_t wire_type) {
    switch (wire_type) {
      case 0: varint(); break;
      case 1:
        TUNE_CHECK(pos_ + 8 <= data_.size(), source_, ": truncated protobuf fixed64");
        pos_ += 8;
        break;
      case 2: bytes(); break;
      case 5: fixed32(); break;
      default: fail(source_, ": unsupported protobuf wire type ", wire_type);
    }
  }
  void expect(uint32_t wire_type, uint32_t want, uint32_t field) {
    TUNE_CHECK(wire_type == want, source_, ": protobuf field ", field, " has wire type ", wire_type, ", expected ",
               want);
  }

 private:
  std::string_view data_;
  const std::string& source_;
  size_t pos_ = 0;
};

float as_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// ---- precompiled character map (a Darts double-array trie) ------------------------------------

// Longest prefix of `key` found in the trie: (value, length) or (-1, 0).
std::pair<int64_t, size_t> longest_prefix(std::string_view trie, std::string_view key) {
  auto unit_at = [&](size_t index) -> uint32_t {
    if ((index + 1) * 4 > trie.size()) return 0;
    uint32_t u;
    std::memcpy(&u, trie.data() + index * 4, 4);
    return u;
  };
  auto offset = [](uint32_t u) -> size_t { return (u >> 10) << ((u & (1u << 9)) >> 6); };
  auto has_leaf = [](uint32_t u) { return ((u >> 8) & 1) != 0; };
  auto label = [](uint32_t u) { return u & ((1u << 31) | 0xFF); };
  auto value = [](uint32_t u) { return static_cast<int64_t>(u & ((1u << 31) - 1)); };

  std::pair<int64_t, size_t> best{-1, 0};
  if (trie.empty()) return best;
  size_t node = 0;
  uint32_t unit = unit_at(node);
  node ^= offset(unit);
  for (size_t i = 0; i < key.size(); ++i) {
    uint8_t c = static_cast<uint8_t>(key[i]);
    if (c == 0) break;
    node ^= c;
    unit = unit_at(node);
    if (label(unit) != c) break;
    node ^= offset(unit);
    if (has_leaf(unit)) best = {value(unit_at(node)), i + 1};
  }
  return best;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(std::string_view proto, const std::string& source) : source_(source) {
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  WireReader model(proto, source);
  while (!model.done()) {
    auto [field, wire] = model.tag();
    if (field == 1) {  // pieces
      model.expect(wire, 2, field);
      WireReader p(model.bytes(), source);
      Piece piece;
      while (!p.done()) {
        auto [f, w] = p.tag();
        if (f == 1) {
          p.expect(w, 2, f);
          piece.text = std::string(p.bytes());
        } else if (f == 2) {
          p.expect(w, 5, f);
          piece.score = as_float(p.fixed32());
        } else if (f == 3) {
          p.expect(w, 0, f);
          uint64_t t = p.varint();
          TUNE_CHECK(t >= 1 && t <= 6, source, ": piece ", pieces_.size(), " has unknown type ", t);
          piece.type = static_cast<PieceType>(t);
        } else {
          p.skip(w);
        }
      }
      pieces_.push_back(std::move(piece));
    } else if (field == 2) {  // trainer_spec
      model.expect(wire, 2, field);
      WireReader t(model.bytes(), source);
      while (!t.done()) {
        auto [f, w] = t.tag();
        if (f == 3) {
          uint64_t type = t.varint();
          TUNE_CHECK(type >= 1 && type <= 4, source, ": unknown trainer_spec.model_type ", type);
          model_type_ = static_cast<ModelType>(type);
        } else if (f == 24) {
          treat_whitespace_as_suffix_ = t.varint() != 0;
        } else if (f == 35) {
          byte_fallback_ = t.varint() != 0;
        } else {
          t.skip(w);
        }
      }
    } else if (field == 3) {  // normalizer_spec
      model.expect(wire, 2, field);
      WireReader n(model.bytes(), source);
      while (!n.done()) {
        auto [f, w] = n.tag();
        if (f == 2) {
          std::string_view blob = n.bytes();
          if (!blob.empty()) {
            TUNE_CHECK(blob.size() >= 4, source, ": precompiled_charsmap is too short");
            uint32_t trie_size;
            std::memcpy(&trie_size, blob.data(), 4);
            TUNE_CHECK(trie_size <= blob.size() - 4, source, ": precompiled_charsmap trie size runs past the end");
            charsmap_trie_ = std::string(blob.substr(4, trie_size));
            charsmap_normalized_ = std::string(blob.substr(4 + trie_size));
          }
        } else if (f == 3) {
          add_dummy_prefix_ = n.varint() != 0;
        } else if (f == 4) {
          remove_extra_whitespaces_ = n.varint() != 0;
        } else if (f == 5) {
          escape_whitespaces_ = n.varint() != 0;
        } else {
          n.skip(w);
        }
      }
    } else {
      model.skip(wire);
    }
  }
  TUNE_CHECK(!pieces_.empty(), source, ": no pieces (not a SentencePiece model?)");
  TUNE_CHECK(model_type_ == ModelType::Bpe || model_type_ == ModelType::Unigram, source,
             ": only BPE and unigram SentencePiece models are supported");
  TUNE_CHECK(!treat_whitespace_as_suffix_, source, ": treat_whitespace_as_suffix is not supported");

  bool have_unk = false;
  min_score_ = FLT_MAX;
  max_score_ = -FLT_MAX;
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const Piece& p = pieces_[i];
    int32_t id = static_cast<int32_t>(i);
    TUNE_CHECK(piece_to_id_.emplace(p.text, id).second, source, ": duplicate piece '", p.text, "'");
    if (p.type == PieceType::Unknown) {
      unk_id_ = id;
      have_unk = true;
    } else if (p.type == PieceType::Byte) {
      unsigned value = 0;
      TUNE_CHECK(p.text.size() == 6 && std::sscanf(p.text.c_str(), "<0x%02X>", &value) == 1, source,
                 ": byte piece '", p.text, "' is not <0xXX>");
      byte_ids_[value] = id;
    } else if (p.type == PieceType::UserDefined) {
      user_defined_.push_back(p.text);
    } else if (p.type == PieceType::Normal) {
      min_score_ = std::min(min_score_, p.score);
      max_score_ = std::max(max_score_, p.score);
    }
    max_piece_bytes_ = std::max(max_piece_bytes_, p.text.size());
  }
  TUNE_CHECK(have_unk, source, ": no <unk> piece");
  std::sort(user_defined_.begin(), user_defined_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  if (byte_fallback_) {
    for (int b = 0; b < 256; ++b)
      TUNE_CHECK(byte_ids_[b] >= 0, source, ": byte_fallback is on but piece <0x", std::hex, b, "> is missing");
  }
  // SentencePiece's conventions: control pieces <s> and </s> are BOS/EOS, BOS is added by default.
  special_.unk = unk_id_;
  if (auto it = piece_to_id_.find("<s>"); it != piece_to_id_.end()) special_.bos = it->second;
  if (auto it = piece_to_id_.find("</s>"); it != piece_to_id_.end()) special_.eos = it->second;
  special_.add_bos = special_.bos.has_value();
}

std::pair<std::string, size_t> SentencePieceTokenizer::normalize_prefix(std::string_view input) const {
  if (!charsmap_trie_.empty()) {
    auto [value, length] = longest_prefix(charsmap_trie_, input);
    if (value >= 0 && static_cast<size_t>(value) < charsmap_normalized_.size()) {
      const char* s = charsmap_normalized_.data() + value;
      return {std::string(s, strnlen(s, charsmap_normalized_.size() - static_cast<size_t>(value))), length};
    }
  }
  size_t pos = 0;
  char32_t cp = unicode::next_codepoint(input, pos);
  if (cp == 0xFFFD && input.compare(0, 3, "\xEF\xBF\xBD") != 0) return {"\xEF\xBF\xBD", pos};
  return {std::string(input.substr(0, pos)), pos};
}

std::string SentencePieceTokenizer::normalize(std::string_view input) const {
  std::string out;
  if (input.empty()) return out;
  if (remove_extra_whitespaces_) {
    while (!input.empty()) {
      auto [text, consumed] = normalize_prefix(input);
      if (text != " ") break;
      input.remove_prefix(consumed);
    }
    if (input.empty()) return out;
  }
  const std::string space = escape_whitespaces_ ? kSpace : " ";
  if (add_dummy_prefix_) out += space;
  bool previous_space = remove_extra_whitespaces_;
  while (!input.empty()) {
    auto [text, consumed] = normalize_prefix(input);
    std::string_view sp = text;
    while (previous_space && sp.starts_with(' ')) sp.remove_prefix(1);
    if (!sp.empty()) {
      for (char c : sp) {
        if (c == ' ')
          out += space;
        else
          out += c;
      }
      previous_space = sp.back() == ' ';
    }
    input.remove_prefix(consumed);
    if (!remove_extra_whitespaces_) previous_space = false;
  }
  if (remove_extra_whitespaces_) {
    while (out.ends_with(space)) out.resize(out.size() - space.size());
  }
  return out;
}

size_t SentencePieceTokenizer::user_defined_prefix(std::string_view text) const {
  for (const std::string& u : user_defined_)
    if (text.starts_with(u)) return u.size();
  return 0;
}

std::optional<int32_t> SentencePieceTokenizer::mergeable_id(std::string_view piece) const {
  auto it = piece_to_id_.find(std::string(piece));
  if (it == piece_to_id_.end()) return std::nullopt;
  PieceType t = pieces_[static_cast<size_t>(it->second)].type;
  if (t == PieceType::Normal || t == PieceType::UserDefined || t == PieceType::Unused) return it->second;
  return std::nullopt;
}

void SentencePieceTokenizer::encode_bpe(std::string_view text,
                                        std::vector<std::pair<std::string_view, int32_t>>& out) const {
  struct Symbol {
    size_t begin, size;
    int32_t prev, next;
    bool frozen;  // a user-defined symbol is never merged
  };
  std::vector<Symbol> symbols;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t len = user_defined_prefix(text.substr(pos));
    bool frozen = len > 0;
    if (!frozen) len = std::min(unicode::utf8_length(static_cast<unsigned char>(text[pos])), text.size() - pos);
    int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({pos, len, index - 1, -1, frozen});
    if (index > 0) symbols[static_cast<size_t>(index - 1)].next = index;
    pos += len;
  }
  // Highest score first, leftmost on ties.
  struct Candidate {
    float score;
    int32_t left, right;
    size_t size;  // combined bytes, to notice a pair that changed since it was queued
    bool operator<(const Candidate& o) const { return score != o.score ? score < o.score : left > o.left; }
  };
  std::priority_queue<Candidate> queue;
  auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& a = symbols[static_cast<size_t>(left)];
    const Symbol& b = symbols[static_cast<size_t>(right)];
    if (a.frozen || b.frozen) return;
    auto id = mergeable_id(text.substr(a.begin, a.size + b.size));
    if (id) queue.push({pieces_[static_cast<size_t>(*id)].score, left, right, a.size + b.size});
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i) consider(static_cast<int32_t>(i), static_cast<int32_t>(i + 1));
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& a = symbols[static_cast<size_t>(top.left)];
    Symbol& b = symbols[static_cast<size_t>(top.right)];
    if (a.size == 0 || b.size == 0 || a.next != top.right || a.size + b.size != top.size) continue;
    a.size += b.size;
    b.size = 0;
    a.next = b.next;
    if (b.next >= 0) symbols[static_cast<size_t>(b.next)].prev = top.left;
    consider(a.prev, top.left);
    consider(top.left, a.next);
  }
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    std::string_view piece = text.substr(symbols[static_cast<size_t>(i)].begin, symbols[static_cast<size_t>(i)].size);
    auto it = piece_to_id_.find(std::string(piece));
    out.emplace_back(piece, it == piece_to_id_.end() ? unk_id_ : it->second);
  }
}

void SentencePieceTokenizer::encode_unigram(std::string_view text,
                                            std::vector<std::pair<std::string_view, int32_t>>& out) const {
  struct Best {
    int32_t id = -1;
    float score = 0;
    int64_t start = -1;  // -1: not reached yet
  };
  const size_t n = text.size();
  std::vector<Best> best(n + 1);
  best[0].start = 0;
  const float unk_score = min_score_ - kUnkPenalty;
  size_t start = 0;
  while (start < n) {
    const float base = best[start].score;
    const size_t char_len = std::min(unicode::utf8_length(static_cast<unsigned char>(text[start])), n - start);
    bool single_char_piece = false;
    size_t user_len = user_defined_prefix(text.substr(start));
    // Every piece that starts here, shortest first (the order a trie walk yields them).
    for (size_t end = start + char_len; end <= n && end - start <= max_piece_bytes_;) {
      auto it = piece_to_id_.find(std::string(text.substr(start, end - start)));
      if (it != piece_to_id_.end()) {
        const Piece& p = pieces_[static_cast<size_t>(it->second)];
        if (p.type == PieceType::Normal || p.type == PieceType::UserDefined) {
          float score = p.type == PieceType::UserDefined && end - start == user_len
                            ? 0.0f
                            : p.score;
          float candidate = base + score;
          Best& target = best[end];
          if (target.start < 0 || candidate > target.score) target = {it->second, candidate, static_cast<int64_t>(start)};
          if (end - start == char_len) single_char_piece = true;
        }
      }
      if (end == n) break;
      end += std::min(unicode::utf8_length(static_cast<unsigned char>(text[end])), n - end);
    }
    if (!single_char_piece) {
      float candidate = base + unk_score;
      Best& target = best[start + char_len];
      if (target.start < 0 || candidate > target.score)
        target = {unk_id_, candidate, static_cast<int64_t>(start)};
    }
    start += char_len;
  }
  std::vector<std::pair<std::string_view, int32_t>> reversed;
  for (size_t end = n; end > 0;) {
    const Best& b = best[end];
    size_t s = static_cast<size_t>(b.start);
    reversed.emplace_back(text.substr(s, end - s), b.id);
    end = s;
  }
  out.insert(out.end(), reversed.rbegin(), reversed.rend());
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::string normalized = normalize(text);
  std::vector<std::pair<std::string_view, int32_t>> pieces;
  if (model_type_ == ModelType::Bpe)
    encode_bpe(normalized, pieces);
  else
    encode_unigram(normalized, pieces);
  // Consecutive unknown pieces become one (SentencePiece does this for both model types).
  std::vector<std::pair<std::string_view, int32_t>> fused;
  fused.reserve(pieces.size());
  for (const auto& [piece, id] : pieces) {
    if (id == unk_id_ && !fused.empty() && fused.back().second == unk_id_ &&
        fused.back().first.data() + fused.back().first.size() == piece.data()) {
      fused.back().first = std::string_view(fused.back().first.data(), fused.back().first.size() + piece.size());
    } else {
      fused.emplace_back(piece, id);
    }
  }
  std::vector<int32_t> ids;
  ids.reserve(fused.size() + 2);
  if (add_special_tokens && special_.add_bos && special_.bos) ids.push_back(*special_.bos);
  for (const auto& [piece, id] : fused) {
    if (id == unk_id_ && byte_fallback_) {
      for (unsigned char b : piece) ids.push_back(byte_ids_[b]);
    } else {
      ids.push_back(id);
    }
  }
  if (add_special_tokens && special_.add_eos && special_.eos) ids.push_back(*special_.eos);
  return ids;
}

std::string SentencePieceTokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string out, bytes;
  bool at_start = true;  // the dummy-prefix space of the first piece is dropped
  auto flush_bytes = [&] {
    if (bytes.empty()) return;
    out += unicode::to_valid_utf8(bytes);
    bytes.clear();
    at_start = false;
  };
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) continue;
    const Piece& p = pieces_[static_cast<size_t>(id)];
    if (p.type == PieceType::Byte) {
      bytes += static_cast<char>(std::stoi(p.text.substr(3, 2), nullptr, 16));
      continue;
    }
    flush_bytes();
    if (p.type == PieceType::Control) continue;
    if (p.type == PieceType::Unknown) {
      out += " \xE2\x81\x87 ";  // SentencePiece's default unk surface
      at_start = false;
      continue;
    }
    std::string_view text = p.text;
    if (at_start && add_dummy_prefix_ && text.starts_with(kSpace)) text.remove_prefix(kSpaceBytes);
    for (size_t i = 0; i < text.size();) {
      if (text.compare(i, kSpaceBytes, kSpace) == 0) {
        out += ' ';
        i += kSpaceBytes;
      } else {
        out += text[i++];
      }
    }
    at_start = false;
  }
  flush_bytes();
  return out;
}

std::optional<int32_t> SentencePieceTokenizer::token_to_id(std::string_view token) const {
  auto it = piece_to_id_.find(std::string(token));
  if (it == piece_to_id_.end()) return std::nullopt;
  return it->second;
}

std::string SentencePieceTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return {};
  return pieces_[static_cast<size_t>(id)].text;
}

bool SentencePieceTokenizer::is_special(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return false;
  PieceType t = pieces_[static_cast<size_t>(id)].type;
  return t == PieceType::Control || t == PieceType::Unknown;
}

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& path) {
  std::string bytes = fs::read_file(path);
  return std::make_unique<SentencePieceTokenizer>(bytes, path.string());
}

}  // namespace tune::text
