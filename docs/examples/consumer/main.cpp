// A program built against an installed peerproto through find_package(peerproto CONFIG REQUIRED):
// it signs an envelope, parses the text back, and verifies it, which exercises every dependency
// the package brings (Crypto++, Boost.JSON).
#include <peerproto/envelope.hpp>

#include <chrono>
#include <cstdio>

int main() {
  namespace pp = peerproto;
  const auto key = pp::crypto::ed25519_keypair::generate();

  pp::envelope e;
  e.version = std::string(pp::version_1_1);
  e.msg_type = "ping";
  e.sender_id = "consumer";
  e.recipient_id = "node-1";
  e.timestamp = pp::make_timestamp(std::chrono::system_clock::now());
  e.nonce = pp::crypto::random_array<16>();
  e.payload = boost::json::object{{"text", "hello"}};
  pp::sign(e, key);

  const auto parsed = pp::parse_envelope(pp::serialize(e));
  if (!parsed) {
    std::fprintf(stderr, "parse failed: %s\n", parsed.error().message.c_str());
    return 1;
  }
  if (!pp::verify_signature(*parsed, key.public_key_bytes())) {
    std::fprintf(stderr, "signature does not verify\n");
    return 1;
  }
  std::printf("peerproto consumer: ok (library %.*s, signed and verified a %s envelope)\n",
              static_cast<int>(pp::library_version.size()), pp::library_version.data(), parsed->msg_type.c_str());
  return 0;
}
