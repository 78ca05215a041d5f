// §3: strict JSON and the canonical form.
#include "common.hpp"

namespace peerproto::conformance {
using namespace cases;

namespace {
// The text of a signed ping from a bound identity whose payload {"v": V} is written as `written`
// (a non-canonical spelling of the same value); the node must sign-check the parsed value.
void accepts_spelling(context& c, const json::value& value, const std::string& written, std::string_view rule) {
  const auto& who = c.bound();
  auto o = c.header(who, "ping", {{"v", value}});
  auto text = c.sign(o, who);
  const std::string from = "\"payload\":{\"v\":" + canonical(value) + "}";
  text.replace(text.find(from), from.size(), "\"payload\" : { \"v\" : " + written + " }");
  const auto pong = c.expect_reply(c.exchange(text), text, "pong", rule);
  c.check(pong.contains("echo") && pong.at("echo") == json::value(json::object{{"v", value}}), "MSG-2",
          "echo {\"v\":" + canonical(value) + "}", canonical(pong));
}

std::string nested(int arrays) { return std::string(static_cast<std::size_t>(arrays), '[') + std::string(static_cast<std::size_t>(arrays), ']'); }
}  // namespace

void add_json_cases(std::vector<test_case>& out) {
  const auto first_case = out.size();
  const std::string g = "json";
  const auto bad_text = [&](std::string id, std::vector<std::string> reqs, std::string title, std::string payload) {
    out.push_back(refusal(std::move(id), std::move(reqs), g, std::move(title), raw_payload(std::move(payload)), errc::invalid_format));
  };
  // Over WebSocket a text message must be valid UTF-8 (RFC 6455 §8.1): closing the connection
  // with status 1007 is as correct there as INVALID_FORMAT.
  const auto bad_utf8 = [&](std::string id, std::string title, std::string payload) {
    out.push_back({std::move(id), {"JSON-1", "WS-5"}, g, std::move(title), [b = raw_payload(std::move(payload))](context& c) {
                     const auto text = b(c);
                     if (!c.cfg.websocket) return expect_refusal(c, text, errc::invalid_format, "JSON-1");
                     c.send(text);
                     try {
                       c.expect_error(c.receive(), text, errc::invalid_format, "JSON-1");
                     } catch (const wire_failure& f) {
                       c.check(f.ws_close_code == 1007, "JSON-1", "INVALID_FORMAT, or close status 1007", f.what());
                     }
                   }});
  };
  bad_utf8("JSON-1/invalid-byte", "a 0xFF byte in a string is INVALID_FORMAT", "{\"text\":\"h\xffi\"}");
  bad_utf8("JSON-1/overlong", "an overlong UTF-8 form is INVALID_FORMAT", "{\"text\":\"\xc0\xaf\"}");
  bad_utf8("JSON-1/encoded-surrogate", "a UTF-8 encoded surrogate code point is INVALID_FORMAT", "{\"text\":\"\xed\xa0\x80\"}");
  bad_utf8("JSON-1/above-10ffff", "a code point above U+10FFFF is INVALID_FORMAT", "{\"text\":\"\xf4\x90\x80\x80\"}");
  bad_utf8("JSON-1/truncated", "a truncated UTF-8 sequence is INVALID_FORMAT", "{\"text\":\"\xe2\x82\"}");
  out.push_back(refusal("JSON-1/bom", {"JSON-1"}, g, "a byte-order mark before the envelope is INVALID_FORMAT",
                        [](context& c) { auto o = base_ping(c); return "\xef\xbb\xbf" + c.sign(o, c.me()); }, errc::invalid_format));
  out.push_back(refusal("JSON-2/top-level", {"JSON-2"}, g, "a duplicated envelope member is INVALID_FORMAT",
                        [](context& c) {
                          auto o = base_ping(c);
                          return "{\"nonce\":\"" + random_hex(16) + "\"," + c.sign(o, c.me()).substr(1);
                        },
                        errc::invalid_format));
  bad_text("JSON-2/nested", {"JSON-2"}, "a duplicated member inside the payload is INVALID_FORMAT", "{\"a\":1,\"a\":2}");
  bad_text("JSON-2/escaped-name", {"JSON-2"}, "\"a\" and \"\\u0061\" are the same name, so the object is INVALID_FORMAT",
           "{\"a\":1,\"\\u0061\":2}");
  bad_text("JSON-3/lone-high", {"JSON-3"}, "a lone high surrogate escape is INVALID_FORMAT", "{\"text\":\"\\ud800x\"}");
  bad_text("JSON-3/lone-low", {"JSON-3"}, "a lone low surrogate escape is INVALID_FORMAT", "{\"text\":\"\\udc00\"}");
  // The envelope is level 1 and the payload object level 2, so 31 arrays reach level 33.
  bad_text("JSON-4/depth-33", {"JSON-4"}, "nesting 33 levels deep is INVALID_FORMAT", "{\"d\":" + nested(31) + "}");
  // A heartbeat, not a ping: a pong would echo the payload one level deeper than the limit.
  out.push_back({"JSON-4/depth-32", {"JSON-4", "MSG-8"}, g, "nesting exactly 32 levels deep is accepted", [](context& c) {
                   c.require_type("heartbeat");
                   const auto& who = c.bound();
                   auto o = c.header(who, "heartbeat", {{"d", json::parse(nested(30))}});
                   const auto text = c.sign(o, who);
                   c.expect_reply(c.exchange(text), text, "ack", "JSON-4");
                 }});
  out.push_back({"JSON-5/oversize", {"JSON-5", "HTTP-3", "WS-4"}, g, "an envelope over the size limit is PAYLOAD_TOO_LARGE (WebSocket: close 1009)",
                 [](context& c) {
                   const auto limit = static_cast<std::size_t>(c.node.limit("max_envelope_bytes"));
                   auto o = base_ping(c);
                   o["payload"] = json::object{{"text", std::string(limit, 'a')}};
                   const auto text = c.sign(o, c.me());
                   if (!c.cfg.websocket) return expect_refusal(c, text, errc::payload_too_large, "JSON-5");
                   c.send(text);
                   try {
                     const auto r = c.receive();
                     c.fail("WS-4", "the connection closed with status 1009", c.describe(r));
                   } catch (const wire_failure& f) {
                     c.check(f.ws_close_code == 1009, "WS-4", "close status 1009", f.what());
                   }
                 }});
  bad_text("JSON-6/trailing-comma", {"JSON-6"}, "a trailing comma is INVALID_FORMAT", "{\"text\":\"a\",}");
  bad_text("JSON-6/comment", {"JSON-6"}, "a comment is INVALID_FORMAT", "{\"text\":\"a\"/* c */}");
  bad_text("JSON-6/single-quotes", {"JSON-6"}, "a single-quoted string is INVALID_FORMAT", "{\"text\":'a'}");
  bad_text("JSON-6/leading-zero", {"JSON-6"}, "a number with a leading zero is INVALID_FORMAT", "{\"n\":01}");
  bad_text("JSON-6/nan", {"JSON-6"}, "NaN is INVALID_FORMAT", "{\"n\":NaN}");
  bad_text("JSON-6/control-character", {"JSON-6"}, "an unescaped control character in a string is INVALID_FORMAT", "{\"text\":\"a\x01\"}");
  out.push_back(refusal("JSON-6/trailing-garbage", {"JSON-6"}, g, "bytes after the envelope are INVALID_FORMAT",
                        [](context& c) { auto o = base_ping(c); return c.sign(o, c.me()) + " x"; }, errc::invalid_format));
  out.push_back(refusal("JSON-6/two-values", {"JSON-6"}, g, "two JSON values in one message are INVALID_FORMAT",
                        [](context& c) { auto o = base_ping(c); const auto t = c.sign(o, c.me()); return t + t; }, errc::invalid_format));
  out.push_back(refusal("JSON-6/not-object", {"JSON-6", "ENV-1"}, g, "a top-level array is INVALID_FORMAT",
                        [](context&) { return std::string("[1,2,3]"); }, errc::invalid_format));
  bad_text("JSON-7/too-large", {"JSON-7"}, "a number beyond binary64 (1e400) is INVALID_FORMAT", "{\"n\":1e400}");
  out.push_back({"JSON-7/number-spelling", {"JSON-7", "JCS-1"}, g, "1E2 is the number 100: the signature over the canonical form verifies",
                 [](context& c) { accepts_spelling(c, 100, "1E2", "JSON-7"); }});
  out.push_back({"JCS-1/fraction-spelling", {"JCS-1"}, g, "0.10 is canonicalized as 0.1 before the signature check",
                 [](context& c) { accepts_spelling(c, 0.1, "0.10", "JCS-1"); }});
  out.push_back({"JCS-1/minus-zero", {"JCS-1"}, g, "-0 is canonicalized as 0 before the signature check",
                 [](context& c) { accepts_spelling(c, 0, "-0", "JCS-1"); }});
  out.push_back({"JCS-1/escapes", {"JCS-1"}, g, "\\u00e9 and \\/ escapes are decoded before the signature check",
                 [](context& c) { accepts_spelling(c, "\xc3\xa9/", "\"\\u00e9\\/\"", "JCS-1"); }});
  out.push_back({"JCS-3/member-order", {"JCS-3", "JCS-1"}, g, "an envelope with members in another order and with whitespace is accepted",
                 [](context& c) {
                   const auto& who = c.bound();
                   auto o = c.header(who, "ping", {{"b", 2}, {"a", 1}});
                   c.sign(o, who);
                   std::string text = "{\n";
                   // Reverse member order, spaces around separators: the same value, not canonical.
                   std::vector<std::string> members;
                   for (const auto& kv : o) members.push_back("  \"" + std::string(kv.key()) + "\" : " + json::serialize(kv.value()));
                   for (auto it = members.rbegin(); it != members.rend(); ++it) text += *it + (std::next(it) == members.rend() ? "\n" : ",\n");
                   text += "}";
                   c.expect_reply(c.exchange(text), text, "pong", "JCS-3");
                 }});
  declare_needs(out, first_case, {},
                {{"JSON-4/depth-32", need::handshake},
                 {"JSON-7/number-spelling", need::handshake},
                 {"JCS-1/fraction-spelling", need::handshake},
                 {"JCS-1/minus-zero", need::handshake},
                 {"JCS-1/escapes", need::handshake},
                 {"JCS-3/member-order", need::handshake}});
}

}  // namespace peerproto::conformance
