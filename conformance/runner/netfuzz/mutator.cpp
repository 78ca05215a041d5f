#include "mutator.hpp"

#include <peerproto/crypto.hpp>
#include <peerproto/encoding.hpp>
#include <peerproto/jcs.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace peerproto::conformance::netfuzz {

std::string_view to_string(input_kind k) {
  switch (k) {
    case input_kind::signed_envelope: return "signed_envelope";
    case input_kind::session_message: return "session_message";
    case input_kind::raw_body: return "raw_body";
    case input_kind::raw_http: return "raw_http";
    case input_kind::raw_ws: return "raw_ws";
    case input_kind::forgery: return "forgery";
  }
  return "?";
}

json::object input::to_json() const {
  json::object o{{"kind", to_string(kind)}, {"mutation", mutation}};
  switch (kind) {
    case input_kind::signed_envelope: o["envelope"] = envelope; break;
    case input_kind::session_message:
      o["header"] = header;
      o["payload"] = payload;
      o["sequence_offset"] = sequence_offset;
      break;
    case input_kind::raw_body:
    case input_kind::raw_http:
    case input_kind::raw_ws: o["bytes_base64"] = base64_encode(as_bytes(bytes)); break;
    case input_kind::forgery:
      o["forgery"] = forgery;
      if (!member.empty()) o["member"] = member;
      break;
  }
  return o;
}

input input::from_json(const json::object& o) {
  input in;
  const auto* kind = o.if_contains("kind");
  if (!kind || !kind->is_string()) throw std::invalid_argument("a finding's input has no kind");
  const std::string k(kind->get_string());
  const auto object_at = [&](const char* name) {
    const auto* v = o.if_contains(name);
    if (!v || !v->is_object()) throw std::invalid_argument(std::string("a finding's input has no object ") + name);
    return v->get_object();
  };
  if (const auto* m = o.if_contains("mutation"); m && m->is_string()) in.mutation = std::string(m->get_string());
  if (k == "signed_envelope") {
    in.kind = input_kind::signed_envelope;
    in.envelope = object_at("envelope");
  } else if (k == "session_message") {
    in.kind = input_kind::session_message;
    in.header = object_at("header");
    in.payload = object_at("payload");
    if (const auto* off = o.if_contains("sequence_offset"); off && off->is_int64()) in.sequence_offset = off->as_int64();
  } else if (k == "raw_body" || k == "raw_http" || k == "raw_ws") {
    in.kind = k == "raw_body" ? input_kind::raw_body : k == "raw_http" ? input_kind::raw_http : input_kind::raw_ws;
    const auto* b = o.if_contains("bytes_base64");
    const auto bytes = b && b->is_string() ? base64_decode(b->get_string()) : std::nullopt;
    if (!bytes) throw std::invalid_argument("a finding's input has no bytes_base64");
    in.bytes.assign(bytes->begin(), bytes->end());
  } else if (k == "forgery") {
    in.kind = input_kind::forgery;
    const auto* f = o.if_contains("forgery");
    if (!f || !f->is_string()) throw std::invalid_argument("a finding's forgery has no name");
    in.forgery = forgery_named(f->get_string()).name;
    if (const auto* m = o.if_contains("member"); m && m->is_string()) in.member = std::string(m->get_string());
  } else {
    throw std::invalid_argument("unknown input kind " + k);
  }
  return in;
}

const forgery_kind& forgery_named(std::string_view name) {
  for (const auto& f : forgeries)
    if (f.name == name) return f;
  throw std::invalid_argument("no forgery is called " + std::string(name));
}

input mutator::forged() {
  input in;
  in.kind = input_kind::forgery;
  in.forgery = forging_[pick(forging_.size())];
  in.mutation = std::string(forgery_named(in.forgery).what);
  if (in.forgery == "tampered") {
    static constexpr std::string_view members[] = {"payload", "timestamp", "nonce", "msg_type", "version"};
    in.member = members[pick(std::size(members))];
    in.mutation += ": " + in.member;
  }
  return in;
}

std::vector<seed> builtin_seeds() {
  const std::string small = R"({"text":"hi"})";
  const auto digest = hex_encode(crypto::sha256(as_bytes(small)));
  return {
      {"ping", {{"text", "hello"}}},
      {"heartbeat", {{"status", "ok"}, {"load", 0.25}}},
      {"status_report", {{"state", "idle"}, {"tasks", json::array{1, 2, 3}}}},
      {"wake_up", {}},
      {"capability_query", {}},
      {"discovery", {}},
      {"task_delegate", {{"task", {{"kind", "summarize"}, {"input", "a text"}}}}},
      {"task_result", {{"task_id", "3f1c2f4e-8b1a-4c55-9d2e-1f6a7b8c9d0e"}, {"status", "completed"}, {"result", json::object{}}}},
      {"chunk", {{"transfer_id", "7d9f3c1a-2b4e-4f6a-8c0d-1e2f3a4b5c6d"}, {"index", 0}, {"total", 1},
                 {"total_size", small.size()}, {"sha256", digest}, {"original_msg_type", "ping"},
                 {"data", base64_encode(as_bytes(small))}}},
      {"handshake", {{"identity_key", "$self"}, {"ephemeral_key", std::string(64, 'a')}, {"supported_versions", json::array{"1.1", "1.0"}},
                     {"cipher_suites", json::array{"x25519-hkdf-sha256-aes256gcm"}}, {"challenge", std::string(64, 'b')}}},
      {"handshake_confirm", {{"session_id", "5a0c1b2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"}, {"challenge_response", std::string(64, 'c')},
                             {"key_confirmation", std::string(64, 'd')}}},
  };
}

std::vector<seed> seeds_from(const std::string& dir) {
  std::vector<seed> out;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file() || !it->path().filename().string().ends_with("-sent.json")) continue;
    std::ifstream in(it->path());
    const std::string text{std::istreambuf_iterator<char>(in), {}};
    boost::system::error_code pec;
    const auto v = json::parse(text, pec);
    if (pec || !v.is_object()) continue;
    const auto* type = v.as_object().if_contains("msg_type");
    const auto* payload = v.as_object().if_contains("payload");
    if (type && type->is_string() && payload && payload->is_object() && type->get_string() != "session_close")
      out.push_back({std::string(type->get_string()), payload->get_object()});
  }
  if (ec) throw std::invalid_argument("--seeds " + dir + ": " + ec.message());
  return out;
}

// ------------------------------------------------------------ value mutations

json::value mutator::odd_value() {
  json::array deep;
  for (int i = 0; i < 60; ++i) deep = json::array{std::move(deep)};
  const std::size_t lengths[] = {0, 1, 63, 64, 65, 256, 257, 513, 4097, 70000};
  switch (pick(16)) {
    case 0: return nullptr;
    case 1: return true;
    case 2: return 0;
    case 3: return -1;
    case 4: return 1.5;
    case 5: return 1e308;
    case 6: return static_cast<std::int64_t>(9007199254740993);
    case 7: return UINT64_MAX;
    case 8: return json::string(lengths[pick(std::size(lengths))], "aZ0 ./\\\"\x01"[pick(9)]);
    case 9: return "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";  // é € and an emoji: valid UTF-8 beyond ASCII
    case 10: return json::array{};
    case 11: return json::object{};
    case 12: return deep;
    case 13: return json::array{1, "two", nullptr, json::object{{"x", 1}}};
    case 14: return json::string(1, '\0');
    default: return "$absent";
  }
}

std::string mutator::mutate_value(json::value& v, int depth) {
  if (v.is_object() && depth < 4 && chance(70)) return mutate_object(v.get_object());
  if (v.is_array() && !v.get_array().empty() && depth < 4 && chance(60)) {
    auto& a = v.get_array();
    const auto i = pick(a.size());
    switch (pick(3)) {
      case 0: return "[" + std::to_string(i) + "]" + mutate_value(a[i], depth + 1);
      case 1: a.erase(a.begin() + static_cast<std::ptrdiff_t>(i)); return "removed element " + std::to_string(i);
      default: a.push_back(a[i]); return "duplicated element " + std::to_string(i);
    }
  }
  if (v.is_string() && chance(60)) {
    std::string s(v.get_string());
    std::string what;
    switch (pick(5)) {
      case 0: s = s.substr(0, s.empty() ? 0 : pick(s.size())); what = "truncated"; break;
      case 1: s += s; what = "doubled"; break;
      case 2: for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c))); what = "upper-cased"; break;
      case 3: if (!s.empty()) s[pick(s.size())] = "g-Z\x7f "[pick(5)]; what = "one character changed"; break;
      default: s.insert(s.begin() + static_cast<std::ptrdiff_t>(s.empty() ? 0 : pick(s.size())), ' '); what = "a space inserted"; break;
    }
    v = s;
    return what;
  }
  if (v.is_int64() || v.is_uint64()) {
    const std::int64_t n = v.is_int64() ? v.get_int64() : static_cast<std::int64_t>(v.get_uint64());
    const auto wrap = [](std::uint64_t u) { return static_cast<std::int64_t>(u); };  // two's complement, no overflow
    const auto u = static_cast<std::uint64_t>(n);
    const std::int64_t tweaks[] = {wrap(u + 1), wrap(u - 1), wrap(0 - u), wrap(u << 32), 0, INT64_MAX};
    v = tweaks[pick(std::size(tweaks))];
    return "the number changed";
  }
  v = odd_value();
  auto shown = jcs::canonicalize(v);
  if (shown.size() > 40) {
    std::size_t cut = 40;
    while (cut > 0 && (static_cast<unsigned char>(shown[cut]) & 0xC0) == 0x80) --cut;  // whole UTF-8 characters only
    shown = shown.substr(0, cut) + "...";
  }
  return "replaced by " + shown;
}

std::string mutator::mutate_object(json::object& o) {
  if (o.empty() || chance(15)) {
    const std::string names[] = {"x", "payload", "signature", "session_id", "sequence_num", "encrypted_payload", "__proto__", ""};
    const auto& name = names[pick(std::size(names))];
    o[name] = odd_value();
    return "added member \"" + name + "\"";
  }
  auto it = o.begin() + static_cast<std::ptrdiff_t>(pick(o.size()));
  const std::string key(it->key());
  switch (pick(6)) {
    case 0: o.erase(it); return "removed " + key;
    case 1: it->value() = "$absent"; return "removed " + key + " (at send)";
    case 2: {
      auto value = it->value();
      o.erase(it);
      o[key + (chance(50) ? "_" : "X")] = std::move(value);
      return "renamed " + key;
    }
    default: return key + ": " + mutate_value(it->value(), 1);
  }
}

std::string mutator::mutate_bytes(std::string& s) {
  if (s.empty()) {
    s = "{";
    return "empty";
  }
  const auto at = pick(s.size());
  switch (pick(7)) {
    case 0: s[at] = static_cast<char>(s[at] ^ (1 << pick(8))); return "bit flipped at " + std::to_string(at);
    case 1: s.insert(at, 1, "\0\xff\"{}[]\\,:"[pick(10)]); return "byte inserted at " + std::to_string(at);
    case 2: s.erase(at, 1 + pick(16)); return "bytes removed at " + std::to_string(at);
    case 3: s.insert(at, s.substr(at, 1 + pick(64))); return "bytes repeated at " + std::to_string(at);
    case 4: s.resize(at); return "truncated to " + std::to_string(at);
    case 5: s.insert(at, std::string(1 + pick(5000), '9')); return "digits inserted at " + std::to_string(at);
    default: s.insert(at, "\xed\xa0\x80"); return "an encoded surrogate inserted at " + std::to_string(at);
  }
}

std::string mutator::http_request(const std::string& body, std::string& what) {
  std::string method = "POST", target = "/message", version = "HTTP/1.1";
  std::string headers = "Host: node\r\nContent-Type: application/json\r\n";
  std::string framing = "Content-Length: " + std::to_string(body.size()) + "\r\n";
  std::string sent = body;
  switch (pick(9)) {
    case 0: framing = "Content-Length: " + std::to_string(body.size() + 1 + pick(100)) + "\r\n"; what = "Content-Length too large"; break;
    case 1: framing = "Content-Length: " + std::to_string(body.size() / 2) + "\r\n"; what = "Content-Length too small"; break;
    case 2: framing = "Content-Length: 99999999999999999999\r\n"; what = "Content-Length beyond 64 bits"; break;
    case 3: {
      const std::string sizes[] = {"zz", "-1", "ffffffffffffffff", "0"};
      framing = "Transfer-Encoding: chunked\r\n";
      sent = sizes[pick(std::size(sizes))] + "\r\n" + body + "\r\n0\r\n\r\n";
      what = "a bad chunk size";
      break;
    }
    case 4: framing += "Transfer-Encoding: chunked\r\n"; what = "Content-Length and Transfer-Encoding"; break;
    case 5: headers += "X-Long: " + std::string(9000 + pick(10000), 'h') + "\r\n"; what = "a header over 8 KiB"; break;
    case 6: headers += chance(50) ? "NoColon\r\n" : " folded: line\r\n"; what = "a malformed header line"; break;
    case 7: {
      const std::string methods[] = {"GET", "PUT", "post", "POST /message", "\x01"};
      const std::string targets[] = {"/message?x=1", "/../message", "*", "message", "/message#x"};
      method = methods[pick(std::size(methods))];
      target = targets[pick(std::size(targets))];
      what = "method " + method + " target " + target;
      break;
    }
    default: {
      const std::string versions[] = {"HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", "HTTP/0.9", ""};
      version = versions[pick(std::size(versions))];
      what = "version " + version;
      break;
    }
  }
  return method + " " + target + " " + version + "\r\n" + headers + framing + "\r\n" + sent;
}

// A client frame (RFC 6455 §5.2): `first` is FIN, RSV1-3 and the opcode; masked unless told
// otherwise; `length` overrides the length field (a frame that promises more than it carries).
std::string mutator::frame(std::uint8_t first, const std::string& payload, bool masked, std::optional<std::uint64_t> length) {
  std::string f(1, static_cast<char>(first));
  const std::uint64_t n = length.value_or(payload.size());
  const char mask_bit = masked ? '\x80' : '\0';
  if (n < 126) {
    f += static_cast<char>(mask_bit | static_cast<char>(n));
  } else if (n < 65536) {
    f += static_cast<char>(mask_bit | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n);
  } else {
    f += static_cast<char>(mask_bit | 127);
    for (int i = 7; i >= 0; --i) f += static_cast<char>(n >> (8 * i));
  }
  std::array<char, 4> key{};
  for (auto& k : key) k = static_cast<char>(pick(256));
  if (masked) f.append(key.data(), 4);
  for (std::size_t i = 0; i < payload.size(); ++i) f += masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i];
  return f;
}

std::string mutator::ws_frames(const std::string& body, std::string& what) {
  constexpr std::uint8_t fin = 0x80, text = 0x1, binary = 0x2, cont = 0x0, ping = 0x9, close = 0x8;
  const auto half = body.size() / 2;
  switch (pick(10)) {
    case 0: what = "an unmasked client frame"; return frame(fin | text, body, false);
    case 1: what = "reserved bits set"; return frame(static_cast<std::uint8_t>(fin | 0x70 | text), body);
    case 2: what = "an unknown opcode"; return frame(static_cast<std::uint8_t>(fin | (3 + pick(5))), body);
    case 3: what = "a binary frame"; return frame(fin | binary, body);
    case 4: what = "a fragmented ping"; return frame(ping, "x") + frame(fin | cont, "y");
    case 5: what = "a ping of 200 bytes"; return frame(fin | ping, std::string(200, 'p'));
    case 6: what = "a continuation with no message begun"; return frame(fin | cont, body);
    case 7: what = "a length of 2^63 with nothing after it"; return frame(fin | text, "", true, std::uint64_t{1} << 63);
    case 8: what = "a text message in two fragments, then a close"; return frame(text, body.substr(0, half)) + frame(fin | cont, body.substr(half)) + frame(fin | close, "");
    default: what = "invalid UTF-8 in a text frame"; return frame(fin | text, body + "\xc3\x28");
  }
}

// ------------------------------------------------------------ inputs

input mutator::next() {
  if (!forging_.empty() && (only_forgeries_ || chance(8))) return forged();
  const auto& s = seeds_[pick(seeds_.size())];
  input in;
  const auto roll = pick(100);
  const int rounds = 1 + static_cast<int>(pick(3));
  if (roll < 40 || s.msg_type == "handshake" || s.msg_type == "handshake_confirm") {
    in.kind = input_kind::signed_envelope;
    in.envelope = {{"version", "1.1"}, {"msg_type", s.msg_type}, {"sender_id", "$self"}, {"recipient_id", "$node"},
                   {"timestamp", "$now"}, {"nonce", "$nonce"}, {"payload", s.payload}};
    in.mutation = s.msg_type + ":";
    for (int i = 0; i < rounds; ++i) {
      auto& payload = in.envelope["payload"];
      in.mutation += " " + mutate_object(payload.is_object() && chance(60) ? payload.get_object() : in.envelope);
    }
  } else if (roll < 80) {
    in.kind = input_kind::session_message;
    in.header = {{"msg_type", s.msg_type}};
    in.payload = s.payload;
    in.mutation = s.msg_type + " in a session:";
    for (int i = 0; i < rounds; ++i) {
      if (chance(25)) {
        const std::string members[] = {"version", "msg_type", "timestamp", "nonce", "recipient_id", "sender_id"};
        const auto& m = members[pick(std::size(members))];
        json::value v = m == "msg_type" ? json::value(s.msg_type) : json::value(odd_value());
        in.mutation += " header " + m + ": " + mutate_value(v, 1);
        if (v != json::value("session_close")) in.header[m] = v;  // a close would end the session, not test it
      } else if (chance(3)) {  // ahead of the window's next: held for the node's gap timeout
        in.sequence_offset = static_cast<std::int64_t>(pick(70)) - 2;
        in.mutation += " sequence_num + " + std::to_string(in.sequence_offset);
      } else {
        in.mutation += " " + mutate_object(in.payload);
      }
    }
  } else {
    json::object e{{"version", "1.1"}, {"msg_type", s.msg_type}, {"sender_id", "fuzzer"}, {"recipient_id", "node"},
                   {"timestamp", "2026-01-01T00:00:00Z"}, {"nonce", std::string(32, '0')}, {"payload", s.payload},
                   {"signature", std::string(128, 'e')}};
    std::string text = jcs::canonicalize(e);
    in.mutation = s.msg_type + " bytes:";
    for (int i = 0; i < rounds; ++i) in.mutation += " " + mutate_bytes(text);
    in.kind = input_kind::raw_body;
    in.bytes = std::move(text);
    if (raw_tcp_ && roll >= 90) {
      std::string what;
      const bool ws = roll >= 95;
      in.kind = ws ? input_kind::raw_ws : input_kind::raw_http;
      in.bytes = ws ? ws_frames(in.bytes, what) : http_request(in.bytes, what);
      in.mutation += (ws ? "; WebSocket: " : "; HTTP: ") + what;
    }
  }
  return in;
}

std::vector<input> mutator::reductions(const input& in) const {
  std::vector<input> out;
  const auto without_each = [&](const json::object& o, auto set) {
    for (const auto& kv : o) {
      json::object smaller = o;
      smaller.erase(kv.key());
      input r = in;
      set(r, std::move(smaller));
      r.mutation = in.mutation + " (minimized: without " + std::string(kv.key()) + ")";
      out.push_back(std::move(r));
    }
  };
  switch (in.kind) {
    case input_kind::signed_envelope:
      if (const auto* p = in.envelope.if_contains("payload"); p && p->is_object())
        without_each(p->get_object(), [](input& r, json::object o) { r.envelope["payload"] = std::move(o); });
      break;
    case input_kind::session_message:
      without_each(in.payload, [](input& r, json::object o) { r.payload = std::move(o); });
      without_each(in.header, [](input& r, json::object o) { r.header = std::move(o); });
      break;
    case input_kind::forgery: break;  // already the smallest: one message, or the steps of one
    case input_kind::raw_body:
    case input_kind::raw_http:
    case input_kind::raw_ws:
      for (const std::size_t parts : {2u, 4u, 8u})
        for (std::size_t k = 0; k < parts && in.bytes.size() >= parts; ++k) {
          input r = in;
          const auto len = in.bytes.size() / parts;
          r.bytes.erase(k * len, len);
          out.push_back(std::move(r));
        }
      break;
  }
  return out;
}

}  // namespace peerproto::conformance::netfuzz
