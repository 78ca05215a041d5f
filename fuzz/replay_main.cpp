// Runs a libFuzzer target over files and folders of inputs, so ordinary (gcc, sanitizer) builds
// replay every seed as a regression test. Fails when given nothing to run: an empty corpus must
// not pass silently.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
// Optional: a stateful target prints what its inputs reached.
extern "C" __attribute__((weak)) void peerproto_fuzz_summary();

namespace {
int run_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  int count = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg = argv[i];
    if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::recursive_directory_iterator(arg))
        if (entry.is_regular_file() && entry.path().extension() != ".dict") count += run_file(entry.path());
    } else if (std::filesystem::is_regular_file(arg)) {
      count += run_file(arg);
    } else {
      std::fprintf(stderr, "%s: no such file or folder\n", argv[i]);
      return 2;
    }
  }
  std::printf("replayed %d inputs\n", count);
  if (peerproto_fuzz_summary) peerproto_fuzz_summary();
  return count > 0 ? 0 : 1;
}
