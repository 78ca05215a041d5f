// RapidCheck generators for the wire format's values: valid UTF-8 strings, bounded JSON values,
// entity ids, timestamps, and whole envelopes (signed or sealed).
#pragma once

#include <peerproto/envelope.hpp>

#include <rapidcheck.h>

#include <string>

namespace peerproto::gen {

/// A code point that is not a surrogate, biased towards ASCII but covering every UTF-8 length
/// and the ranges that sort differently in UTF-16 (U+E000.., supplementary planes).
inline rc::Gen<std::uint32_t> code_point() {
  return rc::gen::oneOf(rc::gen::inRange<std::uint32_t>(0x00, 0x80), rc::gen::inRange<std::uint32_t>(0x20, 0x7f),
                        rc::gen::inRange<std::uint32_t>(0x80, 0x800), rc::gen::inRange<std::uint32_t>(0x800, 0xD800),
                        rc::gen::inRange<std::uint32_t>(0xE000, 0x10000),
                        rc::gen::inRange<std::uint32_t>(0x10000, 0x110000));
}

inline std::string utf8(const std::vector<std::uint32_t>& cps) {
  std::string s;
  for (auto cp : cps) jcs::append_utf8(s, cp);
  return s;
}

inline rc::Gen<std::string> utf8_string() {
  return rc::gen::map(rc::gen::container<std::vector<std::uint32_t>>(code_point()), utf8);
}

/// Finite doubles, mixing "round" values with arbitrary bit patterns.
inline rc::Gen<double> finite_double() {
  return rc::gen::oneOf(rc::gen::map(rc::gen::arbitrary<std::int32_t>(), [](std::int32_t i) { return i / 8.0; }),
                        rc::gen::suchThat(rc::gen::arbitrary<double>(), [](double d) { return std::isfinite(d); }));
}

/// A JSON value nested at most `depth` levels.
inline rc::Gen<boost::json::value> json_value(int depth) {
  using boost::json::value;
  auto scalar = rc::gen::oneOf(
      rc::gen::just(value(nullptr)), rc::gen::map(rc::gen::arbitrary<bool>(), [](bool b) { return value(b); }),
      rc::gen::map(rc::gen::arbitrary<std::int64_t>(), [](std::int64_t i) { return value(i); }),
      rc::gen::map(finite_double(), [](double d) { return value(d); }),
      rc::gen::map(utf8_string(), [](const std::string& s) { return value(s); }));
  if (depth <= 1) return scalar;
  auto array = rc::gen::map(rc::gen::container<std::vector<value>>(rc::gen::resize(4, json_value(depth - 1))),
                            [](std::vector<value> v) { return value(boost::json::array(v.begin(), v.end())); });
  auto object = rc::gen::map(
      rc::gen::container<std::vector<std::pair<std::string, value>>>(
          rc::gen::resize(4, rc::gen::pair(utf8_string(), json_value(depth - 1)))),
      [](std::vector<std::pair<std::string, value>> kv) {
        boost::json::object o;
        for (auto& [k, v] : kv) o[k] = std::move(v);  // later duplicates overwrite: keys stay unique
        return value(std::move(o));
      });
  return rc::gen::oneOf(scalar, scalar, array, object);
}

/// A JSON object in the form the strict parser gives back (integers as int64, others as double),
/// so values compare equal after a serialize → parse round trip.
inline rc::Gen<boost::json::object> payload_object() {
  return rc::gen::map(json_value(4), [](const boost::json::value& v) {
    boost::json::object o;
    o["body"] = v;
    return jcs::parse_strict(jcs::canonicalize(o), {limits::max_envelope_bytes * 64, 64})->as_object();
  });
}

inline rc::Gen<std::string> entity_id() {
  static const std::string alphabet = "ABCXYZabcxyz0189._:@-";
  return rc::gen::map(rc::gen::container<std::string>(rc::gen::elementOf(alphabet)), [](std::string s) {
    if (s.empty()) s = "a";
    if (s.size() > limits::max_entity_id_chars) s.resize(limits::max_entity_id_chars);
    return s;
  });
}

inline rc::Gen<utc_timestamp> timestamp() {
  return rc::gen::map(rc::gen::pair(rc::gen::inRange<std::int64_t>(-62167219200000, 253402300800000),
                                    rc::gen::inRange(0, 4)),
                      [](std::pair<std::int64_t, int> p) {
                        auto ms = p.first;
                        const int digits = p.second;
                        const int drop = digits == 0 ? 1000 : digits == 1 ? 100 : digits == 2 ? 10 : 1;
                        ms -= ((ms % drop) + drop) % drop;  // only as many digits as are written
                        return utc_timestamp{sys_milliseconds(std::chrono::milliseconds(ms)), digits};
                      });
}

template <std::size_t N>
rc::Gen<std::array<std::uint8_t, N>> byte_array() {
  return rc::gen::map(rc::gen::container<std::vector<std::uint8_t>>(N, rc::gen::arbitrary<std::uint8_t>()),
                      [](const std::vector<std::uint8_t>& v) {
                        std::array<std::uint8_t, N> a{};
                        std::copy(v.begin(), v.end(), a.begin());
                        return a;
                      });
}

/// An envelope header: supported version, any valid type, ids, time and nonce; a session part
/// half of the time. No payload and no signature yet.
inline rc::Gen<envelope> header() {
  return rc::gen::exec([] {
    envelope e;
    e.version = *rc::gen::element(std::string(version_1_0), std::string(version_1_1));
    e.msg_type = *rc::gen::element<std::string>("ping", "heartbeat", "task_delegate", "a", "x_1");
    e.sender_id = *entity_id();
    e.recipient_id = *entity_id();
    e.timestamp = *timestamp();
    e.nonce = *byte_array<16>();
    if (*rc::gen::arbitrary<bool>()) {
      e.session_id = make_uuid_v4(*byte_array<16>());
      e.sequence_num = *rc::gen::inRange<std::uint64_t>(1, limits::max_sequence_num + 1);
    }
    return e;
  });
}

}  // namespace peerproto::gen
