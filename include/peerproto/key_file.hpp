// A node's identity on disk, and its fingerprint (SPEC §2).
//
// Key file: JSON {"entity_id", "public_key", "private_key"} (hex), mode 0600. A key file that the
// group or others can read is refused, as ssh refuses such keys. The reference node, the
// conformance runner and any node built on the library read the same format.
#pragma once

#include <peerproto/crypto.hpp>
#include <peerproto/encoding.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/jcs.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace peerproto {

/// A configuration problem a program cannot start with; the message says what to do.
struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct identity {
  std::string entity_id;
  crypto::ed25519_keypair key;
};

/// ID-3: lowercase hex of the first 16 bytes of SHA-256 of the public key.
inline std::string fingerprint(const crypto::public_key& key) {
  const auto d = crypto::sha256(key);
  return hex_encode(std::span<const std::uint8_t>(d.data(), 16));
}

/// Generates a key pair for `entity_id` and writes it to `file` with mode 0600. Refuses to
/// overwrite an existing file. Throws config_error.
inline identity generate_key_file(const std::filesystem::path& file, const std::string& entity_id) {
  if (!is_entity_id(entity_id))
    throw config_error("'" + entity_id + "' is not an entity id (1-128 characters of A-Z a-z 0-9 . _ : @ -)");
  auto key = crypto::ed25519_keypair::generate();
  const auto seed = key.seed();
  boost::json::object o{{"entity_id", entity_id},
                        {"public_key", hex_encode(key.public_key_bytes())},
                        {"private_key", hex_encode(seed.view())}};
  std::string text = boost::json::serialize(o) + "\n";
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    throw config_error("cannot create key file " + file.string() + ": " + std::strerror(errno) +
                       (errno == EEXIST ? " (it is never overwritten)" : ""));
  const auto written = ::write(fd, text.data(), text.size());
  ::fsync(fd);
  ::close(fd);
  crypto::wipe(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(text.data()), text.size()));
  if (written != static_cast<ssize_t>(text.size())) throw config_error("cannot write key file " + file.string());
  return identity{entity_id, std::move(key)};
}

/// Loads a key file. Throws config_error when it is missing, malformed, or readable by group or
/// others.
inline identity load_key_file(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0)
    throw config_error("cannot read key file " + file.string() + ": " + std::strerror(errno) +
                       " (create one with: peerproto-node keygen)");
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

}  // namespace peerproto
