// Canonical JSON: a strict parser (SPEC §3, JSON-1..JSON-7) and the RFC 8785 JSON Canonicalization
// Scheme serializer (JCS-1) used for signatures, transcript hashes and associated data.
//
// The parser is written here rather than taken from boost::json::parse because the protocol
// needs what that parser does not give: duplicate member names rejected (Boost keeps the last),
// lone surrogate escapes rejected, and a distinct error for input over the size limit. It builds
// ordinary boost::json values, so the rest of the library works with Boost.JSON.
#pragma once

#include <peerproto/fault.hpp>
#include <peerproto/error.hpp>
#include <peerproto/version.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace peerproto::jcs {

/// Limits of the strict parser (SPEC §18).
struct parse_limits {
  std::size_t max_bytes = limits::max_envelope_bytes;  ///< longer text is PAYLOAD_TOO_LARGE (JSON-5)
  std::size_t max_depth = limits::max_json_depth;      ///< deeper nesting is INVALID_FORMAT (JSON-4)
};

/// Appends the UTF-8 encoding of code point `cp` (precondition: a Unicode scalar value) to a
/// std::string or a boost::json::string.
template <class String>
void append_utf8(String& s, std::uint32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

namespace detail {

/// The length of the run at the start of [p, end) of bytes a JSON string holds as they are: no
/// '"', no '\\', no control character, and (with `ascii_only`) nothing from 0x80 up. Eight bytes
/// at a time: a word has a byte below n when (w - n·0x01..) & ~w & 0x80.. is not zero, and a byte
/// equal to c when (w ^ c·0x01..) has a zero byte. The word with a hit is then walked bytewise.
inline std::size_t plain_run(const char* p, const char* end, bool ascii_only) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  const auto has_below = [](std::uint64_t w, std::uint64_t n) { return (w - ones * n) & ~w & highs; };
  const char* const start = p;
  while (end - p >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, sizeof w);
    std::uint64_t hit = has_below(w, 0x20) | has_below(w ^ (ones * '"'), 1) | has_below(w ^ (ones * '\\'), 1);
    if (ascii_only) hit |= w & highs;
    if (hit) break;
    p += 8;
  }
  while (p != end) {
    const auto c = static_cast<unsigned char>(*p);
    if (c < 0x20 || c == '"' || c == '\\' || (ascii_only && c >= 0x80)) break;
    ++p;
  }
  return static_cast<std::size_t>(p - start);
}

class strict_parser {
 public:
  strict_parser(std::string_view text, const parse_limits& lim)
      : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()), lim_(lim) {}

  result<boost::json::value> run() {
    skip_ws();
    boost::json::value v;
    if (!parse_value(v, 1)) return fail();
    skip_ws();
    if (p_ != end_) return failure{errc::invalid_format, "unexpected data after the JSON value" + where()};
    return v;
  }

  /// Parses the one value at the start of the text, nested at `depth`, and returns where it ends;
  /// nullptr when it breaks a rule (for a reader that reads the outer levels itself).
  const char* value_at(boost::json::value& out, std::size_t depth) { return parse_value(out, depth) ? p_ : nullptr; }

 private:
  const char* const begin_;
  const char* p_;
  const char* const end_;
  const parse_limits& lim_;
  std::string error_;

  result<boost::json::value> fail() { return failure{errc::invalid_format, error_ + where()}; }
  std::string where() const { return " (at byte " + std::to_string(p_ - begin_) + ")"; }
  bool error(const char* what) {
    if (error_.empty()) error_ = what;
    return false;
  }

  void skip_ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word)
      return error("invalid literal");
    p_ += word.size();
    return true;
  }

  bool parse_value(boost::json::value& out, std::size_t depth) {
    if (p_ == end_) return error("unexpected end of input");
    switch (*p_) {
      case '{': return parse_object(out, depth);
      case '[': return parse_array(out, depth);
      case '"': {
        boost::json::string s;
        if (!parse_string(s)) return false;
        out = std::move(s);
        return true;
      }
      case 't': out = true; return literal("true");
      case 'f': out = false; return literal("false");
      case 'n': out = nullptr; return literal("null");
      default: return parse_number(out);
    }
  }

  bool parse_object(boost::json::value& out, std::size_t depth) {
    if (depth > lim_.max_depth) return error("nesting deeper than the limit");
    ++p_;  // '{'
    boost::json::object obj;
    skip_ws();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      out = std::move(obj);
      return true;
    }
    for (;;) {
      skip_ws();
      if (p_ == end_ || *p_ != '"') return error("expected a member name");
      std::string key;
      if (!parse_string(key)) return false;
      skip_ws();
      if (p_ == end_ || *p_ != ':') return error("expected ':'");
      ++p_;
      skip_ws();
      boost::json::value v;
      if (!parse_value(v, depth + 1)) return false;
      if (!obj.emplace(key, std::move(v)).second && !PEERPROTO_FAULT(accept_duplicate_members)) return error("duplicate member name");  // emplace never overwrites
      skip_ws();
      if (p_ == end_) return error("unexpected end of input in an object");
      if (*p_ == ',') { ++p_; continue; }
      if (*p_ == '}') { ++p_; break; }
      return error("expected ',' or '}'");
    }
    out = std::move(obj);
    return true;
  }

  bool parse_array(boost::json::value& out, std::size_t depth) {
    if (depth > lim_.max_depth) return error("nesting deeper than the limit");
    ++p_;  // '['
    boost::json::array arr;
    skip_ws();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      out = std::move(arr);
      return true;
    }
    for (;;) {
      skip_ws();
      boost::json::value v;
      if (!parse_value(v, depth + 1)) return false;
      arr.push_back(std::move(v));
      skip_ws();
      if (p_ == end_) return error("unexpected end of input in an array");
      if (*p_ == ',') { ++p_; continue; }
      if (*p_ == ']') { ++p_; break; }
      return error("expected ',' or ']'");
    }
    out = std::move(arr);
    return true;
  }

  bool hex4(std::uint32_t& v) {
    if (end_ - p_ < 4) return error("truncated \\u escape");
    v = 0;
    for (int i = 0; i < 4; ++i, ++p_) {
      const char c = *p_;
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) return error("invalid \\u escape");
      v = v << 4 | static_cast<std::uint32_t>(d);
    }
    return true;
  }

  // One UTF-8 sequence starting at p_ (a non-ASCII lead byte), validated per RFC 3629: no
  // overlong forms, no surrogates, nothing above U+10FFFF (JSON-1).
  template <class String>
  bool utf8_sequence(String& s) {
    const auto b0 = static_cast<unsigned char>(*p_);
    int len;
    std::uint32_t cp, min;
    if (b0 >= 0xC2 && b0 <= 0xDF) { len = 2; cp = b0 & 0x1F; min = 0x80; }
    else if (b0 >= 0xE0 && b0 <= 0xEF) { len = 3; cp = b0 & 0x0F; min = 0x800; }
    else if (b0 >= 0xF0 && b0 <= 0xF4) { len = 4; cp = b0 & 0x07; min = 0x10000; }
    else return error("invalid UTF-8");
    if (end_ - p_ < len) return error("truncated UTF-8 sequence");
    for (int i = 1; i < len; ++i) {
      const auto b = static_cast<unsigned char>(p_[i]);
      if ((b & 0xC0) != 0x80) return error("invalid UTF-8");
      cp = cp << 6 | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return error("invalid UTF-8");
    s.append(std::string_view(p_, static_cast<std::size_t>(len)));
    p_ += len;
    return true;
  }

  template <class String>
  bool parse_string(String& s) {
    ++p_;  // opening quote
    for (;;) {
      // Copy the run of plain ASCII characters in one go.
      const char* run = p_;
      p_ += plain_run(p_, end_, true);
      s.append(std::string_view(run, static_cast<std::size_t>(p_ - run)));
      if (p_ == end_) return error("unterminated string");
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') { ++p_; return true; }
      if (c < 0x20) return error("unescaped control character in a string");
      if (c >= 0x80) {
        if (!utf8_sequence(s)) return false;
        continue;
      }
      // backslash
      if (++p_ == end_) return error("truncated escape");
      switch (*p_++) {
        case '"': s += '"'; break;
        case '\\': s += '\\'; break;
        case '/': s += '/'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'n': s += '\n'; break;
        case 'r': s += '\r'; break;
        case 't': s += '\t'; break;
        case 'u': {
          std::uint32_t cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return error("lone low surrogate escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t lo;
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return error("lone high surrogate escape");
            p_ += 2;
            if (!hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return error("lone high surrogate escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(s, cp);
          break;
        }
        default: return error("invalid escape");
      }
    }
  }

  // RFC 8259 number grammar, strictly. Integer tokens become int64 (or uint64) so that callers
  // can tell `1` from `1.0`; every number still means its binary64 value (JSON-7), which is what
  // the canonical serializer writes.
  bool parse_number(boost::json::value& out) {
    const char* start = p_;
    bool integer = true;
    if (p_ != end_ && *p_ == '-') ++p_;
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return error("invalid value");
    if (*p_ == '0') {
      ++p_;
      if (p_ != end_ && *p_ >= '0' && *p_ <= '9') return error("leading zero in a number");
    } else {
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ != end_ && *p_ == '.') {
      integer = false;
      ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return error("digit expected after '.'");
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      integer = false;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return error("digit expected in exponent");
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (integer) {
      std::int64_t i;
      if (auto r = std::from_chars(start, p_, i); r.ec == std::errc{} && r.ptr == p_) {
        out = i;
        return true;
      }
      std::uint64_t u;
      if (auto r = std::from_chars(start, p_, u); r.ec == std::errc{} && r.ptr == p_) {
        out = u;
        return true;
      }
    }
    double d;
    auto r = std::from_chars(start, p_, d);
    if (r.ec == std::errc::result_out_of_range) {
      // from_chars reports both overflow and underflow this way; strtod tells them apart.
      const std::string copy(start, p_);
      d = std::strtod(copy.c_str(), nullptr);
      if (std::isinf(d)) return error("number too large for binary64");
    } else if (r.ec != std::errc{} || r.ptr != p_) {
      return error("invalid number");
    }
    out = d;
    return true;
  }
};

}  // namespace detail

/// Parses `text` strictly (SPEC §3). Errors: PAYLOAD_TOO_LARGE when text is longer than
/// lim.max_bytes (checked before any parsing), INVALID_FORMAT for everything else, with a message
/// naming the problem and its byte offset. Any JSON value is accepted at the top level; callers
/// that need an object check for one.
inline result<boost::json::value> parse_strict(std::string_view text, const parse_limits& lim = {}) {
  if (text.size() > lim.max_bytes)
    return failure{errc::payload_too_large, "the text is " + std::to_string(text.size()) + " bytes; the limit is " +
                                                std::to_string(lim.max_bytes)};
  return detail::strict_parser(text, lim).run();
}

// ---------------------------------------------------------------- serialization

/// Appends the ECMAScript Number::toString form of `v` (RFC 8785 §3.2.2.3): the shortest digits
/// that round-trip, in plain notation for exponents -7 < n ≤ 21, otherwise d.ddde±n. `-0` is "0".
/// Precondition: v is finite (a parsed JSON number always is).
inline void append_number(std::string& out, double v) {
  if (v == 0) {
    out += '0';
    return;
  }
  if (v < 0) {
    out += '-';
    v = -v;
  }
  // An integer below 2^53 is exact, and its shortest form is its digits in plain notation (n ≤ 16).
  if (v < 9007199254740992.0 && v == static_cast<double>(static_cast<std::uint64_t>(v))) {
    char buf[20];
    const auto r = std::to_chars(buf, buf + sizeof buf, static_cast<std::uint64_t>(v));
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
    return;
  }
  // Shortest round-trip digits from to_chars in scientific form: "d[.ddd]e±xx".
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<std::size_t>(r.ptr - buf));
  const auto epos = sci.find('e');
  char digit_buf[32];  // at most 17 significant digits
  std::size_t count = 0;
  for (char c : sci.substr(0, epos))
    if (c != '.') digit_buf[count++] = c;
  const std::string_view digits(digit_buf, count);
  int exp10 = 0;
  std::from_chars(sci.data() + epos + (sci[epos + 1] == '+' ? 2 : 1), sci.data() + sci.size(), exp10);
  const int k = static_cast<int>(digits.size());
  const int n = exp10 + 1;  // value = 0.digits × 10^n
  if (k <= n && n <= 21) {
    out += digits;
    out.append(static_cast<std::size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out.append(digits, 0, static_cast<std::size_t>(n));
    out += '.';
    out.append(digits, static_cast<std::size_t>(n));
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-n), '0');
    out += digits;
  } else {
    out += digits[0];
    if (k > 1) {
      out += '.';
      out.append(digits, 1);
    }
    out += 'e';
    out += n - 1 < 0 ? '-' : '+';
    char exp_buf[8];
    const auto e = std::to_chars(exp_buf, exp_buf + sizeof exp_buf, std::abs(n - 1));
    out.append(exp_buf, static_cast<std::size_t>(e.ptr - exp_buf));
  }
}

namespace detail {
/// Appends `lead` (unless it is 0), `s` in quotes, then `tail` (unless 0), in one piece, when `s`
/// needs no escape (most strings, and nearly every member name); false, appending nothing,
/// otherwise. One append instead of a call per character is most of what serializing costs.
inline bool append_plain_quoted(std::string& out, char lead, std::string_view s, char tail) {
  if (plain_run(s.data(), s.data() + s.size(), false) != s.size()) return false;
  char buf[64];
  if (s.size() > sizeof buf - 4) {
    // Room for what closes the value too, so that a large string is not copied again for it.
    out.reserve(out.size() + s.size() + 16);
    if (lead) out += lead;
    out += '"';
    out += s;
    out += '"';
    if (tail) out += tail;
    return true;
  }
  char* p = buf;
  if (lead) *p++ = lead;
  *p++ = '"';
  std::memcpy(p, s.data(), s.size());
  p += s.size();
  *p++ = '"';
  if (tail) *p++ = tail;
  out.append(buf, static_cast<std::size_t>(p - buf));
  return true;
}
}  // namespace detail

/// Appends a JSON string with the RFC 8785 §3.2.2.2 escapes: `"` and `\`, the short forms
/// \b \t \n \f \r, \u00xx (lower-case hex) for other control characters, everything else as is.
inline void append_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  if (detail::append_plain_quoted(out, 0, s, 0)) return;
  out.reserve(out.size() + s.size() + 2);
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    // Copy the run of characters that need no escape in one go.
    const std::size_t j = i + detail::plain_run(s.data() + i, s.data() + s.size(), false);
    out.append(s, i, j - i);
    if (j == s.size()) break;
    const char ch = s[j];
    i = j + 1;
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

namespace detail {
// Orders UTF-8 member names by their UTF-16 code units (RFC 8785 §3.2.3) without converting them.
// UTF-8 byte order equals code point order, which differs from UTF-16 order only in that
// supplementary characters (4-byte forms, lead F0..F4; surrogates D800.. in UTF-16) sort before
// U+E000..U+FFFF (lead EE..EF). Both names agree up to the first differing byte, so that byte is
// a lead byte in both or a continuation byte in both; remapping the two lead ranges is enough.
inline unsigned utf16_rank(unsigned char c) noexcept {
  if (c >= 0xF0) return c - 2u;    // F0..F4 -> EE..F2
  if (c >= 0xEE) return c + 5u;    // EE..EF -> F3..F4
  return c;
}
inline bool utf16_less(std::string_view a, std::string_view b) noexcept {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i])
      return utf16_rank(static_cast<unsigned char>(a[i])) < utf16_rank(static_cast<unsigned char>(b[i]));
  }
  return a.size() < b.size();
}
}  // namespace detail

/// Appends the canonical form (JCS-1) of `v`. Strings must be valid UTF-8 (true of every value
/// from parse_strict); doubles must be finite.
inline void append_canonical(std::string& out, const boost::json::object& obj);

inline void append_canonical(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null: out += "null"; break;
    case boost::json::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case boost::json::kind::int64: append_number(out, static_cast<double>(v.get_int64())); break;
    case boost::json::kind::uint64: append_number(out, static_cast<double>(v.get_uint64())); break;
    case boost::json::kind::double_: append_number(out, v.get_double()); break;
    case boost::json::kind::string: append_string(out, v.get_string()); break;
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out += ',';
        first = false;
        append_canonical(out, e);
      }
      out += ']';
      break;
    }
    case boost::json::kind::object: append_canonical(out, v.get_object()); break;
  }
}

/// Appends the canonical form of an object: its members sorted by their UTF-16 code units.
inline void append_canonical(std::string& out, const boost::json::object& obj) {
  // Small objects (most payloads) sort on the stack.
  std::array<const boost::json::key_value_pair*, 16> few;
  std::vector<const boost::json::key_value_pair*> many(obj.size() > few.size() ? obj.size() : 0);
  const std::span<const boost::json::key_value_pair*> members(many.empty() ? few.data() : many.data(), obj.size());
  std::size_t i = 0;
  for (const auto& kv : obj) members[i++] = &kv;
  std::sort(members.begin(), members.end(),
            [](const auto* a, const auto* b) { return detail::utf16_less(a->key(), b->key()); });
  char lead = '{';
  for (const auto* kv : members) {
    if (!detail::append_plain_quoted(out, lead, kv->key(), ':')) {
      out += lead;
      append_string(out, kv->key());
      out += ':';
    }
    lead = ',';
    append_canonical(out, kv->value());
  }
  if (lead == '{') out += '{';
  out += '}';
}

/// The canonical form (JCS-1) of `v` as a string.
inline std::string canonicalize(const boost::json::value& v) {
  std::string out;
  append_canonical(out, v);
  return out;
}

/// The same for an object (without converting it to a value, which would copy it).
inline std::string canonicalize(const boost::json::object& o) {
  std::string out;
  append_canonical(out, o);
  return out;
}

/// Strict parse followed by canonicalization.
inline result<std::string> canonicalize_text(std::string_view text, const parse_limits& lim = {}) {
  auto v = parse_strict(text, lim);
  if (!v) return v.error();
  return canonicalize(*v);
}

}  // namespace peerproto::jcs
