// The composing core (sans-I/O). Given one inbound envelope's text, the remote address and `now`,
// it runs SPEC §17's processing order and returns the reply, or "held" for a message waiting in
// the ordering window, with the audit records; poll() answers held messages whose gap timed out
// and expires sessions, handshakes and transfers; next_deadline() says when to call poll(). On
// the client side it starts handshakes, seals or signs messages for a peer, splits large payloads,
// and accepts the replies. It does no I/O and reads no clock.
//
// Time: the `now` of handle(), refuse(), poll(), finish_handshake() and accept_reply() never goes
// backwards. A clock stepped back is held at the latest time seen until it passes it again, so
// that no timer is extended and no nonce the replay cache has let go of (RPL-2) becomes acceptable
// again under an older clock (RPL-1 checks against the held time). The functions that create
// messages stamp the time they are given.
#pragma once

#include <peerproto/audit.hpp>
#include <peerproto/chunking.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/error.hpp>
#include <peerproto/fault.hpp>
#include <peerproto/handshake.hpp>
#include <peerproto/message_types.hpp>
#include <peerproto/rate_limit.hpp>
#include <peerproto/registry.hpp>
#include <peerproto/replay_cache.hpp>
#include <peerproto/session.hpp>
#include <peerproto/trust.hpp>
#include <peerproto/version.hpp>

#include <cstdlib>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace peerproto {

/// Everything configurable about a node's protocol behaviour, with the spec's defaults.
struct engine_options {
  std::string self_id;                                                        ///< this node's entity id
  std::vector<std::string> versions{std::string(version_1_1), std::string(version_1_0)};  ///< highest first
  std::vector<std::string> suites{std::string(suite_x25519_aes256gcm)};
  bool require_encryption = false;                                            ///< VER-7, VER-8
  jcs::parse_limits json{};                                                   ///< JSON-4, JSON-5
  replay_options replay{};                                                    ///< §6
  rate_limit_options rate{};                                                  ///< §13
  reassembly_options chunks{};                                                ///< §12
  session_options session{};                                                  ///< §9, §11
  std::chrono::milliseconds handshake_timeout = limits::handshake_timeout;    ///< HS-16
  std::size_t max_pending_per_peer = limits::max_pending_handshakes_per_peer; ///< HS-17
  std::size_t max_pending_total = limits::max_pending_handshakes_total;       ///< HS-18
  std::size_t max_sessions_total = limits::max_sessions_total;                ///< HS-25
  std::chrono::milliseconds terminal_retention = limits::terminal_session_retention;  ///< SES-10
};

/// The result of one inbound envelope (or of a held one, later): what to send and whether to send
/// it. The transport maps an `error` code to its own status (ERR-6: http_status() in error.hpp).
struct outcome {
  enum class kind {
    answer,            ///< send `reply`
    answer_over_http,  ///< MSG-3: a reply type sent as a request; HTTP sends `reply`, WebSocket nothing
    held,              ///< ORD-8: the answer comes later, in `released` of another outcome or from poll()
    silent,            ///< ERR-8: nothing is sent (HTTP: status 400 with an empty body)
  };
  kind what = kind::answer;
  std::string reply;                                  ///< the reply envelope's text, when there is one
  std::optional<errc> error;                          ///< the code, when the reply is an `error`
  std::optional<std::chrono::seconds> retry_after;    ///< with RATE_LIMITED (RL-7)
  std::string request_nonce;                          ///< the request's nonce (hex), when readable
  std::vector<audit_record> audit;                    ///< security events (§20)
  std::vector<outcome> released;                      ///< earlier held messages answered now (ORD-8)
  std::string msg_type;                               ///< the request's type, when readable (for metrics)

  static outcome answer(std::string reply, std::string request_nonce, std::vector<audit_record> audit) {
    return make(kind::answer, std::move(reply), std::move(request_nonce), std::move(audit));
  }
  static outcome held(std::string request_nonce, std::vector<audit_record> audit) {
    return make(kind::held, {}, std::move(request_nonce), std::move(audit));
  }
  static outcome silent(std::string request_nonce, std::vector<audit_record> audit) {
    return make(kind::silent, {}, std::move(request_nonce), std::move(audit));
  }
  bool sends_envelope(bool over_http) const noexcept {
    return what == kind::answer || (over_http && what == kind::answer_over_http);
  }

 private:
  static outcome make(kind k, std::string reply, std::string request_nonce, std::vector<audit_record> audit) {
    outcome o;
    o.what = k;
    o.reply = std::move(reply);
    o.request_nonce = std::move(request_nonce);
    o.audit = std::move(audit);
    return o;
  }
};

/// A reply accepted on the client side.
struct accepted_reply {
  envelope reply;                  ///< the reply envelope
  boost::json::object payload;     ///< its payload (opened, for sealed replies)
};

class engine {
 public:
  engine(engine_options opt, const crypto::ed25519_keypair& identity, trust_store& trust, const registry& handlers,
         random_source rng = system_random())
      : opt_(std::move(opt)), identity_(identity), trust_(trust), handlers_(handlers), rng_(std::move(rng)),
        replay_(opt_.replay), rate_(opt_.rate), reassembler_(opt_.chunks) {}

  const engine_options& options() const noexcept { return opt_; }

  // ------------------------------------------------------------ server side

  /// Processes one inbound envelope from `remote` (SPEC §17).
  outcome handle(std::string_view text, std::string_view remote, sys_milliseconds now) {
    request_context ctx{std::string(remote), monotonic(now), {}, {}, {}, {}, {}, {}};
    outcome o = process(ctx, text);
    o.msg_type = std::move(ctx.msg_type);
    return o;
  }

  /// The signed `error` reply for a request that the transport refused before the engine saw it
  /// (a wrong content type, an oversize body, too many requests in flight, a storage failure).
  /// `text` is the request as far as it is known, read only for its sender and nonce (ERR-3,
  /// ERR-4); `retry_after` goes with RATE_LIMITED.
  outcome refuse(const failure& f, std::string_view text, std::string_view remote, sys_milliseconds now,
                 std::optional<std::chrono::seconds> retry_after = std::nullopt) {
    request_context ctx{std::string(remote), monotonic(now), {}, {}, {}, {}, {}, {}};
    if (auto value = jcs::parse_strict(text, opt_.json)) peek(*value, ctx);
    outcome o = error_reply(ctx, f, retry_after);
    o.msg_type = std::move(ctx.msg_type);
    return o;
  }

  /// Does the timed work due at `now`: held messages whose gap timed out are answered with
  /// SEQUENCE_ERROR (ORD-6); sessions expire (SES-4, SES-5); pending handshakes expire (HS-16);
  /// idle transfers are dropped (CHK-11); terminal sessions are forgotten (SES-10).
  std::vector<outcome> poll(sys_milliseconds now) {
    now = monotonic(now);
    std::vector<outcome> out;
    std::vector<audit_record> events;  // expiries have no request to travel with
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      auto& entry = *it->second;
      session& s = entry.s;
      request_context ctx{{}, now, s.peer_id(), {}, format_uuid(s.id()), {}, {}, {}};
      if (s.expire_if_due(now)) {
        changed_.insert(s.id());
        audit(ctx, audit_event::session_expired, std::nullopt, std::nullopt, "session expired");
      }
      for (auto& [seq, held] : s.received().expire(now)) {
        request_context hctx{held.remote, now, held.request.sender_id, hex_encode(held.request.nonce), ctx.session_id, s.version(), {}, held.request.msg_type};
        out.push_back(error_reply(hctx, {errc::sequence_error, "a gap before this message was not filled in time"}));
        out.back().msg_type = held.request.msg_type;
      }
      if (expire_pending(entry, now)) {
        audit(ctx, audit_event::handshake_failed, std::nullopt, errc::challenge_expired, "pending handshake expired");
      }
      std::move(ctx.audit.begin(), ctx.audit.end(), std::back_inserter(events));
      if (const auto t = s.terminal_since(); t && now - *t >= opt_.terminal_retention) {
        changed_.insert(s.id());
        it = sessions_.erase(it);
        continue;
      }
      ++it;
    }
    std::erase_if(initiating_, [&](const auto& kv) { return now - kv.second.started >= opt_.handshake_timeout; });
    reassembler_.expire(now);
    if (!events.empty()) out.push_back(outcome::silent({}, std::move(events)));
    return out;
  }

  /// When poll() next has work to do.
  std::optional<sys_milliseconds> next_deadline() const {
    std::optional<sys_milliseconds> d;
    const auto consider = [&](std::optional<sys_milliseconds> t) {
      if (t && (!d || *t < *d)) d = t;
    };
    for (const auto& [id, entry] : sessions_) {
      consider(entry->s.next_deadline());
      if (entry->pending) consider(entry->pending->started + opt_.handshake_timeout);
      if (const auto t = entry->s.terminal_since()) consider(*t + opt_.terminal_retention);
    }
    for (const auto& [nonce, p] : initiating_) consider(p.started + opt_.handshake_timeout);
    consider(reassembler_.next_deadline());
    return d;
  }

  /// The session with this id, if any (for tests, metrics and persistence).
  const session* find_session(const uuid& id) const {
    const auto it = sessions_.find(id);
    return it == sessions_.end() ? nullptr : &it->second->s;
  }
  std::size_t session_count() const noexcept { return sessions_.size(); }

  /// The ids of the sessions created, changed or forgotten since the last call, so that a node can
  /// persist them (SES-13): for each, find_session() gives the session, or nothing when it is gone.
  /// Holds at most one entry per session.
  std::set<uuid> take_changed_sessions() { return std::exchange(changed_, {}); }

  /// Puts back a persisted ready session (after a restart). False, changing nothing, when the id
  /// is already in use or the session limit is reached.
  bool restore_session(const session_snapshot& snap) {
    if (sessions_.contains(snap.id) || sessions_.size() >= opt_.max_sessions_total) return false;
    sessions_.emplace(snap.id, std::make_unique<session_entry>(session::restore(snap, opt_.session)));
    return true;
  }
  const replay_cache& replay() const noexcept { return replay_; }
  replay_cache& replay() noexcept { return replay_; }

  // ------------------------------------------------------------ client side

  /// Starts a handshake with `peer_id` (message 1), offering our versions and suites.
  std::string begin_handshake(std::string_view peer_id, sys_milliseconds now) {
    initiator_pending p{crypto::x25519_keypair(draw<32>(rng_)), {}, now, std::string(peer_id)};
    hello h;
    h.identity_key = identity_.public_key_bytes();
    h.supported_versions = opt_.versions;
    h.cipher_suites = opt_.suites;
    if (!h.cipher_suites.empty()) h.ephemeral_key = p.ephemeral.public_key_bytes();
    h.challenge = draw<32>(rng_);
    const auto e = signed_envelope(opt_.versions.front(), "handshake", peer_id, to_json(h), now);
    p.msg1 = serialize(e);
    std::string text = p.msg1;
    initiating_.emplace(e.nonce, std::move(p));
    return text;
  }

  /// Processes message 2 of a handshake we started and returns message 3; the session is then
  /// ready on our side (SPEC §9) and proven by the responder's first session message, which the
  /// caller passes to accept_reply() (HS-15). An `error` reply is returned as its failure.
  result<std::string> finish_handshake(std::string_view msg2_text, sys_milliseconds now) {
    now = monotonic(now);
    auto e = parse_envelope(msg2_text, opt_.json);
    if (!e) return e.error();
    if (e->msg_type == "error") return error_of(*e);
    if (e->msg_type != "handshake_ack" || !e->payload || e->recipient_id != opt_.self_id)
      return failure{errc::invalid_format, "expected a handshake_ack addressed to this node"};
    auto ack = parse_hello_ack(*e->payload);
    if (!ack) return ack.error();
    const auto it = initiating_.find(ack->in_reply_to);
    if (it == initiating_.end()) return failure{errc::session_not_found, "no handshake of ours matches in_reply_to"};
    initiator_pending p = std::move(it->second);
    initiating_.erase(it);  // a handshake that failed stays failed (HS-22)
    if (now - p.started >= opt_.handshake_timeout) return failure{errc::challenge_expired, "the handshake expired"};
    if (e->sender_id != p.peer_id) return failure{errc::unknown_sender, "the reply comes from another entity"};
    if (!verify_signature(*e, ack->identity_key)) return failure{errc::invalid_signature, "handshake_ack signature does not verify"};
    if (!trust_.acceptable(e->sender_id, ack->identity_key))
      return failure{errc::unknown_sender, "the peer's key is not acceptable under the trust policy"};
    if (ack->challenge_response != crypto::sha256(as_bytes(p.msg1)))
      return failure{errc::challenge_invalid, "challenge_response does not match our handshake"};  // HS-7
    const bool offered = std::find(opt_.versions.begin(), opt_.versions.end(), ack->selected_version) != opt_.versions.end();
    const bool suite_ok = ack->selected_suite
        ? ack->selected_version == version_1_1 && std::find(opt_.suites.begin(), opt_.suites.end(), *ack->selected_suite) != opt_.suites.end()
        : ack->selected_version == version_1_0;
    if (!offered || !suite_ok) return failure{errc::invalid_version, "the responder selected a version or suite we did not offer"};
    if (opt_.require_encryption && !ack->selected_suite) return failure{errc::encryption_required, "the responder refused encryption"};
    (void)trust_.accept_handshake_key(e->sender_id, ack->identity_key);

    if (sessions_.size() >= opt_.max_sessions_total) return failure{errc::rate_limited, "too many sessions"};
    if (sessions_.contains(ack->session_id)) return failure{errc::invalid_state, "session id already in use"};
    auto entry = std::make_unique<session_entry>(session(ack->session_id, session_role::initiator, e->sender_id, ack->identity_key, opt_.session));
    if (auto ec = entry->s.apply(session_event::send_handshake, p.started)) return to_failure(ec);
    const std::string msg2 = serialize(*e);
    hello_confirm c{ack->session_id, crypto::sha256(as_bytes(msg2)), std::nullopt};
    if (ack->selected_suite) {
      auto keys = derive_session_keys(p.ephemeral.private_key(), *ack->ephemeral_key, p.msg1, msg2);
      p.ephemeral.wipe();  // HS-14
      if (!keys) return keys.error();
      c.key_confirmation = key_confirmation(keys->k_confirm);
      entry->s.set_keys(ack->selected_version, &keys->k_i2r, &keys->k_r2i);
    } else {
      entry->s.set_keys(ack->selected_version, nullptr, nullptr);
    }
    if (auto ec = entry->s.apply(session_event::valid_ack, now)) return to_failure(ec);
    sessions_.emplace(ack->session_id, std::move(entry));
    changed_.insert(ack->session_id);
    return serialize(signed_envelope(ack->selected_version, "handshake_confirm", e->sender_id, to_json(c), now));
  }

  /// A session message for `session_id` carrying `payload` (sealed in 1.1, signed in 1.0).
  result<std::string> send(const uuid& session_id, std::string_view msg_type, const boost::json::object& payload,
                           sys_milliseconds now) {
    const auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return failure{errc::session_not_found, "no such session"};
    auto& s = it->second->s;
    changed_.insert(session_id);
    auto e = make_header(s.version(), msg_type, opt_.self_id, s.peer_id(), now, rng_);
    if (auto ec = s.seal_outbound(e, payload, now)) return to_failure(ec);
    if (!s.encrypted()) sign(e, identity_);
    // SES-8: the sender's session is closed once its session_close is sealed (keys wiped, ENC-7).
    if (msg_type == msg::session_close)
      if (auto ec = s.apply(session_event::close, now)) return to_failure(ec);
    return serialize(e);
  }

  /// A sessionless signed message to `peer_id`.
  std::string send_sessionless(std::string_view peer_id, std::string_view msg_type, const boost::json::object& payload,
                               sys_milliseconds now) {
    return serialize(signed_envelope(opt_.versions.front(), msg_type, peer_id, payload, now));
  }

  /// Splits `payload` into chunk payloads for `msg_type` (CHK-1); send each with send() or
  /// send_sessionless() as msg_type "chunk".
  result<std::vector<boost::json::object>> chunk_payloads(std::string_view msg_type, const boost::json::object& payload,
                                                          std::size_t chunk_size) {
    auto chunks = split(payload, msg_type, chunk_size, make_uuid_v4(draw<16>(rng_)), opt_.chunks);
    if (!chunks) return chunks.error();
    std::vector<boost::json::object> out;
    out.reserve(chunks->size());
    for (const auto& c : *chunks) out.push_back(to_json(c));
    return out;
  }

  /// Accepts a reply received as the answer to one of our requests: an `error` (returned as its
  /// failure after its signature verifies), a sessionless signed reply, or a session message,
  /// which goes through the session's ordering window. Returns the replies delivered now, in
  /// order (empty when this one is held behind a gap).
  result<std::vector<accepted_reply>> accept_reply(std::string_view text, sys_milliseconds now) {
    now = monotonic(now);
    auto e = parse_envelope(text, opt_.json);
    if (!e) return e.error();
    if (e->recipient_id != opt_.self_id) return failure{errc::invalid_format, "the reply is addressed to another node"};
    if (!e->session_id) {
      const auto key = trust_.key_for(e->sender_id);
      if (!key) return failure{errc::unknown_sender, "no key is known for the replying node"};
      if (!verify_signature(*e, *key)) return failure{errc::invalid_signature, "the reply's signature does not verify"};
      if (e->msg_type == "error") return error_of(*e);
      return std::vector<accepted_reply>{{*e, *e->payload}};
    }
    const auto it = sessions_.find(*e->session_id);
    if (it == sessions_.end() || it->second->s.peer_id() != e->sender_id) return failure{errc::session_not_found, "no such session"};
    session& s = it->second->s;
    if (auto ec = s.check_inbound(*e)) return to_failure(ec);
    changed_.insert(s.id());
    auto payload = s.open_inbound(*e);
    if (!payload) return payload.error();
    std::vector<accepted_reply> out;
    for (auto& h : s.received().accept(*e->sequence_num, held_message{*e, std::move(*payload), {}}, now)) {
      if (auto ec = s.apply(session_event::message, now)) return to_failure(ec);
      out.push_back({std::move(h.request), std::move(h.payload)});
    }
    return out;
  }

 private:
  struct request_context {
    std::string remote;
    sys_milliseconds now;
    std::string sender_id;   ///< as claimed, when readable
    std::string nonce_hex;   ///< the request's nonce, when readable
    std::string session_id;  ///< canonical text, when known
    std::string version;     ///< the request's version, when supported
    std::vector<audit_record> audit;
    std::string msg_type;    ///< the request's type, when readable
  };

  struct pending_handshake {
    crypto::digest expected_response;            ///< H(JCS(message 2)) (HS-8)
    std::optional<crypto::digest> confirmation;  ///< expected key_confirmation (HS-12), 1.1 only
    sys_milliseconds started;
  };
  struct session_entry {
    explicit session_entry(session s_) : s(std::move(s_)) {}
    session s;
    std::optional<pending_handshake> pending;
    bool timed_out = false;  ///< failed because message 3 did not come in time (HS-16)
  };
  struct initiator_pending {
    crypto::x25519_keypair ephemeral;
    std::string msg1;
    sys_milliseconds started;
    std::string peer_id;
  };

  // The time contract above: a `now` earlier than one already seen is taken as that one.
  sys_milliseconds monotonic(sys_milliseconds now) noexcept {
    if (now < latest_now_) return latest_now_;
    latest_now_ = now;
    return now;
  }

  // ERR-3, ERR-4: what can be read of a request that may not be a valid envelope.
  bool ours(std::string_view version) const {
    return std::find(opt_.versions.begin(), opt_.versions.end(), version) != opt_.versions.end();
  }

  void peek(const boost::json::value& v, request_context& ctx) const {
    const auto* o = v.if_object();
    if (!o) return;
    if (const auto* s = detail::string_member(*o, "sender_id"); s && is_entity_id(*s)) ctx.sender_id = *s;
    if (const auto* s = detail::string_member(*o, "nonce"); s && hex_decode_fixed<16>(*s)) ctx.nonce_hex = *s;
    if (const auto* s = detail::string_member(*o, "version"); s && ours(*s)) ctx.version = *s;
    if (const auto* s = detail::string_member(*o, "msg_type"); s && is_msg_type(*s)) ctx.msg_type = *s;
  }

  // SPEC §17, steps 1 to 3, then the handler of the message's kind.
  outcome process(request_context& ctx, std::string_view text) {
    const auto now = ctx.now;
    auto value = jcs::parse_strict(text, opt_.json);
    if (!value) return error_reply(ctx, value.error());
    peek(*value, ctx);
    // ERR-8: an `error` is never answered, not even when it is malformed.
    if (ctx.msg_type == msg::error) {
      auto unanswered = outcome::silent(ctx.nonce_hex, {});
      unanswered.error = errc::unsupported_message_type;  // for metrics; nothing is sent
      return unanswered;
    }
    auto parsed = envelope_from_json(std::move(*value));  // peek() has read what it needs
    if (!parsed) return error_reply(ctx, parsed.error());
    envelope& e = *parsed;
    if (PEERPROTO_FAULT(exit_on_chunk) && e.msg_type == "chunk") std::_Exit(70);  // a node that dies mid-run
    // HS-1, part of the envelope's form (PROC-1): the handshake messages are sessionless.
    if (e.session_id && is_handshake_type(e.msg_type))
      return error_reply(ctx, {errc::invalid_format, "handshake messages carry no session_id or sequence_num (HS-1)"});

    // PROC-2
    if (const auto wait = rate_.admit_unauthenticated(ctx.remote, e.sender_id, now); wait.count() > 0)
      return limited(ctx, e, wait, "too many messages from this address or sender");
    // PROC-3. The envelope parser knows every version of the protocol; this node may support fewer
    // (VER-2: no 1.0 when encryption is required).
    if (e.msg_type != "handshake" && !ours(e.version))
      return error_reply(ctx, {errc::invalid_version, "version '" + e.version + "' is not supported by this node"});
    if (e.recipient_id != opt_.self_id && !PEERPROTO_FAULT(skip_recipient_check))
      return error_reply(ctx, {errc::invalid_format, "the message is addressed to another node"});
    if (replay_.check_time(e.timestamp, now) && !PEERPROTO_FAULT(skip_timestamp_check)) {
      audit(ctx, audit_event::replay_detected, e, errc::replay_detected, "clock skew");
      return error_reply(ctx, {errc::replay_detected, "the timestamp is outside the allowed clock skew"});
    }
    if (e.session_id) return handle_session_message(ctx, std::move(e));
    if (e.msg_type == "handshake") return handle_handshake(ctx, e);
    if (e.msg_type == "handshake_confirm") return handle_confirm(ctx, e);
    return handle_sessionless(ctx, e);
  }

  void audit(request_context& ctx, audit_event ev, const std::optional<envelope>& e, std::optional<errc> code,
             std::string detail) {
    audit_record r{ctx.now, ev, ctx.remote.empty() ? std::nullopt : std::optional(ctx.remote),
                   ctx.sender_id.empty() ? std::nullopt : std::optional(ctx.sender_id),
                   ctx.session_id.empty() ? std::nullopt : std::optional(ctx.session_id),
                   e ? std::optional(e->msg_type) : std::nullopt,
                   ctx.nonce_hex.empty() ? std::nullopt : std::optional(ctx.nonce_hex), code, std::move(detail)};
    ctx.audit.push_back(std::move(r));
  }

  // A sessionless envelope from this node to `to`, signed (SIG-6).
  envelope signed_envelope(std::string_view version, std::string_view msg_type, std::string_view to,
                           boost::json::object payload, sys_milliseconds now) {
    auto e = make_header(version, msg_type, opt_.self_id, to, now, rng_);
    e.payload = std::move(payload);
    sign(e, identity_);
    return e;
  }

  // ERR-1..ERR-5: a signed, sessionless error envelope.
  outcome error_reply(request_context& ctx, const failure& f, std::optional<std::chrono::seconds> retry = std::nullopt) {
    const std::string version = ctx.version.empty() ? opt_.versions.front() : ctx.version;
    boost::json::object p{{"error_code", wire_name(f.code)},
                          {"error_message", f.message.substr(0, limits::max_error_message_chars)},
                          {"original_nonce", ctx.nonce_hex.empty() ? boost::json::value(nullptr) : boost::json::value(ctx.nonce_hex)}};
    if (f.code == errc::rate_limited) p["retry_after"] = (retry ? *retry : std::chrono::seconds(1)).count();
    if (f.code == errc::invalid_version && !PEERPROTO_FAULT(no_supported_versions)) p["supported_versions"] = boost::json::array(opt_.versions.begin(), opt_.versions.end());
    auto e = signed_envelope(version, "error", ctx.sender_id.empty() ? "unknown" : ctx.sender_id, std::move(p), ctx.now);
    if (PEERPROTO_FAULT(unsigned_errors)) (*e.signature)[0] ^= 1;
    auto o = outcome::answer(serialize(e), ctx.nonce_hex, std::move(ctx.audit));
    o.error = f.code;
    if (f.code == errc::rate_limited) o.retry_after = retry ? *retry : std::chrono::seconds(1);
    if (f.code == errc::unsupported_message_type && is_reply_type(ctx.msg_type)) o.what = outcome::kind::answer_over_http;  // MSG-3
    return o;
  }

  outcome limited(request_context& ctx, const envelope& e, std::chrono::milliseconds wait, const char* why) {
    audit(ctx, audit_event::rate_limited, e, errc::rate_limited, why);
    return error_reply(ctx, {errc::rate_limited, why}, retry_after_seconds(wait));
  }

  outcome auth_failed(request_context& ctx, const envelope& e, const failure& f) {
    if (!PEERPROTO_FAULT(no_backoff)) rate_.authentication_failed(ctx.remote, e.sender_id, ctx.now);
    audit(ctx, f.code == errc::unknown_sender ? audit_event::key_refused : audit_event::auth_failure, e, f.code, f.message);
    return error_reply(ctx, f);
  }

  static failure error_of(const envelope& e) {
    const auto* code = e.payload ? detail::string_member(*e.payload, "error_code") : nullptr;
    const auto* msg = e.payload ? detail::string_member(*e.payload, "error_message") : nullptr;
    const auto c = code ? errc_from_wire_name(*code) : std::nullopt;
    return failure{c.value_or(errc::internal_error), msg ? std::string(*msg) : "the peer answered with an error"};
  }

  // PROC-5, PROC-6 for a signature-authenticated message: replay cache, then signature.
  std::optional<outcome> authenticate_signed(request_context& ctx, const envelope& e, const crypto::public_key& key) {
    if (replay_.check(e.sender_id, e.nonce, ctx.now) && !PEERPROTO_FAULT(skip_replay_check)) {
      audit(ctx, audit_event::replay_detected, e, errc::replay_detected, "nonce reused");
      return error_reply(ctx, {errc::replay_detected, "this nonce was already used by the sender"});
    }
    if (!verify_signature(e, key) && !PEERPROTO_FAULT(accept_any_signature)) return auth_failed(ctx, e, {errc::invalid_signature, "the signature does not verify"});
    if (replay_.insert(e.sender_id, e.nonce, ctx.now))
      return limited(ctx, e, replay_.retry_after(ctx.now), "the replay cache is full");
    rate_.authenticated(e.sender_id);
    return std::nullopt;
  }

  // PROC-7's first steps, common to every authenticated message.
  std::optional<outcome> after_authentication(request_context& ctx, const envelope& e) {
    if (const auto wait = rate_.admit_authenticated(e.sender_id, e.msg_type, ctx.now); wait.count() > 0 && !PEERPROTO_FAULT(no_rate_limit))
      return limited(ctx, e, wait, "too many messages of this class from this sender");
    if (opt_.require_encryption && !e.is_sealed_session_message() && e.msg_type != "handshake" &&
        e.msg_type != "handshake_confirm")
      return error_reply(ctx, {errc::encryption_required, "this node accepts only encrypted session messages"});
    return std::nullopt;
  }

  // MSG-1, MSG-3, CHK-7: what a delivered message's handler answers, before it is wrapped.
  result<handler_reply> dispatch(const envelope& e, const boost::json::object& payload, std::string_view remote,
                                 sys_milliseconds now) {
    if (e.msg_type == "chunk") {
      auto c = parse_chunk(payload, opt_.chunks);
      if (!c) return c.error();
      if (!handlers_.find(c->original_msg_type))
        return failure{errc::unsupported_message_type, "no handler for '" + c->original_msg_type + "'"};  // CHK-8
      auto out = reassembler_.add(e.sender_id, std::move(*c), now);
      if (!out) return out.error();
      if (out->what != reassembler::outcome::kind::complete)
        return handler_reply{"ack", {{"acked_nonce", hex_encode(e.nonce)}, {"status", "chunk_received"}}};
      const handler* h = handlers_.find(out->original_msg_type);
      if (!h) return failure{errc::unsupported_message_type, "no handler for '" + out->original_msg_type + "'"};
      return (*h)(handler_request{e, out->original_msg_type, *out->payload, remote, now});
    }
    if (is_reply_type(e.msg_type)) return failure{errc::unsupported_message_type, "'" + e.msg_type + "' is a reply, not a request"};
    const handler* h = handlers_.find(e.msg_type);
    if (!h) return failure{errc::unsupported_message_type, "no handler is registered for '" + e.msg_type + "'"};
    return (*h)(handler_request{e, e.msg_type, payload, remote, now});
  }

  // MSG-2: the reply names the request.
  static void name_request(handler_reply& r, const envelope& request) {
    if (r.msg_type == "ack") r.payload["acked_nonce"] = hex_encode(request.nonce);
    else r.payload["in_reply_to"] = hex_encode(request.nonce);
  }

  outcome handle_sessionless(request_context& ctx, const envelope& e) {
    const auto key = trust_.key_for(e.sender_id);
    if (!key) return auth_failed(ctx, e, {errc::unknown_sender, "no key is known for this sender; run a handshake first"});
    if (auto o = authenticate_signed(ctx, e, *key)) return std::move(*o);
    if (auto o = after_authentication(ctx, e)) return std::move(*o);
    auto r = dispatch(e, *e.payload, ctx.remote, ctx.now);
    if (!r) return error_reply(ctx, r.error());
    name_request(*r, e);
    const auto reply = signed_envelope(e.version, r->msg_type, e.sender_id, std::move(r->payload), ctx.now);
    return outcome::answer(serialize(reply), ctx.nonce_hex, std::move(ctx.audit));
  }

  outcome handle_handshake(request_context& ctx, const envelope& e) {
    auto h = parse_hello(*e.payload);
    if (!h) return error_reply(ctx, h.error());
    auto neg = negotiate(*h, opt_.versions, opt_.suites, opt_.require_encryption);
    if (!neg) return error_reply(ctx, neg.error());
    if (!trust_.acceptable(e.sender_id, h->identity_key))
      return auth_failed(ctx, e, {errc::unknown_sender, "the sender's key is not acceptable under the trust policy"});
    if (auto o = authenticate_signed(ctx, e, h->identity_key)) return std::move(*o);
    if (auto o = after_authentication(ctx, e)) return std::move(*o);
    std::size_t pending_total = 0, pending_peer = 0;
    for (const auto& [id, entry] : sessions_)
      if (entry->pending) {
        ++pending_total;
        if (entry->s.peer_id() == e.sender_id) ++pending_peer;
      }
    if (pending_peer >= opt_.max_pending_per_peer)
      return error_reply(ctx, {errc::handshake_in_progress, "too many handshakes pending for this sender"});
    if (pending_total >= opt_.max_pending_total || sessions_.size() >= opt_.max_sessions_total)
      return limited(ctx, e, opt_.handshake_timeout, "too many handshakes or sessions on this node");
    if (const auto b = trust_.accept_handshake_key(e.sender_id, h->identity_key); b && *b != trust_store::binding::known)
      audit(ctx, audit_event::key_pinned, e, std::nullopt, "key bound to entity id");

    hello_ack ack;
    ack.in_reply_to = e.nonce;
    ack.session_id = make_uuid_v4(draw<16>(rng_));
    while (sessions_.contains(ack.session_id)) ack.session_id = make_uuid_v4(draw<16>(rng_));
    ack.selected_version = neg->version;
    ack.selected_suite = neg->suite;
    ack.identity_key = identity_.public_key_bytes();
    ack.challenge = draw<32>(rng_);
    const std::string msg1 = serialize(e);
    ack.challenge_response = crypto::sha256(as_bytes(msg1));
    std::optional<crypto::x25519_keypair> eph;
    if (neg->suite) {
      eph.emplace(draw<32>(rng_));
      ack.ephemeral_key = eph->public_key_bytes();
    }
    const std::string msg2 = serialize(signed_envelope(neg->version, "handshake_ack", e.sender_id, to_json(ack), ctx.now));

    auto entry = std::make_unique<session_entry>(session(ack.session_id, session_role::responder, e.sender_id, h->identity_key, opt_.session));
    pending_handshake pending{crypto::sha256(as_bytes(msg2)), std::nullopt, ctx.now};
    if (neg->suite) {
      auto keys = derive_session_keys(eph->private_key(), *h->ephemeral_key, msg1, msg2);
      eph->wipe();  // HS-14: the keys exist, the ephemeral secret is no longer needed
      if (!keys) return auth_failed(ctx, e, keys.error());
      pending.confirmation = key_confirmation(keys->k_confirm);
      entry->s.set_keys(neg->version, &keys->k_i2r, &keys->k_r2i);
    } else {
      entry->s.set_keys(neg->version, nullptr, nullptr);
    }
    if (auto ec = entry->s.apply(session_event::valid_handshake, ctx.now)) return error_reply(ctx, to_failure(ec));
    entry->pending = pending;
    sessions_.emplace(ack.session_id, std::move(entry));
    return outcome::answer(msg2, ctx.nonce_hex, std::move(ctx.audit));
  }

  // HS-16: a pending handshake past its timeout fails, and is remembered as timed out.
  bool expire_pending(session_entry& entry, sys_milliseconds now) {
    if (!entry.pending || now - entry.pending->started < opt_.handshake_timeout || PEERPROTO_FAULT(accept_expired_handshake))
      return false;
    if (entry.s.apply(session_event::pending_timeout, now)) return false;  // only from await_confirm
    entry.pending.reset();
    entry.timed_out = true;
    return true;
  }

  outcome handle_confirm(request_context& ctx, const envelope& e) {
    auto c = parse_hello_confirm(*e.payload);
    if (!c) return error_reply(ctx, c.error());
    ctx.session_id = format_uuid(c->session_id);
    const auto it = sessions_.find(c->session_id);
    if (it == sessions_.end() || it->second->s.peer_id() != e.sender_id || it->second->s.role() != session_role::responder)
      return error_reply(ctx, {errc::session_not_found, "no pending handshake with this session id"});  // HS-20, HS-21
    auto& entry = *it->second;
    session& s = entry.s;
    if (s.state() == session_state::ready) return error_reply(ctx, {errc::replay_detected, "the session is already confirmed"});  // HS-19
    changed_.insert(s.id());
    // HS-16: a message 3 after the timeout is CHALLENGE_EXPIRED, whether or not poll() has
    // already failed the handshake; any other failed handshake stays failed (HS-22).
    if (entry.timed_out && !PEERPROTO_FAULT(accept_expired_handshake)) return error_reply(ctx, {errc::challenge_expired, "the pending handshake expired"});
    if (s.state() != session_state::await_confirm || !entry.pending)
      return error_reply(ctx, {errc::session_not_found, "no pending handshake with this session id"});  // HS-22
    if (expire_pending(entry, ctx.now)) {
      audit(ctx, audit_event::handshake_failed, e, errc::challenge_expired, "confirmation arrived too late");
      return error_reply(ctx, {errc::challenge_expired, "the pending handshake expired"});
    }
    if (auto o = authenticate_signed(ctx, e, s.peer_key())) return std::move(*o);
    if (auto o = after_authentication(ctx, e)) return std::move(*o);
    // HS-3: absent where the table requires it is MISSING_FIELDS; HS-13: present in 1.0 is INVALID_FORMAT.
    if (entry.pending->confirmation && !c->key_confirmation)
      return error_reply(ctx, {errc::missing_fields, "key_confirmation is required when a suite was selected"});
    if (!entry.pending->confirmation && c->key_confirmation)
      return error_reply(ctx, {errc::invalid_format, "key_confirmation is not allowed in a 1.0 handshake"});
    const bool response_ok =
        crypto::equal_constant_time(c->challenge_response, entry.pending->expected_response) || PEERPROTO_FAULT(skip_challenge_check);
    const bool confirm_ok = !c->key_confirmation ||
                            crypto::equal_constant_time(*c->key_confirmation, *entry.pending->confirmation);
    if (!response_ok || !confirm_ok) {
      if (auto ec = s.apply(session_event::invalid_confirm, ctx.now)) return error_reply(ctx, to_failure(ec));
      entry.pending.reset();
      audit(ctx, audit_event::handshake_failed, e, errc::challenge_invalid, "wrong challenge response or key confirmation");
      return auth_failed(ctx, e, {errc::challenge_invalid, "the challenge response or key confirmation is wrong"});
    }
    if (auto ec = s.apply(session_event::valid_confirm, ctx.now)) return error_reply(ctx, to_failure(ec));
    entry.pending.reset();
    audit(ctx, audit_event::handshake_succeeded, e, std::nullopt, "version " + s.version());
    audit(ctx, audit_event::session_opened, e, std::nullopt, s.encrypted() ? "encrypted" : "signed plaintext");
    handler_reply r{"ack", {{"status", "session_ready"}}};
    name_request(r, e);
    return session_reply(ctx, s, std::move(r));
  }

  outcome session_reply(request_context& ctx, session& s, handler_reply r) {
    auto reply = make_header(s.version(), r.msg_type, opt_.self_id, s.peer_id(), ctx.now, rng_);
    if (auto ec = s.seal_outbound(reply, r.payload, ctx.now))
      return error_reply(ctx, to_failure(ec, "the session cannot send: "));
    if (!s.encrypted()) sign(reply, identity_);
    return outcome::answer(serialize(reply), ctx.nonce_hex, std::move(ctx.audit));
  }

  outcome handle_session_message(request_context& ctx, envelope e) {
    ctx.session_id = format_uuid(*e.session_id);
    const auto it = sessions_.find(*e.session_id);
    if (it == sessions_.end() || it->second->s.peer_id() != e.sender_id)
      return error_reply(ctx, {errc::session_not_found, "no such session for this sender"});
    session& s = it->second->s;
    changed_.insert(s.id());
    if (s.expire_if_due(ctx.now)) audit(ctx, audit_event::session_expired, e, errc::session_expired, "session expired");
    if (auto ec = s.check_inbound(e)) {
      const auto code = to_errc(ec);
      if (code == errc::replay_detected) audit(ctx, audit_event::replay_detected, e, code, "sequence number reused");
      return error_reply(ctx, {code, ec.message()});
    }
    if (!s.encrypted()) {
      if (auto o = authenticate_signed(ctx, e, s.peer_key())) return std::move(*o);  // SES-11, RPL-2
    }
    auto payload = s.open_inbound(e);
    if (!payload) {
      if (payload.code() == errc::decryption_failed) return auth_failed(ctx, e, payload.error());
      return error_reply(ctx, payload.error());
    }
    if (s.encrypted()) rate_.authenticated(e.sender_id);
    if (auto o = after_authentication(ctx, e)) return std::move(*o);
    if (PEERPROTO_FAULT(handler_lookup_before_ordering) && e.msg_type != "chunk" && e.msg_type != "session_close" &&
        !handlers_.find(e.msg_type))
      return error_reply(ctx, {errc::unsupported_message_type, "no handler is registered for '" + e.msg_type + "'"});
    const auto seq = *e.sequence_num;
    const std::string request_nonce = ctx.nonce_hex;
    auto delivered = s.received().accept(seq, held_message{std::move(e), std::move(*payload), ctx.remote}, ctx.now);
    if (delivered.empty()) return outcome::held(request_nonce, std::move(ctx.audit));
    outcome first;
    for (std::size_t i = 0; i < delivered.size(); ++i) {
      auto& h = delivered[i];
      request_context hctx{h.remote, ctx.now, h.request.sender_id, hex_encode(h.request.nonce), ctx.session_id, s.version(), {}, h.request.msg_type};
      if (i == 0) hctx.audit = std::move(ctx.audit);
      outcome o = deliver(hctx, s, h);
      o.msg_type = h.request.msg_type;
      if (i == 0) first = std::move(o);
      else first.released.push_back(std::move(o));
      if (s.state() != session_state::ready) break;  // closed by session_close
    }
    return first;
  }

  // Runs a delivered session message through its handler and wraps the reply in the session.
  outcome deliver(request_context& ctx, session& s, const held_message& h) {
    if (auto ec = s.apply(session_event::message, ctx.now)) return error_reply(ctx, to_failure(ec));
    if (h.request.msg_type == msg::session_close) {
      for (const auto& kv : h.payload) {
        const auto* reason = kv.value().if_string();
        if (kv.key() != "reason" || !reason || reason->size() > limits::max_close_reason_chars)
          return error_reply(ctx, {errc::invalid_format, "session_close takes only a reason of at most 256 characters"});
      }
      auto out = session_reply(ctx, s, handler_reply{"ack", {{"acked_nonce", hex_encode(h.request.nonce)}, {"status", "closed"}}});
      if (!PEERPROTO_FAULT(ignore_session_close))
        if (auto ec = s.apply(session_event::close, ctx.now)) return error_reply(ctx, to_failure(ec));  // SES-8
      audit(ctx, audit_event::session_closed, h.request, std::nullopt, "closed by the peer");
      out.audit = std::move(ctx.audit);
      return out;
    }
    auto r = dispatch(h.request, h.payload, h.remote, ctx.now);
    if (!r) return error_reply(ctx, r.error());
    name_request(*r, h.request);
    return session_reply(ctx, s, std::move(*r));
  }

  engine_options opt_;
  const crypto::ed25519_keypair& identity_;
  trust_store& trust_;
  const registry& handlers_;
  random_source rng_;
  replay_cache replay_;
  rate_limiter rate_;
  reassembler reassembler_;
  std::map<uuid, std::unique_ptr<session_entry>> sessions_;
  std::map<message_nonce, initiator_pending> initiating_;
  std::set<uuid> changed_;
  sys_milliseconds latest_now_{};  ///< the latest `now` processed (see "Time" above)
};

}  // namespace peerproto
