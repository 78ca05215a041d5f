#include "identity.hpp"

#include <peerproto/encoding.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/jcs.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace peerproto::node {

std::string fingerprint(const crypto::public_key& key) {
  const auto d = crypto::sha256(key);
  return hex_encode(std::span<const std::uint8_t>(d.data(), 16));
}

identity generate_key_file(const std::filesystem::path& file, const std::string& entity_id) {
  if (!is_entity_id(entity_id))
    throw config_error("'" + entity_id + "' is not an entity id (1-128 characters of A-Z a-z 0-9 . _ : @ -)");
  auto key = crypto::ed25519_keypair::generate();
  const auto seed = key.seed();
  boost::json::object o{{"entity_id", entity_id},
                        {"public_key", hex_encode(key.public_key_bytes())},
                        {"private_key", hex_encode(seed.view())}};
  std::string text = boost::json::serialize(o) + "\n";
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw config_error("cannot create key file " + file.string() + ": " + std::strerror(errno) +
                                 (errno == EEXIST ? " (it is never overwritten)" : ""));
  const auto written = ::write(fd, text.data(), text.size());
  ::fsync(fd);
  ::close(fd);
  crypto::wipe(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(text.data()), text.size()));
  if (written != static_cast<ssize_t>(text.size())) throw config_error("cannot write key file " + file.string());
  return identity{entity_id, std::move(key)};
}

identity load_key_file(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) throw config_error("cannot read key file " + file.string() + ": " + std::strerror(errno) + " (create one with: peerproto-node keygen)");
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    throw config_error("key file " + file.string() + " is accessible by group or others; run: chmod 600 " + file.string());
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  auto value = jcs::parse_strict(text);
  crypto::wipe(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(text.data()), text.size()));
  const auto* o = value ? value->if_object() : nullptr;
  const auto member = [&](const char* name) -> std::string {
    const auto* v = o ? o->if_contains(name) : nullptr;
    if (!v || !v->is_string()) throw config_error("key file " + file.string() + " has no string member '" + name + "'");
    return std::string(v->as_string());
  };
  const std::string entity_id = member("entity_id");
  if (!is_entity_id(entity_id)) throw config_error("key file " + file.string() + ": entity_id is not an entity id");
  auto seed = hex_decode_fixed<32>(member("private_key"));
  if (!seed) throw config_error("key file " + file.string() + ": private_key is not 64 hex characters");
  crypto::ed25519_keypair key{std::span<const std::uint8_t, 32>(*seed)};
  crypto::wipe(*seed);
  if (member("public_key") != hex_encode(key.public_key_bytes()))
    throw config_error("key file " + file.string() + ": public_key does not belong to private_key");
  return identity{entity_id, std::move(key)};
}

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
  if (name == "pinned") return trust_policy::pinned;
  if (name == "tofu") return trust_policy::tofu;
  if (name == "open") return trust_policy::open;
  throw config_error("trust policy must be pinned, tofu or open, not '" + name + "'");
}

}  // namespace peerproto::node
