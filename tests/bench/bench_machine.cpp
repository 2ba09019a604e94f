// SPDX-License-Identifier: MIT
// bench_machine.cpp: memcpy bandwidth and the futex ping-pong between two processes.
#include "bench_machine.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace bench {

MemcpyResult measure_memcpy(size_t bytes, int runs) {
  MemcpyResult result;
  result.bytes = bytes;
  result.runs = runs;
  // Two separate mappings, written once so that every page is backed (a copy from never-touched
  // anonymous memory would read the shared zero page and look far faster than DRAM).
  std::vector<unsigned char> source(bytes), destination(bytes);
  for (size_t i = 0; i < bytes; ++i) source[i] = static_cast<unsigned char>(i * 131u);
  std::memset(destination.data(), 1, bytes);

  std::vector<double> times;
  times.reserve(static_cast<size_t>(runs));
  for (int run = 0; run < runs; ++run) {
    const uint64_t start = now_ns();
    std::memcpy(destination.data(), source.data(), bytes);
    const uint64_t end = now_ns();
    times.push_back(static_cast<double>(end - start));
    // Keep the copy observable so that it cannot be elided.
    source[static_cast<size_t>(run) % bytes] ^= destination[bytes - 1 - static_cast<size_t>(run) % bytes];
  }
  result.median_ns = median(times);
  result.gbytes_per_s = result.median_ns > 0 ? static_cast<double>(bytes) / result.median_ns : 0;
  return result;
}

namespace {

// Both words are futexes shared between the two processes (so not FUTEX_PRIVATE_FLAG).
struct PingPong {
  std::atomic<uint32_t> ping;  // bumped by the parent to wake the child
  std::atomic<uint32_t> pong;  // bumped by the child to answer
  std::atomic<uint64_t> stamp_ns;
  std::atomic<int32_t> stop;
};
static_assert(std::atomic<uint32_t>::is_always_lock_free && std::atomic<uint64_t>::is_always_lock_free);

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, nullptr, nullptr, 0);
}

void futex_wake(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

}  // namespace

FutexResult measure_futex_wakeup(uint64_t gap_ns, int rounds, FutexPlacement placement) {
  FutexResult result;
  result.gap_ns = gap_ns;
  result.placement = placement;
  // Pinning is undone before returning: the parent gets its own affinity back.
  cpu_set_t saved;
  CPU_ZERO(&saved);
  if (sched_getaffinity(0, sizeof saved, &saved) != 0) return result;
  int parent_cpu = -1, child_cpu = -1;
  if (placement != FutexPlacement::Free) {
    if (!CPU_ISSET(0, &saved) || (placement == FutexPlacement::OtherCpus && !CPU_ISSET(1, &saved)))
      return result;
    parent_cpu = 0;
    child_cpu = placement == FutexPlacement::OtherCpus ? 1 : 0;
  }
  const auto pin = [](int cpu) {
    if (cpu < 0) return true;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return sched_setaffinity(0, sizeof one, &one) == 0;
  };
  const size_t bytes = sizeof(PingPong) + sizeof(uint64_t) * static_cast<size_t>(rounds);
  void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return result;
  // The child inherits the CPU it is pinned to; the parent moves to its own CPU after the fork.
  if (!pin(child_cpu)) {
    munmap(memory, bytes);
    return result;
  }
  auto* shared = new (memory) PingPong{};
  auto* samples = reinterpret_cast<uint64_t*>(static_cast<unsigned char*>(memory) + sizeof(PingPong));

  const pid_t child = fork();
  if (child < 0) {
    sched_setaffinity(0, sizeof saved, &saved);
    munmap(memory, bytes);
    return result;
  }
  if (child == 0) {
    // The waiting side: sleep until the parent bumps `ping`, stamp the wake-up, answer.
    uint32_t seen = 0;
    for (int round = 0; round < rounds; ++round) {
      // seq_cst on the words: the stamp written before the bump is visible after it.
      while (shared->ping.load() == seen) futex_wait(&shared->ping, seen);
      samples[round] = now_ns() - shared->stamp_ns.load();
      seen = shared->ping.load();
      shared->pong.fetch_add(1);
      futex_wake(&shared->pong);
    }
    _exit(0);
  }

  const bool placed = pin(parent_cpu);
  uint32_t answers = 0;
  for (int round = 0; round < rounds; ++round) {
    if (gap_ns) sleep_until_ns(now_ns() + gap_ns);
    shared->stamp_ns.store(now_ns());
    shared->ping.fetch_add(1);
    futex_wake(&shared->ping);
    while (shared->pong.load() == answers) futex_wait(&shared->pong, answers);
    answers = shared->pong.load();
  }
  int status = 0;
  waitpid(child, &status, 0);
  sched_setaffinity(0, sizeof saved, &saved);
  result.measured = placed && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (result.measured) result.wake = summarize(std::vector<uint64_t>(samples, samples + rounds));
  munmap(memory, bytes);
  return result;
}

}  // namespace bench
