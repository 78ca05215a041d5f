#include "vocabulary.hpp"

#include <peerproto/envelope.hpp>
#include <peerproto/handshake.hpp>
#include <peerproto/jcs.hpp>
#include <peerproto/key_file.hpp>
#include <peerproto/limit_names.hpp>
#include <peerproto/message_types.hpp>

#include <algorithm>

namespace peerproto::conformance {

std::string_view to_string(verdict v) {
  switch (v) {
    case verdict::pass: return "pass";
    case verdict::fail: return "fail";
    case verdict::timeout: return "timeout";
    case verdict::skip: return "skip";
    case verdict::info: return "info";
  }
  return "?";
}

std::string_view to_string(need n) {
  switch (n) {
    case need::capabilities: return "capabilities";
    case need::trust: return "trust";
    case need::handshake: return "handshake";
    case need::session: return "session";
    case need::websocket: return "websocket";
    case need::shim: return "shim";
  }
  return "?";
}

std::optional<need> need_named(std::string_view name) {
  for (const auto n : all_needs)
    if (to_string(n) == name) return n;
  return std::nullopt;
}

std::string_view describe(need n) {
  switch (n) {
    case need::capabilities: return "GET /capabilities answers a document (HTTP-7)";
    case need::trust: return "the node accepts identities it has never seen (trust tofu or open)";
    case need::handshake: return "a handshake with a new identity completes (HS-2..HS-16)";
    case need::session: return "a message in a new session is answered in it (SES-2, ENC-1)";
    case need::websocket: return "GET /ws upgrades to WebSocket (WS-1)";
    case need::shim: return "the node sends when the shim tells it to (--shim)";
  }
  return "?";
}

// ---------------------------------------------------------------- helpers

std::string random_hex(std::size_t n) {
  bytes b(n);
  crypto::random_bytes(b);
  return hex_encode(b);
}

std::string random_uuid() { return format_uuid(make_uuid_v4(crypto::random_array<16>())); }

std::string timestamp_at(std::chrono::milliseconds offset, int fraction_digits) {
  auto t = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now() + offset);
  // Zero fraction digits needs a whole second, so the instant is truncated to one.
  if (fraction_digits == 0) t = std::chrono::floor<std::chrono::seconds>(t);
  auto text = format_timestamp({t, 3});
  if (fraction_digits < 3) text = text.substr(0, 19) + (fraction_digits > 0 ? text.substr(19, 1 + fraction_digits) : "") + "Z";
  return text;
}

std::string canonical(const json::value& v) { return jcs::canonicalize(v); }

json::object parse_object(const std::string& text) { return json::parse(text).as_object(); }

bool node_info::supports_version(std::string_view v) const { return std::find(versions.begin(), versions.end(), v) != versions.end(); }
bool node_info::has_type(std::string_view t) const {
  return std::find(message_types.begin(), message_types.end(), t) != message_types.end();
}
std::int64_t node_info::limit(std::string_view name) const {
  const auto it = limits.find(name);
  if (it == limits.end()) throw std::logic_error("the runner asked for a limit SPEC §18 does not name: " + std::string(name));
  return it->second;
}

void node_info::read_limits() {
  const auto* listed = capabilities.if_contains("limits");
  const auto* object = listed ? listed->if_object() : nullptr;
  for (const auto& l : limit_names) {
    const std::string name(l.name);
    limits[name] = l.spec_default;
    const auto* v = object ? object->if_contains(name) : nullptr;
    if (!v) {
      assumed[name] = object ? "not listed in /capabilities" : "/capabilities has no limits object";
      continue;
    }
    boost::system::error_code ec;
    const auto n = v->to_number<std::int64_t>(ec);
    if (ec || n <= 0) {
      assumed[name] = "listed as " + json::serialize(*v) + ", not a positive whole number";
      continue;
    }
    limits[name] = n;
  }
}

std::string identity::public_hex() const { return hex_encode(key.public_key_bytes()); }

}  // namespace peerproto::conformance
