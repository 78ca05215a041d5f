#include "peers.hpp"

#include <peerproto/encoding.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/fault.hpp>

#include <fstream>
#include <sstream>

namespace peerproto::node {

std::vector<std::pair<std::string, crypto::public_key>> load_peers_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw config_error("cannot read peers file " + file.string());
  std::vector<std::pair<std::string, crypto::public_key>> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream fields(line);
    std::string id, key, extra;
    if (!(fields >> id)) continue;
    const auto decoded = (fields >> key) ? hex_decode_fixed<32>(key) : std::nullopt;
    if (!is_entity_id(id) || !decoded || (fields >> extra))
      throw config_error(file.string() + ":" + std::to_string(n) + ": expected 'entity_id public_key_hex'");
    out.emplace_back(id, *decoded);
  }
  return out;
}

trust_policy parse_trust_policy(const std::string& name) {
  if (name == "pinned") return PEERPROTO_FAULT(pinned_binds_new_keys) ? trust_policy::tofu : trust_policy::pinned;
  if (name == "tofu") return trust_policy::tofu;
  if (name == "open") return trust_policy::open;
  throw config_error("trust policy must be pinned, tofu or open, not '" + name + "'");
}

}  // namespace peerproto::node
