// The reassembler as a state machine: a payload and chunk size come from the input, then a
// program of "deliver chunk i", "deliver chunk i corrupted", "deliver chunk i from another
// sender" and "advance the clock". Oracles: the payload is delivered only intact, and at most once
// per sender while the completion is remembered (the idle timeout, CHK-4); memory held never
// exceeds the bytes that arrived. Replay mode prints how many transfers completed and expired.
#include <peerproto/chunking.hpp>

#include <peerproto/testing/input_stream.hpp>

#include <cstdio>
#include <cstdlib>

namespace {
std::size_t completed = 0, expired = 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  peerproto::testing::input_stream in(data, size);
  boost::json::object payload{{"blob", in.bytes(4096)}};
  const std::size_t chunk_size = 1 + in.u16() % 512;
  std::array<std::uint8_t, 16> id{};
  id[0] = in.byte();
  auto chunks = peerproto::split(payload, "ping", chunk_size, peerproto::make_uuid_v4(id));
  if (!chunks) return 0;  // not valid UTF-8, or too many chunks: split refuses
  peerproto::reassembly_options opt;
  opt.max_total_bytes = 8192;
  peerproto::reassembler r(opt);
  peerproto::sys_milliseconds now{};
  std::size_t arrived = 0;
  std::optional<peerproto::sys_milliseconds> delivered_at[2];
  while (!in.empty()) {
    const auto op = in.byte();
    if (op >= 0xF0) {
      now += std::chrono::seconds((op & 0x0f) * 40);
      const auto before = r.transfers();
      r.expire(now);
      expired += before - r.transfers();
      if (r.transfers() == 0) arrived = 0;
      continue;
    }
    auto c = (*chunks)[in.u16() % chunks->size()];
    const int sender = op & 1;
    if (op & 2) {
      if (!c.data.empty()) {
        const auto at = in.u16() % c.data.size();
        c.data[at] = static_cast<std::uint8_t>(c.data[at] ^ (1 | in.byte()));
      }
      else c.total_size += 1;
    }
    const auto before = r.bytes_held();
    const auto out = r.add(sender ? "bob" : "alice", c, now);
    if (out && out->what == peerproto::reassembler::outcome::kind::stored) arrived += r.bytes_held() - before;
    if (out && out->what == peerproto::reassembler::outcome::kind::complete) {
      if (*out->payload != payload) std::abort();
      if (delivered_at[sender] && now - *delivered_at[sender] < opt.idle_timeout) std::abort();
      delivered_at[sender] = now;
      ++completed;
    }
    if (r.bytes_held() > arrived) std::abort();
  }
  return 0;
}

extern "C" void peerproto_fuzz_summary() { std::printf("transfers completed: %zu, expired: %zu\n", completed, expired); }
