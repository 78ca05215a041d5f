// The node's identity key file and the peers file of the trust policy (SPEC §2).
//
// Key file: JSON {"entity_id", "public_key", "private_key"} (hex), mode 0600. A key file that the
// group or others can read is refused, as ssh refuses such keys.
// Peers file: one "entity_id public_key_hex" per line; '#' starts a comment.
#pragma once

#include <peerproto/crypto.hpp>
#include <peerproto/trust.hpp>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace peerproto::node {

/// A configuration problem the node cannot start with; the message says what to do.
struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct identity {
  std::string entity_id;
  crypto::ed25519_keypair key;
};

/// ID-3: lowercase hex of the first 16 bytes of SHA-256 of the public key.
std::string fingerprint(const crypto::public_key& key);

/// Generates a key pair for `entity_id` and writes it to `file` with mode 0600. Refuses to
/// overwrite an existing file. Throws config_error.
identity generate_key_file(const std::filesystem::path& file, const std::string& entity_id);

/// Loads a key file. Throws config_error when it is missing, malformed, or readable by group or
/// others.
identity load_key_file(const std::filesystem::path& file);

/// Reads a peers file. Throws config_error naming the line of the first bad entry.
std::vector<std::pair<std::string, crypto::public_key>> load_peers_file(const std::filesystem::path& file);

trust_policy parse_trust_policy(const std::string& name);  ///< "pinned", "tofu" or "open"

}  // namespace peerproto::node
