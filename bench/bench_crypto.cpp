// Crypto through peerproto's layer (crypto.hpp) against raw Crypto++, libsodium and OpenSSL, in
// one binary. Names are "<operation>/<implementation>[/<bytes>]"; scripts/bench turns them into
// ratios against raw Crypto++ (what peerproto wraps) and lists the other libraries beside it.
#include <peerproto/crypto.hpp>

#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <sodium.h>

#include <vector>

namespace pc = peerproto::crypto;
using peerproto::bytes;

namespace {

const bytes& message(std::size_t n) {
  static std::map<std::size_t, bytes> cache;
  auto& m = cache[n];
  if (m.size() != n) {
    m.resize(n);
    pc::random_bytes(m);
  }
  return m;
}
const auto key32 = pc::random_array<32>();
const auto nonce12 = pc::random_array<12>();
const bytes aad(200, 0x41);  // about the size of an envelope header's canonical form

void sizes(benchmark::internal::Benchmark* b) {
  for (long n : {64L, 1024L, 64L * 1024, 1024L * 1024}) b->Arg(n);
}

// ---------------------------------------------------------------- AES-256-GCM seal

// peerproto as a session uses it: the direction's keyed context (crypto::aes_gcm_key).
void seal_peerproto(benchmark::State& st) {
  const auto& m = message(static_cast<std::size_t>(st.range(0)));
  bytes out(m.size() + 16);
  const pc::aes_gcm_key key(key32);
  for (auto _ : st) benchmark::DoNotOptimize(key.seal(nonce12, aad, m, out));
  st.SetBytesProcessed(st.iterations() * st.range(0));
}
void seal_cryptopp(benchmark::State& st) {
  const auto& m = message(static_cast<std::size_t>(st.range(0)));
  bytes out(m.size() + 16);
  CryptoPP::GCM<CryptoPP::AES>::Encryption enc;  // keyed once: the best raw use
  enc.SetKeyWithIV(key32.data(), 32, nonce12.data(), 12);
  for (auto _ : st)
    enc.EncryptAndAuthenticate(out.data(), out.data() + m.size(), 16, nonce12.data(), 12, aad.data(), aad.size(),
                               m.data(), m.size());
  st.SetBytesProcessed(st.iterations() * st.range(0));
}
void seal_libsodium(benchmark::State& st) {
  if (!crypto_aead_aes256gcm_is_available()) return st.SkipWithError("no AES-NI");
  const auto& m = message(static_cast<std::size_t>(st.range(0)));
  bytes out(m.size() + 16);
  unsigned long long len = 0;
  for (auto _ : st)
    crypto_aead_aes256gcm_encrypt(out.data(), &len, m.data(), m.size(), aad.data(), aad.size(), nullptr, nonce12.data(),
                                  key32.data());
  st.SetBytesProcessed(st.iterations() * st.range(0));
}
void seal_openssl(benchmark::State& st) {
  const auto& m = message(static_cast<std::size_t>(st.range(0)));
  bytes out(m.size() + 16);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  for (auto _ : st) {
    int len = 0;
    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key32.data(), nonce12.data());
    EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size()));
    EVP_EncryptUpdate(ctx, out.data(), &len, m.data(), static_cast<int>(m.size()));
    EVP_EncryptFinal_ex(ctx, out.data() + len, &len);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out.data() + m.size());
  }
  EVP_CIPHER_CTX_free(ctx);
  st.SetBytesProcessed(st.iterations() * st.range(0));
}

// ---------------------------------------------------------------- AES-256-GCM open

bytes sealed_of(std::size_t n) { return pc::aes_gcm_seal(key32, nonce12, aad, message(n)); }

void open_peerproto(benchmark::State& st) {
  const auto sealed = sealed_of(static_cast<std::size_t>(st.range(0)));
  bytes out(sealed.size() - 16);
  const pc::aes_gcm_key key(key32);
  for (auto _ : st) benchmark::DoNotOptimize(key.open(nonce12, aad, sealed, out));
  st.SetBytesProcessed(st.iterations() * st.range(0));
}
void open_cryptopp(benchmark::State& st) {
  const auto sealed = sealed_of(static_cast<std::size_t>(st.range(0)));
  bytes out(sealed.size() - 16);
  CryptoPP::GCM<CryptoPP::AES>::Decryption dec;
  dec.SetKeyWithIV(key32.data(), 32, nonce12.data(), 12);
  for (auto _ : st)
    benchmark::DoNotOptimize(dec.DecryptAndVerify(out.data(), sealed.data() + out.size(), 16, nonce12.data(), 12,
                                                  aad.data(), aad.size(), sealed.data(), out.size()));
  st.SetBytesProcessed(st.iterations() * st.range(0));
}
void open_libsodium(benchmark::State& st) {
  if (!crypto_aead_aes256gcm_is_available()) return st.SkipWithError("no AES-NI");
  const auto sealed = sealed_of(static_cast<std::size_t>(st.range(0)));
  bytes out(sealed.size() - 16);
  unsigned long long len = 0;
  for (auto _ : st)
    benchmark::DoNotOptimize(crypto_aead_aes256gcm_decrypt(out.data(), &len, nullptr, sealed.data(), sealed.size(),
                                                           aad.data(), aad.size(), nonce12.data(), key32.data()));
  st.SetBytesProcessed(st.iterations() * st.range(0));
}
void open_openssl(benchmark::State& st) {
  auto sealed = sealed_of(static_cast<std::size_t>(st.range(0)));
  const std::size_t n = sealed.size() - 16;
  bytes out(n + 16);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  for (auto _ : st) {
    int len = 0;
    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key32.data(), nonce12.data());
    EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size()));
    EVP_DecryptUpdate(ctx, out.data(), &len, sealed.data(), static_cast<int>(n));
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, sealed.data() + n);
    benchmark::DoNotOptimize(EVP_DecryptFinal_ex(ctx, out.data() + len, &len));
  }
  EVP_CIPHER_CTX_free(ctx);
  st.SetBytesProcessed(st.iterations() * st.range(0));
}

// ---------------------------------------------------------------- Ed25519

const std::array<std::uint8_t, 32> seed = pc::random_array<32>();
const bytes sig_msg(300, 0x61);  // about one canonical envelope

void sign_peerproto(benchmark::State& st) {
  const pc::ed25519_keypair k(seed);
  for (auto _ : st) benchmark::DoNotOptimize(k.sign(sig_msg));
}
void sign_cryptopp(benchmark::State& st) {
  CryptoPP::ed25519::Signer signer(seed.data());
  std::array<std::uint8_t, 64> sig{};
  for (auto _ : st) signer.SignMessage(CryptoPP::NullRNG(), sig_msg.data(), sig_msg.size(), sig.data());
}
void sign_libsodium(benchmark::State& st) {
  std::array<std::uint8_t, 32> pk{};
  std::array<std::uint8_t, 64> sk{}, sig{};
  crypto_sign_seed_keypair(pk.data(), sk.data(), seed.data());
  for (auto _ : st) crypto_sign_detached(sig.data(), nullptr, sig_msg.data(), sig_msg.size(), sk.data());
}
void sign_openssl(benchmark::State& st) {
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), 32);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::array<std::uint8_t, 64> sig{};
  for (auto _ : st) {
    std::size_t len = sig.size();
    EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key);
    EVP_DigestSign(ctx, sig.data(), &len, sig_msg.data(), sig_msg.size());
  }
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
}

void verify_peerproto(benchmark::State& st) {
  const pc::ed25519_keypair k(seed);
  const auto sig = k.sign(sig_msg);
  for (auto _ : st) benchmark::DoNotOptimize(pc::ed25519_verify(k.public_key_bytes(), sig_msg, sig));
}
void verify_cryptopp(benchmark::State& st) {
  const pc::ed25519_keypair k(seed);
  const auto sig = k.sign(sig_msg);
  CryptoPP::ed25519::Verifier verifier(k.public_key_bytes().data());
  for (auto _ : st) benchmark::DoNotOptimize(verifier.VerifyMessage(sig_msg.data(), sig_msg.size(), sig.data(), 64));
}
void verify_libsodium(benchmark::State& st) {
  const pc::ed25519_keypair k(seed);
  const auto sig = k.sign(sig_msg);
  for (auto _ : st)
    benchmark::DoNotOptimize(crypto_sign_verify_detached(sig.data(), sig_msg.data(), sig_msg.size(), k.public_key_bytes().data()));
}
void verify_openssl(benchmark::State& st) {
  const pc::ed25519_keypair k(seed);
  const auto sig = k.sign(sig_msg);
  EVP_PKEY* key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, k.public_key_bytes().data(), 32);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  for (auto _ : st) {
    EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key);
    benchmark::DoNotOptimize(EVP_DigestVerify(ctx, sig.data(), 64, sig_msg.data(), sig_msg.size()));
  }
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
}

// ---------------------------------------------------------------- X25519

void x25519_peerproto(benchmark::State& st) {
  const pc::x25519_keypair a(seed), b(key32);
  pc::secret<32> shared;
  for (auto _ : st) benchmark::DoNotOptimize(pc::x25519_agree(a.private_key(), b.public_key_bytes(), shared));
}
void x25519_cryptopp(benchmark::State& st) {
  const pc::x25519_keypair a(seed), b(key32);
  CryptoPP::x25519 domain;
  std::array<std::uint8_t, 32> shared{};
  for (auto _ : st) benchmark::DoNotOptimize(domain.Agree(shared.data(), a.private_key().data(), b.public_key_bytes().data(), false));
}
void x25519_libsodium(benchmark::State& st) {
  const pc::x25519_keypair a(seed), b(key32);
  std::array<std::uint8_t, 32> shared{};
  for (auto _ : st) benchmark::DoNotOptimize(crypto_scalarmult(shared.data(), a.private_key().data(), b.public_key_bytes().data()));
}
void x25519_openssl(benchmark::State& st) {
  const pc::x25519_keypair a(seed), b(key32);
  EVP_PKEY* priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, a.private_key().data(), 32);
  EVP_PKEY* peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, b.public_key_bytes().data(), 32);
  std::array<std::uint8_t, 32> shared{};
  for (auto _ : st) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(priv, nullptr);
    std::size_t len = 32;
    EVP_PKEY_derive_init(ctx);
    EVP_PKEY_derive_set_peer(ctx, peer);
    EVP_PKEY_derive(ctx, shared.data(), &len);
    EVP_PKEY_CTX_free(ctx);
  }
  EVP_PKEY_free(priv);
  EVP_PKEY_free(peer);
}

// ---------------------------------------------------------------- SHA-256 and HKDF

void sha256_peerproto(benchmark::State& st) {
  const auto& m = message(static_cast<std::size_t>(st.range(0)));
  for (auto _ : st) benchmark::DoNotOptimize(pc::sha256(m));
  st.SetBytesProcessed(st.iterations() * st.range(0));
}
void sha256_cryptopp(benchmark::State& st) {
  const auto& m = message(static_cast<std::size_t>(st.range(0)));
  std::array<std::uint8_t, 32> d{};
  CryptoPP::SHA256 h;
  for (auto _ : st) h.CalculateDigest(d.data(), m.data(), m.size());
  st.SetBytesProcessed(st.iterations() * st.range(0));
}
void sha256_libsodium(benchmark::State& st) {
  const auto& m = message(static_cast<std::size_t>(st.range(0)));
  std::array<std::uint8_t, 32> d{};
  for (auto _ : st) crypto_hash_sha256(d.data(), m.data(), m.size());
  st.SetBytesProcessed(st.iterations() * st.range(0));
}
void sha256_openssl(benchmark::State& st) {
  const auto& m = message(static_cast<std::size_t>(st.range(0)));
  std::array<std::uint8_t, 32> d{};
  unsigned int len = 0;
  for (auto _ : st) EVP_Digest(m.data(), m.size(), d.data(), &len, EVP_sha256(), nullptr);
  st.SetBytesProcessed(st.iterations() * st.range(0));
}

// The protocol's key schedule: 96 bytes from a 32-byte ikm, a 32-byte salt and a short info.
void hkdf_peerproto(benchmark::State& st) {
  std::array<std::uint8_t, 96> okm{};
  for (auto _ : st) benchmark::DoNotOptimize(pc::hkdf_sha256(key32, seed, peerproto::as_bytes("peer-v1.1-session-key"), okm));
}
void hkdf_cryptopp(benchmark::State& st) {
  std::array<std::uint8_t, 96> okm{};
  CryptoPP::HKDF<CryptoPP::SHA256> kdf;
  const std::string_view info = "peer-v1.1-session-key";
  for (auto _ : st)
    kdf.DeriveKey(okm.data(), okm.size(), key32.data(), 32, seed.data(), 32,
                  reinterpret_cast<const std::uint8_t*>(info.data()), info.size());
}
void hkdf_openssl(benchmark::State& st) {
  std::array<std::uint8_t, 96> okm{};
  const std::string_view info = "peer-v1.1-session-key";
  for (auto _ : st) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr);
    std::size_t len = okm.size();
    EVP_PKEY_derive_init(ctx);
    EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256());
    EVP_PKEY_CTX_set1_hkdf_salt(ctx, seed.data(), 32);
    EVP_PKEY_CTX_set1_hkdf_key(ctx, key32.data(), 32);
    EVP_PKEY_CTX_add1_hkdf_info(ctx, reinterpret_cast<const unsigned char*>(info.data()), static_cast<int>(info.size()));
    EVP_PKEY_derive(ctx, okm.data(), &len);
    EVP_PKEY_CTX_free(ctx);
  }
}

}  // namespace

BENCHMARK(seal_peerproto)->Name("seal/peerproto")->Apply(sizes);
BENCHMARK(seal_cryptopp)->Name("seal/cryptopp")->Apply(sizes);
BENCHMARK(seal_libsodium)->Name("seal/libsodium")->Apply(sizes);
BENCHMARK(seal_openssl)->Name("seal/openssl")->Apply(sizes);
BENCHMARK(open_peerproto)->Name("open/peerproto")->Apply(sizes);
BENCHMARK(open_cryptopp)->Name("open/cryptopp")->Apply(sizes);
BENCHMARK(open_libsodium)->Name("open/libsodium")->Apply(sizes);
BENCHMARK(open_openssl)->Name("open/openssl")->Apply(sizes);
BENCHMARK(sign_peerproto)->Name("ed25519_sign/peerproto");
BENCHMARK(sign_cryptopp)->Name("ed25519_sign/cryptopp");
BENCHMARK(sign_libsodium)->Name("ed25519_sign/libsodium");
BENCHMARK(sign_openssl)->Name("ed25519_sign/openssl");
BENCHMARK(verify_peerproto)->Name("ed25519_verify/peerproto");
BENCHMARK(verify_cryptopp)->Name("ed25519_verify/cryptopp");
BENCHMARK(verify_libsodium)->Name("ed25519_verify/libsodium");
BENCHMARK(verify_openssl)->Name("ed25519_verify/openssl");
BENCHMARK(x25519_peerproto)->Name("x25519/peerproto");
BENCHMARK(x25519_cryptopp)->Name("x25519/cryptopp");
BENCHMARK(x25519_libsodium)->Name("x25519/libsodium");
BENCHMARK(x25519_openssl)->Name("x25519/openssl");
BENCHMARK(sha256_peerproto)->Name("sha256/peerproto")->Apply(sizes);
BENCHMARK(sha256_cryptopp)->Name("sha256/cryptopp")->Apply(sizes);
BENCHMARK(sha256_libsodium)->Name("sha256/libsodium")->Apply(sizes);
BENCHMARK(sha256_openssl)->Name("sha256/openssl")->Apply(sizes);
BENCHMARK(hkdf_peerproto)->Name("hkdf/peerproto");
BENCHMARK(hkdf_cryptopp)->Name("hkdf/cryptopp");
BENCHMARK(hkdf_openssl)->Name("hkdf/openssl");

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
