#include "text/bpe.h"

#include <cstdio>
#include <queue>

#include "text/unicode.h"
#include "tune/core/error.h"

namespace tune::text {

namespace {
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 1 << 20;
}  // namespace

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  for (const auto& [token, id] : vocab_) max_id_ = std::max(max_id_, id);
  id_to_token_.resize(static_cast<size_t>(max_id_ + 1));
  for (const auto& [token, id] : vocab_) {
    TUNE_CHECK(id >= 0, "BPE vocab: negative id for token '", token, "'");
    id_to_token_[static_cast<size_t>(id)] = token;
  }
  char_ids_.fill(-1);
  for (char32_t c = 0; c < char_ids_.size(); ++c) {
    auto it = vocab_.find(unicode::utf8(c));
    if (it != vocab_.end()) char_ids_[c] = it->second;
  }
  size_t capacity = 16;
  while (capacity < merges.size() * 2) capacity <<= 1;
  merge_table_.assign(capacity, MergeSlot{});
  merge_mask_ = capacity - 1;
  const std::string& prefix = options_.continuing_subword_prefix;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    TUNE_CHECK(ia != vocab_.end(), "BPE merge ", rank, ": token '", a, "' is not in the vocab");
    TUNE_CHECK(ib != vocab_.end(), "BPE merge ", rank, ": token '", b, "' is not in the vocab");
    // With a continuing-subword prefix the right half carries it, the merged token does not repeat it.
    std::string merged = a + (!prefix.empty() && b.starts_with(prefix) ? b.substr(prefix.size()) : b);
    auto im = vocab_.find(merged);
    TUNE_CHECK(im != vocab_.end(), "BPE merge ", rank, ": result '", merged, "' is not in the vocab");
    // A repeated pair keeps its last rank, as a map built in file order does.
    insert_merge(pair_key(ia->second, ib->second), MergeTarget{static_cast<uint32_t>(rank), im->second});
  }
  if (options_.unk_token) {
    auto it = vocab_.find(*options_.unk_token);
    TUNE_CHECK(it != vocab_.end(), "BPE unk_token '", *options_.unk_token, "' is not in the vocab");
    unk_id_ = it->second;
  }
}

namespace {
uint64_t mix(uint64_t key) {  // splitmix64 finalizer
  key ^= key >> 30;
  key *= 0xbf58476d1ce4e5b9ULL;
  key ^= key >> 27;
  key *= 0x94d049bb133111ebULL;
  return key ^ (key >> 31);
}
}  // namespace

void BpeModel::insert_merge(uint64_t key, MergeTarget target) {
  for (uint64_t i = mix(key) & merge_mask_;; i = (i + 1) & merge_mask_) {
    MergeSlot& slot = merge_table_[i];
    if (slot.key == kEmptyKey || slot.key == key) {
      slot.key = key;
      slot.target = target;
      return;
    }
  }
}

const BpeModel::MergeTarget* BpeModel::find_merge(int32_t a, int32_t b) const {
  const uint64_t key = pair_key(a, b);
  for (uint64_t i = mix(key) & merge_mask_;; i = (i + 1) & merge_mask_) {
    const MergeSlot& slot = merge_table_[i];
    if (slot.key == key) return &slot.target;
    if (slot.key == kEmptyKey) return nullptr;
  }
}

std::optional<int32_t> BpeModel::lookup(std::string_view piece) const {
  // One character below U+0200: a table instead of hashing a string.
  if (!piece.empty() && piece.size() <= 2 && unicode::utf8_length(static_cast<unsigned char>(piece[0])) == piece.size()) {
    size_t pos = 0;
    char32_t cp = unicode::next_codepoint(piece, pos);
    if (pos == piece.size() && cp < char_ids_.size() && !(cp == 0xFFFD)) {
      int32_t id = char_ids_[cp];
      if (id < 0) return std::nullopt;
      return id;
    }
  }
  auto it = vocab_.find(std::string(piece));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const { return lookup(token); }

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || id > max_id_) return nullptr;
  const std::string& token = id_to_token_[static_cast<size_t>(id)];
  if (token.empty() && !vocab_.contains(token)) return nullptr;
  return &token;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  if (options_.ignore_merges) {
    if (auto id = lookup(word)) ids.push_back(*id);
  }
  if (ids.empty()) ids = merge_word(word);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::move(key), std::move(ids));
  }
}

std::vector<int32_t> BpeModel::merge_word(std::string_view word) const {
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id) {
    int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, -1, true});
    if (index > 0) symbols[static_cast<size_t>(index - 1)].next = index;
  };
  // A pending run of unknown characters (fused into one unk when fuse_unk is set).
  bool pending_unk = false;
  std::string piece;
  size_t pos = 0;
  while (pos < word.size()) {
    size_t begin = pos;
    pos += unicode::utf8_length(static_cast<unsigned char>(word[pos]));
    if (pos > word.size()) pos = word.size();
    std::string_view ch = word.substr(begin, pos - begin);
    std::optional<int32_t> id;
    const bool first = begin == 0, last = pos == word.size();
    if (options_.continuing_subword_prefix.empty() && options_.end_of_word_suffix.empty()) {
      id = lookup(ch);
    } else {
      piece.clear();
      if (!first) piece += options_.continuing_subword_prefix;
      piece += ch;
      if (last) piece += options_.end_of_word_suffix;
      id = lookup(piece);
    }
    if (id) {
      if (pending_unk) {
        add(*unk_id_);
        pending_unk = false;
      }
      add(*id);
      continue;
    }
    if (options_.byte_fallback) {
      std::vector<int32_t> bytes;
      char name[8];
      for (unsigned char b : ch) {
        std::snprintf(name, sizeof(name), "<0x%02X>", b);
        auto bid = lookup(name);
        if (!bid) break;
        bytes.push_back(*bid);
      }
      if (bytes.size() == ch.size()) {
        // A pending unk stays pending across byte-fallback characters and is emitted before the
        // next in-vocab character, as the reference does.
        for (int32_t b : bytes) add(b);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && !options_.fuse_unk) add(*unk_id_);
      pending_unk = true;
    }
    // Without an unk token the character is dropped, as the reference does.
  }
  if (pending_unk) add(*unk_id_);

  // Min-heap on (rank, position): the lowest rank merges first, leftmost on ties.
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int32_t left) {
    if (left < 0) return;
    int32_t right = symbols[static_cast<size_t>(left)].next;
    if (right < 0) return;
    const MergeTarget* m = find_merge(symbols[static_cast<size_t>(left)].id, symbols[static_cast<size_t>(right)].id);
    if (m) queue.push({m->rank, left, m->new_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    const MergeTarget* m = find_merge(left.id, right.id);
    if (!m || m->new_id != top.new_id || m->rank != top.rank) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;
    consider(left.prev);
    consider(top.pos);
  }
  std::vector<int32_t> ids;
  for (const Symbol& s : symbols)
    if (s.alive) ids.push_back(s.id);
  return ids;
}

}  // namespace tune::text
