// SPDX-License-Identifier: MIT
// fuzz_replay.cpp: runs the fuzz target over files and directories without libFuzzer (corpus regression test).
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

size_t replay_path(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "fuzz_replay: cannot read %s\n", path.c_str());
    return 0;
  }
  if (S_ISDIR(st.st_mode)) {
    size_t count = 0;
    DIR* dir = opendir(path.c_str());
    while (dirent* e = dir ? readdir(dir) : nullptr) {
      if (e->d_name[0] != '.') count += replay_path(path + "/" + e->d_name);
    }
    if (dir) closedir(dir);
    return count;
  }
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  size_t count = 0;
  for (int i = 1; i < argc; ++i) count += replay_path(argv[i]);
  std::printf("fuzz_replay: %zu inputs ran without a crash\n", count);
  return count > 0 ? 0 : 1;
}
