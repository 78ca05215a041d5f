// A node's identity on disk, its fingerprint (SPEC §2), and as GET /public-key publishes it.
//
// Key file: JSON, mode 0600, in one of two forms (SPEC ID-12):
//   plain      {"entity_id", "public_key", "private_key"} (hex)
//   encrypted  {"entity_id", "public_key", "encryption": {"kdf": "scrypt", "log2_n", "r", "p",
//              "salt", "cipher": "aes-256-gcm", "nonce"}, "encrypted_private_key"}: the private key
//              sealed with AES-256-GCM under scrypt(passphrase), the rest of the file (JCS, without
//              encrypted_private_key) as associated data, so no member can be changed unnoticed.
// A key file that the group or others can read is refused, as ssh refuses such keys. The
// reference node, the conformance runner and any node built on the library read the same format.
#pragma once

#include <peerproto/crypto.hpp>
#include <peerproto/encoding.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/jcs.hpp>
#include <peerproto/key_derivation.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
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
/// A peer's identity as its GET /public-key publishes it (HTTP-6).
struct published_identity {
  std::string entity_id;
  crypto::public_key key{};
};

/// Reads the answer to GET /public-key: status 200 and a JSON object with an entity id (ID-2) and
/// a 64-hex-character public key. Every initiator learns its peer this way before a handshake.
inline result<published_identity> read_published_identity(int status, std::string_view body) {
  const auto v = jcs::parse_strict(body);
  const auto* o = v ? v->if_object() : nullptr;
  const auto* id = o ? detail::string_member(*o, "entity_id") : nullptr;
  const auto* key = o ? detail::string_member(*o, "public_key") : nullptr;
  const auto key_bytes = key ? hex_decode_fixed<32>(*key) : std::nullopt;
  if (status != 200 || !id || !is_entity_id(*id) || !key_bytes)
    return failure{errc::invalid_format, "GET /public-key did not answer {entity_id, public_key}"};
  return published_identity{std::string(*id), *key_bytes};
}

inline std::string fingerprint(const crypto::public_key& key) {
  const auto d = crypto::sha256(key);
  return hex_encode(std::span<const std::uint8_t>(d.data(), 16));
}

/// The scrypt cost of new encrypted key files (N = 2^15, r = 8, p = 1: 32 MiB, about 0.1 s), and
/// the range a reader accepts (ID-12): a file cannot make its reader spend more than 1 GiB.
inline constexpr unsigned key_file_log2_n = 15, key_file_min_log2_n = 14, key_file_max_log2_n = 20;

namespace detail {
inline std::string key_file_text(const identity& id, const std::optional<std::string>& passphrase, unsigned log2_n) {
  const auto seed = id.key.seed();
  boost::json::object o{{"entity_id", id.entity_id}, {"public_key", hex_encode(id.key.public_key_bytes())}};
  if (!passphrase) {
    o["private_key"] = hex_encode(seed.view());
    return boost::json::serialize(o) + "\n";
  }
  if (passphrase->empty()) throw config_error("an empty passphrase encrypts nothing; give one, or write the key unencrypted");
  if (log2_n < key_file_min_log2_n || log2_n > key_file_max_log2_n) throw config_error("scrypt log2_n outside what readers accept (ID-12)");
  std::array<std::uint8_t, 16> salt{};
  std::array<std::uint8_t, 12> nonce{};
  crypto::random_bytes(salt);
  crypto::random_bytes(nonce);
  o["encryption"] = boost::json::object{{"kdf", "scrypt"}, {"log2_n", log2_n}, {"r", 8}, {"p", 1}, {"salt", hex_encode(salt)},
                                        {"cipher", "aes-256-gcm"}, {"nonce", hex_encode(nonce)}};
  crypto::secret<32> key;
  if (scrypt(*passphrase, salt, log2_n, 8, 1, key.span())) throw config_error("scrypt refused its parameters");
  const auto sealed = crypto::aes_gcm_seal(key.view(), nonce, as_bytes(jcs::canonicalize(o)), seed.view());
  o["encrypted_private_key"] = hex_encode(sealed);
  return boost::json::serialize(o) + "\n";
}

// Writes `text` to a new file of mode 0600; `file` must not exist.
inline void write_new_file(const std::filesystem::path& file, std::string& text) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    throw config_error("cannot create key file " + file.string() + ": " + std::strerror(errno) +
                       (errno == EEXIST ? " (it is never overwritten)" : ""));
  const auto written = ::write(fd, text.data(), text.size());
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  crypto::wipe(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(text.data()), text.size()));
  if (written != static_cast<ssize_t>(text.size()) || !synced) {
    ::unlink(file.c_str());  // no partial key file is left behind
    throw config_error("cannot write key file " + file.string());
  }
}
}  // namespace detail

/// Writes `id` to a new key file (mode 0600; an existing file is never overwritten), encrypted
/// under `passphrase` when one is given. Throws config_error.
inline void write_key_file(const std::filesystem::path& file, const identity& id, const std::optional<std::string>& passphrase = {},
                           unsigned log2_n = key_file_log2_n) {
  auto text = detail::key_file_text(id, passphrase, log2_n);
  detail::write_new_file(file, text);
}

/// Generates a key pair for `entity_id` and writes it to `file` (see write_key_file).
inline identity generate_key_file(const std::filesystem::path& file, const std::string& entity_id,
                                  const std::optional<std::string>& passphrase = {}) {
  if (!is_entity_id(entity_id))
    throw config_error("'" + entity_id + "' is not an entity id (1-128 characters of A-Z a-z 0-9 . _ : @ -)");
  identity id{entity_id, crypto::ed25519_keypair::generate()};
  write_key_file(file, id, passphrase);
  return id;
}

/// Asked for the passphrase of an encrypted key file, when one is read.
using passphrase_source = std::function<std::string()>;

/// Refuses a file holding a private key (`what`, as the user named it) that its group or others
/// may access, with the command that fixes it.
inline void refuse_if_shared(const std::filesystem::path& file, const std::string& what) {
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
    throw config_error(what + " " + file.string() + " is accessible by group or others; run: chmod 600 " + file.string());
}

/// Loads a key file; an encrypted one asks `passphrase` for its passphrase. Throws config_error
/// when it is missing, malformed, readable by group or others, encrypted with nothing to ask, or
/// the passphrase is wrong.
inline identity load_key_file(const std::filesystem::path& file, const passphrase_source& passphrase = {}) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0)
    throw config_error("cannot read key file " + file.string() + ": " + std::strerror(errno) +
                       " (create one with: peerproto-node keygen)");
  refuse_if_shared(file, "key file");
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  auto value = jcs::parse_strict(text);
  crypto::wipe(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(text.data()), text.size()));
  auto* o = value ? value->if_object() : nullptr;
  const auto bad = [&](const std::string& why) { return config_error("key file " + file.string() + ": " + why); };
  const auto member = [&](const boost::json::object* from, const char* name) -> std::string {
    const auto* v = from ? from->if_contains(name) : nullptr;
    if (!v || !v->is_string()) throw bad(std::string("no string member '") + name + "'");
    return std::string(v->as_string());
  };
  const std::string entity_id = member(o, "entity_id");
  if (!is_entity_id(entity_id)) throw bad("entity_id is not an entity id");
  std::optional<std::array<std::uint8_t, 32>> seed;
  if (const auto* enc = o->if_contains("encryption")) {
    const auto* e = enc->if_object();
    const auto number = [&](const char* name, unsigned lo, unsigned hi) {
      const auto* v = e ? e->if_contains(name) : nullptr;
      if (!v || !v->is_int64() || v->as_int64() < lo || v->as_int64() > hi)
        throw bad(std::string("encryption.") + name + " must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
      return static_cast<unsigned>(v->as_int64());
    };
    if (member(e, "kdf") != "scrypt" || member(e, "cipher") != "aes-256-gcm")
      throw bad("encrypted with something other than scrypt and aes-256-gcm");
    const unsigned log2_n = number("log2_n", key_file_min_log2_n, key_file_max_log2_n), r = number("r", 1, 32), p = number("p", 1, 16);
    if ((std::uint64_t{128} * r << log2_n) * p > (std::uint64_t{1} << 30)) throw bad("scrypt parameters above 1 GiB of work memory");
    const auto salt = hex_decode(member(e, "salt"));
    const auto nonce = hex_decode_fixed<12>(member(e, "nonce"));
    const auto sealed = hex_decode(member(o, "encrypted_private_key"));
    if (!salt || salt->size() < 16 || !nonce || !sealed || sealed->size() != 48) throw bad("malformed salt, nonce or encrypted_private_key");
    if (!passphrase)
      throw bad("it is encrypted: give its passphrase (--passphrase-file or --passphrase-env, or run on a terminal to be asked)");
    std::string phrase = passphrase();
    crypto::secret<32> key;
    const auto failed = scrypt(phrase, *salt, log2_n, r, p, key.span());
    crypto::wipe(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(phrase.data()), phrase.size()));
    if (failed) throw bad("scrypt refused its parameters");
    boost::json::object header = *o;
    header.erase("encrypted_private_key");
    auto opened = crypto::aes_gcm_open(key.view(), *nonce, as_bytes(jcs::canonicalize(header)), *sealed);
    if (!opened || opened->size() != 32) throw bad("wrong passphrase (or the file was changed)");
    seed.emplace();
    std::copy_n(opened->begin(), 32, seed->begin());
    crypto::wipe(*opened);
  } else {
    seed = hex_decode_fixed<32>(member(o, "private_key"));
    if (!seed) throw bad("private_key is not 64 hex characters");
  }
  crypto::ed25519_keypair key{std::span<const std::uint8_t, 32>(*seed)};
  crypto::wipe(*seed);
  if (member(o, "public_key") != hex_encode(key.public_key_bytes())) throw bad("public_key does not belong to the private key");
  return identity{entity_id, std::move(key)};
}

/// Whether `file` is an encrypted key file (its `encryption` member); false when it cannot be read.
inline bool key_file_encrypted(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  const auto value = jcs::parse_strict(ss.str());
  return value && value->is_object() && value->as_object().contains("encryption");
}

/// Rewrites `file` with the same key under `new_passphrase` (or unencrypted when nullopt),
/// replacing it atomically (a new file renamed over it). Throws config_error; `file` is then
/// unchanged.
inline identity change_key_passphrase(const std::filesystem::path& file, const passphrase_source& old_passphrase,
                                      const std::optional<std::string>& new_passphrase) {
  const auto id = load_key_file(file, old_passphrase);
  auto next = file;
  next += ".new";
  std::filesystem::remove(next);
  write_key_file(next, id, new_passphrase);
  std::error_code ec;
  std::filesystem::rename(next, file, ec);
  if (ec) {
    std::filesystem::remove(next);
    throw config_error("cannot replace " + file.string() + ": " + ec.message());
  }
  return id;
}

}  // namespace peerproto
