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
//
// This header declares the engine; one implementation header per concern follows at the end:
//   impl/engine_inbound.hpp    SPEC §17's order for one inbound envelope, authentication, dispatch
//   impl/engine_handshake.hpp  the handshake, both roles, and installing the session keys
//   impl/engine_session.hpp    session messages in both directions, chunking, replies we receive
//   impl/engine_rotation.hpp   following a peer's key rotation
//   impl/engine_timers.hpp     poll(), next_deadline() and the time contract
//   impl/engine_replies.hpp    building replies: signed envelopes, errors, audit records
#pragma once

#include <peerproto/audit.hpp>
#include <peerproto/chunking.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/error.hpp>
#include <peerproto/fault.hpp>
#include <peerproto/handshake.hpp>
#include <peerproto/key_file.hpp>
#include <peerproto/key_rotation.hpp>
#include <peerproto/message_types.hpp>
#include <peerproto/payload_forms.hpp>
#include <peerproto/rate_limit.hpp>
#include <peerproto/registry.hpp>
#include <peerproto/replay_cache.hpp>
#include <peerproto/session.hpp>
#include <peerproto/trust.hpp>
#include <peerproto/version.hpp>

#include <map>
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
  std::size_t max_pending_per_address = limits::max_pending_handshakes_per_address;  ///< HS-26
  std::size_t max_sessions_per_peer = limits::max_sessions_per_peer;          ///< HS-27
  std::chrono::milliseconds terminal_retention = limits::terminal_session_retention;  ///< SES-10
  std::chrono::milliseconds rotation_grace = limits::rotation_grace;          ///< KR-6
  std::size_t max_rotation_chain = limits::max_rotation_chain;                ///< KR-3
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

/// A request's signature checked before handle(), on another thread, so that the Ed25519
/// verification (the largest cost of a sessionless request) leaves the engine's thread: the key
/// it was checked with and the result. handle() takes the result only when the key it looks up
/// itself is that key, so its decision is the one it would have made alone.
struct signature_check {
  crypto::public_key key;
  bool valid = false;
};

/// Parses `text` and checks its signature with the key `key_of` gives for its sender, if any:
/// the work handle() can be spared (see signature_check). Safe on any thread; nullopt when
/// `text` is not a signed envelope or no key is known.
template <class KeyOf>
std::optional<signature_check> precheck_signature(std::string_view text, const jcs::parse_limits& lim, KeyOf&& key_of) {
  // A text without the member's name, as written, is not parsed: a sealed session message, most
  // of the time. (One that names it with escapes is checked by handle(), as it would be anyway.)
  if (text.find("\"signature\"") == std::string_view::npos) return std::nullopt;
  const auto e = parse_envelope(text, lim);
  if (!e || !e->signature) return std::nullopt;
  std::optional<crypto::public_key> key = key_of(e->sender_id);
  if (!key) return std::nullopt;
  return signature_check{*key, verify_signature(*e, *key)};
}

/// A reply accepted on the client side.
struct accepted_reply {
  envelope reply;                  ///< the reply envelope
  boost::json::object payload;     ///< its payload (opened, for sealed replies)
};

class engine {
 public:
  engine(engine_options opt, const crypto::ed25519_keypair& identity, trust_store& trust, const registry& handlers,
         random_source rng = system_random())
      : opt_(std::move(opt)), identity_(&identity), trust_(trust), handlers_(handlers), rng_(std::move(rng)),
        replay_(opt_.replay), rate_(opt_.rate), reassembler_(opt_.chunks) {}

  const engine_options& options() const noexcept { return opt_; }

  /// Signs with `identity` from now on (a rotation of our own key, KR-9): sessions continue; new
  /// handshakes and sessionless messages use the new key. `identity` must outlive the engine.
  void set_identity(const crypto::ed25519_keypair& identity) noexcept { identity_ = &identity; }

  // ------------------------------------------------------------ server side (engine_inbound.hpp)

  /// Processes one inbound envelope from `remote` (SPEC §17). `checked`: its signature, checked
  /// already by precheck_signature().
  outcome handle(std::string_view text, std::string_view remote, sys_milliseconds now,
                 const std::optional<signature_check>& checked = std::nullopt);

  /// The signed `error` reply for a request that the transport refused before the engine saw it
  /// (a wrong content type, an oversize body, too many requests in flight, a storage failure).
  /// `text` is the request as far as it is known, read only for its sender and nonce (ERR-3,
  /// ERR-4); `retry_after` goes with RATE_LIMITED.
  outcome refuse(const failure& f, std::string_view text, std::string_view remote, sys_milliseconds now,
                 std::optional<std::chrono::seconds> retry_after = std::nullopt);

  // ------------------------------------------------------------ timers (engine_timers.hpp)

  /// Does the timed work due at `now`: held messages whose gap timed out are answered with
  /// SEQUENCE_ERROR (ORD-6); sessions expire (SES-4, SES-5); pending handshakes of both roles
  /// fail (HS-16); idle transfers are dropped (CHK-11); terminal sessions are forgotten (SES-10).
  std::vector<outcome> poll(sys_milliseconds now);

  /// When poll() next has work to do.
  std::optional<sys_milliseconds> next_deadline() const;

  // ------------------------------------------------------------ sessions, for tests, metrics and persistence

  /// The session with this id, if any.
  const session* find_session(const uuid& id) const {
    const auto it = sessions_.find(id);
    return it == sessions_.end() ? nullptr : &it->second;
  }
  std::size_t session_count() const noexcept { return sessions_.size(); }
  /// Every session with an id, both roles, by id.
  const std::map<uuid, session>& sessions() const noexcept { return sessions_; }

  /// The ids of the sessions created, changed or forgotten since the last call, so that a node can
  /// persist them (SES-13): for each, find_session() gives the session, or nothing when it is gone.
  /// Holds at most one entry per session.
  std::set<uuid> take_changed_sessions() { return std::exchange(changed_, {}); }

  /// Puts back a persisted ready session (after a restart). False, changing nothing, when the id
  /// is already in use or the session limit is reached.
  bool restore_session(const session_snapshot& snap) {
    if (sessions_.contains(snap.id) || sessions_.size() >= opt_.max_sessions_total) return false;
    sessions_.emplace(snap.id, session::restore(snap, opt_.session));
    return true;
  }
  const replay_cache& replay() const noexcept { return replay_; }
  replay_cache& replay() noexcept { return replay_; }
  /// The receiver's chunk reassembly: what it remembers of completed transfers is for a node to
  /// store and put back (CHK-17).
  reassembler& reassembly() noexcept { return reassembler_; }

  // ------------------------------------------------------------ client side (engine_handshake.hpp)

  /// Starts a handshake with `peer_id` (message 1), offering our versions and suites. The session
  /// exists from now on, awaiting the ack; its id is the one the responder chooses (HS-4).
  std::string begin_handshake(std::string_view peer_id, sys_milliseconds now);

  /// Processes message 2 of a handshake we started and returns message 3; the session is then
  /// ready on our side (SPEC §9) and proven by the responder's first session message, which the
  /// caller passes to accept_reply() (HS-15). An `error` reply is returned as its failure. A
  /// handshake that failed stays failed (HS-22).
  result<std::string> finish_handshake(std::string_view msg2_text, sys_milliseconds now);

  /// What accept_reply() gave for the answer to message 3 must be the responder's first session
  /// message, the session_ready ack, which proves its keys (HS-15): the ready session's id, or why
  /// the session is not ready.
  static result<uuid> session_ready(const result<std::vector<accepted_reply>>& answer);

  // ------------------------------------------------------------ client side (engine_session.hpp)

  /// A session message for `session_id` carrying `payload` (sealed in 1.1, signed in 1.0).
  result<std::string> send(const uuid& session_id, std::string_view msg_type, const boost::json::object& payload,
                           sys_milliseconds now);

  /// A sessionless signed message to `peer_id`, dated `now` (it changes no state, so the time
  /// contract does not apply: a tool may date one in the past).
  std::string send_sessionless(std::string_view peer_id, std::string_view msg_type, const boost::json::object& payload,
                               sys_milliseconds now) {
    return serialize(signed_envelope(opt_.versions.front(), msg_type, peer_id, payload, now));
  }

  /// Splits `payload` into chunk payloads for `msg_type` (CHK-1); send each with send() or
  /// send_sessionless() as msg_type "chunk".
  result<std::vector<boost::json::object>> chunk_payloads(std::string_view msg_type, const boost::json::object& payload,
                                                          std::size_t chunk_size);

  /// The peer answered SESSION_EXPIRED or SESSION_NOT_FOUND for `id`: the session ends on our side
  /// too, without a message (SND-4), and its keys are wiped.
  void end_session(const uuid& id, sys_milliseconds now) {
    if (auto it = sessions_.find(id); it != sessions_.end() && it->second.apply(session_event::expire, monotonic(now)).ok()) changed_.insert(id);
  }

  /// Accepts a reply received as the answer to one of our requests: an `error` (returned as its
  /// failure after its signature verifies), a sessionless signed reply, or a session message,
  /// which goes through the session's ordering window. Returns the replies delivered now, in
  /// order (empty when this one is held behind a gap).
  result<std::vector<accepted_reply>> accept_reply(std::string_view text, sys_milliseconds now);

 private:
  /// What is known of the request being processed, for its reply and audit records.
  struct request_context {
    std::string remote;
    sys_milliseconds now;
    std::string sender_id;   ///< as claimed, when readable
    std::string nonce_hex;   ///< the request's nonce, when readable
    std::string session_id;  ///< canonical text, when known
    std::string version;     ///< the request's version, when supported
    std::vector<audit_record> audit;
    std::string msg_type;    ///< the request's type, when readable
    std::optional<signature_check> checked;  ///< the request's signature, checked before handle()
  };
  request_context context_for(std::string_view remote, sys_milliseconds now) const {
    request_context ctx;
    ctx.remote = std::string(remote);
    ctx.now = now;
    return ctx;
  }

  // engine_inbound.hpp
  bool ours(std::string_view version) const;
  void peek(const detail::envelope_members_read& m, request_context& ctx) const;
  outcome process(request_context& ctx, std::string_view text);
  std::optional<outcome> authenticate_signed(request_context& ctx, const envelope& e, const crypto::public_key& key);
  std::optional<outcome> after_authentication(request_context& ctx, const envelope& e);
  result<handler_reply> dispatch(const envelope& e, const boost::json::object& payload, std::string_view remote,
                                 sys_milliseconds now);
  outcome handle_sessionless(request_context& ctx, const envelope& e);

  // engine_handshake.hpp
  outcome handle_handshake(request_context& ctx, const envelope& e);
  outcome handle_confirm(request_context& ctx, const envelope& e);
  bool expire_pending(session& s, sys_milliseconds now);
  void make_room_for_session(request_context& ctx, const envelope& e);
  outcome audit_refusal(request_context& ctx, const envelope& e, outcome o);
  static result<std::optional<crypto::digest>> install_keys(session& s, const std::string& version, pending_handshake& p,
                                                           const std::optional<crypto::public_key>& peer_ephemeral,
                                                           std::string_view msg1, std::string_view msg2);
  result<std::string> confirm_ack(session& s, const envelope& ack_envelope, const hello_ack& ack, sys_milliseconds now);

  // engine_session.hpp
  session* session_of(const envelope& e);
  outcome handle_session_message(request_context& ctx, envelope e);
  outcome deliver(request_context& ctx, session& s, const held_message& h);
  result<session*> session_for(const envelope& e, sys_milliseconds now, request_context* ctx);
  outcome session_reply(request_context& ctx, session& s, handler_reply r);
  result<std::string> seal_in(session& s, std::string_view msg_type, const boost::json::object& payload, sys_milliseconds now);

  // engine_replies.hpp
  void audit(request_context& ctx, audit_event ev, const std::optional<envelope>& e, std::optional<errc> code,
             std::string detail);
  envelope signed_envelope(std::string_view version, std::string_view msg_type, std::string_view to,
                           boost::json::object payload, sys_milliseconds now);
  outcome error_reply(request_context& ctx, const failure& f, std::optional<std::chrono::seconds> retry = std::nullopt);
  outcome limited(request_context& ctx, const envelope& e, std::chrono::milliseconds wait, const char* why);
  outcome auth_failed(request_context& ctx, const envelope& e, const failure& f);
  static void name_request(handler_reply& r, const envelope& request);
  static failure error_of(const envelope& e);

  // engine_rotation.hpp
  result<handler_reply> follow_rotation(request_context& ctx, const envelope& e, const boost::json::object& payload, bool& revoked);
  void close_sessions_of(request_context& ctx, std::string_view peer_id);

  // engine_timers.hpp
  sys_milliseconds monotonic(sys_milliseconds now) noexcept;

  engine_options opt_;
  const crypto::ed25519_keypair* identity_;
  trust_store& trust_;
  const registry& handlers_;
  random_source rng_;
  replay_cache replay_;
  rate_limiter rate_;
  reassembler reassembler_;
  std::map<uuid, session> sessions_;              ///< by session id, both roles
  std::map<message_nonce, session> initiating_;   ///< ours, awaiting the ack, by message 1's nonce
  std::set<uuid> changed_;
  sys_milliseconds latest_now_{};  ///< the latest `now` processed (see "Time" above)
};

}  // namespace peerproto

#include <peerproto/impl/engine_handshake.hpp>
#include <peerproto/impl/engine_inbound.hpp>
#include <peerproto/impl/engine_replies.hpp>
#include <peerproto/impl/engine_rotation.hpp>
#include <peerproto/impl/engine_session.hpp>
#include <peerproto/impl/engine_timers.hpp>
