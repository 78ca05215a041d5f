#include "suite.hpp"

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

// ---------------------------------------------------------------- context

context::context(const settings& c, const node_info& n, std::size_t case_number, std::chrono::milliseconds timeout)
    : cfg(c), node(n), case_number_(case_number), deadline_(std::chrono::steady_clock::now() + timeout) {}
context::~context() = default;

endpoint context::source_endpoint() const {
  endpoint ep = cfg.target;
  if (!cfg.source_addresses.empty()) ep.source = cfg.source_addresses[case_number_ % cfg.source_addresses.size()];
  return ep;
}

const identity& context::fresh() {
  std::string id = cfg.base_id + "." + cfg.run_tag + "." + std::to_string(case_number_);
  if (!identities_.empty()) id += "." + std::to_string(identities_.size());
  // Keys derive from the runner's seed, so a run can be repeated with the same --key.
  const auto seed = crypto::sha256(cfg.base_seed.view(), as_bytes(id));
  identities_.push_back(std::make_unique<identity>(identity{id, crypto::ed25519_keypair(seed)}));
  return *identities_.back();
}

const identity& context::me() { return identities_.empty() ? fresh() : *identities_.front(); }

json::object context::header(const identity& from, std::string_view type, json::object payload, std::string_view version) {
  return {{"version", version},        {"msg_type", type},
          {"sender_id", from.id},      {"recipient_id", node.entity_id},
          {"timestamp", timestamp_at()}, {"nonce", random_hex(16)},
          {"payload", std::move(payload)}};
}

std::string context::sign(json::object& o, const identity& by) {
  o.erase("signature");
  const auto sig = by.key.sign(as_bytes(canonical(o)));
  o["signature"] = hex_encode(sig);
  return canonical(o);
}

json::object context::session_header(session_state& s, std::string_view type) {
  return {{"version", s.version},    {"msg_type", type},
          {"sender_id", s.who->id},  {"recipient_id", node.entity_id},
          {"timestamp", timestamp_at()}, {"nonce", random_hex(16)},
          {"session_id", s.id},      {"sequence_num", s.next_out++}};
}

std::string context::seal(session_state& s, json::object o, const json::object& payload) {
  o.erase("payload");
  o.erase("signature");
  o.erase("encrypted_payload");
  if (!s.encrypted()) {
    o["payload"] = payload;
    return sign(o, *s.who);
  }
  return seal_plaintext(s, std::move(o), canonical(payload));
}

std::string context::seal_plaintext(session_state& s, json::object o, const std::string& plaintext) {
  const auto seq = o.at("sequence_num").to_number<std::uint64_t>();
  const auto ad = canonical(o);
  const auto sealed = crypto::aes_gcm_seal(s.k_i2r, session_nonce(seq), as_bytes(ad), as_bytes(plaintext));
  note("sealing sequence_num " + std::to_string(seq) + " with k_i2r, GCM nonce " + hex_encode(session_nonce(seq)) +
       "; associated data (ENC-3): " + ad + "; plaintext: " + plaintext);
  o["encrypted_payload"] = base64_encode(sealed);
  return canonical(o);
}

std::string context::session_message(session_state& s, std::string_view type, const json::object& payload) {
  return seal(s, session_header(s, type), payload);
}

// ---------------------------------------------------------------- handshakes

pending_handshake context::begin_handshake(const identity& who, const offer& o) {
  pending_handshake p;
  p.who = &who;
  json::object payload{{"identity_key", who.public_hex()},
                       {"supported_versions", json::array(o.versions.begin(), o.versions.end())},
                       {"cipher_suites", json::array(o.suites.begin(), o.suites.end())},
                       {"challenge", random_hex(32)}};
  if (!o.suites.empty()) {
    p.ephemeral.emplace(crypto::x25519_keypair::generate());
    payload["ephemeral_key"] = hex_encode(p.ephemeral->public_key_bytes());
  }
  if (o.tweak) o.tweak(payload);
  p.msg1 = header(who, "handshake", std::move(payload), o.envelope_version);
  p.text1 = sign(p.msg1, who);
  p.msg1 = parse_object(p.text1);
  return p;
}

acked_handshake context::check_ack(const pending_handshake& p, const reply& r) {
  acked_handshake a;
  const auto payload = expect_reply(r, p.text1, "handshake_ack", "HS-2");
  a.msg2 = parse_object(r.body);
  auto ack = parse_hello_ack(payload);
  if (!ack) fail("HS-3", "a well-formed handshake_ack payload", ack.error().message);
  check(ack->identity_key == node.key, "HS-2", "identity_key = the node's key from /public-key", hex_encode(ack->identity_key));
  const auto expect_response = hex_encode(crypto::sha256(as_bytes(canonical(p.msg1))));
  check(hex_encode(ack->challenge_response) == expect_response, "HS-7", "challenge_response = SHA-256(JCS(message 1))",
        hex_encode(ack->challenge_response));
  check(format_uuid(ack->session_id) == payload.at("session_id").as_string(), "ENV-12", "a lowercase UUID v4 session_id",
        json::serialize(payload.at("session_id")));

  // VER-5, VER-9, HS-6: what the node must have chosen from what we offered.
  const auto& offered_v = p.msg1.at("payload").at("supported_versions").as_array();
  const auto& offered_s = p.msg1.at("payload").at("cipher_suites").as_array();
  const auto offered = [&](std::string_view v) { return std::find(offered_v.begin(), offered_v.end(), json::value(v)) != offered_v.end(); };
  std::optional<std::string> suite;
  for (const auto& s : offered_s)
    if (s.is_string() && std::find(node.suites.begin(), node.suites.end(), std::string(s.get_string())) != node.suites.end()) {
      suite = std::string(s.get_string());
      break;
    }
  std::string version = "1.0";
  if (offered("1.1") && node.supports_version("1.1") && suite) version = "1.1";
  else suite.reset();
  check(ack->selected_version == version, "VER-5", "selected_version " + version, ack->selected_version);
  check(ack->selected_suite == suite, "HS-6", "selected_suite " + suite.value_or("null"), ack->selected_suite.value_or("null"));

  a.session_id = format_uuid(ack->session_id);
  a.selected_version = ack->selected_version;
  a.suite = ack->selected_suite;
  a.keys.id = a.session_id;
  a.keys.version = a.selected_version;
  a.keys.who = p.who;
  if (a.suite) {
    auto keys = derive_session_keys(p.ephemeral->private_key(), *ack->ephemeral_key, canonical(p.msg1), canonical(a.msg2));
    if (!keys) fail("HS-10", "a usable ephemeral key from the node", keys.error().message);
    std::copy_n(keys->k_i2r.data(), 32, a.keys.k_i2r.begin());
    std::copy_n(keys->k_r2i.data(), 32, a.keys.k_r2i.begin());
    std::copy_n(keys->k_confirm.data(), 32, a.k_confirm.begin());
  }
  return a;
}

json::object context::confirm_message(const pending_handshake& p, const acked_handshake& a) {
  json::object payload{{"session_id", a.session_id},
                       {"challenge_response", hex_encode(crypto::sha256(as_bytes(canonical(a.msg2))))}};
  if (a.suite) payload["key_confirmation"] = hex_encode(crypto::hmac_sha256(a.k_confirm, as_bytes(key_confirmation_label)));
  return header(*p.who, "handshake_confirm", std::move(payload), a.selected_version);
}

session_state context::finish_handshake(const pending_handshake&, acked_handshake& a, const std::string& text3, const reply& r) {
  session_state s = a.keys;
  const auto payload = expect_reply(r, text3, "ack", "HS-15", &s);
  check(payload.contains("status") && payload.at("status") == "session_ready", "HS-15", "ack status \"session_ready\"",
        canonical(payload));
  return s;
}

session_state context::confirm(const pending_handshake& p, acked_handshake& a) {
  auto m3 = confirm_message(p, a);
  const auto t3 = sign(m3, *p.who);
  return finish_handshake(p, a, t3, exchange(t3));
}

session_state context::handshake(const identity& who, const offer& o) {
  try {
    const auto p = begin_handshake(who, o);
    auto a = check_ack(p, exchange(p.text1));
    return confirm(p, a);
  } catch (const case_failure& f) {
    // Most cases start with a handshake: one broken rule there is one root cause, reported once.
    throw setup_failure("a handshake (" + std::string(o.versions.empty() ? "" : o.versions.front()) + ")", f);
  }
}

const identity& context::bound() {
  const auto& id = fresh();
  handshake(id);
  return id;
}

// ---------------------------------------------------------------- transport

void context::record(const std::string& what, const std::string& text, const std::string* envelope) {
  constexpr std::size_t shown = 4096;
  transcript.push_back({what, text.size() > shown ? text.substr(0, shown) + "... (" + std::to_string(text.size()) + " bytes)" : text});
  if (envelope && !envelope->empty()) envelopes.emplace_back(what, *envelope);
}

void context::note(const std::string& text) { record("note", text); }

http_connection& context::http() {
  if (!http_) http_ = std::make_unique<http_connection>(source_endpoint(), deadline_);
  return *http_;
}

ws_connection& context::ws() {
  if (!ws_) ws_ = std::make_unique<ws_connection>(source_endpoint(), cfg.ws_path, deadline_);
  return *ws_;
}

reply context::from_http(const http_response& h) {
  reply r{h.status, h.body, h.header("content-type"), h.header("retry-after"), false};
  record("received", "HTTP " + std::to_string(h.status) + (h.body.empty() ? " (empty body)" : " " + h.body), &h.body);
  return r;
}

reply context::exchange(const std::string& text) {
  record("sent", text, &text);
  if (cfg.websocket) {
    ws().send_text(text, deadline_);
    return receive();
  }
  const auto h = http().exchange("POST", "/message", text, deadline_);
  if (!h.keep_alive) http_.reset();
  return from_http(h);
}

reply context::exchange_from(const std::string& source, const std::string& text) {
  endpoint ep = cfg.target;
  ep.source = source;
  record("sent", "from " + source + ": " + text, &text);
  http_connection h(ep, deadline_);
  return from_http(h.exchange("POST", "/message", text, deadline_));
}

void context::send(const std::string& text) {
  record("sent", text, &text);
  if (cfg.websocket) return ws().send_text(text, deadline_);
  auto c = std::make_unique<http_connection>(source_endpoint(), deadline_);
  c->send("POST", "/message", text, deadline_);
  waiting_.push_back(std::move(c));
}

reply context::receive() {
  if (cfg.websocket) {
    auto m = ws().receive(deadline_);
    record("received", (m.binary ? "binary: " : "") + m.data, &m.data);
    return {0, m.data, "", "", true};
  }
  if (waiting_.empty()) throw std::logic_error("receive() without an outstanding send()");
  auto c = std::move(waiting_.front());
  waiting_.erase(waiting_.begin());
  return from_http(c->receive(deadline_));
}

http_response context::get(const std::string& path) {
  record("sent", "GET " + path);
  auto h = http_get(source_endpoint(), path, deadline_);
  record("received", "HTTP " + std::to_string(h.status) + " " + h.body);
  return h;
}

// ---------------------------------------------------------------- expectations

void context::check(bool ok, std::string_view rule, const std::string& expected, const std::string& actual) {
  if (!ok) fail(rule, expected, actual);
}

void context::fail(std::string_view rule, const std::string& expected, const std::string& actual) {
  throw case_failure(std::string(rule), expected, actual);
}

void context::skip(const std::string& reason) { throw case_skip(reason); }

void context::require_type(std::string_view type) {
  if (!node.has_type(type)) skip("the node does not list message type " + std::string(type) + " in its capabilities");
}

void context::require_version(std::string_view version) {
  if (!node.supports_version(version)) skip("the node does not support version " + std::string(version));
}

std::string context::describe(const reply& r) const {
  std::string out = r.websocket ? "WebSocket message" : "HTTP " + std::to_string(r.status);
  if (r.body.empty()) return out + " with an empty body";
  boost::system::error_code ec;
  const auto v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return out + " with a body that is not a JSON object";
  const auto& o = v.get_object();
  const auto* type = o.if_contains("msg_type");
  out += " " + (type && type->is_string() ? std::string(type->get_string()) : std::string("(no msg_type)"));
  if (const auto* p = o.if_contains("payload"); p && p->is_object() && type && *type == "error") {
    const auto& e = p->get_object();
    if (const auto* c = e.if_contains("error_code"); c && c->is_string()) out += " " + std::string(c->get_string());
    if (const auto* m = e.if_contains("error_message"); m && m->is_string()) out += " (\"" + std::string(m->get_string()) + "\")";
  } else if (o.contains("encrypted_payload")) {
    out += " (sealed)";
  } else if (const auto* plain = o.if_contains("payload"); plain && plain->is_object()) {
    if (const auto* st = plain->get_object().if_contains("status"); st && st->is_string()) out += " " + std::string(st->get_string());
  }
  return out;
}

namespace {
// What the node can read of a request it refuses (ERR-3, ERR-4). When the text is not strict JSON
// (duplicate names, out-of-range numbers, oversize), a node may or may not salvage members from
// it: both the strict reading (null, "unknown") and a lenient one are accepted.
struct request_facts {
  std::vector<json::value> nonces;
  std::vector<std::string> senders;
  std::string version;
};

request_facts facts_of(const std::string& request, const node_info& node) {
  request_facts f;
  f.version = node.versions.empty() ? "1.1" : node.versions.front();
  boost::system::error_code ec;
  const auto v = json::parse(request, ec);
  const bool strict = static_cast<bool>(jcs::parse_strict(request));
  if (!strict || ec || !v.is_object()) {
    f.nonces.emplace_back(nullptr);
    f.senders.emplace_back("unknown");
  }
  if (ec || !v.is_object()) return f;
  const auto& o = v.get_object();
  const auto* n = o.if_contains("nonce");
  const auto* s = o.if_contains("sender_id");
  const bool hex_nonce = n && n->is_string() && n->get_string().size() == 32 &&
                         std::all_of(n->get_string().begin(), n->get_string().end(),
                                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
  f.nonces.push_back(hex_nonce ? *n : json::value(nullptr));
  f.senders.push_back(s && s->is_string() && is_entity_id(s->get_string()) ? std::string(s->get_string()) : "unknown");
  if (const auto* ver = o.if_contains("version"); ver && ver->is_string() && node.supports_version(ver->get_string()))
    f.version = std::string(ver->get_string());
  return f;
}

template <class T>
bool one_of(const std::vector<T>& options, const T& v) {
  return std::find(options.begin(), options.end(), v) != options.end();
}

template <class T>
std::string list(const std::vector<T>& options) {
  std::string out;
  for (const auto& o : options) {
    if constexpr (std::is_same_v<T, json::value>) out += (out.empty() ? "" : " or ") + json::serialize(o);
    else out += (out.empty() ? "" : " or ") + o;
  }
  return out;
}

bool media_is_json(const std::string& content_type) {
  std::string t = content_type.substr(0, content_type.find(';'));
  t.erase(std::remove(t.begin(), t.end(), ' '), t.end());
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return t == "application/json";
}
}  // namespace

// VER-8: a node that requires encryption refuses a plaintext request (sessionless, or 1.0)
// other than the handshake with ENCRYPTION_REQUIRED after authentication (PROC-7). A case that
// expected an outcome decided later than that step cannot observe its rule on such a node: it is
// skipped with that reason, never failed. `later` says whether the expected outcome comes after
// VER-8 in §17.
void context::skip_if_encryption_required(const reply& r, const std::string& request, bool later) {
  if (!later || !node.requires_encryption() || r.body.find("\"ENCRYPTION_REQUIRED\"") == std::string::npos) return;
  const auto v = jcs::parse_strict(request);
  const auto* o = v ? v->if_object() : nullptr;
  if (!o) return;
  const auto* type = detail::string_member(*o, "msg_type");
  const auto* version = detail::string_member(*o, "version");
  const bool handshake = type && (*type == msg::handshake || *type == msg::handshake_confirm);
  const bool sealed = o->contains("session_id") && version && *version == "1.1";
  if (!handshake && !sealed)
    skip("the node requires encryption (it does not list version 1.0), so it refuses this plaintext request with "
         "ENCRYPTION_REQUIRED (VER-8) before the step this case checks");
}

void context::expect_error(const reply& r, const std::string& request, errc code, std::string_view rule,
                           std::string_view message_contains) {
  // Codes decided after VER-8 (PROC-7): the handler lookup, handlers, chunk reassembly.
  skip_if_encryption_required(r, request, code == errc::unsupported_message_type || code == errc::chunk_error);
  const auto* info = detail::find_info(static_cast<int>(code));
  const std::string wire(info->wire);
  const std::string expected = "error " + wire + (r.websocket ? "" : " with HTTP " + std::to_string(info->http));
  if (!r.websocket && r.status >= 500) fail("ERR-7", expected, describe(r));
  auto env = parse_envelope(r.body);
  if (!env || env->msg_type != "error" || !env->payload) fail(rule, expected, describe(r));
  const auto& p = *env->payload;
  const auto* got = p.if_contains("error_code");
  if (!got || *got != json::value(wire)) fail(rule, expected, describe(r));
  if (!r.websocket) {
    check(r.status == info->http, "ERR-6", expected, describe(r));
    check(media_is_json(r.content_type), "HTTP-2", "Content-Type application/json", r.content_type);
  }
  check(env->sender_id == node.entity_id, "ERR-1", "sender_id " + node.entity_id, env->sender_id);
  check(!env->session_id, "SES-12", "a sessionless error", "an error with session_id");
  check(verify_signature(*env, node.key), "SIG-6", "an error signed by the node's key", "a signature that does not verify");
  const auto* msg = p.if_contains("error_message");
  check(msg && msg->is_string() && msg->get_string().size() <= 512, "ERR-2", "error_message, a string of at most 512 characters",
        msg ? json::serialize(*msg).substr(0, 80) : "none");
  const auto facts = facts_of(request, node);
  const auto* original = p.if_contains("original_nonce");
  check(original && one_of(facts.nonces, *original), "ERR-3", "original_nonce " + list(facts.nonces),
        original ? json::serialize(*original) : "none");
  check(one_of(facts.senders, env->recipient_id), "ERR-4", "recipient_id " + list(facts.senders), env->recipient_id);
  check(env->version == facts.version, "ERR-4", "version " + facts.version, env->version);
  const auto* retry = p.if_contains("retry_after");
  if (code == errc::rate_limited) {
    check(retry && retry->is_int64() && retry->as_int64() >= 1, "RL-7", "retry_after, a whole number >= 1",
          retry ? json::serialize(*retry) : "none");
    if (!r.websocket)
      check(r.retry_after_header == std::to_string(retry->as_int64()), "RL-7", "Retry-After: " + std::to_string(retry->as_int64()),
            r.retry_after_header.empty() ? "no Retry-After header" : r.retry_after_header);
  } else {
    check(!retry, "ERR-5", "no retry_after with " + wire, "retry_after present");
  }
  const auto* versions = p.if_contains("supported_versions");
  if (code == errc::invalid_version) {
    const json::array want(node.versions.begin(), node.versions.end());
    check(versions && *versions == json::value(want), "VER-3", "supported_versions " + json::serialize(want),
          versions ? json::serialize(*versions) : "none");
  } else {
    check(!versions, "ERR-5", "no supported_versions with " + wire, "supported_versions present");
  }
  if (!message_contains.empty()) {
    std::string text(msg->get_string());
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    check(text.find(message_contains) != std::string::npos, rule, "an error_message that mentions " + std::string(message_contains),
          std::string(msg->get_string()));
  }
}

json::object context::expect_reply(const reply& r, const std::string& request, std::string_view type, std::string_view rule,
                                   session_state* s) {
  skip_if_encryption_required(r, request, true);
  const std::string expected = std::string(type) + (r.websocket ? "" : " with HTTP 200");
  if (!r.websocket && r.status >= 500) fail("ERR-7", expected, describe(r));
  auto env = parse_envelope(r.body);
  if (!env) fail(rule, expected, describe(r) + " (unparseable: " + env.error().message + ")");
  if (env->msg_type != type) fail(rule, expected, describe(r));
  if (!r.websocket) {
    check(r.status == 200, "HTTP-2", expected, describe(r));
    check(media_is_json(r.content_type), "HTTP-2", "Content-Type application/json", r.content_type);
  }
  const auto facts = facts_of(request, node);
  check(env->sender_id == node.entity_id, "MSG-2", "sender_id " + node.entity_id, env->sender_id);
  check(one_of(facts.senders, env->recipient_id), "MSG-2", "recipient_id " + list(facts.senders), env->recipient_id);
  json::object payload;
  if (s) {
    check(env->session_id && format_uuid(*env->session_id) == s->id, "SES-12", "a reply in session " + s->id,
          env->session_id ? format_uuid(*env->session_id) : "a sessionless reply");
    check(env->sequence_num == s->next_in, "SES-12", "sequence_num " + std::to_string(s->next_in),
          env->sequence_num ? std::to_string(*env->sequence_num) : "none");
    check(env->version == s->version, "VER-10", "version " + s->version, env->version);
    if (s->encrypted()) {
      auto opened = open(*env, s->k_r2i);
      if (!opened)
        fail("ENC-1", "a reply sealed with k_r2i",
             opened.error().message + " (associated data used: " + associated_data(*env) + ")");
      note("opened the reply with k_r2i; plaintext: " + canonical(*opened));
      payload = std::move(*opened);
    } else {
      check(verify_signature(*env, node.key), "SES-11", "a reply signed by the node's key", "a signature that does not verify");
      payload = *env->payload;
    }
    ++s->next_in;
  } else {
    check(!env->session_id, "SES-12", "a sessionless reply", "a reply in session " + (env->session_id ? format_uuid(*env->session_id) : ""));
    check(verify_signature(*env, node.key), "SIG-6", "a reply signed by the node's key", "a signature that does not verify");
    payload = *env->payload;
  }
  const char* ref = type == "ack" ? "acked_nonce" : "in_reply_to";
  const auto* named = payload.if_contains(ref);
  check(named && one_of(facts.nonces, *named), "MSG-2", std::string(ref) + " " + list(facts.nonces),
        named ? json::serialize(*named) : "none");
  if (type == "ack") {
    const auto* st = payload.if_contains("status");
    const bool known = st && st->is_string() &&
                       (*st == "delivered" || *st == "chunk_received" || *st == "session_ready" || *st == "closed");
    check(known, "MSG-4", "ack.status one of delivered, chunk_received, session_ready, closed", st ? json::serialize(*st) : "none");
  }
  return payload;
}

}  // namespace peerproto::conformance
