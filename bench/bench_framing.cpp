// Framing: canonicalization, envelope parse + validate, serialize, sign + serialize, parse +
// verify, session seal and open of whole envelopes, and chunk split + reassembly; baselines
// boost::json::parse / serialize of the same bytes and memcpy, in the same binary. Also the peak
// heap memory of the receiving side of a transfer, counted by this binary's operator new.
#include <peerproto/chunking.hpp>
#include <peerproto/envelope.hpp>

#include <benchmark/benchmark.h>

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

// Heap accounting for chunk_reassembly_peak: while `counting`, the bytes allocated and not yet
// freed (as malloc_usable_size counts them) and their peak. Off, it costs one branch per call.
namespace heap {
bool counting = false;
std::size_t live = 0, peak = 0;
}  // namespace heap

void* operator new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (!p) throw std::bad_alloc();
  if (heap::counting) heap::peak = std::max(heap::peak, heap::live += malloc_usable_size(p));
  return p;
}
void operator delete(void* p) noexcept {
  if (p && heap::counting) heap::live -= std::min(heap::live, malloc_usable_size(p));
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }

namespace pp = peerproto;
namespace json = boost::json;

namespace {

const pp::jcs::parse_limits big{8 << 20, 32};

// A payload of about n bytes of typical JSON: records with strings, numbers and arrays.
json::object payload_of(std::size_t n) {
  json::array records;
  std::size_t size = 0;
  for (int i = 0; size < n; ++i) {
    json::object r{{"id", i}, {"name", "item-" + std::to_string(i)}, {"score", i * 0.5}, {"tags", json::array{"a", "b"}}};
    size += pp::jcs::canonicalize(r).size() + 1;
    records.push_back(std::move(r));
  }
  return {{"records", std::move(records)}};
}

const pp::crypto::ed25519_keypair& key() {
  static const pp::crypto::ed25519_keypair k(pp::crypto::random_array<32>());
  return k;
}

pp::envelope header() {
  pp::envelope e;
  e.version = "1.1";
  e.msg_type = "task_delegate";
  e.sender_id = "alice";
  e.recipient_id = "bob";
  e.timestamp = pp::make_timestamp(std::chrono::system_clock::now());
  e.nonce = pp::crypto::random_array<16>();
  return e;
}

pp::envelope envelope_of(std::size_t n) {
  auto e = header();
  e.payload = payload_of(n);
  pp::sign(e, key());
  return e;
}

const std::string& text_of(std::size_t n) {
  static std::map<std::size_t, std::string> cache;
  auto& t = cache[n];
  if (t.empty()) t = pp::serialize(envelope_of(n));
  return t;
}

void sizes(benchmark::internal::Benchmark* b) {
  for (long n : {100L, 1024L, 16L * 1024, 1024L * 1024}) b->Arg(n);
}
void bytes_done(benchmark::State& st, std::size_t n) { st.SetBytesProcessed(st.iterations() * static_cast<std::int64_t>(n)); }

void parse_peerproto(benchmark::State& st) {
  const auto& t = text_of(static_cast<std::size_t>(st.range(0)));
  for (auto _ : st) benchmark::DoNotOptimize(pp::parse_envelope(t, big));
  bytes_done(st, t.size());
}
void parse_boost(benchmark::State& st) {
  const auto& t = text_of(static_cast<std::size_t>(st.range(0)));
  for (auto _ : st) benchmark::DoNotOptimize(json::parse(t));
  bytes_done(st, t.size());
}
void canonicalize_peerproto(benchmark::State& st) {
  const auto& t = text_of(static_cast<std::size_t>(st.range(0)));
  const auto v = json::parse(t);
  for (auto _ : st) benchmark::DoNotOptimize(pp::jcs::canonicalize(v));
  bytes_done(st, t.size());
}
void serialize_peerproto(benchmark::State& st) {
  const auto e = envelope_of(static_cast<std::size_t>(st.range(0)));
  for (auto _ : st) benchmark::DoNotOptimize(pp::serialize(e));
  bytes_done(st, text_of(static_cast<std::size_t>(st.range(0))).size());
}
void serialize_boost(benchmark::State& st) {
  const auto& t = text_of(static_cast<std::size_t>(st.range(0)));
  const auto v = json::parse(t);
  for (auto _ : st) benchmark::DoNotOptimize(json::serialize(v));
  bytes_done(st, t.size());
}
void sign_serialize_peerproto(benchmark::State& st) {
  auto e = envelope_of(static_cast<std::size_t>(st.range(0)));
  for (auto _ : st) {
    pp::sign(e, key());
    benchmark::DoNotOptimize(pp::serialize(e));
  }
  bytes_done(st, text_of(static_cast<std::size_t>(st.range(0))).size());
}
void parse_verify_peerproto(benchmark::State& st) {
  const auto& t = text_of(static_cast<std::size_t>(st.range(0)));
  for (auto _ : st) {
    auto e = pp::parse_envelope(t, big);
    benchmark::DoNotOptimize(pp::verify_signature(*e, key().public_key_bytes()));
  }
  bytes_done(st, t.size());
}

pp::envelope session_header() {
  auto e = header();
  e.session_id = pp::make_uuid_v4(pp::crypto::random_array<16>());
  e.sequence_num = 1;
  return e;
}
const auto session_key = pp::crypto::random_array<32>();

void seal_envelope_peerproto(benchmark::State& st) {
  const auto payload = payload_of(static_cast<std::size_t>(st.range(0)));
  auto e = session_header();
  for (auto _ : st) {
    (void)pp::seal(e, session_key, payload);
    benchmark::DoNotOptimize(pp::serialize(e));
  }
  bytes_done(st, static_cast<std::size_t>(st.range(0)));
}
void open_envelope_peerproto(benchmark::State& st) {
  auto e = session_header();
  (void)pp::seal(e, session_key, payload_of(static_cast<std::size_t>(st.range(0))));
  const auto text = pp::serialize(e);
  for (auto _ : st) {
    auto parsed = pp::parse_envelope(text, big);
    benchmark::DoNotOptimize(pp::open(*parsed, session_key));
  }
  bytes_done(st, static_cast<std::size_t>(st.range(0)));
}

void chunk_roundtrip_peerproto(benchmark::State& st) {
  // {"blob":"xxx..."} of exactly N MiB of text, so 64 MiB is the largest transfer allowed.
  const json::object payload{{"blob", std::string((static_cast<std::size_t>(st.range(0)) << 20) - 11, 'x')}};
  const auto id = pp::make_uuid_v4(pp::crypto::random_array<16>());
  for (auto _ : st) {
    auto chunks = pp::split(payload, "task_delegate", pp::limits::max_chunk_data_bytes, id);
    if (!chunks) return st.SkipWithError(chunks.error().message.c_str());
    pp::reassembler r;
    for (auto& c : *chunks) benchmark::DoNotOptimize(r.add("alice", std::move(c), {}));
  }
  bytes_done(st, static_cast<std::size_t>(st.range(0)) << 20);
}
// The receiving side of an N MiB transfer: the sender's chunks are made first; then the heap
// bytes the reassembler holds, at their peak, while it takes each chunk (a fresh copy, as one
// parsed off the wire is) and parses the payload. Counter: peak_over_payload (target ≤ 2.5).
void chunk_reassembly_peak(benchmark::State& st) {
  const std::size_t size = static_cast<std::size_t>(st.range(0)) << 20;
  const json::object payload{{"blob", std::string(size - 11, 'x')}};
  const auto chunks = pp::split(payload, "task_delegate", pp::limits::max_chunk_data_bytes, pp::make_uuid_v4(pp::crypto::random_array<16>()));
  if (!chunks) return st.SkipWithError(chunks.error().message.c_str());
  double worst = 0;
  for (auto _ : st) {
    heap::live = heap::peak = 0;
    heap::counting = true;
    {
      pp::reassembler r;
      for (const auto& c : *chunks) {
        auto copy = c;
        auto out = r.add("alice", std::move(copy), {});
        if (!out) heap::counting = false;
        benchmark::DoNotOptimize(out);
      }
    }
    const bool complete = heap::counting;
    heap::counting = false;
    if (!complete) return st.SkipWithError("a chunk was refused");
    worst = std::max(worst, static_cast<double>(heap::peak) / static_cast<double>(size));
  }
  st.counters["peak_over_payload"] = worst;
  bytes_done(st, size);
}
void chunk_roundtrip_memcpy(benchmark::State& st) {
  const std::string src(static_cast<std::size_t>(st.range(0)) << 20, 'x');
  std::string dst(src.size(), '\0');
  for (auto _ : st) {
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::DoNotOptimize(dst.data());
  }
  bytes_done(st, src.size());
}

}  // namespace

BENCHMARK(parse_peerproto)->Name("parse_validate/peerproto")->Apply(sizes);
BENCHMARK(parse_boost)->Name("parse_validate/boost_json_parse")->Apply(sizes);
BENCHMARK(canonicalize_peerproto)->Name("canonicalize/peerproto")->Apply(sizes);
BENCHMARK(serialize_peerproto)->Name("serialize/peerproto")->Apply(sizes);
BENCHMARK(serialize_boost)->Name("serialize/boost_json_serialize")->Apply(sizes);
BENCHMARK(sign_serialize_peerproto)->Name("sign_serialize/peerproto")->Apply(sizes);
BENCHMARK(parse_verify_peerproto)->Name("parse_verify/peerproto")->Apply(sizes);
BENCHMARK(seal_envelope_peerproto)->Name("seal_envelope/peerproto")->Apply(sizes);
BENCHMARK(open_envelope_peerproto)->Name("open_envelope/peerproto")->Apply(sizes);
BENCHMARK(chunk_roundtrip_peerproto)->Name("chunk_split_reassemble/peerproto")->Arg(1)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond);
BENCHMARK(chunk_roundtrip_memcpy)->Name("chunk_split_reassemble/memcpy")->Arg(1)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond);
BENCHMARK(chunk_reassembly_peak)->Name("chunk_reassembly_peak/peerproto")->Arg(64)->Unit(benchmark::kMillisecond)->Iterations(2);

BENCHMARK_MAIN();
