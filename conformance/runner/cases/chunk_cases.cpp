// §12 chunked transfer, in a 1.1 session.
#include "common.hpp"

#include <peerproto/crypto.hpp>

#include <thread>

namespace peerproto::conformance {
using namespace cases;

namespace {
struct transfer {
  std::string bytes;                  ///< what the chunks reassemble to
  std::vector<json::object> chunks;   ///< chunk payloads, index order
};

transfer split(const std::string& bytes, std::size_t parts, std::string type = "ping") {
  transfer t{bytes, {}};
  const auto id = random_uuid();
  const auto sha = hex_encode(crypto::sha256(as_bytes(bytes)));
  const auto size = (bytes.size() + parts - 1) / parts;
  for (std::size_t i = 0; i < parts; ++i) {
    const auto piece = i * size < bytes.size() ? bytes.substr(i * size, size) : std::string();
    t.chunks.push_back({{"transfer_id", id},
                        {"index", i},
                        {"total", parts},
                        {"total_size", bytes.size()},
                        {"sha256", sha},
                        {"original_msg_type", type},
                        {"data", base64_encode(as_bytes(piece))}});
  }
  return t;
}

const json::object original{{"text", "a payload sent in three chunks"}, {"n", 3}};
transfer three() { return split(canonical(original), 3); }

// Sends chunk `c` in `s`; returns the request text.
std::string send_chunk(context& c, session_state& s, const json::object& chunk) { return c.session_message(s, "chunk", chunk); }

void expect_chunk_ack(context& c, session_state& s, const json::object& chunk) {
  const auto text = send_chunk(c, s, chunk);
  const auto ack = c.expect_reply(c.exchange(text), text, "ack", "CHK-7", &s);
  c.check(ack.at("status") == "chunk_received", "CHK-7", "ack status \"chunk_received\"", canonical(ack));
}

void expect_chunk_refused(context& c, session_state& s, const json::object& chunk, errc code, std::string_view rule) {
  expect_refusal(c, send_chunk(c, s, chunk), code, rule);
}

void expect_delivery(context& c, session_state& s, const json::object& chunk, const json::object& payload) {
  const auto text = send_chunk(c, s, chunk);
  const auto pong = c.expect_reply(c.exchange(text), text, "pong", "CHK-7", &s);
  c.check(pong.contains("echo") && pong.at("echo") == json::value(payload), "CHK-1", "echo " + canonical(payload), canonical(pong));
}

// A case: one session, `f` does the rest.
test_case chunk_case(std::string id, std::vector<std::string> reqs, std::string title, std::function<void(context&, session_state&)> f) {
  return {std::move(id), std::move(reqs), "chunking", std::move(title), [f](context& c) {
            auto s = c.handshake(c.fresh());
            f(c, s);
          }};
}

// The first chunk of a three-chunk transfer changed by `f` must be refused with `code`.
test_case bad_chunk(std::string id, std::vector<std::string> reqs, std::string title, std::function<void(json::object&)> f, errc code) {
  const std::string rule = reqs.front();
  return chunk_case(std::move(id), std::move(reqs), std::move(title), [f, code, rule](context& c, session_state& s) {
    auto t = three();
    f(t.chunks[0]);
    expect_chunk_refused(c, s, t.chunks[0], code, rule);
  });
}
}  // namespace

void add_chunk_cases(std::vector<test_case>& out) {
  const auto first_case = out.size();
  out.push_back({"CHK-11/idle-transfer", {"CHK-11", "CHK-7"}, "chunking",
                 "a transfer resumed within transfer_idle_timeout_ms completes; one idle past it was dropped with its data",
                 [](context& c) {
                   const auto idle = std::chrono::milliseconds(c.node.limit("transfer_idle_timeout_ms"));
                   require_time_for(c, "transfer_idle_timeout_ms", idle / 2 + idle + std::chrono::seconds(1));
                   // A transfer belongs to the sender, not to a session (CHK-3): each wait is followed
                   // by a new session, so the session's own idle timer (SES-4) plays no part.
                   const auto& who = c.fresh();
                   auto s = c.handshake(who);
                   auto inside = split(canonical(original), 2);
                   expect_chunk_ack(c, s, inside.chunks[0]);
                   std::this_thread::sleep_for(idle / 2);
                   s = c.handshake(who);
                   expect_delivery(c, s, inside.chunks[1], original);
                   auto dropped = split(canonical(original), 2);
                   expect_chunk_ack(c, s, dropped.chunks[0]);
                   c.note("idle for transfer_idle_timeout_ms + 1 s");
                   std::this_thread::sleep_for(idle + std::chrono::seconds(1));
                   s = c.handshake(who);
                   // Chunk 0 is gone with its transfer: chunk 1 starts a new one and completes nothing.
                   expect_chunk_ack(c, s, dropped.chunks[1]);
                 },
                 std::chrono::seconds(60)});
  out.push_back(chunk_case("CHK-1/in-order", {"CHK-1", "CHK-7"}, "three chunks in order: two acks, then the handler's reply",
                           [](context& c, session_state& s) {
                             auto t = three();
                             expect_chunk_ack(c, s, t.chunks[0]);
                             expect_chunk_ack(c, s, t.chunks[1]);
                             expect_delivery(c, s, t.chunks[2], original);
                           }));
  out.push_back(chunk_case("CHK-3/any-order", {"CHK-3", "CHK-1"}, "chunks 2, 0, 1 reassemble in index order",
                           [](context& c, session_state& s) {
                             auto t = three();
                             expect_chunk_ack(c, s, t.chunks[2]);
                             expect_chunk_ack(c, s, t.chunks[0]);
                             expect_delivery(c, s, t.chunks[1], original);
                           }));
  out.push_back(chunk_case("CHK-3/per-sender", {"CHK-3"}, "a transfer id is per sender: another sender's chunk does not join the transfer",
                           [](context& c, session_state& s) {
                             auto t = three();
                             expect_chunk_ack(c, s, t.chunks[0]);
                             auto other = c.handshake(c.fresh());
                             expect_chunk_ack(c, other, t.chunks[1]);
                             expect_chunk_ack(c, s, t.chunks[1]);
                             expect_delivery(c, s, t.chunks[2], original);
                           }));
  out.push_back(chunk_case("CHK-4/duplicate", {"CHK-4"}, "a repeated chunk is acknowledged again and changes nothing",
                           [](context& c, session_state& s) {
                             auto t = three();
                             expect_chunk_ack(c, s, t.chunks[0]);
                             expect_chunk_ack(c, s, t.chunks[0]);
                             expect_chunk_ack(c, s, t.chunks[1]);
                             expect_delivery(c, s, t.chunks[2], original);
                           }));
  out.push_back(chunk_case("CHK-4/after-completion", {"CHK-4"}, "a chunk of a completed transfer is acknowledged, not delivered again",
                           [](context& c, session_state& s) {
                             auto t = three();
                             expect_chunk_ack(c, s, t.chunks[0]);
                             expect_chunk_ack(c, s, t.chunks[1]);
                             expect_delivery(c, s, t.chunks[2], original);
                             expect_chunk_ack(c, s, t.chunks[2]);
                           }));
  out.push_back(chunk_case("CHK-5/conflicting-data", {"CHK-5"}, "the same index with other data is CHUNK_ERROR",
                           [](context& c, session_state& s) {
                             auto t = three();
                             expect_chunk_ack(c, s, t.chunks[0]);
                             auto other = t.chunks[0];
                             other["data"] = base64_encode(as_bytes(std::string_view("different")));
                             expect_chunk_refused(c, s, other, errc::chunk_error, "CHK-5");
                           }));
  for (const auto& [member, value] : std::vector<named_value>{
           {"total", 4}, {"total_size", 999}, {"sha256", json::string(64, 'a')}, {"original_msg_type", "heartbeat"}})
    out.push_back(chunk_case("CHK-5/conflicting-" + member, {"CHK-5"}, "a later chunk with another " + member + " is CHUNK_ERROR",
                             [m = member, v = value](context& c, session_state& s) {
                               auto t = three();
                               expect_chunk_ack(c, s, t.chunks[0]);
                               t.chunks[1][m] = v;
                               expect_chunk_refused(c, s, t.chunks[1], errc::chunk_error, "CHK-5");
                             }));
  out.push_back(chunk_case("CHK-6/hash-mismatch", {"CHK-6"}, "a transfer whose SHA-256 differs from sha256 is CHUNK_ERROR and not delivered",
                           [](context& c, session_state& s) {
                             auto t = three();
                             for (auto& ch : t.chunks) ch["sha256"] = hex_encode(crypto::sha256(as_bytes(std::string_view("other"))));
                             expect_chunk_ack(c, s, t.chunks[0]);
                             expect_chunk_ack(c, s, t.chunks[1]);
                             expect_chunk_refused(c, s, t.chunks[2], errc::chunk_error, "CHK-6");
                           }));
  out.push_back(chunk_case("CHK-6/size-mismatch", {"CHK-6"}, "a transfer shorter than total_size is CHUNK_ERROR when complete",
                           [](context& c, session_state& s) {
                             auto t = three();
                             for (auto& ch : t.chunks) ch["total_size"] = t.bytes.size() + 1;
                             expect_chunk_ack(c, s, t.chunks[0]);
                             expect_chunk_ack(c, s, t.chunks[1]);
                             expect_chunk_refused(c, s, t.chunks[2], errc::chunk_error, "CHK-6");
                           }));
  out.push_back(chunk_case("CHK-6/exceeds-size", {"CHK-6", "CHK-12"}, "chunks beyond total_size are CHUNK_ERROR as soon as they exceed it",
                           [](context& c, session_state& s) {
                             auto t = three();
                             for (auto& ch : t.chunks) ch["total_size"] = 4;
                             expect_chunk_refused(c, s, t.chunks[0], errc::chunk_error, "CHK-6");
                           }));
  out.push_back(chunk_case("CHK-7/not-json", {"CHK-7"}, "reassembled bytes that are not a JSON object are CHUNK_ERROR",
                           [](context& c, session_state& s) {
                             auto t = split("[\"not an object\"]", 2);
                             expect_chunk_ack(c, s, t.chunks[0]);
                             expect_chunk_refused(c, s, t.chunks[1], errc::chunk_error, "CHK-7");
                           }));
  for (const char* m : {"transfer_id", "index", "total", "total_size", "sha256", "original_msg_type", "data"})
    out.push_back(bad_chunk(std::string("CHK-2/missing-") + m, {"CHK-2"}, std::string("a chunk without ") + m + " is MISSING_FIELDS",
                            [m](json::object& ch) { ch.erase(m); }, errc::missing_fields));
  const auto form = [&](std::string name, std::string title, std::function<void(json::object&)> f) {
    out.push_back(bad_chunk("CHK-2/" + name, {"CHK-2"}, title + " is CHUNK_ERROR", std::move(f), errc::chunk_error));
  };
  for (const char* member : {"total", "total_size"})
    out.push_back(chunk_case(std::string("CHK-2/") + member + "-fraction", {"CHK-2", "ENV-14"},
                             std::string(member) + " written with a fraction part (3.0) is CHUNK_ERROR, though it canonicalizes to 3",
                             [m = std::string(member)](context& c, session_state& s) {
                               auto t = three();
                               auto plaintext = canonical(t.chunks[0]);
                               const auto from = "\"" + m + "\":" + json::serialize(t.chunks[0].at(m));
                               plaintext.replace(plaintext.find(from), from.size(), from + ".0");
                               expect_refusal(c, sealed_text(c, s, plaintext, "chunk"), errc::chunk_error, "CHK-2");
                             }));
  form("extra-member", "a chunk with an extra member", [](json::object& ch) { ch["priority"] = 1; });
  form("index-not-below-total", "index equal to total", [](json::object& ch) { ch["index"] = 3; });
  form("total-too-large", "total 4097", [](json::object& ch) { ch["total"] = 4097; });
  form("total-zero", "total 0", [](json::object& ch) { ch["total"] = 0; });
  form("transfer-id-not-uuid", "a transfer_id that is not a UUID v4", [](json::object& ch) { ch["transfer_id"] = "transfer-1"; });
  form("sha256-uppercase", "an upper-case sha256", [](json::object& ch) { ch["sha256"] = std::string(64, 'A'); });
  form("data-not-base64", "data that is not padded base64", [](json::object& ch) { ch["data"] = "not base64!"; });
  form("index-negative", "a negative index", [](json::object& ch) { ch["index"] = -1; });
  form("data-too-large", "a chunk of 256 KiB + 1 byte", [](json::object& ch) {
    ch["data"] = base64_encode(bytes(256 * 1024 + 1, 'x'));
  });
  out.push_back(bad_chunk("CHK-8/core-type", {"CHK-8"}, "original_msg_type handshake is CHUNK_ERROR",
                          [](json::object& ch) { ch["original_msg_type"] = "handshake"; }, errc::chunk_error));
  out.push_back(bad_chunk("CHK-8/unregistered-type", {"CHK-8", "MSG-1"}, "an unregistered original_msg_type is UNSUPPORTED_MESSAGE_TYPE on the first chunk",
                          [](json::object& ch) { ch["original_msg_type"] = "no_such_type"; }, errc::unsupported_message_type));
  out.push_back(bad_chunk("CHK-9/too-large", {"CHK-9"}, "total_size of 64 MiB + 1 is PAYLOAD_TOO_LARGE",
                          [](json::object& ch) { ch["total_size"] = 64 * 1024 * 1024 + 1; }, errc::payload_too_large));
  out.push_back(chunk_case("CHK-10/fifth-transfer", {"CHK-10"}, "the first chunk of a transfer beyond the per-sender limit is CHUNK_ERROR",
                           [](context& c, session_state& s) {
                             const auto limit = c.node.limit("max_transfers_per_peer");
                             for (std::int64_t i = 0; i < limit; ++i) expect_chunk_ack(c, s, three().chunks[0]);
                             expect_chunk_refused(c, s, three().chunks[0], errc::chunk_error, "CHK-10");
                           }));
  out.push_back(chunk_case("CHK-14/unauthenticated-chunk", {"CHK-14", "ENC-5"}, "a chunk with a bad tag touches no reassembly state",
                           [](context& c, session_state& s) {
                             auto t = three();
                             // A forged chunk 0 claiming other data: if it were stored, the genuine chunk 0 would conflict.
                             auto forged = t.chunks[0];
                             forged["data"] = base64_encode(as_bytes(std::string_view("forged")));
                             auto m = parse_object(send_chunk(c, s, forged));
                             auto b = *base64_decode(m["encrypted_payload"].as_string());
                             b.back() ^= 1;
                             m["encrypted_payload"] = base64_encode(b);
                             expect_refusal(c, canonical(m), errc::decryption_failed, "ENC-5");
                             // The refused message consumed no number (ENC-5), so the genuine chunk reuses
                             // it. A real sender must never seal two plaintexts under one number (ENC-4);
                             // here the second ciphertext is of a test payload in a throwaway session.
                             --s.next_out;
                             expect_chunk_ack(c, s, t.chunks[0]);
                             expect_chunk_ack(c, s, t.chunks[1]);
                             expect_delivery(c, s, t.chunks[2], original);
                           }));
  declare_needs(out, first_case, need::session);
}

}  // namespace peerproto::conformance
