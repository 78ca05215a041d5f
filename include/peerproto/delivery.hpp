// One outgoing message on its way to a peer: what the sender does with every answer and with
// every answer it does not get (SPEC §11.1, SND-1..SND-5; RL-7; ORD-4, ORD-7; ENC-4; chunked
// sending, CHK-15 and CHK-16). Clock-free and I/O-free like the engine: the caller seals with the
// engine, transmits, and reports what came back; the machine says what to do next and when.
//
// The caller's loop, for one message:
//
//   step = d.next(now, session_ready)        also after every wait, and to pick up a stored record
//   repeat:
//     apply step.session (forget: engine.end_session; close: send session_close in it)
//     store the record                       before anything else is transmitted
//     done  → the record's status is final
//     wait  → sleep until step.not_before, then step = d.next(...)
//     seal  → a ready session (a handshake first when there is none), then the payload, or chunk
//             d.chunk_index() of its transfer (start_transfer() first when it needs one), sealed
//             by the engine: step = d.sealed(bytes, session, now), or d.not_sealed(...) /
//             d.seal_refused(...)
//     send  → transmit record.sealed as is: step = d.answered(what came back, now)
//
// The record is everything that must be stored: a machine made over a stored record after a
// restart goes on where the last one stopped. The sealed bytes are stored before they are first
// sent and every retransmission sends them again (SND-5), so the peer delivers the message at most
// once (ORD-4), and REPLAY_DETECTED to a retransmission means that its number was used.
//
// What settles a message ("delivered" in ORD-7's sense: handed to the peer's dispatch):
//   the peer's reply                       delivered (the reply is kept as the result); for a
//                                          transfer, the reply to the chunk that completes it
//   REPLAY_DETECTED to a retransmission    delivered, its answer lost; unconfirmed when the number
//                                          may have been used by a refusal after RATE_LIMITED
//                                          (RL-7); for a chunk, the transfer goes on (CHK-4, CHK-17)
//   every chunk acknowledged, rounds over  failed; unconfirmed when a chunk whose answer was lost
//                                          could have completed the transfer; then also once the
//                                          peer may have forgotten that completion (CHK-16)
//   a refusal of the message itself        failed (SND-3)
//   the session ended at the peer          sealed again in a new session when no earlier
//                                          transmission can have arrived (a chunk: always, CHK-4);
//                                          unconfirmed otherwise
//   its expiry, while the peer is down     expired (unconfirmed when a transmission may have arrived)
//   cancel()                               failed
// Everything else (no connection, timeouts, an answer that does not authenticate, even one that
// names a refusal, 429, handshake failures) is retried after capped exponential back-off with jitter; after RATE_LIMITED, never
// before its retry_after (SND-2, RL-7).
#pragma once

#include <peerproto/encoding.hpp>
#include <peerproto/error.hpp>
#include <peerproto/handshake.hpp>
#include <peerproto/jcs.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace peerproto {

enum class delivery_status { queued, delivered, failed, expired, unconfirmed };

/// What is stored of one message on its way.
struct delivery_record {
  delivery_status status = delivery_status::queued;
  sys_milliseconds expires{};   ///< retried until then
  std::optional<uuid> session;  ///< the session `sealed` belongs to
  std::string sealed;           ///< the envelope as first sent, sent again as is; empty before
  bool written = false;         ///< a transmission of `sealed` may have reached the peer, its answer unseen
  bool rate_limited = false;    ///< `sealed` was refused with RATE_LIMITED, perhaps by the handler after delivery (RL-7)
  std::uint32_t attempts = 0;   ///< transmissions answered or not
  std::string result;           ///< JSON: the reply or refusal that settled it, or the last problem
  sys_milliseconds not_before{};  ///< nothing is sent before then (a back-off, or the peer's retry_after)
  // A payload too large for one envelope of its peer goes as a chunked transfer (SPEC §12);
  // `sealed` is then the current chunk. No transfer_id: one envelope.
  std::optional<uuid> transfer_id;
  std::uint32_t chunk_size = 0, chunk_total = 0;
  std::uint32_t chunks_acked = 0;  ///< chunks 0 .. chunks_acked-1 were acknowledged in this round
  std::uint32_t rounds = 0;        ///< times every chunk was acknowledged without the transfer completing
  sys_milliseconds sealed_at{};    ///< when `sealed` was sealed: it was not sent before
  bool maybe_completed = false;    ///< a chunk whose answer was lost could have completed the transfer
  sys_milliseconds resend_until{}; ///< with maybe_completed: the peer remembers a completion that long (CHK-4)
};

/// Sender mistakes the conformance suite must catch, for the fault-injection node only: each
/// breaks one rule of the machine. All false in every real use.
struct delivery_faults {
  bool ignores_retry_after = false;      ///< sends again at once after RATE_LIMITED (SND-2)
  bool keeps_expired_session = false;    ///< seals again in a session the peer said is gone (SND-4)
  bool trusts_forged_errors = false;     ///< takes an unauthenticated answer that names a code as a refusal (SND-1)
  bool retries_refusals = false;         ///< sends a message refused for good again (SND-3)
  bool reseals_retransmission = false;   ///< seals anew after a lost answer (SND-5)
  bool gives_up_lost_transfer = false;   ///< fails a transfer the peer lost instead of sending it again (CHK-16)
};

struct delivery_options {
  std::chrono::milliseconds retry_initial{500};  ///< first back-off
  std::chrono::milliseconds retry_max{30'000};   ///< back-off cap
  std::uint32_t max_transfer_rounds = 4;         ///< a transfer sent again from its first chunk at most this often
  /// How long a receiver remembers a completed transfer (CHK-4: the transfer idle timeout, §18).
  std::chrono::milliseconds completion_memory = limits::transfer_idle_timeout;
  delivery_faults faults{};
};

/// A wait drawn from [0, up_to] with the crypto RNG, so that senders do not align.
inline std::chrono::milliseconds random_up_to(std::chrono::milliseconds up_to, const random_source& rng) {
  std::uint64_t x = 0;
  for (auto b : draw<8>(rng)) x = x << 8 | b;
  return std::chrono::milliseconds(static_cast<long long>(x % (static_cast<std::uint64_t>(up_to.count()) + 1)));
}

/// Capped exponential back-off after `failures` failures in a row, each wait drawn from [d/2, d].
inline std::chrono::milliseconds backoff_delay(unsigned failures, const delivery_options& opt, const random_source& rng) {
  const auto d = std::min(opt.retry_max, std::chrono::milliseconds(opt.retry_initial.count() << std::min(failures, 20u)));
  const auto half = d / 2;
  return d - half + random_up_to(half, rng);
}

/// What came back for one transmission of the sealed bytes, as the transport and the engine's
/// accept_reply() saw it.
struct delivery_answer {
  enum class kind {
    lost,             ///< nothing came back: no connection, a timeout, a connection closed
    unauthenticated,  ///< something came back that proves nothing (SND-1): a status without an envelope, an
                      ///< error the peer did not sign, a reply that does not open (`code`: what accept_reply() said)
    reply,            ///< the peer's reply, accepted
    chunk_received,   ///< ack "chunk_received" to a chunk that did not complete its transfer (CHK-7)
    refused,          ///< the peer's signed error, with its `code`
  };
  kind what = kind::lost;
  bool may_have_arrived = false;                    ///< lost: the bytes were written, perhaps in part
  errc code = errc::internal_error;                 ///< refused; unauthenticated: why it did not authenticate
  std::optional<std::chrono::seconds> retry_after;  ///< the error's retry_after, or an HTTP Retry-After
  int status = 0;                                   ///< the HTTP status, 0 over WebSocket (kept in the result)
  std::string detail;                               ///< what the transport or the engine said
  boost::json::object reply;                        ///< reply: what to keep (type and payload)
};

/// What the caller does next.
struct delivery_step {
  enum class kind {
    seal,  ///< seal the payload (or chunk_index()) in a ready session; then sealed()
    send,  ///< transmit the record's sealed bytes; then answered()
    wait,  ///< nothing before `not_before`; then next()
    done,  ///< the record's status is final
  };
  /// What becomes of a session first: the peer no longer has it (end it here, sending nothing), or
  /// it must not carry more messages (SND-4, a gap that would hold later ones: close it).
  enum class session_action { keep, forget, close };

  delivery_step(kind k, sys_milliseconds t = {}) : what(k), not_before(t) {}

  kind what = kind::seal;
  sys_milliseconds not_before{};
  session_action session = session_action::keep;
  std::optional<uuid> session_id;  ///< the session the action applies to
  std::string problem;             ///< why a retry or a new round, for the log; empty otherwise
};

class delivery {
 public:
  /// `record` and `rng` must outlive the machine; the record is changed in place.
  delivery(delivery_record& record, const delivery_options& opt, const random_source& rng)
      : r_(record), opt_(opt), rng_(rng) {
    // Bytes sealed before this machine (an earlier run, or before a store failure) are stored
    // before they are sent, and may have been sent: the peer may have delivered them.
    if (!r_.sealed.empty()) r_.written = true;
  }

  /// What to do now. `session_ready`: the record's session is still ready at this end.
  delivery_step next(sys_milliseconds now, bool session_ready) {
    if (r_.status != delivery_status::queued) return {delivery_step::kind::done};
    if (now >= r_.expires)  // a message that may have arrived is not reported as lost
      return settle(r_.written || r_.maybe_completed ? delivery_status::unconfirmed : delivery_status::expired,
                    {{"problem", "expired before it could be delivered"}, {"last", last_result()}});
    if (too_late_for_chunks(now)) return seal_step(now);
    if (now < r_.not_before) return wait_until(r_.not_before, {});
    if (!r_.sealed.empty() && !session_ready) {
      if (r_.written && !r_.transfer_id)
        return settle(delivery_status::unconfirmed, {{"problem", "the session ended before the peer's answer arrived"}});
      note_lost_chunk();
      unseal();  // never sent, or a chunk (CHK-4 makes it harmless again): sealed again in a new session
    }
    return r_.sealed.empty() ? seal_step(now) : delivery_step{delivery_step::kind::send};
  }

  /// The chunk to seal next, when the message goes as a transfer.
  std::optional<std::uint32_t> chunk_index() const {
    return r_.transfer_id ? std::optional(r_.chunks_acked) : std::nullopt;
  }

  /// The payload goes as a transfer of `total` chunks of `chunk_size` bytes (CHK-15).
  void start_transfer(const uuid& transfer_id, std::uint32_t chunk_size, std::uint32_t total) {
    r_.transfer_id = transfer_id;
    r_.chunk_size = chunk_size;
    r_.chunk_total = total;
    r_.chunks_acked = r_.rounds = 0;
  }

  /// The engine sealed the payload (or chunk) in `session`: store the record, then send.
  delivery_step sealed(std::string envelope, const uuid& session, sys_milliseconds now) {
    r_.sealed = std::move(envelope);
    r_.sealed_at = now;
    r_.session = session;
    r_.written = r_.rate_limited = false;
    return {delivery_step::kind::send};
  }

  /// No session could be had (a handshake failed, went unanswered or was refused): retried after
  /// back-off, and never before `retry_after` (SND-2).
  delivery_step not_sealed(const std::string& problem, std::optional<std::chrono::seconds> retry_after, sys_milliseconds now) {
    return retry(problem, now, retry_after.value_or(std::chrono::seconds(0)));
  }

  /// The engine would not seal: in a session that has ended, the payload is sealed again in a new
  /// one; any other code refuses the message for good (its payload or type is not acceptable).
  delivery_step seal_refused(errc code, const std::string& message, sys_milliseconds now) {
    if (session_gone(code)) {
      unseal();
      return seal_step(now);
    }
    return settle(delivery_status::failed, {{"error_code", wire_name(code)}, {"error_message", message}});
  }

  /// What came back for the transmission of the record's sealed bytes.
  delivery_step answered(const delivery_answer& a, sys_milliseconds now) {
    ++r_.attempts;
    switch (a.what) {
      case delivery_answer::kind::lost:
        r_.written = r_.written || a.may_have_arrived;
        if (opt_.faults.reseals_retransmission) r_.sealed.clear();
        return retry(a.detail, now);
      case delivery_answer::kind::unauthenticated:
        if (opt_.faults.trusts_forged_errors && a.code != errc::internal_error) return refused(a, now);
        r_.written = true;
        return retry(a.detail, now);
      case delivery_answer::kind::chunk_received:
        if (r_.transfer_id) {
          failures_ = 0;
          return next_chunk(now);
        }
        [[fallthrough]];  // not a chunk: the reply to the message
      case delivery_answer::kind::reply: {
        boost::json::object result = a.reply;
        result["status"] = a.status;
        return settle(delivery_status::delivered, std::move(result));
      }
      case delivery_answer::kind::refused:
        return refused(a, now);
    }
    return retry("an answer of no known kind", now);
  }

  /// The operator gave the message up.
  delivery_step cancel() { return settle(delivery_status::failed, {{"problem", "cancelled by the operator"}, {"last", last_result()}}); }

  /// Codes after which the session is gone at the peer, or cannot carry this message, so that a
  /// new one is needed (SND-3's list, less RATE_LIMITED, with DECRYPTION_FAILED: a sealed message
  /// the peer could not open is sealed again in a new session, not repeated).
  static bool session_gone(errc c) {
    return c == errc::session_expired || c == errc::session_not_found || c == errc::encryption_not_ready ||
           c == errc::invalid_state || c == errc::sequence_error || c == errc::decryption_failed;
  }

 private:
  delivery_step refused(const delivery_answer& a, sys_milliseconds now) {
    using step = delivery_step;
    const errc code = a.code;
    const boost::json::object refusal{{"status", a.status}, {"error_code", wire_name(code)}, {"error_message", a.detail}};
    if (code == errc::rate_limited) {  // SND-2, RL-7: never earlier than retry_after (1 s when it names none)
      const auto at_least = opt_.faults.ignores_retry_after ? std::chrono::seconds(0) : a.retry_after.value_or(std::chrono::seconds(1));
      r_.rate_limited = true;
      r_.result = jcs::canonicalize(refusal);
      return wait_until(now + std::max<std::chrono::milliseconds>(at_least, backoff()) + random_up_to(std::chrono::milliseconds(100), rng_),
                        "RATE_LIMITED");
    }
    // REPLAY_DETECTED to the stored bytes: the peer used their sequence number before, by
    // delivering an earlier transmission whose answer was lost (possible when one was written), or
    // by refusing it in its handler after delivery (possible after RATE_LIMITED, RL-7).
    if (code == errc::replay_detected && r_.rate_limited && !r_.written) {
      // RL-7: the number was used by the refusal; the content is sealed again under the next one.
      unseal();
      r_.result = jcs::canonicalize(refusal);
      return seal_step(now);
    }
    if (code == errc::replay_detected && r_.written && r_.transfer_id) {
      // The chunk arrived before (CHK-4 acknowledges it again); its answer was lost, which leaves
      // a gap in the replies of this session: the rest goes in a new one. Whether it completed
      // the transfer is unknown: the chunks go on, harmless if it did (a receiver remembers a
      // completed transfer, CHK-4, across a restart too, CHK-17), and if every round is then
      // acknowledged without completion the transfer is reported unconfirmed, not failed.
      note_lost_chunk();
      const auto session = r_.session;
      return with_session(next_chunk(now), step::session_action::close, session);
    }
    if (code == errc::replay_detected && r_.written) {
      // ORD-7: an earlier transmission was delivered (handed to the peer's dispatch) and its answer
      // lost, which leaves a gap in the replies of this session, so later messages use a new one.
      // When a refusal after delivery could have used the number instead (after RATE_LIMITED,
      // RL-7), the sender cannot tell which: it reports the message unconfirmed rather than send
      // it again.
      const auto session = r_.session;
      step s = r_.rate_limited
                   ? settle(delivery_status::unconfirmed,
                            {{"status", a.status}, {"error_code", wire_name(code)},
                             {"note", "delivered earlier, or refused by the peer's handler after RATE_LIMITED: cannot tell"}})
                   : settle(delivery_status::delivered, {{"status", a.status}, {"reply", nullptr}, {"note", "delivered earlier; the reply was lost"}});
      return with_session(s, step::session_action::close, session);
    }
    if (session_gone(code)) {
      // This transmission was refused, not delivered. An earlier one may have been delivered only
      // if it was written and the session has since ended. A session the peer no longer has ends
      // here without a message (SND-4); one it refused a message of is closed.
      if (opt_.faults.keeps_expired_session) {
        r_.sealed.clear();
        return {step::kind::seal};
      }
      const bool peer_forgot = code == errc::session_expired || code == errc::session_not_found;
      const auto action = peer_forgot ? step::session_action::forget : step::session_action::close;
      const auto session = r_.session;
      if (r_.written && !r_.transfer_id && peer_forgot) {
        step s = settle(delivery_status::unconfirmed, refusal);
        return with_session(s, action, session);
      }
      note_lost_chunk();
      unseal();
      r_.result = jcs::canonicalize(refusal);
      return with_session(seal_step(now), action, session);
    }
    if (opt_.faults.retries_refusals) return retry("refused", now);
    return settle(delivery_status::failed, refusal);  // SND-3: refused for good
  }

  // The current chunk was acknowledged: on to the next. When every chunk was acknowledged and none
  // completed the transfer, the peer lost part of it (a restart, CHK-11): the chunks go again,
  // each sealed anew, under the same transfer_id, so those the peer still has are acknowledged
  // again (CHK-4) and the payload is delivered once (CHK-16).
  delivery_step next_chunk(sys_milliseconds now) {
    unseal();
    delivery_step s = seal_step(now);
    if (s.what == delivery_step::kind::done) return s;
    if (++r_.chunks_acked == r_.chunk_total) {
      if (++r_.rounds >= opt_.max_transfer_rounds || opt_.faults.gives_up_lost_transfer)
        return settle(r_.maybe_completed ? delivery_status::unconfirmed : delivery_status::failed,
                      {{"problem", "the peer acknowledged every chunk " + std::to_string(r_.rounds) + " times without completing the transfer" +
                                       (r_.maybe_completed ? " (a chunk whose answer was lost may have completed it)" : "")}});
      r_.chunks_acked = 0;
      s.problem = "every chunk acknowledged, transfer not completed: sending it again (round " + std::to_string(r_.rounds + 1) + ")";
    }
    return s;
  }

  // A chunk whose answer is lost may have completed its transfer, unless it cannot (it is not the
  // last of the first round). Sending chunks again is harmless either way (CHK-4, CHK-17), but a
  // transfer whose rounds then run out may have been delivered: unconfirmed, not failed.
  // The completion, if there was one, came after the chunk was sealed, and the peer remembers it
  // for completion_memory (CHK-4, CHK-17): chunks of the transfer sent after that could complete
  // it again.
  void note_lost_chunk() {
    if (!r_.written || !r_.transfer_id || (r_.rounds == 0 && r_.chunks_acked + 1 < r_.chunk_total)) return;
    const auto until = r_.sealed_at + opt_.completion_memory;
    r_.resend_until = r_.maybe_completed ? std::min(r_.resend_until, until) : until;
    r_.maybe_completed = true;
  }

  // The next seal, unless the transfer may have completed longer ago than the peer remembers:
  // then no chunk of it may be sent or sealed again.
  bool too_late_for_chunks(sys_milliseconds now) const { return r_.transfer_id && r_.maybe_completed && now >= r_.resend_until; }
  delivery_step seal_step(sys_milliseconds now) {
    if (too_late_for_chunks(now))
      return settle(delivery_status::unconfirmed,
                    {{"problem", "a chunk whose answer was lost may have completed the transfer, longer ago than the peer remembers "
                                 "completed transfers (CHK-4): sending more could deliver it twice"}});
    return {delivery_step::kind::seal};
  }

  delivery_step retry(const std::string& problem, sys_milliseconds now, std::chrono::milliseconds at_least = {}) {
    r_.result = jcs::canonicalize(boost::json::object{{"problem", problem}, {"attempts", r_.attempts}});
    return wait_until(now + std::max(at_least, backoff()), problem);
  }

  delivery_step wait_until(sys_milliseconds t, std::string problem) {
    r_.not_before = t;
    delivery_step s{delivery_step::kind::wait, t};
    s.problem = std::move(problem);
    return s;
  }

  delivery_step settle(delivery_status s, boost::json::object result) {
    delivery_step step{delivery_step::kind::done};
    // A message given up with its sequence number perhaps never delivered would leave a gap that
    // holds every later message of the session at the peer (ORD-3): later ones use a new session.
    if (s != delivery_status::delivered && !r_.sealed.empty()) step = with_session(step, delivery_step::session_action::close, r_.session);
    r_.status = s;
    r_.result = jcs::canonicalize(result);
    r_.sealed.clear();
    return step;
  }

  static delivery_step with_session(delivery_step s, delivery_step::session_action a, const std::optional<uuid>& id) {
    if (id) {
      s.session = a;
      s.session_id = id;
    }
    return s;
  }

  void unseal() {
    r_.sealed.clear();
    r_.session.reset();
    r_.written = r_.rate_limited = false;
  }

  boost::json::value last_result() const {
    auto v = jcs::parse_strict(r_.result);
    return v ? std::move(*v) : boost::json::value(r_.result);
  }

  std::chrono::milliseconds backoff() { return backoff_delay(failures_++, opt_, rng_); }

  delivery_record& r_;
  const delivery_options& opt_;
  const random_source& rng_;
  unsigned failures_ = 0;  ///< attempts in a row without an answer that moved the message on
};

}  // namespace peerproto
