// The delivery machine (peerproto/delivery.hpp) driven as a node drives it, against a model of a
// peer that loses requests and answers, refuses with RATE_LIMITED before and after delivery (RL-7),
// answers with errors that do not authenticate (SND-1), forgets sessions, restarts (losing its
// partial transfers, or its sessions too, but not what it stored of completed transfers, CHK-17)
// and refuses bad messages for good. The sender restarts
// too: a new machine over the record as last stored, as the node does.
//
// Every choice is read from a byte string (`choices`), so a property and a fuzz target share one
// model; choice 0 is always "all goes well", so every run ends once the bytes run out. Chunked
// payloads are real: planned and cut by chunking.hpp, put together by the real reassembler.
//
// The oracles (a broken one throws std::logic_error naming the rule):
//  - the peer's application takes a message at most once (ORD-4, CHK-4), a chunked one byte for
//    byte;
//  - a message settled delivered was delivered in ORD-7's sense (handed to the peer's dispatch,
//    whatever dispatch answered); one settled failed or expired was not taken;
//  - after a lost answer, the next transmission in the same session is the same bytes (SND-5);
//  - nothing is sent before a retry_after has passed (SND-2), nor in a session that has ended
//    at the sender or that the peer said is gone (SND-4);
//  - an envelope refused for good is not sent again (SND-3);
//  - a good message fails only when its transfer was acknowledged without completing
//    max_transfer_rounds times (SND-1: no forged refusal taken; CHK-16);
//  - every message settles; one sent once nothing goes wrong any more is delivered, whatever the
//    earlier ones left behind (a session whose replies have a gap must be left, ORD-3).
#pragma once

#include <peerproto/chunking.hpp>
#include <peerproto/delivery.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace peerproto::testing {

/// What the runs reached, for the fuzz target's summary.
struct delivery_summary {
  std::size_t delivered = 0, failed = 0, unconfirmed = 0, expired = 0;
  std::size_t transfers_resumed = 0;  ///< transfers sent again from the start, or picked up after a sender restart
};

class delivery_model {
 public:
  delivery_model(std::string_view choices, delivery_options opt = {}) : in_(choices), opt_(opt) {}

  /// Sends `count` messages one after the other (some chunked, some that the peer refuses).
  void run(unsigned count) {
    for (unsigned m = 0; m < count; ++m) send_one(m);
  }

  const delivery_summary& summary() const noexcept { return summary_; }

 private:
  using step = delivery_step;

  struct message {
    std::string text;  ///< the payload's JSON text
    bool chunked = false, bad = false;
    std::size_t chunk_size = 0;
  };
  struct sent {  ///< what one envelope the sender sealed carries
    uuid session;
    unsigned msg = 0;
    std::optional<chunk> piece;
  };

  // ---------------------------------------------------------------- choices
  unsigned choose(unsigned n) {
    if (in_.empty()) return 0;
    const auto b = static_cast<unsigned char>(in_.front());
    in_.remove_prefix(1);
    return b % n;
  }
  // The broken rule, with the run's events so far.
  void fail(const std::string& rule) const { throw std::logic_error(rule + "\nevents:\n" + history_); }
  void note(const std::string& event) { history_ += "  " + event + "\n"; }

  // ---------------------------------------------------------------- one message
  void send_one(unsigned m) {
    message msg;
    msg.text = R"({"n":)" + std::to_string(m) + R"(,"text":")" + std::string(choose(200), 'a' + static_cast<char>(m % 26)) + R"("})";
    msg.chunked = choose(2) == 1;
    msg.chunk_size = 1 + choose(40);
    msg.bad = choose(8) == 7;
    messages_.push_back(msg);
    taken_.push_back(0);
    dispatched_.push_back(0);

    const bool calm = in_.empty();  // no choice left: from now on, all goes well
    delivery_record stored;
    stored.expires = now_ + std::chrono::minutes(10);
    delivery_record rec = stored;
    std::optional<delivery> d;
    d.emplace(rec, opt_, rng_);
    step s = d->next(now_, ready(rec.session));
    sys_milliseconds earliest{};                               // SND-2: nothing of this message before
    std::optional<std::pair<uuid, std::string>> lost;          // the session and bytes whose answer was lost
    for (unsigned guard = 0;; ++guard) {
      if (guard > 100'000) fail("the message never settles");
      note("step " + std::to_string(static_cast<int>(s.what)) + (s.problem.empty() ? "" : " (" + s.problem + ")") +
           (s.session != step::session_action::keep ? " session action " + std::to_string(static_cast<int>(s.session)) : ""));
      apply_session(s);
      if (s.what != step::kind::seal) stored = rec;  // the node stores before sending, waiting or settling
      switch (s.what) {
        case step::kind::done:
          check_settled(rec, m, calm);
          return;
        case step::kind::wait: {
          if (s.not_before < now_) fail("a wait that ends in the past");
          now_ = s.not_before + std::chrono::milliseconds(500 * choose(4));
          disturb(rec, stored, d);
          s = d->next(now_, ready(rec.session));
          break;
        }
        case step::kind::seal:
          s = seal(*d, rec, m);
          break;
        case step::kind::send: {
          if (!current_) current_ = rec.session;
          if (!rec.session || !sender_sessions_.contains(*rec.session)) fail("SND-4: sent in a session that has ended");
          if (now_ < earliest) fail("SND-2: sent again before retry_after had passed");
          if (lost && lost->first == *rec.session && lost->second != rec.sealed)
            fail("SND-5: a retransmission after a lost answer is not the stored bytes");
          std::optional<std::chrono::seconds> retry_after;
          const auto a = peer_answer(rec.sealed, retry_after);
          if (a.what == delivery_answer::kind::lost) lost = std::pair(*rec.session, rec.sealed);
          else lost.reset();
          if (retry_after) earliest = now_ + *retry_after;
          s = d->answered(a, now_);
          break;
        }
      }
    }
  }

  // Between two attempts: time passes, and the sender or the peer may restart or lose sessions.
  void disturb(delivery_record& rec, const delivery_record& stored, std::optional<delivery>& d) {
    const unsigned c = choose(8);
    if (c >= 1 && c <= 4) note("disturb " + std::to_string(c));
    switch (c) {
      case 1:  // the sender restarts: a new machine over the stored record
        rec = stored;
        d.emplace(rec, opt_, rng_);
        current_.reset();
        if (rec.transfer_id) ++summary_.transfers_resumed;
        break;
      case 2:  // the peer restarts and loses its partial transfers; its sessions are stored
        restart_peer();
        break;
      case 3:  // the peer restarts without its sessions
        restart_peer();
        peer_sessions_.clear();
        break;
      case 4:  // the sender's sessions expire (idle)
        sender_sessions_.clear();
        current_.reset();
        break;
      default:
        break;
    }
  }

  // Partial transfers are lost; completed ones are remembered, as stored (CHK-17).
  void restart_peer() {
    peer_chunks_ = reassembler{};
    for (const auto& t : peer_completed_) peer_chunks_.restore_completed(t, now_);
  }

  void apply_session(const step& s) {
    if (s.session == step::session_action::keep || !s.session_id) return;
    sender_sessions_.erase(*s.session_id);
    if (current_ == s.session_id) current_.reset();
    if (s.session == step::session_action::close && choose(2) == 0) peer_sessions_.erase(*s.session_id);  // session_close may be lost
  }

  step seal(delivery& d, delivery_record& rec, unsigned m) {
    if (!current_ || !sender_sessions_.contains(*current_)) {
      if (now_ < handshake_earliest_) fail("SND-2: a handshake sent again before retry_after had passed");
      switch (choose(6)) {
        case 1:
          return d.not_sealed("handshake: no answer", std::nullopt, now_);
        case 2: {
          const std::chrono::seconds ra(1 + choose(5));
          handshake_earliest_ = now_ + ra;
          return d.not_sealed("handshake: RATE_LIMITED", ra, now_);
        }
        default:
          current_ = make_uuid_v4(counter_bytes(++sessions_made_));
          sender_sessions_.insert(*current_);
          peer_sessions_[*current_];
      }
    }
    if (choose(16) == 1) {  // the sender's engine finds the session expired as it seals
      sender_sessions_.erase(*current_);
      current_.reset();
      return d.seal_refused(errc::session_expired, "the session expired", now_);
    }
    const auto& msg = messages_[m];
    sent what{*current_, m, std::nullopt};
    if (msg.chunked) {
      if (!rec.transfer_id) {
        auto plan = plan_transfer(msg.text, "notify", msg.chunk_size, make_uuid_v4(counter_bytes(1'000'000 + m)));
        if (!plan) fail("the model's transfer does not plan: " + plan.error().message);
        d.start_transfer(plan->transfer_id, static_cast<std::uint32_t>(plan->chunk_size), plan->total);
      }
      const auto plan = plan_transfer(msg.text, "notify", rec.chunk_size, *rec.transfer_id);
      what.piece = plan->piece(msg.text, *d.chunk_index());
    }
    std::string envelope = "envelope " + std::to_string(++envelopes_made_) + " in " + format_uuid(*current_);
    envelopes_.emplace(envelope, std::move(what));
    return d.sealed(std::move(envelope), *current_, now_);
  }

  // The peer's side of one transmission. Sets `retry_after` when the answer carries one.
  delivery_answer peer_answer(const std::string& bytes, std::optional<std::chrono::seconds>& retry_after) {
    using kind = delivery_answer::kind;
    delivery_answer a;
    const sent& env = envelopes_.at(bytes);
    const auto refuse = [&](errc code) {
      a.what = kind::refused;
      a.code = code;
      return a;
    };
    const unsigned c = choose(16);
    note(bytes + (env.piece ? " (chunk " + std::to_string(env.piece->index) + ")" : "") + ": peer choice " + std::to_string(c));
    switch (c) {
      case 1:  // lost on the way there, perhaps after part of it was written
        a.may_have_arrived = choose(2) == 1;
        return a;
      case 2:  // refused before it is processed, with or without retry_after
        if (const auto s = choose(4)) retry_after = a.retry_after = std::chrono::seconds(s);
        return refuse(errc::rate_limited);
      case 3:  // an answer that does not authenticate (SND-1): processed or not
        if (choose(2)) process(env, bytes);
        a.what = kind::unauthenticated;
        if (choose(2)) a.code = errc::invalid_signature;  // an error the peer did not sign
        return a;
      case 4:  // the peer forgot the session just before
        peer_sessions_.erase(env.session);
        [[fallthrough]];
      default: {
        const bool handler_full = c == 5 && !env.piece;  // RL-7: refused after the sequence number was used
        if (const auto code = process(env, bytes, handler_full)) {  // an authenticated refusal: the sender knows
          if (*code == errc::rate_limited) retry_after = a.retry_after = std::chrono::seconds(1);
          if (*code == errc::session_not_found) gone_sessions_.insert(env.session);
          if (*code == errc::unsupported_message_type) refused_for_good_.insert(bytes);
          return refuse(*code);
        }
        if (c == 6) {  // processed; the answer is lost, which leaves a gap in the session's replies
          gapped_.insert(env.session);
          a.may_have_arrived = true;
          return a;
        }
        if (gapped_.contains(env.session)) {  // the sender holds every later reply behind the gap (ORD-3)
          a.what = kind::unauthenticated;
          a.detail = "held behind a gap";
          return a;
        }
        a.what = chunk_acked_ ? kind::chunk_received : kind::reply;
        return a;
      }
    }
  }

  // The peer processes an envelope: its refusal, or nothing when it was taken.
  std::optional<errc> process(const sent& env, const std::string& bytes, bool handler_full = false) {
    chunk_acked_ = false;
    if (refused_for_good_.contains(bytes)) fail("SND-3: an envelope refused for good was sent again");
    if (gone_sessions_.contains(env.session)) fail("SND-4: sent again in a session the peer said is gone");
    const auto session = peer_sessions_.find(env.session);
    if (session == peer_sessions_.end()) return errc::session_not_found;
    if (!session->second.insert(bytes).second) return errc::replay_detected;
    ++dispatched_[env.msg];  // ORD-7: the number is used, whatever dispatch answers
    if (messages_[env.msg].bad) return errc::unsupported_message_type;
    if (handler_full) return errc::rate_limited;
    if (!env.piece) {
      deliver(env.msg);
      return std::nullopt;
    }
    auto out = peer_chunks_.add("sender", *env.piece, now_);
    for (auto& t : peer_chunks_.take_completed()) peer_completed_.push_back(std::move(t));
    if (!out) return out.code();
    if (out->what != reassembler::outcome::kind::complete) {
      chunk_acked_ = true;
      return std::nullopt;
    }
    if (jcs::canonicalize(*out->payload) != messages_[env.msg].text) fail("CHK-1: the reassembled payload differs from the one sent");
    deliver(env.msg);
    return std::nullopt;
  }

  void deliver(unsigned m) {
    note("the application took message " + std::to_string(m));
    if (++taken_[m] > 1) fail("ORD-4: the application took a message twice");
  }

  void check_settled(const delivery_record& rec, unsigned m, bool calm) {
    // Liveness: a message sent while the peer and the network behave ends delivered (or refused,
    // when bad), whatever earlier messages left behind (a session with a gap in its replies, say).
    if (calm && rec.status != (messages_[m].bad ? delivery_status::failed : delivery_status::delivered))
      fail("a message sent with nothing going wrong ended " + std::to_string(static_cast<int>(rec.status)));
    switch (rec.status) {
      case delivery_status::delivered:
        if (dispatched_[m] == 0) fail("settled delivered, but the peer never dispatched it (ORD-7)");
        if (messages_[m].chunked && taken_[m] != 1) fail("CHK-16: a transfer settled delivered that the peer did not complete");
        ++summary_.delivered;
        break;
      case delivery_status::failed:
        if (taken_[m] != 0) fail("settled failed, but the application took it");
        if (!messages_[m].bad && rec.rounds == 0) fail("SND-1: failed, but the peer refused nothing (a forged refusal taken?)");
        if (!messages_[m].bad && rec.rounds < opt_.max_transfer_rounds)
          fail("CHK-16: a transfer the peer lost was given up with rounds left");
        ++summary_.failed;
        break;
      case delivery_status::expired:
        if (taken_[m] != 0) fail("settled expired, but the application took it");
        ++summary_.expired;
        break;
      case delivery_status::unconfirmed:
        ++summary_.unconfirmed;
        break;
      case delivery_status::queued:
        fail("done while queued");
    }
    if (rec.rounds > 0) ++summary_.transfers_resumed;
  }

  bool ready(const std::optional<uuid>& s) const { return s && sender_sessions_.contains(*s); }

  static std::array<std::uint8_t, 16> counter_bytes(std::uint64_t n) {
    std::array<std::uint8_t, 16> b{};
    for (int i = 0; i < 8; ++i) b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
    return b;
  }

  std::string_view in_;
  delivery_options opt_;
  std::uint64_t rng_state_ = 0x9e3779b97f4a7c15ull;
  random_source rng_ = [this](std::span<std::uint8_t> out) {  // deterministic, so a failing input replays
    for (auto& b : out) {
      rng_state_ = rng_state_ * 6364136223846793005ull + 1442695040888963407ull;
      b = static_cast<std::uint8_t>(rng_state_ >> 56);
    }
  };
  sys_milliseconds now_{std::chrono::milliseconds(1'700'000'000'000)};
  sys_milliseconds handshake_earliest_{};
  std::vector<message> messages_;
  std::vector<int> taken_;       ///< per message, times the peer's application took it
  std::vector<int> dispatched_;  ///< per message, transmissions the peer handed to dispatch (ORD-7)
  std::map<std::string, sent> envelopes_;
  std::optional<uuid> current_;          ///< the sender's session for new messages
  std::set<uuid> sender_sessions_;       ///< ready at the sender
  std::map<uuid, std::set<std::string>> peer_sessions_;  ///< the peer's sessions, with the envelopes each has taken
  std::set<uuid> gapped_;                                 ///< sessions with a reply the sender never got
  std::set<uuid> gone_sessions_;                          ///< sessions the sender was told are gone (SESSION_NOT_FOUND)
  std::set<std::string> refused_for_good_;                ///< envelopes the sender was told are refused for good
  reassembler peer_chunks_;
  std::vector<completed_transfer> peer_completed_;  ///< what the peer stores of completed transfers
  bool chunk_acked_ = false;  ///< the last envelope processed was a chunk that did not complete its transfer
  std::uint64_t sessions_made_ = 0, envelopes_made_ = 0;
  delivery_summary summary_;
  std::string history_;
};

}  // namespace peerproto::testing
