// The node's own key: its rotation (KR-1..KR-10) and the copy of the trusted keys with which the
// transport threads check request signatures.
#include "server.hpp"

#include <spdlog/spdlog.h>

#include <peerproto/fault.hpp>
#include <peerproto/key_file.hpp>

namespace peerproto::node {
// The keys the transport threads check signatures with: a copy of the trust store's, replaced
// when it changes (at most every 100 ms; a stale copy only means the engine checks again).
void server::refresh_keys() {
  const auto now = std::chrono::steady_clock::now();
  if (!transport_ || trust_.generation() == keys_generation_ || now < next_keys_refresh_) return;
  auto keys = std::make_shared<const key_map>(trust_.keys());
  keys_generation_ = trust_.generation();
  next_keys_refresh_ = now + std::chrono::milliseconds(100);
  const std::lock_guard lock(keys_mutex_);
  keys_ = std::move(keys);
}

std::optional<signature_check> server::precheck(std::string_view text) {
  std::shared_ptr<const key_map> keys;
  {
    const std::lock_guard lock(keys_mutex_);
    keys = keys_;
  }
  if (!keys) return std::nullopt;
  return precheck_signature(text, engine_opt_.json, [&](std::string_view id) -> std::optional<crypto::public_key> {
    const auto it = keys->find(id);
    if (it == keys->end()) return std::nullopt;
    return it->second;
  });
}

key_rotation server::record_rotation(const identity* next) {
  if (next && next->entity_id != id_->entity_id)
    throw config_error("the new key is for entity '" + next->entity_id + "', this node is '" + id_->entity_id + "'");
  if (next && next->key.public_key_bytes() == id_->key.public_key_bytes()) throw config_error("the new key is the current key");
  if (!own_chain_.empty() && own_chain_.back().revokes()) throw config_error("this node's key is revoked");
  if (!own_chain_.empty() && own_chain_.back().new_key != id_->key.public_key_bytes())
    throw config_error("a rotation is being announced; try again when it has finished");
  auto r = make_key_rotation(id_->entity_id, id_->key, next ? &next->key : nullptr, own_chain_.size() + 1, make_timestamp(std::chrono::system_clock::now()));
  if (PEERPROTO_FAULT(rotation_without_countersignature) && r.new_signature) (*r.new_signature)[0] ^= 1;
  store_->rotate_identity(r, next ? next->key : id_->key);
  own_chain_.push_back(r);
  audit_->info(boost::json::serialize(to_json(audit_record{system_now(), r.revokes() ? audit_event::key_revoked : audit_event::key_rotated,
                                                           std::nullopt, id_->entity_id, std::nullopt, std::nullopt, std::nullopt,
                                                           std::nullopt, "this node's own key, rotation " + std::to_string(r.counter), std::nullopt})));
  return r;
}

void server::adopt_identity(std::unique_ptr<identity> next) {
  engine_->set_identity(next->key);
  retired_ids_.push_back(std::exchange(id_, std::move(next)));
  // KR-9: a 1.0 session is authenticated by the identity keys of its handshake, so ours end here.
  std::vector<uuid> old;
  for (const auto& [sid, s] : engine_->sessions())
    if (s.version() == version_1_0 && s.state() == session_state::ready) old.push_back(sid);
  for (const auto& sid : old) engine_->end_session(sid, system_now());
  commit({});
  log_->info("identity key rotated to {} (rotation {})", fingerprint(id_->key.public_key_bytes()), own_chain_.back().counter);
}

// Connections are reached through weak references: one may close on its own thread meanwhile.

}  // namespace peerproto::node
