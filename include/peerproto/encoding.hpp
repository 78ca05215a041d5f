// Text encodings of the wire format: lowercase hex, strict base64 (RFC 4648 §4, padded), UUID
// version 4 in canonical lowercase form, and RFC 3339 UTC timestamps (SPEC ENV-8..ENV-18).
//
// Every decoder is strict: it accepts exactly one spelling per value, so decode → encode gives
// back the input, and it reports failure with std::nullopt (the caller chooses the protocol
// code, which is INVALID_FORMAT almost everywhere). No decoder allocates more than its output.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace peerproto {

using bytes = std::vector<std::uint8_t>;
using byte_view = std::span<const std::uint8_t>;

/// The bytes of a string, viewed without copying.
inline byte_view as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// ---------------------------------------------------------------- hex

/// Appends the lowercase hex of `data` to `out` (a serializer writes it in place).
inline void append_hex(std::string& out, byte_view data) {
  static constexpr char digits[] = "0123456789abcdef";
  const std::size_t at = out.size();
  out.resize(at + data.size() * 2);
  char* p = out.data() + at;
  for (const std::uint8_t b : data) {
    *p++ = digits[b >> 4];
    *p++ = digits[b & 0x0f];
  }
}

/// Lowercase hex of `data`.
inline std::string hex_encode(byte_view data) {
  std::string out;
  append_hex(out, data);
  return out;
}

namespace detail {
inline int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not accepted: one spelling per value
}
}  // namespace detail

/// Decodes lowercase hex into `out`, which must be exactly half as long as `text`.
/// Returns false (leaving `out` unspecified) on a length mismatch or any other character.
inline bool hex_decode_into(std::string_view text, std::span<std::uint8_t> out) noexcept {
  if (text.size() != out.size() * 2) return false;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = detail::hex_value(text[2 * i]);
    const int lo = detail::hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

/// Decodes lowercase hex of exactly N bytes (2N characters).
template <std::size_t N>
std::optional<std::array<std::uint8_t, N>> hex_decode_fixed(std::string_view text) noexcept {
  std::array<std::uint8_t, N> out{};
  if (!hex_decode_into(text, out)) return std::nullopt;
  return out;
}

/// Decodes lowercase hex of any even length.
inline std::optional<bytes> hex_decode(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  bytes out(text.size() / 2);
  if (!hex_decode_into(text, out)) return std::nullopt;
  return out;
}

// ---------------------------------------------------------------- base64

/// Appends the standard-alphabet base64 of `data`, with padding (RFC 4648 §4), to `out`.
inline void append_base64(std::string& out, byte_view data) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::size_t at = out.size();
  out.resize(at + (data.size() + 2) / 3 * 4);
  char* p = out.data() + at;
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t v = std::uint32_t{data[i]} << 16 | std::uint32_t{data[i + 1]} << 8 | data[i + 2];
    *p++ = alphabet[v >> 18];
    *p++ = alphabet[(v >> 12) & 63];
    *p++ = alphabet[(v >> 6) & 63];
    *p++ = alphabet[v & 63];
  }
  if (const std::size_t rest = data.size() - i; rest > 0) {
    const std::uint32_t v = std::uint32_t{data[i]} << 16 | (rest == 2 ? std::uint32_t{data[i + 1]} << 8 : 0U);
    *p++ = alphabet[v >> 18];
    *p++ = alphabet[(v >> 12) & 63];
    *p++ = rest == 2 ? alphabet[(v >> 6) & 63] : '=';
    *p = '=';
  }
}

/// Standard-alphabet base64 with padding (RFC 4648 §4).
inline std::string base64_encode(byte_view data) {
  std::string out;
  append_base64(out, data);
  return out;
}

/// The number of bytes `text` decodes to if it is well formed (used to check limits before
/// decoding); 0 for text whose length is not a multiple of 4.
inline std::size_t base64_decoded_size(std::string_view text) noexcept {
  if (text.size() % 4 != 0) return 0;
  std::size_t n = text.size() / 4 * 3;
  if (!text.empty() && text.back() == '=') --n;
  if (text.size() >= 2 && text[text.size() - 2] == '=') --n;
  return n;
}

namespace detail {
// Each byte's value as a base64 digit; 0xff for every byte outside the standard alphabet.
inline constexpr std::array<std::uint8_t, 256> base64_values = [] {
  std::array<std::uint8_t, 256> t{};
  t.fill(0xff);
  constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (std::size_t i = 0; i < alphabet.size(); ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::uint8_t>(i);
  return t;
}();
}  // namespace detail

/// Strict base64 decoding: length a multiple of 4, only the standard alphabet, padding only as the
/// last one or two characters, and the unused bits before the padding zero (RFC 4648 §3.5).
/// Whitespace, line breaks and the URL-safe alphabet are rejected.
inline std::optional<bytes> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  if (text.empty()) return bytes{};
  const std::size_t pad = text.back() != '=' ? 0 : text[text.size() - 2] == '=' ? 2 : 1;
  bytes out(base64_decoded_size(text));
  const auto& value = detail::base64_values;
  const auto* in = reinterpret_cast<const unsigned char*>(text.data());
  std::uint8_t* o = out.data();
  // Every group but the last has no padding: a table lookup per character, one check at the end
  // (an invalid character sets the high bit of `invalid`).
  const std::size_t last = text.size() - 4;
  std::uint32_t invalid = 0;
  for (std::size_t i = 0; i < last; i += 4, o += 3) {
    const std::uint32_t a = value[in[i]], b = value[in[i + 1]], c = value[in[i + 2]], d = value[in[i + 3]];
    invalid |= a | b | c | d;
    const std::uint32_t v = a << 18 | b << 12 | c << 6 | d;
    o[0] = static_cast<std::uint8_t>(v >> 16);
    o[1] = static_cast<std::uint8_t>(v >> 8);
    o[2] = static_cast<std::uint8_t>(v);
  }
  if (invalid & 0x80) return std::nullopt;
  std::uint32_t v = 0;
  for (std::size_t j = 0; j < 4; ++j) {
    const std::uint32_t d = j >= 4 - pad ? (in[last + j] == '=' ? 0 : 0xff) : value[in[last + j]];
    if (d == 0xff) return std::nullopt;
    v = v << 6 | d;
  }
  if (pad == 1 && (v & 0xff) != 0) return std::nullopt;  // non-zero trailing bits
  if (pad == 2 && (v & 0xffff) != 0) return std::nullopt;
  o[0] = static_cast<std::uint8_t>(v >> 16);
  if (pad < 2) o[1] = static_cast<std::uint8_t>(v >> 8);
  if (pad < 1) o[2] = static_cast<std::uint8_t>(v);
  return out;
}

// ---------------------------------------------------------------- UUID v4

/// A version-4 UUID (RFC 9562), kept as its 16 bytes.
struct uuid {
  std::array<std::uint8_t, 16> bytes{};  ///< big-endian field order, as written
  friend bool operator==(const uuid&, const uuid&) = default;
  friend auto operator<=>(const uuid&, const uuid&) = default;
};

/// Makes a version-4 UUID from 16 random bytes (sets the version and variant bits).
inline uuid make_uuid_v4(std::array<std::uint8_t, 16> random) noexcept {
  random[6] = static_cast<std::uint8_t>((random[6] & 0x0f) | 0x40);
  random[8] = static_cast<std::uint8_t>((random[8] & 0x3f) | 0x80);
  return uuid{random};
}

/// Canonical lowercase 8-4-4-4-12 form.
inline std::string format_uuid(const uuid& u) {
  const std::string h = hex_encode(u.bytes);
  return h.substr(0, 8) + '-' + h.substr(8, 4) + '-' + h.substr(12, 4) + '-' + h.substr(16, 4) + '-' + h.substr(20);
}

/// Parses the canonical lowercase form of a version-4, variant-10 UUID (ENV-12); anything else
/// (upper case, braces, a missing dash, another version or variant) is rejected.
inline std::optional<uuid> parse_uuid_v4(std::string_view text) noexcept {
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')
    return std::nullopt;
  uuid u;
  std::span<std::uint8_t> out{u.bytes};
  if (!hex_decode_into(text.substr(0, 8), out.subspan(0, 4)) ||
      !hex_decode_into(text.substr(9, 4), out.subspan(4, 2)) ||
      !hex_decode_into(text.substr(14, 4), out.subspan(6, 2)) ||
      !hex_decode_into(text.substr(19, 4), out.subspan(8, 2)) ||
      !hex_decode_into(text.substr(24, 12), out.subspan(10, 6)))
    return std::nullopt;
  if ((u.bytes[6] >> 4) != 4 || (u.bytes[8] >> 6) != 2) return std::nullopt;
  return u;
}

// ---------------------------------------------------------------- timestamps

using sys_milliseconds = std::chrono::sys_time<std::chrono::milliseconds>;

/// When a span of `length` that began at `since` ends. Every timer of the library is written with
/// this and has_elapsed(), so what a timer checks and the deadline it reports are one instant.
template <class Rep, class Period>
constexpr sys_milliseconds ends_at(sys_milliseconds since, std::chrono::duration<Rep, Period> length) noexcept {
  return since + std::chrono::duration_cast<std::chrono::milliseconds>(length);
}
/// True once `length` has passed since `since` (at ends_at() itself too).
template <class Rep, class Period>
constexpr bool has_elapsed(sys_milliseconds since, std::chrono::duration<Rep, Period> length, sys_milliseconds now) noexcept {
  return now >= ends_at(since, length);
}

/// The wall clock at the precision of timestamps. The engine reads no clock: the node, the client
/// and the tools read this one and pass it as `now`.
inline sys_milliseconds system_now() { return std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now()); }

/// An RFC 3339 UTC timestamp with millisecond resolution. The number of fraction digits is kept
/// so that formatting gives back exactly the text that was parsed (signatures cover the text).
struct utc_timestamp {
  sys_milliseconds time{};    ///< the instant
  int fraction_digits = 3;    ///< 0 to 3 digits after the seconds; 3 is what senders write (ENV-9)
  friend bool operator==(const utc_timestamp&, const utc_timestamp&) = default;
};

/// Formats as YYYY-MM-DDTHH:MM:SS[.f{1,3}]Z with fraction_digits digits, or more when the instant
/// needs them (so no value is ever written inexactly). Precondition: the year is 0..9999.
inline std::string format_timestamp(const utc_timestamp& ts) {
  using namespace std::chrono;
  const auto day = floor<days>(ts.time);
  const year_month_day ymd{day};
  const hh_mm_ss hms{ts.time - day};
  const auto ms = static_cast<unsigned>(hms.subseconds().count());
  const int needed = ms % 1000 == 0 ? 0 : ms % 100 == 0 ? 1 : ms % 10 == 0 ? 2 : 3;
  const int digits = std::max(ts.fraction_digits, needed);
  std::string out("0000-00-00T00:00:00.000Z");
  const auto put = [&out](std::size_t at, unsigned value, int width) {
    for (int i = width - 1; i >= 0; --i, value /= 10) out[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
  };
  put(0, static_cast<unsigned>(static_cast<int>(ymd.year())), 4);
  put(5, static_cast<unsigned>(ymd.month()), 2);
  put(8, static_cast<unsigned>(ymd.day()), 2);
  put(11, static_cast<unsigned>(hms.hours().count()), 2);
  put(14, static_cast<unsigned>(hms.minutes().count()), 2);
  put(17, static_cast<unsigned>(hms.seconds().count()), 2);
  put(20, ms, 3);
  if (digits == 0) {
    out.resize(19);
  } else {
    out.resize(20 + static_cast<std::size_t>(digits));
  }
  out += 'Z';
  return out;
}

/// A timestamp for `t`, truncated to milliseconds, written with three fraction digits.
inline utc_timestamp make_timestamp(std::chrono::system_clock::time_point t) noexcept {
  return {std::chrono::floor<std::chrono::milliseconds>(t), 3};
}

/// Parses YYYY-MM-DDTHH:MM:SS[.f{1,3}]Z exactly (ENV-8): upper-case T and Z, a real calendar
/// date, hours 00-23, minutes and seconds 00-59 (no leap second), no other offset.
inline std::optional<utc_timestamp> parse_timestamp(std::string_view s) noexcept {
  using namespace std::chrono;
  auto num = [&](std::size_t pos, std::size_t len) -> int {
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return -1;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
      s.back() != 'Z')
    return std::nullopt;
  const int y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2), se = num(17, 2);
  if (y < 0 || mo < 0 || d < 0 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59)
    return std::nullopt;
  int digits = 0, millis = 0;
  if (s.size() > 20) {
    digits = static_cast<int>(s.size()) - 21;  // 19 for "YYYY-MM-DDTHH:MM:SS", then ".", digits, "Z"
    if (s[19] != '.' || digits < 1 || digits > 3) return std::nullopt;
    const int f = num(20, static_cast<std::size_t>(digits));
    if (f < 0) return std::nullopt;
    millis = f * (digits == 1 ? 100 : digits == 2 ? 10 : 1);
  }
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  const auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{se} + milliseconds{millis};
  return utc_timestamp{t, digits};
}

}  // namespace peerproto
