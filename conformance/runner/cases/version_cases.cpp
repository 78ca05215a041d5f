// §7 versions and negotiation.
#include "common.hpp"

namespace peerproto::conformance {
using namespace cases;

namespace {
const std::string suite = "x25519-hkdf-sha256-aes256gcm";

offer offering(std::vector<std::string> versions, std::vector<std::string> suites) {
  offer o;
  o.versions = std::move(versions);
  o.suites = std::move(suites);
  return o;
}

// Runs message 1 of `o` and expects the error `code`.
void handshake_refused(context& c, const offer& o, errc code, std::string_view rule) {
  const auto p = c.begin_handshake(c.fresh(), o);
  expect_refusal(c, p.text1, code, rule);
}
}  // namespace

void add_version_cases(std::vector<test_case>& out) {
  const auto first_case = out.size();
  const std::string g = "version";
  out.push_back({"VER-2/supports-1.1", {"VER-2", "MSG-7"}, g, "the node supports 1.1 and lists its versions highest first", [](context& c) {
                   c.use(need::capabilities);
                   c.note("GET /capabilities: versions " + json::serialize(c.node.capabilities.at("versions")));
                   c.check(c.node.supports_version("1.1"), "VER-2", "\"1.1\" in capabilities.versions", json::serialize(c.node.capabilities.at("versions")));
                   c.check(c.node.versions.front() == "1.1", "MSG-7", "versions highest first", json::serialize(c.node.capabilities.at("versions")));
                 }});
  out.push_back({"VER-4/envelope-version-ignored", {"VER-4"}, g, "a handshake with envelope version \"3.0\" is accepted on its payload's versions",
                 [](context& c) {
                   offer o;
                   o.envelope_version = "3.0";
                   const auto p = c.begin_handshake(c.fresh(), o);
                   c.check_ack(p, c.exchange(p.text1));
                 }});
  out.push_back({"VER-4/no-common-version", {"VER-4", "VER-3"}, g, "a handshake offering only \"3.0\" is INVALID_VERSION with supported_versions",
                 [](context& c) { handshake_refused(c, offering({"3.0"}, {suite}), errc::invalid_version, "VER-4"); }});
  out.push_back({"VER-5/highest-common", {"VER-5", "HS-6"}, g, "offered [\"1.0\", \"1.1\"] the node selects 1.1 and the suite", [](context& c) {
                   c.require_version("1.0");
                   const auto p = c.begin_handshake(c.fresh(), offering({"1.0", "1.1"}, {suite}));
                   c.check_ack(p, c.exchange(p.text1));
                 }});
  out.push_back({"VER-6/1.0-session", {"VER-6", "HS-13", "SES-11"}, g,
                 "a 1.0-only offer gives a signed plaintext session: no ephemeral keys, signed ack and replies", [](context& c) {
                   c.require_version("1.0");
                   auto s = c.handshake(c.fresh(), offer_1_0());
                   c.check(!s.encrypted(), "VER-6", "selected_version 1.0", s.version);
                   const auto text = c.session_message(s, "ping", {{"n", 1}});
                   c.expect_reply(c.exchange(text), text, "pong", "VER-6", &s);
                 }});
  out.push_back({"VER-9/unknown-suite-falls-back", {"VER-9", "HS-4"}, g, "1.1 with no common suite falls back to 1.0", [](context& c) {
                   c.require_version("1.0");
                   auto s = c.handshake(c.fresh(), offering({"1.1", "1.0"}, {"rot13-suite"}));
                   c.check(s.version == "1.0", "VER-9", "a 1.0 session", s.version);
                 }});
  out.push_back({"VER-9/unknown-suite-no-fallback", {"VER-9", "VER-7"}, g,
                 "1.1 alone with no common suite is INVALID_VERSION (ENCRYPTION_REQUIRED on a node that requires encryption)",
                 [](context& c) {
                   const auto code = c.node.supports_version("1.0") ? errc::invalid_version : errc::encryption_required;
                   handshake_refused(c, offering({"1.1"}, {"rot13-suite"}), code, "VER-9");
                 }});
  out.push_back({"HS-4/unknown-entries-ignored", {"HS-4", "HS-6"}, g, "unknown versions and suites in the offer are ignored", [](context& c) {
                   const auto p = c.begin_handshake(c.fresh(), offering({"9.9", "1.1"}, {"rot13-suite", suite}));
                   c.check_ack(p, c.exchange(p.text1));
                 }});
  out.push_back({"VER-7/1.0-only-offer", {"VER-7"}, g, "a node that requires encryption answers a 1.0-only offer with ENCRYPTION_REQUIRED",
                 [](context& c) {
                   if (c.node.supports_version("1.0")) c.skip("the node accepts 1.0, so it does not require encryption");
                   handshake_refused(c, offer_1_0(), errc::encryption_required, "VER-7");
                 }});
  out.push_back({"VER-8/sessionless-refused", {"VER-8"}, g, "a node that requires encryption refuses sessionless messages", [](context& c) {
                   if (c.node.supports_version("1.0")) c.skip("the node accepts 1.0, so it does not require encryption");
                   const auto& who = c.bound();
                   auto o = c.header(who, "ping");
                   expect_refusal(c, c.sign(o, who), errc::encryption_required, "VER-8");
                 }});
  out.push_back({"VER-10/wrong-version-in-session", {"VER-10"}, g, "a 1.0 message in a 1.1 session is INVALID_VERSION", [](context& c) {
                   auto s = c.handshake(c.fresh());
                   auto m = c.session_header(s, "ping");
                   m["version"] = "1.0";
                   m["payload"] = json::object{};
                   expect_refusal(c, c.sign(m, *s.who), errc::invalid_version, "VER-10");
                 }});
  declare_needs(out, first_case, {},
                {{"VER-2/supports-1.1", need::capabilities},
                 {"VER-6/1.0-session", need::session},
                 {"VER-9/unknown-suite-falls-back", need::handshake},
                 {"VER-7/1.0-only-offer", need::handshake},
                 {"VER-8/sessionless-refused", need::handshake},
                 {"VER-10/wrong-version-in-session", need::session},
                 {"VER-4/envelope-version-ignored", need::trust},
                 {"VER-4/no-common-version", need::trust},
                 {"VER-5/highest-common", need::trust},
                 {"VER-9/unknown-suite-no-fallback", need::trust},
                 {"HS-4/unknown-entries-ignored", need::trust}});
}

}  // namespace peerproto::conformance
