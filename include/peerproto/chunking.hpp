// Chunked transfer (SPEC §12): the `chunk` payload, the sender's split, and the receiver's
// reassembler. The reassembler's memory grows only with data that has arrived (CHK-12), never
// with a claimed total or size, and every limit is in reassembly_options.
//
// The reassembler keeps each chunk's bytes as they arrived (no copy) and hashes the chunks in
// order as soon as they continue the hashed prefix, so the SHA-256 is mostly done when the last
// chunk arrives. At the end the chunks are copied into one buffer of exactly the received size,
// each freed once copied (so the resident memory stays near the payload's size while it is
// copied), and the payload is parsed from it: the peak is the payload twice, the text and the
// parsed value.
#pragma once

#include <peerproto/fault.hpp>
#include <peerproto/crypto.hpp>
#include <peerproto/encoding.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/error.hpp>
#include <peerproto/jcs.hpp>
#include <peerproto/message_types.hpp>
#include <peerproto/version.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace peerproto {

/// One `chunk` payload, decoded.
struct chunk {
  uuid transfer_id;                 ///< identifies the transfer, with the sender (CHK-3)
  std::uint32_t index = 0;          ///< 0 .. total-1
  std::uint32_t total = 1;          ///< number of chunks, 1 .. max_chunks
  std::uint64_t total_size = 0;     ///< bytes of the reassembled payload text
  crypto::digest sha256{};          ///< SHA-256 of the reassembled bytes
  std::string original_msg_type;    ///< the type the reassembled payload is dispatched to
  bytes data;                       ///< this chunk's bytes
};

/// Limits of chunked transfer (SPEC §18).
struct reassembly_options {
  std::size_t max_chunk_data = limits::max_chunk_data_bytes;         ///< CHK-2
  std::size_t max_chunks = limits::max_chunks_per_transfer;          ///< CHK-2
  std::size_t max_transfer_bytes = limits::max_transfer_bytes;       ///< CHK-9
  std::size_t max_transfers_per_peer = limits::max_transfers_per_peer;  ///< CHK-10
  std::chrono::milliseconds idle_timeout = limits::transfer_idle_timeout;  ///< CHK-11
  std::size_t max_total_bytes = limits::max_reassembly_bytes_total;  ///< CHK-13
  std::size_t max_completed = limits::max_completed_transfers;       ///< CHK-4: completions remembered
};

/// Decodes a chunk payload (CHK-2, CHK-8, CHK-9): MISSING_FIELDS for an absent member,
/// PAYLOAD_TOO_LARGE for total_size over the limit, CHUNK_ERROR for every other violation.
inline result<chunk> parse_chunk(const boost::json::object& p, const reassembly_options& opt = {}) {
  if (auto checked = detail::check_members(p, "chunk", errc::chunk_error,
                                     {"transfer_id", "index", "total", "total_size", "sha256", "original_msg_type", "data"}); !checked)
    return checked.error();
  const auto bad = [](const char* what) { return failure{errc::chunk_error, what}; };
  // A non-negative integer of any kind (the strict parser gives int64; values built in memory may
  // be uint64), at most `max`.
  const auto integer = [&](const char* name, std::uint64_t max) -> std::optional<std::uint64_t> {
    const auto& v = p.at(name);
    std::uint64_t n;
    if (v.is_uint64()) n = v.get_uint64();
    else if (v.is_int64() && v.get_int64() >= 0) n = static_cast<std::uint64_t>(v.get_int64());
    else return std::nullopt;
    return n <= max ? std::optional(n) : std::nullopt;
  };
  chunk c;
  const auto tid = detail::uuid_member(p, "transfer_id");
  if (!tid) return bad("chunk transfer_id is not a lowercase UUID v4");
  c.transfer_id = *tid;
  const auto total = integer("total", opt.max_chunks);
  if (!total || *total == 0) return bad("chunk total is not an integer from 1 to the chunk limit");
  c.total = static_cast<std::uint32_t>(*total);
  const auto index = integer("index", *total - 1);
  if (!index) return bad("chunk index is not an integer below total");
  c.index = static_cast<std::uint32_t>(*index);
  const auto total_size = integer("total_size", UINT64_MAX);
  if (!total_size) return bad("chunk total_size is not a non-negative integer");
  if (*total_size > opt.max_transfer_bytes)
    return failure{errc::payload_too_large, "chunk total_size exceeds the transfer limit"};
  c.total_size = *total_size;
  const auto* sha = p.at("sha256").if_string();
  if (!sha || !hex_decode_into(*sha, c.sha256)) return bad("chunk sha256 is not 64 lowercase hex characters");
  const auto* type = p.at("original_msg_type").if_string();
  if (!type || !is_msg_type(*type)) return bad("chunk original_msg_type is not a message type");
  if (is_core_type(*type)) return bad("core message types cannot be chunked");
  c.original_msg_type = *type;
  const auto* data = p.at("data").if_string();
  if (!data || base64_decoded_size(*data) > opt.max_chunk_data) return bad("chunk data is not base64 within the chunk size limit");
  auto decoded = base64_decode(*data);
  if (!decoded) return bad("chunk data is not padded base64");
  c.data = std::move(*decoded);
  return c;
}

inline boost::json::object to_json(const chunk& c) {
  return {{"transfer_id", format_uuid(c.transfer_id)},
          {"index", c.index},
          {"total", c.total},
          {"total_size", c.total_size},
          {"sha256", hex_encode(c.sha256)},
          {"original_msg_type", c.original_msg_type},
          {"data", base64_encode(c.data)}};
}

/// The sender's side of one transfer (SPEC §12): how the JSON text of a payload is cut. A chunk is
/// built only when it is sent (`piece`), so a sender keeps the text once, not a copy per chunk,
/// and can resume at any index after a restart by planning the same text again.
struct transfer_plan {
  uuid transfer_id;
  std::string original_msg_type;
  std::size_t chunk_size = 0;  ///< data bytes per chunk; the last may be shorter
  std::uint32_t total = 1;
  std::uint64_t total_size = 0;
  crypto::digest sha256{};

  /// Chunk `index` (below `total`) of `text`, the text this plan was made for.
  chunk piece(std::string_view text, std::uint32_t index) const {
    const std::size_t begin = std::min(text.size(), std::size_t{index} * chunk_size);
    const std::size_t end = std::min(text.size(), begin + chunk_size);
    return chunk{transfer_id, index, total, total_size, sha256, original_msg_type,
                 bytes(text.begin() + static_cast<std::ptrdiff_t>(begin), text.begin() + static_cast<std::ptrdiff_t>(end))};
  }
};

/// Plans the transfer of `text`, a payload's JSON text, in chunks of at most `chunk_size` bytes of
/// data. INVALID_ARGUMENT when chunk_size is 0 or over the chunk limit, or when original_msg_type
/// is a core type; PAYLOAD_TOO_LARGE when the text exceeds the transfer limit or needs more
/// chunks than allowed.
inline result<transfer_plan> plan_transfer(std::string_view text, std::string_view original_msg_type, std::size_t chunk_size,
                                           const uuid& transfer_id, const reassembly_options& opt = {}) {
  if (chunk_size == 0 || chunk_size > opt.max_chunk_data || !is_msg_type(original_msg_type) ||
      is_core_type(original_msg_type))
    return failure{errc::invalid_argument, "bad chunk size or message type"};
  if (text.size() > opt.max_transfer_bytes) return failure{errc::payload_too_large, "payload exceeds the transfer limit"};
  const std::size_t total = std::max<std::size_t>(1, (text.size() + chunk_size - 1) / chunk_size);
  if (total > opt.max_chunks) return failure{errc::payload_too_large, "payload needs more chunks than allowed; use larger chunks"};
  return transfer_plan{transfer_id, std::string(original_msg_type), chunk_size, static_cast<std::uint32_t>(total), text.size(),
                       crypto::sha256(as_bytes(text))};
}

/// The largest chunk data that keeps a sealed `chunk` envelope within a peer's
/// `max_envelope_bytes` (at most the peer's `max_chunk_data_bytes`). The data is base64 in the
/// chunk payload, and the sealed payload is base64 again in the envelope (16/9 in all), with up
/// to 2 KiB of members around it. 0 when no chunk fits.
inline std::size_t chunk_size_for(std::size_t max_envelope_bytes, std::size_t max_chunk_data_bytes) {
  constexpr std::size_t overhead = 2048;
  if (max_envelope_bytes <= overhead) return 0;
  return std::min(max_chunk_data_bytes, (max_envelope_bytes - overhead) / 16 * 9);
}

/// Whether a payload of `text_bytes` must be chunked to stay within `max_envelope_bytes` once
/// sealed (base64, 4/3, plus the envelope's members).
inline bool needs_chunks(std::size_t text_bytes, std::size_t max_envelope_bytes) {
  return (text_bytes + 2) / 3 * 4 + 2048 > max_envelope_bytes;
}

/// Every chunk of `payload` at once (for payloads small enough to hold twice); see plan_transfer.
inline result<std::vector<chunk>> split(const boost::json::object& payload, std::string_view original_msg_type,
                                        std::size_t chunk_size, const uuid& transfer_id,
                                        const reassembly_options& opt = {}) {
  const std::string text = jcs::canonicalize(payload);
  const auto plan = plan_transfer(text, original_msg_type, chunk_size, transfer_id, opt);
  if (!plan) return plan.error();
  std::vector<chunk> out;
  out.reserve(plan->total);
  for (std::uint32_t i = 0; i < plan->total; ++i) out.push_back(plan->piece(text, i));
  return out;
}

/// A completed transfer the receiver remembers (CHK-4): what a node stores so that the memory
/// outlives a restart (CHK-17).
struct completed_transfer {
  std::string sender;
  uuid transfer_id;
  sys_milliseconds until;  ///< remembered until then
};

/// The receiver's side.
class reassembler {
 public:
  /// What one accepted chunk did.
  struct outcome {
    enum class kind { stored, duplicate, complete } what;   ///< complete: the payload is reassembled
    std::optional<boost::json::object> payload;              ///< set when complete
    std::string original_msg_type;                           ///< set when complete
  };

  explicit reassembler(reassembly_options opt = {}) : opt_(opt) {}

  /// Adds an authenticated chunk from `sender` (CHK-3..CHK-13). On CHUNK_ERROR the transfer is
  /// dropped (CHK-5, CHK-6); on RATE_LIMITED (total memory, CHK-13) nothing changes and the chunk
  /// may be sent again later.
  result<outcome> add(std::string_view sender, chunk c, sys_milliseconds now) {
    key k{std::string(sender), c.transfer_id};
    if (const auto done = completed_.find(k); done != completed_.end() && done->second > now)
      return outcome{outcome::kind::duplicate, std::nullopt, {}};  // CHK-4: delivered once only
    auto it = transfers_.find(k);
    if (it == transfers_.end()) {
      if (count_for(sender) >= opt_.max_transfers_per_peer)
        return failure{errc::chunk_error, "too many transfers in progress from this sender"};
      if (bytes_held_ + c.data.size() > opt_.max_total_bytes)
        return failure{errc::rate_limited, "reassembly memory is full"};
      it = transfers_.emplace(std::move(k), transfer(c, now)).first;
    }
    transfer& t = it->second;
    if (t.total != c.total || t.total_size != c.total_size || t.sha256 != c.sha256 ||
        t.original_msg_type != c.original_msg_type)
      return drop(it, "chunk metadata disagrees with earlier chunks of the transfer");
    if (const auto prev = t.parts.find(c.index); prev != t.parts.end()) {
      if (prev->second != c.data) return drop(it, "chunk conflicts with an earlier chunk of the same index");
      t.last_activity = now;
      return outcome{outcome::kind::duplicate, std::nullopt, {}};
    }
    if (t.received + c.data.size() > t.total_size) return drop(it, "chunks exceed the declared total_size");
    if (bytes_held_ + c.data.size() > opt_.max_total_bytes)
      return failure{errc::rate_limited, "reassembly memory is full"};
    t.received += c.data.size();
    bytes_held_ += c.data.size();
    t.last_activity = now;
    t.parts.emplace(c.index, std::move(c.data));
    for (auto p = t.parts.find(t.hashed); p != t.parts.end() && p->first == t.hashed; ++p, ++t.hashed) t.hash.update(p->second);
    if (t.parts.size() < t.total) return outcome{outcome::kind::stored, std::nullopt, {}};
    return finish(it, now);
  }

  /// The handler refused the payload of a completed transfer, so it was not delivered: the transfer
  /// is forgotten, and its chunks sent again make a new one (CHK-16) instead of duplicates.
  void forget_completed(std::string_view sender, const uuid& transfer_id) {
    completed_.erase(key{std::string(sender), transfer_id});
    std::erase_if(journal_, [&](const completed_transfer& t) { return t.sender == sender && t.transfer_id == transfer_id; });
  }

  /// The transfers completed since the last call, for a node to store: the memory of CHK-4 must
  /// outlive a restart (CHK-17), or chunks sent again after a lost reply could deliver twice.
  std::vector<completed_transfer> take_completed() { return std::exchange(journal_, {}); }
  /// Puts back a stored completion (after a restart); an expired one is ignored.
  void restore_completed(const completed_transfer& t, sys_milliseconds now) {
    if (t.until > now) remember_completed(key{t.sender, t.transfer_id}, t.until, now);
  }

  /// Drops transfers idle for the idle timeout (CHK-11); returns how many.
  std::size_t expire(sys_milliseconds now) {
    std::erase_if(completed_, [&](const auto& kv) { return kv.second <= now; });
    return std::erase_if(transfers_, [&](auto& kv) {
      if (!has_elapsed(kv.second.last_activity, opt_.idle_timeout, now)) return false;
      bytes_held_ -= kv.second.received;
      return true;
    });
  }

  /// When expire() next has work to do.
  std::optional<sys_milliseconds> next_deadline() const {
    std::optional<sys_milliseconds> d;
    for (const auto& [k, t] : transfers_)
      if (const auto end = ends_at(t.last_activity, opt_.idle_timeout); !d || end < *d) d = end;
    return d;
  }

  std::size_t bytes_held() const noexcept { return bytes_held_; }
  std::size_t transfers() const noexcept { return transfers_.size(); }

 private:
  struct key {
    std::string sender;
    uuid transfer_id;
    friend auto operator<=>(const key&, const key&) = default;
  };
  struct transfer {
    std::uint32_t total;
    std::uint64_t total_size;
    crypto::digest sha256;
    std::string original_msg_type;
    std::map<std::uint32_t, bytes> parts;   ///< only chunks that arrived
    std::uint32_t hashed = 0;               ///< chunks 0 .. hashed-1 are in `hash`
    crypto::sha256_stream hash;
    std::uint64_t received = 0;             ///< bytes of every chunk that arrived
    sys_milliseconds last_activity;

    /// A transfer as its first chunk to arrive describes it.
    transfer(const chunk& first, sys_milliseconds now)
        : total(first.total), total_size(first.total_size), sha256(first.sha256),
          original_msg_type(first.original_msg_type), last_activity(now) {}
  };
  using map_type = std::map<key, transfer>;

  std::size_t count_for(std::string_view sender) const {
    std::size_t n = 0;
    for (auto it = transfers_.lower_bound(key{std::string(sender), uuid{}});
         it != transfers_.end() && it->first.sender == sender; ++it)
      ++n;
    return n;
  }

  failure drop(map_type::iterator it, const char* why) {
    bytes_held_ -= it->second.received;
    transfers_.erase(it);
    return failure{errc::chunk_error, why};
  }

  result<outcome> finish(map_type::iterator it, sys_milliseconds now) {
    transfer& t = it->second;
    if (t.received != t.total_size) return drop(it, "reassembled size differs from total_size");
    if (t.hash.final() != t.sha256 && !PEERPROTO_FAULT(skip_chunk_hash)) return drop(it, "reassembled bytes do not match sha256");
    std::string text;
    text.reserve(t.received);  // all of it has arrived (CHK-12)
    for (auto p = t.parts.begin(); p != t.parts.end(); p = t.parts.erase(p)) text.append(p->second.begin(), p->second.end());
    std::string type = std::move(t.original_msg_type);
    const key k = it->first;
    bytes_held_ -= t.received;
    transfers_.erase(it);
    auto v = jcs::parse_strict(text, {opt_.max_transfer_bytes, limits::max_json_depth});
    if (!v || !v->is_object()) return failure{errc::chunk_error, "reassembled payload is not a JSON object"};  // dropped (CHK-7)
    remember_completed(k, now + opt_.idle_timeout, now);  // only a payload that is handed on counts as delivered (CHK-4)
    if (opt_.max_completed > 0) {  // bounded like completed_, for a user that never takes it
      if (journal_.size() >= opt_.max_completed) journal_.erase(journal_.begin());
      journal_.push_back({k.sender, k.transfer_id, now + opt_.idle_timeout});
    }
    return outcome{outcome::kind::complete, std::move(v->get_object()), std::move(type)};
  }

  // Completed transfers are remembered for the idle timeout so that a late duplicate chunk is
  // acknowledged instead of starting the transfer again. Bounded: when full, the entry closest
  // to expiry goes first.
  void remember_completed(const key& k, sys_milliseconds until, sys_milliseconds now) {
    if (opt_.max_completed == 0) return;
    if (completed_.size() >= opt_.max_completed) {
      std::erase_if(completed_, [&](const auto& kv) { return kv.second <= now; });
      if (completed_.size() >= opt_.max_completed)
        completed_.erase(std::min_element(completed_.begin(), completed_.end(),
                                          [](const auto& a, const auto& b) { return a.second < b.second; }));
    }
    completed_.insert_or_assign(k, until);
  }

  reassembly_options opt_;
  std::map<key, sys_milliseconds> completed_;
  std::vector<completed_transfer> journal_;  ///< completions not yet taken (take_completed)
  map_type transfers_;
  std::size_t bytes_held_ = 0;
};

}  // namespace peerproto
