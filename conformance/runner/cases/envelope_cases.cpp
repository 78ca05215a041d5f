// §4: the envelope's members, each malformed form, and the errors they get.
#include "common.hpp"

namespace peerproto::conformance {
using namespace cases;

void add_envelope_cases(std::vector<test_case>& out) {
  const auto first_case = out.size();
  const std::string g = "envelope";
  const auto bad = [&](std::string id, std::vector<std::string> reqs, std::string title, build b, errc code = errc::invalid_format,
                       std::string contains = {}) {
    out.push_back(refusal(std::move(id), std::move(reqs), g, std::move(title), std::move(b), code, std::move(contains)));
  };
  const auto set = [](std::string name, json::value v) { return changed([name, v](json::object& o) { o[name] = v; }); };

  bad("ENV-1/array", {"ENV-1"}, "an array instead of an object is INVALID_FORMAT", [](context&) { return std::string("[]"); });
  bad("ENV-1/string", {"ENV-1"}, "a string instead of an object is INVALID_FORMAT", [](context&) { return std::string("\"ping\""); });
  bad("ENV-1/number", {"ENV-1"}, "a number instead of an object is INVALID_FORMAT", [](context&) { return std::string("42"); });
  bad("ENV-1/null", {"ENV-1"}, "null instead of an object is INVALID_FORMAT", [](context&) { return std::string("null"); });
  bad("ENV-2/unknown-member", {"ENV-2"}, "a member not in the envelope table is INVALID_FORMAT", set("priority", "high"));
  for (const char* m : {"version", "msg_type", "sender_id", "recipient_id", "timestamp", "nonce"})
    bad(std::string("ENV-3/missing-") + m, {"ENV-3"}, std::string("an absent ") + m + " is MISSING_FIELDS and the message names it",
        changed([m](json::object& o) { o.erase(m); }), errc::missing_fields, m);
  bad("ENV-3/first-missing-named", {"ENV-3"}, "with timestamp and nonce both absent the message names timestamp (table order)",
      changed([](json::object& o) { o.erase("nonce"); o.erase("timestamp"); }), errc::missing_fields, "timestamp");
  bad("ENV-4/number", {"ENV-4", "ENV-21"}, "a numeric version is INVALID_FORMAT", set("version", 1.1));
  bad("ENV-4/unsupported", {"ENV-4", "VER-3"}, "version \"2.0\" is INVALID_VERSION with supported_versions", set("version", "2.0"),
      errc::invalid_version);
  for (const auto& [name, value] : std::vector<named_value>{
           {"number", 7}, {"empty", ""}, {"uppercase", "Ping"}, {"digit-first", "1ping"}, {"hyphen", "ping-pong"},
           {"65-chars", json::string(65, 'a')}})
    bad("ENV-5/" + name, {"ENV-5"}, "msg_type " + json::serialize(value).substr(0, 20) + " is INVALID_FORMAT", set("msg_type", value));
  for (const auto& [name, value] : std::vector<named_value>{
           {"empty", ""}, {"129-chars", json::string(129, 'a')}, {"space", "a b"}, {"slash", "a/b"}, {"number", 12}})
    bad("ENV-6/sender-" + name, {"ENV-6", "ID-2", "ERR-4"}, "sender_id " + json::serialize(value).substr(0, 20) + " is INVALID_FORMAT",
        set("sender_id", value));
  bad("ENV-6/recipient-invalid", {"ENV-6"}, "recipient_id \"no way\" is INVALID_FORMAT", set("recipient_id", "no way"));
  bad("ENV-7/other-recipient", {"ENV-7"}, "a message addressed to another node is INVALID_FORMAT", set("recipient_id", "someone-else"),
      errc::invalid_format, "another");
  for (const auto& [name, value] : std::vector<named_value>{
           {"no-z", "2026-01-01T00:00:00"}, {"lowercase-t", "2026-01-01t00:00:00Z"}, {"lowercase-z", "2026-01-01T00:00:00z"},
           {"offset", "2026-01-01T00:00:00+00:00"}, {"four-digits", "2026-01-01T00:00:00.1234Z"}, {"feb-30", "2026-02-30T00:00:00Z"},
           {"hour-24", "2026-01-01T24:00:00Z"}, {"leap-second", "2016-12-31T23:59:60Z"}, {"no-seconds", "2026-01-01T00:00Z"},
           {"number", 1767225600}, {"space", "2026-01-01 00:00:00Z"}})
    bad("ENV-8/" + name, {"ENV-8"}, "timestamp " + json::serialize(value) + " is INVALID_FORMAT", set("timestamp", value));
  for (const auto& [name, digits] : std::vector<std::pair<std::string, int>>{{"no-fraction", {}}, {"one-fraction-digit", 1}})
    out.push_back({"ENV-8/" + name, {"ENV-8"}, g, "a timestamp with " + std::to_string(digits) + " fraction digits is accepted",
                   [d = digits](context& c) {
                     const auto& who = c.bound();
                     auto o = c.header(who, "ping", {{"n", 1}});
                     o["timestamp"] = timestamp_at({}, d);
                     const auto text = c.sign(o, who);
                     c.expect_reply(c.exchange(text), text, "pong", "ENV-8");
                   }});
  out.push_back({"ENV-9/reply-timestamps", {"ENV-9"}, g, "the node writes timestamps with three fraction digits", [](context& c) {
                   auto o = base_ping(c);
                   const auto text = c.sign(o, c.me());
                   const auto r = c.exchange(text);  // an UNKNOWN_SENDER error, whose timestamp we read
                   const auto ts = json::parse(r.body).at("timestamp").as_string();
                   c.check(ts.size() == 24 && ts[19] == '.', "ENV-9", "YYYY-MM-DDTHH:MM:SS.fffZ", std::string(ts));
                 }});
  for (const auto& [name, value] : std::vector<named_value>{
           {"31-chars", json::string(31, 'a')}, {"33-chars", json::string(33, 'a')}, {"uppercase", json::string(32, 'A')},
           {"not-hex", json::string(32, 'g')}, {"number", 12345}})
    bad("ENV-10/" + name, {"ENV-10", "ERR-3"}, "nonce " + json::serialize(value).substr(0, 12) + "... is INVALID_FORMAT (original_nonce null)",
        set("nonce", value));
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"uppercase", "6F1C2B8A-3D4E-4F60-8A7B-9C0D1E2F3A4B"}, {"version-1", "6f1c2b8a-3d4e-1f60-8a7b-9c0d1e2f3a4b"},
           {"variant", "6f1c2b8a-3d4e-4f60-ca7b-9c0d1e2f3a4b"}, {"no-hyphens", "6f1c2b8a3d4e4f608a7b9c0d1e2f3a4b"}})
    bad("ENV-12/" + name, {"ENV-12"}, "session_id " + value + " is INVALID_FORMAT",
        changed_session_shape([v = value](json::object& o) { o["session_id"] = v; }));
  bad("ENV-13/session-without-sequence", {"ENV-13"}, "session_id without sequence_num is MISSING_FIELDS",
      changed_session_shape([](json::object& o) { o.erase("sequence_num"); }), errc::missing_fields);
  bad("ENV-13/sequence-without-session", {"ENV-13"}, "sequence_num without session_id is MISSING_FIELDS",
      set("sequence_num", 1), errc::missing_fields);
  for (const auto& [name, literal] : std::vector<std::pair<std::string, std::string>>{
           {"zero", "0"}, {"negative", "-1"}, {"fraction", "1.0"}, {"exponent", "1e0"}, {"too-large", "9007199254740992"},
           {"string", "\"1\""}})
    bad("ENV-14/" + name, {"ENV-14"}, "sequence_num " + literal + " is INVALID_FORMAT", [l = literal](context& c) {
      auto text = changed_session_shape([](json::object&) {})(c);
      const std::string from = "\"sequence_num\":1";
      return text.replace(text.find(from), from.size(), "\"sequence_num\":" + l);
    });
  bad("ENV-15/neither", {"ENV-15"}, "neither payload nor encrypted_payload is MISSING_FIELDS",
      changed([](json::object& o) { o.erase("payload"); }), errc::missing_fields);
  bad("ENV-15/both", {"ENV-15", "ENV-17"}, "payload and encrypted_payload together are INVALID_FORMAT",
      changed([](json::object& o) { o["encrypted_payload"] = base64_encode(bytes(32, 1)); }));
  for (const auto& [name, value] : std::vector<named_value>{
           {"array", json::array{1}}, {"string", "hello"}, {"null", nullptr}})
    bad("ENV-16/" + name, {"ENV-16", "ENV-21"}, "payload " + json::serialize(value) + " is INVALID_FORMAT", set("payload", value));
  bad("ENV-17/sessionless", {"ENV-17"}, "encrypted_payload outside a session is INVALID_FORMAT", changed([](json::object& o) {
        o.erase("payload");
        o["encrypted_payload"] = base64_encode(bytes(32, 1));
      }));
  bad("ENV-17/version-1.0", {"ENV-17"}, "encrypted_payload in a 1.0 session message is INVALID_FORMAT",
      changed_session_shape([](json::object& o) { o["version"] = "1.0"; o["signature"] = std::string(128, 'a'); }));
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"unpadded", "AAAAAAAAAAAAAAAAAAAAAAAA"  "AA"}, {"whitespace", "AAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAA"},
           {"url-alphabet", "AAAAAAAAAAAAAAAAAAAAAA-_"}, {"trailing-bits", "AAAAAAAAAAAAAAAAAAAAAB=="},
           {"short", base64_encode(bytes(15, 1))}})
    bad("ENV-17/" + name, {"ENV-17"}, "encrypted_payload \"" + value + "\" is INVALID_FORMAT",
        changed_session_shape([v = value](json::object& o) { o["encrypted_payload"] = v; }));
  bad("ENV-18/short", {"ENV-18"}, "a 127-character signature is INVALID_FORMAT",
      changed_after_signing([](json::object& o) { o["signature"] = std::string(127, 'a'); }));
  bad("ENV-18/uppercase", {"ENV-18"}, "an upper-case hex signature is INVALID_FORMAT", changed_after_signing([](json::object& o) {
        std::string s(o["signature"].as_string());
        for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        o["signature"] = s;
      }));
  bad("ENV-18/number", {"ENV-18", "ENV-21"}, "a numeric signature is INVALID_FORMAT",
      changed_after_signing([](json::object& o) { o["signature"] = 1; }));
  bad("ENV-19/missing", {"ENV-19"}, "a sessionless message without signature is MISSING_FIELDS",
      changed_after_signing([](json::object& o) { o.erase("signature"); }), errc::missing_fields);
  bad("ENV-20/signature", {"ENV-20"}, "a v1.1 session message with a signature is INVALID_FORMAT",
      changed_session_shape([](json::object& o) { o["signature"] = std::string(128, 'a'); }));
  bad("ENV-20/payload", {"ENV-20"}, "a v1.1 session message with a plaintext payload is INVALID_FORMAT",
      changed_session_shape([](json::object& o) { o.erase("encrypted_payload"); o["payload"] = json::object{}; }));
  declare_needs(out, first_case, {},
                {{"ENV-8/no-fraction", need::handshake},
                 {"ENV-8/one-fraction-digit", need::handshake}});
}

}  // namespace peerproto::conformance
