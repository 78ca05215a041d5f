// §14 errors and §15 message types.
#include "common.hpp"

#include <set>

namespace peerproto::conformance {
using namespace cases;

namespace {
std::string signed_by(context& c, const identity& who, std::string_view type, json::object payload = {}) {
  auto o = c.header(who, type, std::move(payload));
  return c.sign(o, who);
}

// Requests to a handler: signed and sessionless, or, against a node that requires encryption
// (VER-8), sealed in a session, where a handler's rules are the same.
struct requester {
  explicit requester(context& c_) : c(c_), who(c_.fresh()), session(c_.handshake(who)) {}
  std::string text(std::string_view type, json::object payload = {}) {
    if (c.node.requires_encryption()) return c.session_message(session, type, payload);
    return signed_by(c, who, type, std::move(payload));
  }
  json::object reply(const std::string& request, std::string_view type, std::string_view rule) {
    return c.expect_reply(c.exchange(request), request, type, rule, c.node.requires_encryption() ? &session : nullptr);
  }
  context& c;
  const identity& who;
  session_state session;
};

test_case delivered(std::string type) {
  return {"MSG-4/" + type, {"MSG-4", "MSG-8"}, "messages", type + " (with extra members) is answered by ack status delivered",
          [type](context& c) {
            c.require_type(type);
            requester q(c);
            const auto ack = q.reply(q.text(type, {{"anything", json::array{1, 2}}}), "ack", "MSG-4");
            c.check(ack.contains("status") && ack.at("status") == "delivered", "MSG-4", "status \"delivered\"", canonical(ack));
          }};
}
}  // namespace

void add_message_cases(std::vector<test_case>& out) {
  const auto first_case = out.size();
  const std::string g = "messages";
  out.push_back({"MSG-1/unregistered-type", {"MSG-1"}, g, "a type without a handler is UNSUPPORTED_MESSAGE_TYPE after authentication",
                 [](context& c) {
                   requester q(c);
                   expect_refusal(c, q.text("no_such_type"), errc::unsupported_message_type, "MSG-1");
                 }});
  out.push_back({"ERR-1/error-envelope", {"ERR-1", "ERR-2", "ERR-5", "ERR-6", "SIG-6", "HTTP-2"}, g,
                 "a refusal is a signed sessionless error with error_code, error_message, original_nonce and the table's status",
                 [](context& c) {
                   auto o = c.header(c.me(), "ping");
                   expect_refusal(c, c.sign(o, c.me()), errc::unknown_sender, "ERR-1");
                 }});
  out.push_back({"ENV-11/fresh-nonces", {"ENV-11"}, g, "the node's replies carry distinct 32-hex nonces", [](context& c) {
                   requester q(c);
                   std::set<std::string> seen;
                   for (int i = 0; i < 8; ++i) {
                     const auto text = q.text("ping");
                     const auto r = c.exchange(text);
                     c.expect_reply(r, text, "pong", "ENV-11", c.node.requires_encryption() ? &q.session : nullptr);
                     seen.insert(std::string(parse_object(r.body).at("nonce").as_string()));
                   }
                   c.check(seen.size() == 8, "ENV-11", "8 different nonces", std::to_string(seen.size()) + " different");
                 }});
  out.push_back({"MSG-2/ping-echo", {"MSG-2", "MSG-8"}, g, "ping is answered by pong echoing the whole payload, extra members included",
                 [](context& c) {
                   requester q(c);
                   const json::object payload{{"text", "hello"}, {"list", json::array{1, "two", nullptr}}, {"deep", json::object{{"x", true}}}};
                   const auto pong = q.reply(q.text("ping", payload), "pong", "MSG-2");
                   c.check(pong.contains("echo") && pong.at("echo") == json::value(payload), "MSG-2", "echo " + canonical(payload), canonical(pong));
                 }});
  for (const char* t : {"heartbeat", "status_report", "wake_up"}) out.push_back(delivered(t));
  out.push_back({"MSG-7/capability-query", {"MSG-7"}, g, "capability_query gets versions (highest first), suites, message types and limits",
                 [](context& c) {
                   c.use(need::capabilities);
                   c.require_type("capability_query");
                   requester q(c);
                   const auto p = q.reply(q.text("capability_query"), "capability_response", "MSG-7");
                   c.check(p.contains("versions") && p.at("versions") == c.node.capabilities.at("versions"), "MSG-7",
                           "the versions of /capabilities", canonical(p).substr(0, 200));
                   c.check(p.contains("suites") && p.at("suites").is_array(), "MSG-7", "a suites array", canonical(p).substr(0, 200));
                   const auto* types = p.if_contains("message_types");
                   c.check(types && types->is_array() && std::find(types->as_array().begin(), types->as_array().end(), json::value("ping")) !=
                                                             types->as_array().end(),
                           "MSG-7", "message_types including ping", canonical(p).substr(0, 200));
                   const auto* lim = p.if_contains("limits");
                   bool numbers = lim && lim->is_object() && !lim->as_object().empty();
                   if (numbers)
                     for (const auto& kv : lim->as_object()) numbers = numbers && kv.value().is_number();
                   c.check(numbers, "MSG-7", "limits, an object of name -> number", lim ? canonical(*lim).substr(0, 200) : "none");
                 }});
  out.push_back({"MSG-8/capability-query-payload", {"MSG-8"}, g, "capability_query with a non-empty payload is INVALID_FORMAT",
                 [](context& c) {
                   c.require_type("capability_query");
                   requester q(c);
                   expect_refusal(c, q.text("capability_query", {{"x", 1}}), errc::invalid_format, "MSG-8");
                 }});
  out.push_back({"MSG-6/task-delegate", {"MSG-6"}, g, "task_delegate is answered by task_accepted with a UUID v4 task_id", [](context& c) {
                   c.require_type("task_delegate");
                   requester q(c);
                   const auto p = q.reply(q.text("task_delegate", {{"task", json::object{{"do", "conformance"}}}}), "task_accepted", "MSG-6");
                   const auto* id = p.if_contains("task_id");
                   c.check(id && id->is_string() && parse_uuid_v4(id->get_string()).has_value(), "MSG-6", "task_id, a UUID v4",
                           id ? json::serialize(*id) : "none");
                 }});
  out.push_back({"MSG-8/task-delegate-payload", {"MSG-8"}, g, "task_delegate whose task is not an object is INVALID_FORMAT", [](context& c) {
                   c.require_type("task_delegate");
                   requester q(c);
                   expect_refusal(c, q.text("task_delegate", {{"task", 5}}), errc::invalid_format, "MSG-8");
                 }});
  out.push_back({"MSG-9/task-result", {"MSG-9"}, g, "task_result, completed and failed, is answered by ack status delivered",
                 [](context& c) {
                   c.require_type("task_result");
                   requester q(c);
                   const std::string task_id = "2f1c8e4a-7b3d-4c5e-9a6f-0b1d2e3f4a5b";  // a UUID v4
                   for (const auto& p : {json::object{{"task_id", task_id}, {"status", "completed"}, {"result", json::object{{"sum", 3}}}},
                                         json::object{{"task_id", task_id}, {"status", "failed"}, {"error", "no capacity"}}}) {
                     const auto ack = q.reply(q.text("task_result", p), "ack", "MSG-9");
                     c.check(ack.contains("status") && ack.at("status") == "delivered", "MSG-9", "status \"delivered\"", canonical(ack));
                   }
                 }});
  out.push_back({"MSG-8/task-result-payload", {"MSG-8", "MSG-9"}, g,
                 "task_result without its result, with a wrong status, an extra member or a bad task_id is INVALID_FORMAT",
                 [](context& c) {
                   c.require_type("task_result");
                   requester q(c);
                   const std::string id = "2f1c8e4a-7b3d-4c5e-9a6f-0b1d2e3f4a5b";
                   const json::object wrong[] = {
                       {{"task_id", id}, {"status", "completed"}},
                       {{"task_id", id}, {"status", "completed"}, {"result", 5}},
                       {{"task_id", id}, {"status", "done"}, {"result", json::object{}}},
                       {{"task_id", id}, {"status", "failed"}, {"error", std::string(513, 'x')}},
                       {{"task_id", id}, {"status", "completed"}, {"result", json::object{}}, {"error", "both"}},
                       {{"task_id", "not-a-uuid"}, {"status", "completed"}, {"result", json::object{}}},
                   };
                   for (const auto& p : wrong) expect_refusal(c, q.text("task_result", p), errc::invalid_format, "MSG-8");
                 }});
  out.push_back({"MSG-2/discovery", {"MSG-2", "ID-3"}, g, "discovery lists peers with their fingerprints, the runner among them", [](context& c) {
                   c.require_type("discovery");
                   requester q(c);
                   const auto& who = q.who;
                   const auto p = q.reply(q.text("discovery"), "discovery_response", "MSG-2");
                   const auto* peers = p.if_contains("peers");
                   c.check(peers && peers->is_array(), "MSG-2", "a peers array", canonical(p).substr(0, 200));
                   const auto want = fingerprint(who.key.public_key_bytes());
                   bool found = false;
                   for (const auto& e : peers->as_array())
                     found = found || (e.is_object() && e.as_object().contains("entity_id") && e.at("entity_id") == json::value(who.id) &&
                                       e.as_object().contains("fingerprint") && e.at("fingerprint") == json::value(want));
                   c.check(found, "ID-3", "an entry {" + who.id + ", " + want + "}", canonical(*peers).substr(0, 300));
                 }});
  out.push_back({"MSG-8/discovery-payload", {"MSG-8"}, g, "discovery with a non-empty payload is INVALID_FORMAT", [](context& c) {
                   c.require_type("discovery");
                   requester q(c);
                   expect_refusal(c, q.text("discovery", {{"x", 1}}), errc::invalid_format, "MSG-8");
                 }});
  out.push_back({"MSG-3/reply-type-as-request", {"MSG-3", "HS-24"}, g,
                 "a reply type sent as a request: UNSUPPORTED_MESSAGE_TYPE over HTTP, no answer over WebSocket", [](context& c) {
                   const auto& who = c.bound();
                   const auto ack = signed_by(c, who, "handshake_ack", {{"in_reply_to", random_hex(16)}});
                   if (!c.cfg.websocket) return expect_refusal(c, ack, errc::unsupported_message_type, "MSG-3");
                   c.send(ack);
                   const auto ping = signed_by(c, who, "ping");
                   c.expect_reply(c.exchange(ping), ping, "pong", "MSG-3");  // the first answer is the ping's
                 }});
  out.push_back({"ERR-8/error-as-request", {"ERR-8", "MSG-3"}, g, "an error is never answered with an error (HTTP: 400, empty body)",
                 [](context& c) {
                   const auto& who = c.bound();
                   const auto err = signed_by(c, who, "error",
                                              {{"error_code", "INVALID_FORMAT"}, {"error_message", "x"}, {"original_nonce", nullptr}});
                   if (c.cfg.websocket) {
                     c.send(err);
                     const auto ping = signed_by(c, who, "ping");
                     c.expect_reply(c.exchange(ping), ping, "pong", "ERR-8");
                     return;
                   }
                   const auto r = c.exchange(err);
                   c.check(r.status == 400 && r.body.empty(), "ERR-8", "HTTP 400 with an empty body", c.describe(r));
                 }});
  out.push_back({"ERR-8/malformed-error", {"ERR-8", "MSG-3"}, g,
                 "an error that is itself malformed (no nonce) is not answered either (HTTP: 400, empty body)", [](context& c) {
                   const auto& who = c.bound();
                   auto o = c.header(who, "error", {{"error_code", "INVALID_FORMAT"}, {"error_message", "x"}, {"original_nonce", nullptr}});
                   o.erase("nonce");
                   const auto err = c.sign(o, who);
                   if (c.cfg.websocket) {
                     c.send(err);
                     const auto ping = signed_by(c, who, "ping");
                     c.expect_reply(c.exchange(ping), ping, "pong", "ERR-8");  // the first answer is the ping's
                     return;
                   }
                   const auto r = c.exchange(err);
                   c.check(r.status == 400 && r.body.empty(), "ERR-8", "HTTP 400 with an empty body", c.describe(r));
                 }});
  // ERR-9: the first violated rule in processing order is the one reported.
  out.push_back(refusal("ERR-9/format-before-version", {"ERR-9", "PROC-1"}, g, "a bad nonce and version 9.9: INVALID_FORMAT (form first)",
                        changed([](json::object& o) { o["version"] = "9.9"; o["nonce"] = "xyz"; }), errc::invalid_format));
  out.push_back(refusal("ERR-9/version-before-recipient", {"ERR-9", "PROC-3"}, g, "version 9.9 and another recipient: INVALID_VERSION",
                        changed([](json::object& o) { o["version"] = "9.9"; o["recipient_id"] = "someone-else"; }), errc::invalid_version));
  out.push_back(refusal("ERR-9/recipient-before-skew", {"ERR-9", "PROC-3"}, g, "another recipient and a stale timestamp: INVALID_FORMAT",
                        changed([](json::object& o) {
                          o["recipient_id"] = "someone-else";
                          o["timestamp"] = timestamp_at(-std::chrono::hours(1));
                        }),
                        errc::invalid_format));
  out.push_back({"ERR-9/skew-before-signature", {"ERR-9", "PROC-3", "PROC-6"}, g, "a stale timestamp and a bad signature: REPLAY_DETECTED",
                 [](context& c) {
                   const auto& who = c.bound();
                   auto o = c.header(who, "ping");
                   o["timestamp"] = timestamp_at(-std::chrono::hours(1));
                   c.sign(o, who);
                   o["payload"] = json::object{{"x", 1}};
                   expect_refusal(c, canonical(o), errc::replay_detected, "ERR-9");
                 }});
  out.push_back({"ERR-9/signature-before-type", {"ERR-9", "PROC-6", "PROC-7"}, g, "an unregistered type and a bad signature: INVALID_SIGNATURE",
                 [](context& c) {
                   const auto& who = c.bound();
                   auto o = c.header(who, "no_such_type");
                   c.sign(o, who);
                   o["payload"] = json::object{{"x", 1}};
                   expect_refusal(c, canonical(o), errc::invalid_signature, "ERR-9");
                 }});
  out.push_back({"ERR-9/session-before-window", {"ERR-9", "PROC-4"}, g, "an unknown session and a sequence number far ahead: SESSION_NOT_FOUND",
                 [](context& c) {
                   expect_refusal(c, changed_session_shape([](json::object& o) { o["sequence_num"] = 1000000; })(c), errc::session_not_found,
                                  "ERR-9");
                 }});
  // The handler cases need a session: against a node that requires encryption they send in one.
  declare_needs(out, first_case, need::session,
                {{"ERR-1/error-envelope", {}},
                 {"MSG-7/capability-query", need::capabilities | need::session},
                 {"MSG-3/reply-type-as-request", need::handshake},
                 {"ERR-8/error-as-request", need::handshake},
                 {"ERR-8/malformed-error", need::handshake},
                 {"ERR-9/format-before-version", {}},
                 {"ERR-9/version-before-recipient", {}},
                 {"ERR-9/recipient-before-skew", {}},
                 {"ERR-9/skew-before-signature", need::handshake},
                 {"ERR-9/signature-before-type", need::handshake},
                 {"ERR-9/session-before-window", {}}});
}

}  // namespace peerproto::conformance
