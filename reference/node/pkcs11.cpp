#include "pkcs11.hpp"

#include <peerproto/encoding.hpp>
#include <peerproto/key_file.hpp>

#include <p11-kit/pkcs11.h>

#include <dlfcn.h>

#include <fstream>
#include <mutex>
#include <optional>
#include <vector>

namespace peerproto::node::pkcs11 {
namespace {

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) throw config_error("pkcs11 URI: a % without two hex digits");
      const auto hex = hex_decode(s.substr(i + 1, 2));
      if (!hex || hex->size() != 1) throw config_error("pkcs11 URI: a bad percent-encoding at " + std::string(s.substr(i, 3)));
      out += static_cast<char>((*hex)[0]);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string rv_name(CK_RV rv) {
  switch (rv) {
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT (wrong PIN)";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    default: return "CK_RV 0x" + hex_encode(std::array<std::uint8_t, 4>{static_cast<std::uint8_t>(rv >> 24), static_cast<std::uint8_t>(rv >> 16),
                                                                     static_cast<std::uint8_t>(rv >> 8), static_cast<std::uint8_t>(rv)});
  }
}

std::string label_of(const CK_UTF8CHAR (&label)[32]) {
  std::string s(reinterpret_cast<const char*>(label), 32);
  return s.substr(0, s.find_last_not_of(' ') + 1);
}

// One module, one session, logged in: kept alive by the key pair's signing function.
class token {
 public:
  explicit token(const uri& u) : uri_(u) {
    try {
      open();
    } catch (...) {
      close();
      throw;
    }
  }
  ~token() { close(); }
  token(const token&) = delete;
  token& operator=(const token&) = delete;

  void open() {
    const auto& u = uri_;
    lib_ = ::dlopen(u.module_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib_) throw config_error("cannot load the PKCS#11 module " + u.module_path + ": " + ::dlerror());
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib_, "C_GetFunctionList"));
    if (!get || get(&f_) != CKR_OK) throw config_error(u.module_path + " is not a PKCS#11 module (no C_GetFunctionList)");
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    const auto init = f_->C_Initialize(&args);
    if (init != CKR_OK && init != CKR_CRYPTOKI_ALREADY_INITIALIZED) throw config_error("PKCS#11 C_Initialize failed: " + rv_name(init));
    initialized_ = init == CKR_OK;  // finalized by whoever initialized it
    slot_ = find_slot();
    CK_MECHANISM_INFO info{};
    if (f_->C_GetMechanismInfo(slot_, CKM_EDDSA, &info) != CKR_OK || !(info.flags & CKF_SIGN))
      throw config_error("the PKCS#11 token \"" + u.token + "\" does not offer CKM_EDDSA signing (Ed25519); it cannot hold a peerproto identity");
    check(f_->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session_), "C_OpenSession");
    if (!u.pin.empty()) {
      const auto rv = f_->C_Login(session_, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(u.pin.data())), u.pin.size());
      if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) throw config_error("cannot log in to the PKCS#11 token \"" + u.token + "\": " + rv_name(rv));
    }
  }
  void close() {
    if (session_) f_->C_CloseSession(session_);
    if (f_ && initialized_) f_->C_Finalize(nullptr);
    if (lib_) ::dlclose(lib_);
    session_ = 0;
    f_ = nullptr;
    lib_ = nullptr;
    crypto::wipe(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(uri_.pin.data()), uri_.pin.size()));
  }

  /// The Ed25519 key of class `cls` labelled uri.object, if the token has one.
  std::optional<CK_OBJECT_HANDLE> lookup(CK_OBJECT_CLASS cls) {
    CK_KEY_TYPE type = CKK_EC_EDWARDS;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &type, sizeof type},
                        {CKA_LABEL, const_cast<char*>(uri_.object.data()), uri_.object.size()}};
    check(f_->C_FindObjectsInit(session_, t, 3), "C_FindObjectsInit");
    CK_OBJECT_HANDLE h = 0;
    CK_ULONG n = 0;
    const auto rv = f_->C_FindObjects(session_, &h, 1, &n);
    f_->C_FindObjectsFinal(session_);
    check(rv, "C_FindObjects");
    if (n == 0) return std::nullopt;
    return h;
  }
  CK_OBJECT_HANDLE find(CK_OBJECT_CLASS cls) {
    if (const auto h = lookup(cls)) return *h;
    throw config_error("the PKCS#11 token \"" + uri_.token + "\" has no Ed25519 " + (cls == CKO_PRIVATE_KEY ? "private" : "public") +
                         " key labelled \"" + uri_.object + "\"" + (uri_.pin.empty() && cls == CKO_PRIVATE_KEY ? " (no PIN was given: private keys need one)" : ""));
  }

  // CKA_EC_POINT of an Ed25519 public key: the 32 bytes, or as a DER OCTET STRING (04 20 ...).
  crypto::public_key public_key(CK_OBJECT_HANDLE h) {
    std::vector<std::uint8_t> point(64);
    CK_ATTRIBUTE a{CKA_EC_POINT, point.data(), point.size()};
    check(f_->C_GetAttributeValue(session_, h, &a, 1), "C_GetAttributeValue(CKA_EC_POINT)");
    point.resize(a.ulValueLen);
    if (point.size() == 34 && point[0] == 0x04 && point[1] == 0x20) point.erase(point.begin(), point.begin() + 2);
    if (point.size() != 32) throw config_error("the token's public key \"" + uri_.object + "\" is not a 32-byte Ed25519 point");
    crypto::public_key k;
    std::copy(point.begin(), point.end(), k.begin());
    return k;
  }

  crypto::signature sign(CK_OBJECT_HANDLE key, byte_view message) {
    std::lock_guard g(lock_);
    CK_MECHANISM m{CKM_EDDSA, nullptr, 0};
    if (const auto rv = f_->C_SignInit(session_, &m, key); rv != CKR_OK) throw std::runtime_error("PKCS#11 C_SignInit: " + rv_name(rv));
    crypto::signature sig{};
    CK_ULONG len = sig.size();
    if (const auto rv = f_->C_Sign(session_, const_cast<CK_BYTE_PTR>(message.data()), message.size(), sig.data(), &len); rv != CKR_OK || len != 64)
      throw std::runtime_error("PKCS#11 C_Sign: " + rv_name(rv));
    return sig;
  }

  void generate() {
    static const CK_BYTE ed25519_oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};  // DER of 1.3.101.112 (RFC 8410)
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    auto* label = const_cast<char*>(uri_.object.data());
    CK_ATTRIBUTE pub[] = {{CKA_EC_PARAMS, const_cast<CK_BYTE*>(ed25519_oid), sizeof ed25519_oid}, {CKA_TOKEN, &yes, 1},
                          {CKA_VERIFY, &yes, 1}, {CKA_LABEL, label, uri_.object.size()}};
    CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &yes, 1}, {CKA_PRIVATE, &yes, 1}, {CKA_SENSITIVE, &yes, 1}, {CKA_EXTRACTABLE, &no, 1},
                           {CKA_SIGN, &yes, 1}, {CKA_LABEL, label, uri_.object.size()}};
    CK_MECHANISM m{CKM_EC_EDWARDS_KEY_PAIR_GEN, nullptr, 0};
    CK_OBJECT_HANDLE p = 0, k = 0;
    check(f_->C_GenerateKeyPair(session_, &m, pub, 4, priv, 6, &p, &k), "C_GenerateKeyPair(CKM_EC_EDWARDS_KEY_PAIR_GEN)");
  }

 private:
  CK_SLOT_ID find_slot() {
    CK_ULONG n = 0;
    check(f_->C_GetSlotList(CK_TRUE, nullptr, &n), "C_GetSlotList");
    std::vector<CK_SLOT_ID> slots(n);
    check(f_->C_GetSlotList(CK_TRUE, slots.data(), &n), "C_GetSlotList");
    std::string seen;
    for (const auto s : slots) {
      CK_TOKEN_INFO info{};
      if (f_->C_GetTokenInfo(s, &info) != CKR_OK) continue;
      const auto label = label_of(info.label);
      if (label == uri_.token) return s;
      seen += (seen.empty() ? "" : ", ") + ("\"" + label + "\"");
    }
    throw config_error("no PKCS#11 token labelled \"" + uri_.token + "\" in " + uri_.module_path + " (tokens: " + (seen.empty() ? "none" : seen) + ")");
  }
  void check(CK_RV rv, const char* what) {
    if (rv != CKR_OK) throw config_error(std::string("PKCS#11 ") + what + " failed: " + rv_name(rv));
  }

  uri uri_;
  void* lib_ = nullptr;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
  CK_SLOT_ID slot_ = 0;
  CK_SESSION_HANDLE session_ = 0;
  bool initialized_ = false;
  std::mutex lock_;
};

crypto::ed25519_keypair key_of(std::shared_ptr<token> t) {
  const auto pub = t->public_key(t->find(CKO_PUBLIC_KEY));
  const auto priv = t->find(CKO_PRIVATE_KEY);
  auto key = crypto::ed25519_keypair::held_elsewhere(pub, [t, priv](byte_view m) { return t->sign(priv, m); });
  // One signature, checked with the public key: the pair belongs together and the module signs
  // Ed25519 (RFC 8032), not something else under the same mechanism.
  // Twice: Ed25519 is deterministic, and the node derives the key that wraps its stored session
  // keys from such a signature.
  static constexpr std::string_view probe = "peerproto-node: the token signs";
  const auto first = key.sign(as_bytes(probe));
  if (!crypto::ed25519_verify(pub, as_bytes(probe), first) || key.sign(as_bytes(probe)) != first)
    throw config_error("the token's signatures do not verify with its public key, or differ for one message: the module does not sign Ed25519 as RFC 8032 says");
  return key;
}

}  // namespace

uri parse_uri(const std::string& text) {
  if (!is_uri(text)) throw config_error("not a pkcs11: URI: " + text);
  const auto q = text.find('?');
  const std::string path = text.substr(7, q == std::string::npos ? std::string::npos : q - 7);
  const std::string query = q == std::string::npos ? "" : text.substr(q + 1);
  uri u;
  std::string pin_source;
  const auto each = [](const std::string& s, char sep, auto f) {
    for (std::size_t at = 0; at < s.size();) {
      const auto end = std::min(s.find(sep, at), s.size());
      const auto part = s.substr(at, end - at);
      const auto eq = part.find('=');
      if (!part.empty()) f(part.substr(0, eq), eq == std::string::npos ? "" : percent_decode(part.substr(eq + 1)));
      at = end + 1;
    }
  };
  each(path, ';', [&](const std::string& k, const std::string& v) {
    if (k == "token") u.token = v;
    else if (k == "object") u.object = v;
  });
  each(query, '&', [&](const std::string& k, const std::string& v) {
    if (k == "module-path") u.module_path = v;
    else if (k == "pin-value") u.pin = v;
    else if (k == "pin-source") pin_source = v;
  });
  if (u.token.empty() || u.object.empty()) throw config_error("the pkcs11: URI needs token= and object= (RFC 7512), as in pkcs11:token=T;object=K?module-path=M");
  if (u.module_path.empty()) throw config_error("the pkcs11: URI needs ?module-path=/path/to/module.so");
  if (!pin_source.empty()) {
    const auto file = pin_source.starts_with("file:") ? pin_source.substr(5) : pin_source;
    std::ifstream in(file);
    if (!in || !std::getline(in, u.pin)) throw config_error("pin-source: cannot read a PIN from " + file);
  }
  return u;
}

crypto::ed25519_keypair open_key(const uri& u) { return key_of(std::make_shared<token>(u)); }

crypto::ed25519_keypair generate_key(const uri& u) {
  auto t = std::make_shared<token>(u);
  if (t->lookup(CKO_PRIVATE_KEY) || t->lookup(CKO_PUBLIC_KEY))
    throw config_error("the token \"" + u.token + "\" already holds a key labelled \"" + u.object + "\"; it is never replaced");
  t->generate();
  return key_of(t);
}

}  // namespace peerproto::node::pkcs11
