// The message types of SPEC §15 by name, and the lists that the rules name. Every list of types
// in the library, the node and the runner comes from here.
#pragma once

#include <algorithm>
#include <array>
#include <string_view>

namespace peerproto::msg {

inline constexpr std::string_view handshake = "handshake";
inline constexpr std::string_view handshake_ack = "handshake_ack";
inline constexpr std::string_view handshake_confirm = "handshake_confirm";
inline constexpr std::string_view chunk = "chunk";
inline constexpr std::string_view ack = "ack";
inline constexpr std::string_view error = "error";
inline constexpr std::string_view session_close = "session_close";
inline constexpr std::string_view key_rotation = "key_rotation";
inline constexpr std::string_view ping = "ping";
inline constexpr std::string_view pong = "pong";

/// The three handshake messages, which are sessionless (HS-1).
inline constexpr std::array handshake_types{handshake, handshake_ack, handshake_confirm};
/// Handled by the engine itself, never by a registered handler, and never chunked (CHK-8).
inline constexpr std::array core_types{handshake, handshake_ack, handshake_confirm, chunk, ack, error, session_close, key_rotation};
/// The core types a node answers as requests (listed in its capabilities before the handlers').
inline constexpr std::array core_requests{handshake, handshake_confirm, chunk, session_close, key_rotation};
/// Replies, which are never requests (MSG-3).
inline constexpr std::array reply_types{handshake_ack,        ack, error, pong, std::string_view("capability_response"),
                                        std::string_view("task_accepted"), std::string_view("discovery_response")};

template <std::size_t N>
constexpr bool is_one_of(std::string_view t, const std::array<std::string_view, N>& list) noexcept {
  return std::find(list.begin(), list.end(), t) != list.end();
}

}  // namespace peerproto::msg

namespace peerproto {
constexpr bool is_handshake_type(std::string_view t) noexcept { return msg::is_one_of(t, msg::handshake_types); }
constexpr bool is_core_type(std::string_view t) noexcept { return msg::is_one_of(t, msg::core_types); }
constexpr bool is_reply_type(std::string_view t) noexcept { return msg::is_one_of(t, msg::reply_types); }
}  // namespace peerproto
