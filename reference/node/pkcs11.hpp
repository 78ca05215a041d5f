// An identity key held in a PKCS#11 token (a hardware security module, or SoftHSM2 in tests): the
// node signs through the module with CKM_EDDSA, and the private key never leaves the token. The
// key is named by an RFC 7512 URI:
//   pkcs11:token=LABEL;object=LABEL?module-path=/path/to/module.so&pin-source=file:/path
// (pin-value=PIN is accepted too; without a PIN the token is used without logging in).
#pragma once

#include <peerproto/crypto.hpp>

#include <memory>
#include <string>

namespace peerproto::node::pkcs11 {

/// The parts of a pkcs11: URI the node uses (RFC 7512 §2.3: percent-encoding decoded).
struct uri {
  std::string token, object, module_path, pin;
};
/// Throws config_error, saying what is wrong or missing.
uri parse_uri(const std::string& text);
inline bool is_uri(const std::string& text) { return text.starts_with("pkcs11:"); }

/// The token's key as a key pair that signs through the module (its public key read from the
/// token and checked with one signature). Throws config_error: no module, no such token or
/// object, a wrong PIN, or a module without CKM_EDDSA, each said in so many words.
crypto::ed25519_keypair open_key(const uri& u);

/// Generates an Ed25519 key pair in the token, labelled u.object (CKM_EC_EDWARDS_KEY_PAIR_GEN;
/// the private key sensitive and not extractable), and returns it as open_key does.
crypto::ed25519_keypair generate_key(const uri& u);

}  // namespace peerproto::node::pkcs11
