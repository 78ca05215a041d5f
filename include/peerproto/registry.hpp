// Message handlers keyed by message type, registered at run time (SPEC MSG-1): the plugin point of
// a node. Core types are handled by the engine itself and cannot be registered.
#pragma once

#include <peerproto/encoding.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/error.hpp>
#include <peerproto/message_types.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace peerproto {

/// What a handler sees: the authenticated request and its (decrypted, reassembled) payload.
struct handler_request {
  const envelope& request;                ///< the envelope (for a chunked message, its last chunk)
  std::string_view msg_type;              ///< the type dispatched (original_msg_type for chunks)
  const boost::json::object& payload;     ///< the payload object
  std::string_view remote;                ///< the peer's transport address
  sys_milliseconds now;                   ///< the engine's current time
};

/// A handler's answer: the reply's type and payload. The engine fills in the envelope, names the
/// request (MSG-2) and signs or seals it. A failure becomes an `error` reply (MSG-5).
struct handler_reply {
  std::string msg_type;          ///< for example "pong" or "ack"
  boost::json::object payload;   ///< without in_reply_to / acked_nonce: the engine adds those
};

using handler = std::function<result<handler_reply>(const handler_request&)>;

class registry {
 public:
  /// Registers `h` for `msg_type`. Returns false, changing nothing, when the type is not a valid
  /// message type, is a core type (CHK-8's list), or already has a handler.
  bool add(std::string_view msg_type, handler h) {
    if (!is_msg_type(msg_type) || is_core_type(msg_type) || !h) return false;
    return handlers_.emplace(std::string(msg_type), std::move(h)).second;
  }
  /// Removes the handler of `msg_type`; false if there was none.
  bool remove(std::string_view msg_type) { return handlers_.erase(std::string(msg_type)) > 0; }
  /// The handler of `msg_type`, or nullptr (UNSUPPORTED_MESSAGE_TYPE).
  const handler* find(std::string_view msg_type) const {
    const auto it = handlers_.find(msg_type);
    return it == handlers_.end() ? nullptr : &it->second;
  }
  /// Registered types in order, for capability_response (MSG-7).
  std::vector<std::string> types() const {
    std::vector<std::string> out;
    for (const auto& [type, h] : handlers_) out.push_back(type);
    return out;
  }

 private:
  std::map<std::string, handler, std::less<>> handlers_;
};

}  // namespace peerproto
