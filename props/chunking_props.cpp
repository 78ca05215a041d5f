#include <peerproto/chunking.hpp>

#include <peerproto/testing/generators.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace pp = peerproto;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {
const pp::sys_milliseconds t0{};

// A payload whose JSON text is about `size` bytes.
json::object payload_of_size(std::size_t size, std::uint8_t fill) {
  return json::object{{"blob", std::string(size, static_cast<char>('a' + fill % 26))}};
}

// Chunks in an arbitrary order with some duplicated.
std::vector<pp::chunk> shuffled_with_duplicates(std::vector<pp::chunk> chunks) {
  const auto dups = *rc::gen::container<std::vector<std::size_t>>(rc::gen::inRange<std::size_t>(0, chunks.size()));
  for (auto i : dups) chunks.push_back(chunks[i]);
  for (std::size_t i = chunks.size(); i > 1; --i)  // Fisher-Yates with generated choices
    std::swap(chunks[i - 1], chunks[*rc::gen::inRange<std::size_t>(0, i)]);
  return chunks;
}
}  // namespace

RC_GTEST_PROP(Chunking, AnyOrderWithDuplicatesReassemblesTheOriginalExactly, ()) {
  // Mostly small payloads, sometimes several MiB.
  const auto size = *rc::gen::weightedOneOf<std::size_t>({{8, rc::gen::inRange<std::size_t>(0, 5000)},
                                                          {1, rc::gen::inRange<std::size_t>(0, 3 << 20)}});
  const auto payload = payload_of_size(size, *rc::gen::arbitrary<std::uint8_t>());
  const auto text_size = pp::jcs::canonicalize(payload).size();
  const auto min_chunk = std::max<std::size_t>(1, (text_size + 4095) / 4096);
  const auto chunk_size = *rc::gen::inRange<std::size_t>(min_chunk, pp::limits::max_chunk_data_bytes + 1);
  auto chunks = pp::split(payload, "task_delegate", chunk_size, pp::make_uuid_v4(*pp::gen::byte_array<16>()));
  RC_ASSERT(chunks.ok());
  const auto order = shuffled_with_duplicates(*chunks);

  pp::reassembler r;
  std::size_t arrived = 0, completed = 0;
  for (const auto& c : order) {
    const bool last_missing = completed == 0;
    auto out = r.add("alice", c, t0);
    RC_ASSERT(out.ok());
    if (out->what == pp::reassembler::outcome::kind::stored) arrived += c.data.size();
    if (out->what == pp::reassembler::outcome::kind::complete) {
      RC_ASSERT(last_missing);
      RC_ASSERT(*out->payload == payload);
      RC_ASSERT(out->original_msg_type == "task_delegate");
      ++completed;
      arrived = 0;
    }
    RC_ASSERT(r.bytes_held() <= arrived);  // memory only for data that arrived (CHK-12)
  }
  RC_ASSERT(completed == 1u);  // late duplicates are acknowledged, never delivered again
  RC_ASSERT(r.transfers() == 0u);
}

RC_GTEST_PROP(Chunking, AnyCorruptedOrConflictingChunkIsAChunkErrorAndDeliversNothing, ()) {
  const auto payload = payload_of_size(*rc::gen::inRange<std::size_t>(1, 20000), 1);
  auto chunks = *pp::split(payload, "status_report", *rc::gen::inRange<std::size_t>(64, 4096),
                           pp::make_uuid_v4(*pp::gen::byte_array<16>()));
  const auto victim = *rc::gen::inRange<std::size_t>(0, chunks.size());
  pp::chunk bad = chunks[victim];
  const auto how = *rc::gen::inRange(0, 5);
  switch (how) {
    case 0:
      RC_PRE(!bad.data.empty());
      bad.data[*rc::gen::inRange<std::size_t>(0, bad.data.size())] ^= 1;
      break;
    case 1: bad.sha256[0] ^= 1; break;
    case 2: bad.total_size += 1; break;
    case 3: bad.original_msg_type = "heartbeat"; break;
    default: bad.data.push_back('x'); break;
  }
  // The corrupted chunk arrives in place of the original, or before it (a conflict). It cannot
  // come after the original: a transfer that already completed correctly has nothing to detect.
  const bool also_original = *rc::gen::arbitrary<bool>();
  // A lone chunk relabelled with another type is self-consistent: only its signature or session
  // tag protects it, so it is not a reassembly error.
  RC_PRE(!(how == 3 && chunks.size() == 1));
  auto order = chunks;
  if (also_original) order.insert(order.begin() + static_cast<std::ptrdiff_t>(victim), bad);
  else order[victim] = bad;
  pp::reassembler r;
  bool error_seen = false;
  for (const auto& c : order) {
    auto out = r.add("alice", c, t0);
    if (!out) {
      RC_ASSERT(out.code() == pp::errc::chunk_error);
      error_seen = true;
      break;
    }
    RC_ASSERT(out->what != pp::reassembler::outcome::kind::complete);  // nothing delivered
  }
  RC_ASSERT(error_seen);
  RC_ASSERT(r.bytes_held() == 0u);
  RC_ASSERT(r.transfers() == 0u);
}

TEST(Chunking, PayloadCodecRules) {
  const auto c = pp::split(json::object{{"x", 1}}, "ping", 4, pp::make_uuid_v4({}))->front();
  auto ok = pp::to_json(c);
  EXPECT_TRUE(pp::parse_chunk(ok).ok());
  auto missing = ok;
  missing.erase("sha256");
  EXPECT_EQ(pp::parse_chunk(missing).code(), pp::errc::missing_fields);
  auto extra = ok;
  extra["x"] = 1;
  EXPECT_EQ(pp::parse_chunk(extra).code(), pp::errc::chunk_error);
  auto index = ok;
  index["index"] = index["total"];
  EXPECT_EQ(pp::parse_chunk(index).code(), pp::errc::chunk_error);
  auto big = ok;
  big["total_size"] = pp::limits::max_transfer_bytes + 1;
  EXPECT_EQ(pp::parse_chunk(big).code(), pp::errc::payload_too_large);
  auto core = ok;
  core["original_msg_type"] = "handshake";
  EXPECT_EQ(pp::parse_chunk(core).code(), pp::errc::chunk_error);
  auto many = ok;
  many["total"] = pp::limits::max_chunks_per_transfer + 1;
  EXPECT_EQ(pp::parse_chunk(many).code(), pp::errc::chunk_error);
  auto data = ok;
  data["data"] = pp::base64_encode(pp::bytes(pp::limits::max_chunk_data_bytes + 1));
  EXPECT_EQ(pp::parse_chunk(data).code(), pp::errc::chunk_error);
}

TEST(Chunking, TransferLimitsAndIdleExpiry) {
  pp::reassembly_options opt;
  opt.max_transfers_per_peer = 2;
  opt.max_total_bytes = 100;
  pp::reassembler r(opt);
  const auto first_chunk = [](std::uint8_t id, std::size_t size) {
    std::array<std::uint8_t, 16> b{};
    b[0] = id;
    return pp::split(json::object{{"b", std::string(size, 'x')}}, "ping", 10, pp::make_uuid_v4(b))->front();
  };
  EXPECT_TRUE(r.add("alice", first_chunk(1, 50), t0).ok());
  EXPECT_TRUE(r.add("alice", first_chunk(2, 50), t0).ok());
  EXPECT_EQ(r.add("alice", first_chunk(3, 50), t0).code(), pp::errc::chunk_error);  // CHK-10
  EXPECT_TRUE(r.add("bob", first_chunk(3, 50), t0).ok());                          // per sender
  EXPECT_EQ(r.bytes_held(), 30u);
  for (std::uint8_t i = 10; i < 17; ++i) EXPECT_TRUE(r.add("carol" + std::to_string(i), first_chunk(i, 50), t0).ok());
  EXPECT_EQ(r.add("dave", first_chunk(20, 50), t0).code(), pp::errc::rate_limited);  // CHK-13
  EXPECT_EQ(r.next_deadline(), t0 + 300s);
  EXPECT_EQ(r.expire(t0 + 299s), 0u);
  EXPECT_EQ(r.expire(t0 + 300s), 10u);  // CHK-11
  EXPECT_EQ(r.bytes_held(), 0u);
}

TEST(Chunking, EmptyPayloadTextIsOneChunk) {
  const auto chunks = pp::split(json::object{}, "ping", 1000, pp::make_uuid_v4({}));
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 1u);
  pp::reassembler r;
  const auto out = r.add("a", chunks->front(), t0);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->what, pp::reassembler::outcome::kind::complete);
  EXPECT_TRUE(out->payload->empty());
}

TEST(Chunking, LateDuplicateOfACompletedTransferIsNotDeliveredAgain) {
  pp::reassembly_options opt;
  opt.max_completed = 2;
  pp::reassembler r(opt);
  const auto one = [](std::uint8_t id) {
    std::array<std::uint8_t, 16> b{};
    b[0] = id;
    return pp::split(json::object{{"n", id}}, "ping", 100, pp::make_uuid_v4(b))->front();
  };
  EXPECT_EQ(r.add("a", one(1), t0)->what, pp::reassembler::outcome::kind::complete);
  EXPECT_EQ(r.add("a", one(1), t0 + 1s)->what, pp::reassembler::outcome::kind::duplicate);
  EXPECT_EQ(r.add("a", one(1), t0 + 299s)->what, pp::reassembler::outcome::kind::duplicate);
  EXPECT_EQ(r.add("a", one(2), t0 + 2s)->what, pp::reassembler::outcome::kind::complete);
  EXPECT_EQ(r.add("a", one(3), t0 + 3s)->what, pp::reassembler::outcome::kind::complete);  // bound: 1 forgotten
  EXPECT_EQ(r.add("a", one(3), t0 + 4s)->what, pp::reassembler::outcome::kind::duplicate);
  EXPECT_EQ(r.add("a", one(1), t0 + 5s)->what, pp::reassembler::outcome::kind::complete);
}

// CHK-4, CHK-7: a transfer counts as delivered only once its payload is handed on. Bytes that do
// not parse as a JSON object drop the transfer (the same chunks again fail again, they are not
// acknowledged as duplicates), and a payload the handler refused can be sent again (CHK-16).
TEST(Chunking, OnlyAPayloadHandedOnCountsAsCompleted) {
  pp::reassembler r;
  const auto id = pp::make_uuid_v4({7});
  const std::string text = R"({"not": json)";
  const auto plan = pp::plan_transfer(text, "ping", 4, id);
  ASSERT_TRUE(plan.ok());
  for (int round = 0; round < 2; ++round) {
    for (std::uint32_t i = 0; i + 1 < plan->total; ++i) EXPECT_EQ(r.add("a", plan->piece(text, i), t0)->what, pp::reassembler::outcome::kind::stored);
    const auto last = r.add("a", plan->piece(text, plan->total - 1), t0);
    ASSERT_FALSE(last.ok()) << "round " << round;
    EXPECT_EQ(last.code(), pp::errc::chunk_error);
  }
  const std::string good = R"({"n":1})";
  const auto p2 = pp::plan_transfer(good, "ping", 100, id);
  EXPECT_EQ(r.add("a", p2->piece(good, 0), t0)->what, pp::reassembler::outcome::kind::complete);
  r.forget_completed("a", id);  // the handler refused it
  EXPECT_EQ(r.add("a", p2->piece(good, 0), t0)->what, pp::reassembler::outcome::kind::complete);
  EXPECT_EQ(r.add("a", p2->piece(good, 0), t0)->what, pp::reassembler::outcome::kind::duplicate);
}
