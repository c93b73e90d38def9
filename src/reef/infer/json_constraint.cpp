// JSON Schema constrained decoding (see json_constraint.h).
#include "reef/infer/json_constraint.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "reef/base/error.h"
#include "reef/infer/json_grammar_node.h"

namespace reef {

using json = nlohmann::json;

namespace {

using Node = JsonGrammar::Node;
using json_grammar::kBig;
constexpr int64_t kMaxIntDigits = 16, kMaxFracDigits = 16, kMaxExpDigits = 2;

}  // namespace

// ---- the recognizer ----

namespace {

using Frame = JsonMatcher::Frame;
using Thread = JsonMatcher::Thread;

bool is_ws(unsigned char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_hex(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

Frame value_frame(const Node* node) {
  Frame f;
  f.type = Frame::kValue;
  f.node = node;
  return f;
}

bool all_required_seen(const Frame& f) {
  for (size_t i = 0; i < f.node->keys.size(); ++i)
    if (f.node->required[i] && !(f.seen >> i & 1)) return false;
  return true;
}

// Bytes the object's remaining required keys need (each with its comma), leaving out key `but`.
int64_t required_rest(const Frame& f, int but) {
  int64_t m = 0;
  const Node& n = *f.node;
  for (size_t i = 0; i < n.keys.size(); ++i) {
    if (!n.required[i] || (f.seen >> i & 1) || static_cast<int>(i) == but) continue;
    m += 1 + static_cast<int64_t>(n.keys[i].size()) + 3 + n.values[i]->min_bytes;
  }
  return m;
}

bool key_available(const Frame& f) {
  if (f.node->additional) return true;
  for (size_t i = 0; i < f.node->keys.size(); ++i)
    if (!(f.seen >> i & 1)) return true;
  return false;
}

bool literal_complete(const Frame& f) {
  for (const auto& l : f.node->literals)
    if (l == f.text) return true;
  return false;
}

bool literal_extendable(const Frame& f) {
  for (const auto& l : f.node->literals)
    if (l.size() > f.text.size() && l.compare(0, f.text.size(), f.text) == 0) return true;
  return false;
}

// Valid UTF-8 only (what JSON parsers accept): a byte >= 0x80 of a string or key, given the
// character being read; false when it cannot continue valid UTF-8.
bool utf8_byte(Frame& f, unsigned char c) {
  if (f.utf8_more > 0) {
    if (c < f.utf8_lo || c > f.utf8_hi) return false;
    --f.utf8_more;
    f.utf8_lo = 0x80, f.utf8_hi = 0xBF;
    return true;
  }
  f.utf8_lo = 0x80, f.utf8_hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    f.utf8_more = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    f.utf8_more = 2;
    if (c == 0xE0) f.utf8_lo = 0xA0;  // no overlong forms
    if (c == 0xED) f.utf8_hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    f.utf8_more = 3;
    if (c == 0xF0) f.utf8_lo = 0x90;
    if (c == 0xF4) f.utf8_hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return false;
  }
  return true;
}

bool number_accepting(const Frame& f) {
  return f.state == 2 || f.state == 3 || f.state == 5 || f.state == 8;
}

}  // namespace

class MatcherStep {
 public:
  MatcherStep(const JsonGrammar& g, std::vector<Thread>& out) : g_(g), out_(out) {}

  // Feeds byte c to thread t, appending the resulting threads (none when c is refused).
  void step(Thread t, unsigned char c) {
    if (t.stack.empty()) return;  // the document is closed
    Frame& f = t.stack.back();
    switch (f.type) {
      case Frame::kValue:
        return value(std::move(t), c);
      case Frame::kObject:
        return object(std::move(t), c);
      case Frame::kArray:
        return array(std::move(t), c);
      case Frame::kString:
        return string(std::move(t), c);
      case Frame::kNumber:
        return number(std::move(t), c);
      case Frame::kLiteral:
        return literal(std::move(t), c);
      case Frame::kSequence:
        return sequence(std::move(t), c);
    }
  }

 private:
  bool whitespace(Thread& t, unsigned char c) {
    if (!is_ws(c)) {
      t.ws = 0;
      return false;
    }
    if (t.ws < kMaxWhitespace) {
      ++t.ws;
      out_.push_back(std::move(t));
    }
    return true;
  }

  void push(Thread& t, Frame::Type type, const Node* node) {
    Frame f;
    f.type = type;
    f.node = node;
    t.stack.push_back(std::move(f));
  }

  void value(Thread t, unsigned char c) {
    const Node* node = t.stack.back().node;
    if (node->raw) {
      t.ws = 0;
    } else if (whitespace(t, c)) {
      return;
    }
    if (node->kind == Node::kAnyOf) {
      for (const Node* o : node->options) {
        Thread u = t;
        u.stack.back() = value_frame(o);
        value(std::move(u), c);
      }
      return;
    }
    t.stack.pop_back();
    switch (node->kind) {
      case Node::kAny:
        if (c == '{') return push(t, Frame::kObject, g_.any_object_), out_.push_back(std::move(t));
        if (c == '[') return push(t, Frame::kArray, g_.any_array_), out_.push_back(std::move(t));
        if (c == '"') return push(t, Frame::kString, g_.any_string_), out_.push_back(std::move(t));
        if (c == '-' || is_digit(c))
          return push(t, Frame::kNumber, g_.any_number_), number(std::move(t), c);
        return push(t, Frame::kLiteral, g_.any_literal_), literal(std::move(t), c);
      case Node::kObject:
        if (c != '{') return;
        push(t, Frame::kObject, node);
        return out_.push_back(std::move(t));
      case Node::kArray:
        if (c != '[') return;
        push(t, Frame::kArray, node);
        return out_.push_back(std::move(t));
      case Node::kString:
        if (c != '"') return;
        push(t, Frame::kString, node);
        return out_.push_back(std::move(t));
      case Node::kNumber:
      case Node::kInteger:
        push(t, Frame::kNumber, node);
        return number(std::move(t), c);
      case Node::kLiterals:
        push(t, Frame::kLiteral, node);
        return literal(std::move(t), c);
      case Node::kSequence:
        push(t, Frame::kSequence, node);
        return sequence(std::move(t), c);
      case Node::kAnyOf:
        return;
    }
  }

  // After a child frame ends: nothing to record (the parent set its next state when it pushed
  // the child); a thread whose stack empties has read a whole document.
  void finished(Thread t) { out_.push_back(std::move(t)); }

  void object(Thread t, unsigned char c) {
    Frame& f = t.stack.back();
    const Node& n = *f.node;
    switch (f.state) {
      case 0:  // after '{'
      case 4:  // after ','
        if (whitespace(t, c)) return;
        if (c == '"' && key_available(f)) {
          f.state = 1;
          f.text.clear();
          return out_.push_back(std::move(t));
        }
        if (c == '}' && f.state == 0 && all_required_seen(f)) {
          t.stack.pop_back();
          return finished(std::move(t));
        }
        return;
      case 1: {  // in a key
        if (c == '"') {
          if (f.utf8_more > 0) return;
          f.key = -1;
          for (size_t i = 0; i < n.keys.size(); ++i)
            if (n.keys[i] == f.text) f.key = static_cast<int>(i);
          if (f.key >= 0 && (f.seen >> f.key & 1)) return;  // a duplicate
          if (f.key < 0) {
            if (!n.additional) return;
            if (std::find(f.extra.begin(), f.extra.end(), f.text) != f.extra.end()) return;
          }
          f.state = 2;
          return out_.push_back(std::move(t));
        }
        if (c < 0x20 || c == '\\') return;
        if (f.utf8_more > 0 || c >= 0x80) {
          if (!utf8_byte(f, c)) return;
        }
        f.text.push_back(static_cast<char>(c));
        if (!n.additional) {
          bool ok = false;
          for (size_t i = 0; i < n.keys.size() && !ok; ++i)
            ok = !(f.seen >> i & 1) && n.keys[i].compare(0, f.text.size(), f.text) == 0 &&
                 n.keys[i].size() >= f.text.size();
          if (!ok) return;
        }
        return out_.push_back(std::move(t));
      }
      case 2: {  // after a key
        if (whitespace(t, c)) return;
        if (c != ':') return;
        const Node* v = f.key >= 0 ? n.values[static_cast<size_t>(f.key)] : n.additional;
        if (f.key >= 0) {
          f.seen |= uint64_t{1} << f.key;
        } else {
          f.extra.push_back(f.text);
        }
        f.state = 3;
        t.stack.push_back(value_frame(v));
        return out_.push_back(std::move(t));
      }
      case 3:  // after a value
        if (whitespace(t, c)) return;
        if (c == ',' && key_available(f)) {
          f.state = 4;
          return out_.push_back(std::move(t));
        }
        if (c == '}' && all_required_seen(f)) {
          t.stack.pop_back();
          return finished(std::move(t));
        }
        return;
    }
  }

  void array(Thread t, unsigned char c) {
    Frame& f = t.stack.back();
    const Node& n = *f.node;
    const bool more = n.max_items < 0 || f.count < n.max_items;
    switch (f.state) {
      case 0:  // after '['
        if (whitespace(t, c)) return;
        if (c == ']') {
          if (n.min_items > 0) return;
          t.stack.pop_back();
          return finished(std::move(t));
        }
        [[fallthrough]];
      case 2:  // after ','
        if (f.state == 2 && whitespace(t, c)) return;
        if (!more) return;
        ++f.count;
        f.state = 1;
        t.stack.push_back(value_frame(n.items));
        return value(std::move(t), c);
      case 1:  // after an item
        if (whitespace(t, c)) return;
        if (c == ',' && more) {
          f.state = 2;
          return out_.push_back(std::move(t));
        }
        if (c == ']' && f.count >= n.min_items) {
          t.stack.pop_back();
          return finished(std::move(t));
        }
        return;
    }
  }

  void string(Thread t, unsigned char c) {
    Frame& f = t.stack.back();
    const Node& n = *f.node;
    const bool room = n.max_len < 0 || f.count < n.max_len;
    if (f.state == 0 && f.utf8_more > 0) {  // inside a multi-byte character
      if (!utf8_byte(f, c)) return;
      return out_.push_back(std::move(t));
    }
    if (f.state == 0) {
      if (c == '"') {
        if (f.count < n.min_len) return;
        t.stack.pop_back();
        return finished(std::move(t));
      }
      if (c < 0x20) return;
      if (c == '\\') {
        if (!room) return;
        f.state = 1;
        return out_.push_back(std::move(t));
      }
      if (c >= 0x80 && !utf8_byte(f, c)) return;
      if (!room) return;
      ++f.count;
      return out_.push_back(std::move(t));
    }
    if (f.state == 1) {  // after a backslash
      if (c == 'u') {
        f.state = 14;  // 4 hex digits to come
      } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
                 c == 'r' || c == 't') {
        f.state = 0;
        ++f.count;
      } else {
        return;
      }
      return out_.push_back(std::move(t));
    }
    // In \uXXXX. No surrogates (\uD800-\uDFFF): a lone one is not valid JSON text for most
    // parsers, and pairs are left to raw UTF-8.
    if (f.state == 23) {  // after \uD: 0-7 only
      if (c < '0' || c > '7') return;
      f.state = 12;
      return out_.push_back(std::move(t));
    }
    if (!is_hex(c)) return;
    if (f.state == 14 && (c == 'd' || c == 'D')) {
      f.state = 23;
      return out_.push_back(std::move(t));
    }
    f.state = f.state == 11 ? 0 : f.state - 1;
    if (f.state == 0) ++f.count;
    return out_.push_back(std::move(t));
  }

  void number(Thread t, unsigned char c) {
    Frame& f = t.stack.back();
    const bool integer = f.node->kind == Node::kInteger;
    auto go = [&](int state, int64_t count) {
      f.state = state;
      f.count = count;
      out_.push_back(std::move(t));
    };
    switch (f.state) {
      case 0:
        if (c == '-') return go(1, 0);
        [[fallthrough]];
      case 1:
        if (c == '0') return go(2, 1);
        if (is_digit(c)) return go(3, 1);
        return;
      case 2:
      case 3:
        if (f.state == 3 && is_digit(c)) {
          if (f.count < kMaxIntDigits) go(3, f.count + 1);
          return;
        }
        if (!integer && c == '.') return go(4, 0);
        if (!integer && (c == 'e' || c == 'E')) return go(6, 0);
        break;
      case 4:
        if (is_digit(c)) return go(5, 1);
        return;
      case 5:
        if (is_digit(c)) {
          if (f.count < kMaxFracDigits) go(5, f.count + 1);
          return;
        }
        if (c == 'e' || c == 'E') return go(6, 0);
        break;
      case 6:
        if (c == '+' || c == '-') return go(7, 0);
        [[fallthrough]];
      case 7:
        if (is_digit(c)) return go(8, 1);
        return;
      case 8:
        if (is_digit(c)) {
          if (f.count < kMaxExpDigits) go(8, f.count + 1);
          return;
        }
        break;
    }
    // The number ended before c: c belongs to the enclosing value.
    if (!number_accepting(f)) return;
    t.stack.pop_back();
    if (t.stack.empty()) return;  // nothing may follow a whole document
    step(std::move(t), c);
  }

  // The next part starts with c; at the end, another round (repeat) or the enclosing value.
  void sequence(Thread t, unsigned char c) {
    Frame& f = t.stack.back();
    const Node& n = *f.node;
    if (f.state < static_cast<int>(n.options.size())) {
      const Node* part = n.options[static_cast<size_t>(f.state++)];
      t.stack.push_back(value_frame(part));
      return value(std::move(t), c);
    }
    if (n.repeat && is_ws(c)) {  // whitespace between rounds
      if (t.ws < kMaxWhitespace) {
        ++t.ws;
        out_.push_back(std::move(t));
      }
      return;
    }
    if (n.repeat) {
      Thread again = t;
      Frame& g = again.stack.back();
      g.state = 1;
      ++g.count;
      again.stack.push_back(value_frame(n.options.front()));
      value(std::move(again), c);
    }
    t.stack.pop_back();
    if (t.stack.empty()) return;
    step(std::move(t), c);
  }

  void literal(Thread t, unsigned char c) {
    Frame& f = t.stack.back();
    const std::string next = f.text + static_cast<char>(c);
    for (const auto& l : f.node->literals) {
      if (l.size() >= next.size() && l.compare(0, next.size(), next) == 0) {
        f.text = next;
        return out_.push_back(std::move(t));
      }
    }
    if (!literal_complete(f)) return;
    t.stack.pop_back();
    if (t.stack.empty()) return;
    step(std::move(t), c);
  }

  const JsonGrammar& g_;
  std::vector<Thread>& out_;
};

JsonMatcher::JsonMatcher(std::shared_ptr<const JsonGrammar> grammar)
    : grammar_(std::move(grammar)) {
  Thread t;
  t.stack.push_back(value_frame(grammar_->root()));
  threads_.push_back(std::move(t));
}

bool JsonMatcher::feed(std::string_view bytes) {
  for (unsigned char c : bytes) {
    std::vector<Thread> next;
    MatcherStep step(*grammar_, next);
    for (auto& t : threads_) step.step(t, c);
    threads_ = std::move(next);
    if (threads_.empty()) return false;
  }
  return true;
}

namespace {

// The frames under a finished top (a whole number or literal) are all sequences at their end.
bool rest_finished(const Thread& t, size_t below, bool closed) {
  for (size_t i = 0; i < below; ++i) {
    const Frame& f = t.stack[i];
    if (f.type != Frame::kSequence || f.state < static_cast<int>(f.node->options.size()) ||
        (closed && f.node->repeat))
      return false;
  }
  return true;
}

bool thread_complete(const Thread& t) {
  if (t.stack.empty()) return true;
  const Frame& f = t.stack.back();
  bool top_done = false;
  if (f.type == Frame::kNumber) top_done = number_accepting(f);
  if (f.type == Frame::kLiteral) top_done = literal_complete(f);
  if (f.type == Frame::kSequence) return rest_finished(t, t.stack.size(), false);
  return top_done && rest_finished(t, t.stack.size() - 1, false);
}

bool thread_closed(const Thread& t) {
  if (t.stack.empty()) return true;
  const Frame& f = t.stack.back();
  if (f.type == Frame::kLiteral && literal_complete(f) && !literal_extendable(f))
    return rest_finished(t, t.stack.size() - 1, true);
  if (f.type == Frame::kSequence) return rest_finished(t, t.stack.size(), true);
  return false;
}

int64_t frame_cost(const Frame& f, bool top) {
  const Node& n = *f.node;
  switch (f.type) {
    case Frame::kValue:
      return n.min_bytes;
    case Frame::kString: {
      const int64_t chars = std::max<int64_t>(0, n.min_len - f.count);
      if (f.state == 0) return f.utf8_more + chars + 1;
      if (f.state == 1) return std::max<int64_t>(1, chars) + 1;
      return (f.state == 23 ? 3 : f.state - 10) + std::max<int64_t>(0, chars - 1) + 1;
    }
    case Frame::kNumber:
      return number_accepting(f) ? 0 : 1;
    case Frame::kLiteral: {
      int64_t m = kBig;
      for (const auto& l : n.literals)
        if (l.size() >= f.text.size() && l.compare(0, f.text.size(), f.text) == 0)
          m = std::min<int64_t>(m, static_cast<int64_t>(l.size() - f.text.size()));
      return m;
    }
    case Frame::kObject: {
      auto entry = [&](size_t i) {  // "key":value
        return static_cast<int64_t>(n.keys[i].size()) + 3 + n.values[i]->min_bytes;
      };
      switch (top ? f.state : 3) {
        case 0:
        case 4: {
          // Required keys first (the first without a comma); else the cheapest key after ','.
          int64_t m = required_rest(f, -1);
          if (m > 0) return m - 1 + 1;
          if (f.state == 0) return 1;
          int64_t best = n.additional ? 3 + n.additional->min_bytes : kBig;
          for (size_t i = 0; i < n.keys.size(); ++i)
            if (!(f.seen >> i & 1)) best = std::min(best, entry(i));
          return best + 1;
        }
        case 1: {  // in a key: finish it, ':', its value, the rest
          int64_t best = kBig;
          for (size_t i = 0; i < n.keys.size(); ++i) {
            if ((f.seen >> i & 1) || n.keys[i].size() < f.text.size() ||
                n.keys[i].compare(0, f.text.size(), f.text) != 0)
              continue;
            best = std::min(best, static_cast<int64_t>(n.keys[i].size() - f.text.size()) + 2 +
                                      n.values[i]->min_bytes +
                                      required_rest(f, static_cast<int>(i)) + 1);
          }
          if (n.additional)
            best = std::min(best,
                            f.utf8_more + 2 + n.additional->min_bytes + required_rest(f, -1) + 1);
          return best;
        }
        case 2: {
          const Node* v = f.key >= 0 ? n.values[static_cast<size_t>(f.key)] : n.additional;
          return 1 + v->min_bytes + required_rest(f, f.key) + 1;
        }
        default:  // a value is being read, or was
          return required_rest(f, -1) + 1;
      }
    }
    case Frame::kSequence: {
      int64_t m = 0;
      for (size_t i = static_cast<size_t>(f.state); i < n.options.size(); ++i)
        m = std::min(kBig, m + n.options[i]->min_bytes);
      return m;
    }
    case Frame::kArray: {
      const int64_t m = n.items->min_bytes;
      if (top && f.state == 0) {
        if (n.min_items == 0) return 1;
        return n.min_items * m + (n.min_items - 1) + 1;
      }
      if (top && f.state == 2)
        return m + std::max<int64_t>(0, n.min_items - f.count - 1) * (1 + m) + 1;
      return std::max<int64_t>(0, n.min_items - f.count) * (1 + m) + 1;
    }
  }
  return kBig;
}

}  // namespace

bool JsonMatcher::complete() const {
  for (const auto& t : threads_)
    if (thread_complete(t)) return true;
  return false;
}

bool JsonMatcher::closed() const {
  for (const auto& t : threads_)
    if (!thread_closed(t)) return false;
  return !threads_.empty();
}

int64_t JsonMatcher::min_remaining() const {
  int64_t best = kBig;
  for (const auto& t : threads_) {
    int64_t m = 0;
    for (size_t i = 0; i < t.stack.size(); ++i)
      m = std::min(kBig, m + frame_cost(t.stack[i], i + 1 == t.stack.size()));
    best = std::min(best, m);
  }
  return best;
}

bool JsonMatcher::in_free_string() const {
  if (threads_.size() != 1 || threads_[0].stack.empty()) return false;
  const Frame& f = threads_[0].stack.back();
  return f.type == Frame::kString && f.state == 0 && f.utf8_more == 0 && f.node->max_len < 0 &&
         f.count >= f.node->min_len;
}

namespace {

// Whether `bytes` are plain string characters: no quote, backslash or control byte, and whole,
// valid UTF-8 characters.
bool plain_string_bytes(const std::string& bytes) {
  Frame f;
  for (unsigned char c : bytes) {
    if (f.utf8_more > 0 || c >= 0x80) {
      if (!utf8_byte(f, c)) return false;
      continue;
    }
    if (c < 0x20 || c == '"' || c == '\\') return false;
  }
  return f.utf8_more == 0;
}

}  // namespace

std::vector<bool> allowed_tokens(const JsonMatcher& matcher,
                                 const std::vector<std::string>& token_bytes, int32_t eos_id,
                                 int64_t tokens_left) {
  std::vector<bool> allowed(token_bytes.size(), false);
  const bool complete = matcher.complete();
  if (eos_id >= 0 && static_cast<size_t>(eos_id) < allowed.size()) allowed[eos_id] = complete;
  if (matcher.closed()) return allowed;
  // Inside a free string most tokens are plain text: they keep the state's cost, so they are
  // allowed exactly when the document still fits now; only the others are fed.
  const bool free_string = matcher.in_free_string();
  const bool fits = matcher.min_remaining() <= tokens_left;
  for (size_t id = 0; id < token_bytes.size(); ++id) {
    if (static_cast<int32_t>(id) == eos_id || token_bytes[id].empty()) continue;
    if (free_string && plain_string_bytes(token_bytes[id])) {
      allowed[id] = fits;
      continue;
    }
    JsonMatcher m = matcher;
    allowed[id] = m.feed(token_bytes[id]) && m.min_remaining() <= tokens_left;
  }
  return allowed;
}

TokenTrie::TokenTrie(const std::vector<std::string>& token_bytes)
    : token_bytes_(token_bytes), plain_(token_bytes.size(), false) {
  nodes_.emplace_back();
  for (size_t id = 0; id < token_bytes.size(); ++id) {
    const std::string& t = token_bytes[id];
    if (t.empty()) continue;
    plain_[id] = plain_string_bytes(t);
    int32_t at = 0;
    for (unsigned char c : t) {
      auto& next = nodes_[static_cast<size_t>(at)].next;
      auto it = std::find_if(next.begin(), next.end(), [c](const auto& e) { return e.first == c; });
      if (it != next.end()) {
        at = it->second;
      } else {
        const auto child = static_cast<int32_t>(nodes_.size());
        nodes_[static_cast<size_t>(at)].next.emplace_back(c, child);
        nodes_.emplace_back();
        at = child;
      }
    }
    nodes_[static_cast<size_t>(at)].ids.push_back(static_cast<int32_t>(id));
  }
}

void TokenTrie::walk(int32_t node, const JsonMatcher& m, int64_t tokens_left,
                     std::vector<bool>& allowed) const {
  for (const auto& [c, child] : nodes_[static_cast<size_t>(node)].next) {
    JsonMatcher next = m;
    const char byte = static_cast<char>(c);
    if (!next.feed(std::string_view(&byte, 1))) continue;
    const Node& n = nodes_[static_cast<size_t>(child)];
    if (!n.ids.empty()) {
      const bool fits = next.min_remaining() <= tokens_left;
      for (int32_t id : n.ids) allowed[static_cast<size_t>(id)] = fits;
    }
    walk(child, next, tokens_left, allowed);
  }
}

std::vector<bool> TokenTrie::allowed(const JsonMatcher& matcher, int32_t eos_id,
                                     int64_t tokens_left) const {
  std::vector<bool> allowed(token_bytes_.size(), false);
  const bool complete = matcher.complete();
  if (eos_id >= 0 && static_cast<size_t>(eos_id) < allowed.size()) allowed[eos_id] = complete;
  if (matcher.closed()) return allowed;
  if (matcher.in_free_string()) {
    // Plain tokens by their flag; the others (a quote, an escape, ...) one by one: walking the
    // tree here would visit nearly all of it, every start being a valid string.
    const bool fits = matcher.min_remaining() <= tokens_left;
    for (size_t id = 0; id < token_bytes_.size(); ++id) {
      if (static_cast<int32_t>(id) == eos_id || token_bytes_[id].empty()) continue;
      if (plain_[id]) {
        allowed[id] = fits;
        continue;
      }
      JsonMatcher m = matcher;
      allowed[id] = m.feed(token_bytes_[id]) && m.min_remaining() <= tokens_left;
    }
    return allowed;
  }
  walk(0, matcher, tokens_left, allowed);
  if (eos_id >= 0 && static_cast<size_t>(eos_id) < allowed.size()) allowed[eos_id] = complete;
  return allowed;
}

}  // namespace reef
