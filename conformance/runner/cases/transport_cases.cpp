// §16 the HTTP/1.1 and WebSocket transports. These cases use the transport they are about,
// whichever transport carries the other cases.
#include "common.hpp"

#include <peerproto/jcs.hpp>

#include <peerproto/crypto.hpp>

namespace peerproto::conformance {
using namespace cases;

namespace {
reply as_reply(context& c, const http_response& h) {
  c.record("received", "HTTP " + std::to_string(h.status) + " " + h.body, &h.body);
  return {h.status, h.body, h.header("content-type"), h.header("retry-after"), false};
}

reply ws_reply(context& c, ws_connection& ws) {
  auto m = ws.receive(c.until());
  c.record("received", (m.binary ? "binary: " : "") + m.data, &m.data);
  return {0, m.data, "", "", true};
}

std::string signed_ping(context& c, const identity& who, json::object payload = {}) {
  auto o = c.header(who, "ping", std::move(payload));
  return c.sign(o, who);
}

// POSTs `body` to /message on a new connection with the given headers.
http_response post(context& c, const std::string& body, const std::optional<std::string>& content_type) {
  http_connection h(c.source_endpoint(), c.until());
  c.record("sent", "POST /message, Content-Type " + content_type.value_or("(none)") + ": " + body, &body);
  h.send("POST", "/message", body, c.until(), content_type);
  return h.receive(c.until());
}

// Writes `raw` on a new connection: the node must answer 4xx and close, and go on serving.
void malformed(context& c, const std::string& raw, std::string_view rule) {
  http_connection h(c.source_endpoint(), c.until());
  c.record("sent", raw);
  h.write_raw(raw, c.until());
  const auto r = h.receive(c.until());
  c.record("received", "HTTP " + std::to_string(r.status));
  c.check(r.status >= 400 && r.status < 500, rule, "a 4xx status", "HTTP " + std::to_string(r.status));
  c.check(h.read_until_closed(c.until()).has_value(), rule, "the connection closed", "the connection stayed open");
  c.check(c.get("/health").status == 200, rule, "the node still answers /health", "no answer");
}

json::object get_json(context& c, const std::string& path, std::string_view rule) {
  const auto r = c.get(path);
  c.check(r.status == 200, rule, "HTTP 200 for GET " + path, "HTTP " + std::to_string(r.status));
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  c.check(!ec && v.is_object(), rule, "a JSON object", r.body.substr(0, 100));
  return v.as_object();
}

std::unique_ptr<ws_connection> open_ws(context& c) {
  c.use(need::websocket);
  return std::make_unique<ws_connection>(c.source_endpoint(), c.cfg.ws_path, c.until());
}
}  // namespace

void add_transport_cases(std::vector<test_case>& out) {
  const auto first_case = out.size();
  const std::string g = "http";
  out.push_back({"HTTP-1/text-plain", {"HTTP-1"}, g, "Content-Type text/plain is INVALID_FORMAT with 400", [](context& c) {
                   const auto text = signed_ping(c, c.bound());
                   c.expect_error(as_reply(c, post(c, text, "text/plain")), text, errc::invalid_format, "HTTP-1");
                 }});
  out.push_back({"HTTP-1/no-content-type", {"HTTP-1"}, g, "a request without Content-Type is INVALID_FORMAT with 400", [](context& c) {
                   const auto text = signed_ping(c, c.bound());
                   c.expect_error(as_reply(c, post(c, text, std::nullopt)), text, errc::invalid_format, "HTTP-1");
                 }});
  out.push_back({"HTTP-1/charset", {"HTTP-1"}, g, "application/json; charset=utf-8 is accepted", [](context& c) {
                   const auto text = signed_ping(c, c.bound());
                   c.expect_reply(as_reply(c, post(c, text, "application/json; charset=utf-8")), text, "pong", "HTTP-1");
                 }});
  out.push_back({"HTTP-3/declared-length", {"HTTP-3", "JSON-5"}, g,
                 "a declared Content-Length over the limit gets 413 PAYLOAD_TOO_LARGE before the body is sent", [](context& c) {
                   const auto limit = c.node.limit("max_envelope_bytes");
                   http_connection h(c.source_endpoint(), c.until());
                   const auto head = "POST /message HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: " +
                                     std::to_string(limit + 1) + "\r\n\r\n{";
                   c.record("sent", head);
                   h.write_raw(head, c.until());
                   c.expect_error(as_reply(c, h.receive(c.until())), "", errc::payload_too_large, "HTTP-3");
                 }});
  out.push_back({"HTTP-4/keep-alive", {"HTTP-4"}, g, "two requests on one connection are both answered and the connection stays open",
                 [](context& c) {
                   const auto& who = c.bound();
                   http_connection h(c.source_endpoint(), c.until());
                   for (int i = 0; i < 2; ++i) {
                     const auto text = signed_ping(c, who, {{"i", i}});
                     c.record("sent", text, &text);
                     h.send("POST", "/message", text, c.until());
                     const auto r = h.receive(c.until());
                     c.expect_reply(as_reply(c, r), text, "pong", "HTTP-4");
                     c.check(r.keep_alive, "HTTP-4", "a persistent connection", "Connection: close");
                   }
                 }});
  out.push_back({"HTTP-5/health-ready", {"HTTP-5"}, g, "/health and /ready answer 200 on a running node", [](context& c) {
                   c.check(c.get("/health").status == 200, "HTTP-5", "200 for /health", "another status");
                   c.check(c.get("/ready").status == 200, "HTTP-5", "200 for /ready", "another status");
                 }});
  out.push_back({"HTTP-6/public-key", {"HTTP-6", "ID-3"}, g, "/public-key answers entity_id, public_key and the key's fingerprint",
                 [](context& c) {
                   const auto o = get_json(c, "/public-key", "HTTP-6");
                   const auto want = fingerprint(c.node.key);
                   c.check(o.contains("entity_id") && o.at("entity_id") == json::value(c.node.entity_id), "HTTP-6", "entity_id", canonical(o));
                   c.check(o.contains("fingerprint") && o.at("fingerprint") == json::value(want), "ID-3", "fingerprint " + want, canonical(o));
                 }});
  out.push_back({"HTTP-7/capabilities", {"HTTP-7", "MSG-7"}, g, "/capabilities answers versions, suites, message_types and limits",
                 [](context& c) {
                   const auto o = get_json(c, "/capabilities", "HTTP-7");
                   for (const char* m : {"versions", "suites", "message_types", "limits"})
                     c.check(o.contains(m), "HTTP-7", std::string("a member ") + m, canonical(o).substr(0, 200));
                   c.check(!o.contains("in_reply_to"), "HTTP-7", "no in_reply_to", "in_reply_to present");
                 }});
  out.push_back({"HTTP-8/metrics", {"HTTP-8"}, g, "/metrics answers the Prometheus text format 0.0.4", [](context& c) {
                   const auto r = c.get("/metrics");
                   c.check(r.status == 200, "HTTP-8", "HTTP 200", "HTTP " + std::to_string(r.status));
                   const auto type = r.header("content-type");
                   c.check(type.starts_with("text/plain") && type.find("version=0.0.4") != std::string::npos, "HTTP-8",
                           "Content-Type text/plain; version=0.0.4", type);
                   std::size_t start = 0, samples = 0;
                   while (start < r.body.size()) {
                     const auto end = std::min(r.body.find('\n', start), r.body.size());
                     const auto line = r.body.substr(start, end - start);
                     start = end + 1;
                     if (line.empty() || line.starts_with("#")) continue;
                     const auto space = line.rfind(' ');
                     c.check(space != std::string::npos && space > 0, "HTTP-8", "lines 'name{labels} value'", line);
                     ++samples;
                   }
                   c.check(samples > 0, "HTTP-8", "at least one sample", "none");
                 }});
  out.push_back({"HTTP-9/openapi", {"HTTP-9"}, g, "/openapi.json answers an OpenAPI 3 description with /message", [](context& c) {
                   const auto o = get_json(c, "/openapi.json", "HTTP-9");
                   c.check(o.contains("openapi") && o.at("openapi").is_string() && o.at("openapi").as_string().starts_with("3."), "HTTP-9",
                           "openapi 3.x", canonical(o).substr(0, 100));
                   c.check(o.contains("paths") && o.at("paths").is_object() && o.at("paths").as_object().contains("/message"), "HTTP-9",
                           "paths with /message", canonical(o).substr(0, 200));
                 }});
  out.push_back({"HTTP-10/request-line", {"HTTP-10", "ERR-7"}, g, "a malformed request line gets 4xx and the connection closes",
                 [](context& c) { malformed(c, "HELLO THERE\r\n\r\n", "HTTP-10"); }});
  out.push_back({"HTTP-10/request-version", {"HTTP-10"}, g,
                 "a request line whose version is not HTTP/DIGIT.DIGIT gets 4xx (505 is for a well-formed version, SPEC §19 point 46)",
                 [](context& c) {
                   malformed(c, "GET /health HTTP/1.x\r\nHost: node\r\n\r\n", "HTTP-10");
                   malformed(c, "GET /health HTTP/11.1\r\nHost: node\r\n\r\n", "HTTP-10");
                 }});
  out.push_back({"HTTP-10/header-line", {"HTTP-10"}, g, "a header line without a colon gets 4xx and the connection closes",
                 [](context& c) { malformed(c, "GET /health HTTP/1.1\r\nHost node\r\n\r\n", "HTTP-10"); }});
  out.push_back({"HTTP-10/oversize-headers", {"HTTP-10"}, g, "headers over the header limit get 4xx and the connection closes",
                 [](context& c) { malformed(c, "GET /health HTTP/1.1\r\nHost: node\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n", "HTTP-10"); }});
  out.push_back({"HTTP-11/read-timeout", {"HTTP-11"}, g, "a connection that never completes its request is closed by the node",
                 [](context& c) {
                   http_connection h(c.source_endpoint(), c.until());
                   c.record("sent", "POST /message HTTP/1.1, then nothing more");
                   h.write_raw("POST /message HTTP/1.1\r\nHost: node\r\n", c.until());
                   c.note("waiting for the node's read timeout (read_timeout_ms " + std::to_string(c.node.limit("read_timeout_ms")) + ")");
                   // SPEC requires only the close: a response before it (such as 408) is allowed.
                   const auto before_close = h.read_until_closed(c.until());
                   c.check(before_close.has_value(), "HTTP-11", "the node closes the connection", "it stayed open");
                   if (!before_close->empty()) c.record("received", "before the close: " + before_close->substr(0, 200));
                 },
                 std::chrono::seconds(30)});
  out.push_back({"HTTP-12/wrong-method", {"HTTP-12"}, g, "GET /message is 405 with an Allow header", [](context& c) {
                   const auto r = c.get("/message");
                   c.check(r.status == 405, "HTTP-12", "HTTP 405", "HTTP " + std::to_string(r.status));
                   c.check(r.header("allow").find("POST") != std::string::npos, "HTTP-12", "Allow: POST", r.header("allow"));
                 }});
  out.push_back({"HTTP-12/unknown-path", {"HTTP-12"}, g, "an unknown path is 404", [](context& c) {
                   const auto r = c.get("/no-such-path");
                   c.check(r.status == 404, "HTTP-12", "HTTP 404", "HTTP " + std::to_string(r.status));
                 }});

  // ---------------------------------------------------------------- WebSocket
  const std::string w = "websocket";
  out.push_back({"WS-1/ping", {"WS-1"}, w, "a ping over /ws is answered on the same connection", [](context& c) {
                   const auto text = signed_ping(c, c.bound());
                   auto ws = open_ws(c);
                   c.record("sent", text, &text);
                   ws->send_text(text, c.until());
                   c.expect_reply(ws_reply(c, *ws), text, "pong", "WS-1");
                 }});
  out.push_back({"WS-2/pipelined", {"WS-2", "MSG-2"}, w, "16 requests in flight on one connection are all answered, matched by in_reply_to",
                 [](context& c) {
                   const auto& who = c.bound();
                   auto ws = open_ws(c);
                   std::map<std::string, std::string> by_nonce;
                   for (int i = 0; i < 16; ++i) {
                     const auto text = signed_ping(c, who, {{"i", i}});
                     by_nonce[std::string(parse_object(text).at("nonce").as_string())] = text;
                     c.record("sent", text, &text);
                     ws->send_text(text, c.until());
                   }
                   for (int i = 0; i < 16; ++i) {
                     const auto body = ws_reply(c, *ws).body;
                     // MSG-2: a pong names its request by in_reply_to, an error by original_nonce.
                     std::string nonce;
                     if (auto v = jcs::parse_strict(body); v && v->is_object())
                       if (const auto* p = v->as_object().if_contains("payload"); p && p->is_object())
                         for (const char* member : {"in_reply_to", "original_nonce"})
                           if (const auto* n = p->as_object().if_contains(member); n && n->is_string()) nonce = n->as_string();
                     c.check(by_nonce.contains(nonce), "MSG-2", "a reply naming one of the 16 requests", body.substr(0, 200));
                     c.expect_reply({0, body, "", "", true}, by_nonce[nonce], "pong", "WS-2");
                     by_nonce.erase(nonce);
                   }
                 }});
  out.push_back({"WS-2/in-flight-limit", {"WS-2", "ORD-3", "ORD-6"}, w,
                 "with the in-flight limit reached (held messages count), one more request is RATE_LIMITED", [](context& c) {
                   const auto limit = c.node.limit("ws_max_in_flight");
                   const auto window = c.node.limit("reorder_window");
                   // Held messages occupy the connection without an answer; spread them over
                   // enough sessions that each stays inside its reorder window.
                   const auto per_session = std::min<std::int64_t>(window - 1, limit);
                   const auto& who = c.fresh();
                   std::vector<session_state> sessions;
                   for (std::int64_t held = 0; held < limit; held += per_session) sessions.push_back(c.handshake(who));
                   auto ws = open_ws(c);
                   std::int64_t held = 0;
                   for (auto& s : sessions) {
                     s.next_out = 2;  // sequence 1 never comes, so everything after it is held
                     for (std::int64_t i = 0; i < per_session && held < limit; ++i, ++held) {
                       const auto text = c.session_message(s, "ping");
                       ws->send_text(text, c.until());
                     }
                   }
                   c.note(std::to_string(held) + " messages held on one connection");
                   const auto extra = signed_ping(c, who);
                   c.record("sent", extra, &extra);
                   ws->send_text(extra, c.until());
                   c.expect_error(ws_reply(c, *ws), extra, errc::rate_limited, "WS-2");
                   // Nothing more fits, not even the messages that would fill the gaps: the held
                   // ones fail after the gap timeout (ORD-6) and free the connection.
                   for (std::int64_t i = 0; i < held; ++i) {
                     const auto r = ws_reply(c, *ws);
                     c.check(r.body.find("\"SEQUENCE_ERROR\"") != std::string::npos, "ORD-6", "SEQUENCE_ERROR for each held message",
                             c.describe(r));
                   }
                 },
                 std::chrono::seconds(30)});
  out.push_back({"WS-3/binary", {"WS-3", "ERR-3", "ERR-4"}, w, "a binary message gets INVALID_FORMAT and the connection stays open",
                 [](context& c) {
                   const auto& who = c.bound();
                   auto ws = open_ws(c);
                   const auto binary = signed_ping(c, who);
                   c.record("sent", "binary: " + binary);
                   ws->send_binary(binary, c.until());
                   c.expect_error(ws_reply(c, *ws), "", errc::invalid_format, "WS-3");
                   const auto text = signed_ping(c, who);
                   c.record("sent", text, &text);
                   ws->send_text(text, c.until());
                   c.expect_reply(ws_reply(c, *ws), text, "pong", "WS-3");
                 }});
  out.push_back({"WS-4/oversize", {"WS-4"}, w, "a message over the envelope limit closes the connection with 1009", [](context& c) {
                   const auto limit = static_cast<std::size_t>(c.node.limit("max_envelope_bytes"));
                   auto ws = open_ws(c);
                   c.record("sent", "a text message of " + std::to_string(limit + 10) + " bytes");
                   ws->send_text("{\"pad\":\"" + std::string(limit, 'a') + "\"}", c.until());
                   try {
                     const auto m = ws->receive(c.until());
                     c.fail("WS-4", "close status 1009", "a message: " + m.data.substr(0, 100));
                   } catch (const wire_failure& f) {
                     c.check(f.ws_close_code == 1009, "WS-4", "close status 1009", f.what());
                   }
                 }});
  declare_needs(out, first_case, {},
                {{"HTTP-1/text-plain", need::handshake},
                 {"HTTP-1/no-content-type", need::handshake},
                 {"HTTP-1/charset", need::handshake},
                 {"HTTP-4/keep-alive", need::handshake},
                 {"WS-1/ping", need::handshake | need::websocket},
                 {"WS-2/pipelined", need::handshake | need::websocket},
                 {"WS-2/in-flight-limit", need::session | need::websocket},
                 {"WS-3/binary", need::handshake | need::websocket},
                 {"WS-4/oversize", need::websocket}});
}

}  // namespace peerproto::conformance
