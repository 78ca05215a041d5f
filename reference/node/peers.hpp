// The peers file of the trust policy (SPEC §2): one "entity_id public_key_hex" per line; '#'
// starts a comment. The identity key file is the library's (peerproto/key_file.hpp).
#pragma once

#include <peerproto/crypto.hpp>
#include <peerproto/key_file.hpp>
#include <peerproto/trust.hpp>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace peerproto::node {

/// Reads a peers file. Throws config_error naming the line of the first bad entry.
std::vector<std::pair<std::string, crypto::public_key>> load_peers_file(const std::filesystem::path& file);

trust_policy parse_trust_policy(const std::string& name);  ///< "pinned", "tofu" or "open"

}  // namespace peerproto::node
