// The protocol's error codes (docs/SPEC.md §14) as a std::error_code enum, their wire names and
// HTTP statuses (ERR-6's table; the node applies it), a small result type for functions that fail
// with a code and a message, and the one exception type used at the edges (node, command-line
// tools).
//
// The error channel: everything that decides a protocol outcome (parsing, the handshake, the
// session machine, the engine) returns result<T>, a value or a `failure` with its code and a
// sentence for the error envelope. Only the primitives below it (crypto, sealing, the sequencer's
// and replay cache's checks) return a bare std::error_code: they are noexcept, allocate nothing,
// and each can fail in one documented way, which their caller turns into a failure.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace peerproto {

/// Protocol error codes (SPEC §14) followed by the library-level codes. Zero is success, as
/// std::error_code requires, so the first enumerator is 1.
enum class errc : int {
  invalid_format = 1,
  missing_fields,
  invalid_version,
  invalid_signature,
  replay_detected,
  unknown_sender,
  session_not_found,
  session_expired,
  sequence_error,
  decryption_failed,
  encryption_required,
  encryption_not_ready,
  challenge_invalid,
  challenge_expired,
  handshake_in_progress,
  invalid_state,
  rate_limited,
  chunk_error,
  unsupported_message_type,
  payload_too_large,
  internal_error,
  // Library-level codes: never sent on the wire.
  invalid_argument,  ///< a caller passed a value outside the function's contract
};

namespace detail {
struct errc_info {
  errc code;
  std::string_view wire;     ///< the name used in `error_code` on the wire
  int http;                  ///< HTTP status (SPEC §14)
  std::string_view message;  ///< one sentence for humans
};

// One row per code; the order matches the enum so lookup is by index.
inline constexpr std::array<errc_info, 22> errc_table{{
    {errc::invalid_format, "INVALID_FORMAT", 400, "the envelope or payload is not well formed"},
    {errc::missing_fields, "MISSING_FIELDS", 400, "a required member is absent"},
    {errc::invalid_version, "INVALID_VERSION", 400, "the protocol version is not supported"},
    {errc::invalid_signature, "INVALID_SIGNATURE", 401, "the signature does not verify"},
    {errc::replay_detected, "REPLAY_DETECTED", 409, "the message repeats an earlier one or its clock skew is too large"},
    {errc::unknown_sender, "UNKNOWN_SENDER", 401, "the sender's key is not acceptable under the trust policy"},
    {errc::session_not_found, "SESSION_NOT_FOUND", 404, "no such session for this sender"},
    {errc::session_expired, "SESSION_EXPIRED", 410, "the session expired; a new handshake is needed"},
    {errc::sequence_error, "SEQUENCE_ERROR", 409, "the sequence number is outside the window or its gap timed out"},
    {errc::decryption_failed, "DECRYPTION_FAILED", 422, "the authentication tag does not verify"},
    {errc::encryption_required, "ENCRYPTION_REQUIRED", 426, "the node requires an encrypted session"},
    {errc::encryption_not_ready, "ENCRYPTION_NOT_READY", 409, "the session is not ready yet"},
    {errc::challenge_invalid, "CHALLENGE_INVALID", 401, "a challenge response, key confirmation or key exchange is wrong"},
    {errc::challenge_expired, "CHALLENGE_EXPIRED", 401, "the pending handshake expired"},
    {errc::handshake_in_progress, "HANDSHAKE_IN_PROGRESS", 409, "too many handshakes are pending for this sender"},
    {errc::invalid_state, "INVALID_STATE", 409, "the message is not allowed in the session's state"},
    {errc::rate_limited, "RATE_LIMITED", 429, "too many messages; retry later"},
    {errc::chunk_error, "CHUNK_ERROR", 422, "a chunk is malformed, conflicting or fails its transfer's checks"},
    {errc::unsupported_message_type, "UNSUPPORTED_MESSAGE_TYPE", 400, "no handler is registered for the message type"},
    {errc::payload_too_large, "PAYLOAD_TOO_LARGE", 413, "the envelope or transfer exceeds its size limit"},
    {errc::internal_error, "INTERNAL_ERROR", 500, "the node failed internally"},
    {errc::invalid_argument, "", 500, "a library function was called with an argument outside its contract"},
}};

// Lookup is by index, so a row out of order would give another code's name and status.
constexpr bool rows_follow_the_enum() {
  for (std::size_t i = 0; i < errc_table.size(); ++i)
    if (static_cast<std::size_t>(errc_table[i].code) != i + 1) return false;
  return true;
}
static_assert(rows_follow_the_enum(), "errc_table must list the codes in the order of enum errc");

inline const errc_info* find_info(int value) noexcept {
  if (value < 1 || value > static_cast<int>(errc_table.size())) return nullptr;
  return &errc_table[static_cast<std::size_t>(value - 1)];
}
}  // namespace detail

/// The error category named "peerproto".
class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "peerproto"; }
  std::string message(int value) const override {
    const auto* info = detail::find_info(value);
    return info ? std::string(info->message) : "unknown peerproto error";
  }
};

inline const std::error_category& error_category() noexcept {
  static const error_category_impl instance;
  return instance;
}

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// The wire name of a protocol code ("INVALID_FORMAT"); empty for library-level codes.
inline std::string_view wire_name(errc e) noexcept {
  const auto* info = detail::find_info(static_cast<int>(e));
  return info ? info->wire : std::string_view{};
}

/// The protocol code for a wire name, or nothing if the name is not a protocol code.
inline std::optional<errc> errc_from_wire_name(std::string_view name) noexcept {
  if (name.empty()) return std::nullopt;
  for (const auto& row : detail::errc_table)
    if (row.wire == name) return row.code;
  return std::nullopt;
}

/// The HTTP status for a code (SPEC §14, ERR-6).
inline int http_status(errc e) noexcept {
  const auto* info = detail::find_info(static_cast<int>(e));
  return info ? info->http : 500;
}

/// What went wrong: a code and a human-readable sentence saying which rule was broken.
struct failure {
  errc code;            ///< the code to report
  std::string message;  ///< one sentence, suitable for an error envelope's `error_message`
};

/// The peerproto code of `ec`, checked: a code of another category, or no code of this library,
/// is INTERNAL_ERROR rather than a reinterpretation of its number.
inline errc to_errc(const std::error_code& ec) noexcept {
  if (ec.category() != error_category() || !detail::find_info(ec.value())) return errc::internal_error;
  return static_cast<errc>(ec.value());
}

/// The failure for an error code of this library, with `context` before its message.
inline failure to_failure(const std::error_code& ec, std::string_view context = {}) {
  return failure{to_errc(ec), std::string(context) + ec.message()};
}

/// Either a value or a failure. Functions that validate input return this, so the caller always
/// has the exact code and a message, and never a partly built value.
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}           // NOLINT: implicit by design
  result(failure f) : v_(std::move(f)) {}             // NOLINT: implicit by design
  result(errc code, std::string message) : v_(failure{code, std::move(message)}) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  /// The value; precondition ok().
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The failure; precondition !ok().
  const failure& error() const& { return std::get<1>(v_); }
  errc code() const { return error().code; }

 private:
  std::variant<T, failure> v_;
};

/// Success, or a failure: result<T> for functions that return nothing else.
template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(failure f) : f_(std::move(f)) {}  // NOLINT: implicit by design
  result(errc code, std::string message) : f_(failure{code, std::move(message)}) {}

  bool ok() const noexcept { return !f_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }

  /// The failure; precondition !ok().
  const failure& error() const& { return *f_; }
  errc code() const { return f_->code; }

 private:
  std::optional<failure> f_;
};

/// The exception thrown at the edges of the project (node, command-line tools); the library core
/// returns codes instead.
class protocol_error : public std::system_error {
 public:
  protocol_error(errc code, const std::string& what) : std::system_error(make_error_code(code), what) {}
  explicit protocol_error(const failure& f) : protocol_error(f.code, f.message) {}
  errc code_value() const noexcept { return to_errc(code()); }
};

}  // namespace peerproto

template <>
struct std::is_error_code_enum<peerproto::errc> : std::true_type {};
