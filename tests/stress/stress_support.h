// SPDX-License-Identifier: MIT
// Helpers of the stress and crash-loop suites: seeded randomness, self-checking frames, child processes, cleanup.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "shmx_client.h"
#include "shmx_common.h"
#include "shmx_server.h"

namespace shmx_stress {

// ------------------------------------------------------------------ randomness

// The run's seed: SHMX_SEED if set (to replay a failure), else a fresh one. Printed once by the caller.
uint64_t run_seed();

// splitmix64: small, fast, and the same sequence on every machine for a given seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi].
  uint64_t range(uint64_t lo, uint64_t hi) { return lo + next() % (hi - lo + 1); }
  bool chance(unsigned percent) { return next() % 100 < percent; }

 private:
  uint64_t state_;
};

// ------------------------------------------------------------------ time and environment

uint64_t now_ns();
void sleep_ns(uint64_t ns);
// An unsigned number from the environment, or `fallback`.
uint64_t env_u64(const char* name, uint64_t fallback);
// Seconds a time-bounded test runs: SHMX_STRESS_SECONDS if set, else `fallback`.
double stress_seconds(double fallback);

// ------------------------------------------------------------------ segment names and cleanup

// "rel-<pid>-<tag>": unique per controlling process; children are given the full name.
std::string segment_name(const std::string& tag);
// Unlinks every /dev/shm/shmx.rel-<pid>-* of this process (normal exit, failure, or a fatal signal).
void install_segment_cleanup();
void remove_own_segments();
// Names of /dev/shm entries that start with "shmx.rel-<pid>-".
std::vector<std::string> own_segments();

// ------------------------------------------------------------------ self-checking frames

// Stream 0 of every test frame: frame id, session id, a length and a seed, the pattern bytes, then an
// FNV-1a checksum of everything before it. A frame torn, misplaced or from another session fails.
struct FrameStamp {
  uint64_t frame_id;
  uint64_t session_id;
  uint32_t length;  // pattern bytes
  uint32_t salt;
};
inline constexpr size_t kFrameOverhead = sizeof(FrameStamp) + sizeof(uint64_t);
// Fills `out` (kFrameOverhead + length bytes) for this frame.
void encode_frame(uint8_t* out, uint64_t frame_id, uint64_t session_id, uint32_t length, uint32_t salt);
// Checks a frame returned by a Client. Returns "" if good, or what is wrong. `stamped_id`: the writer
// knew the frame id when it filled the slot (one committing thread); with several, it stamps 0.
std::string check_frame(const shmx::FrameView& view, uint64_t expected_session, bool stamped_id = true);

// Self-checking control messages (type kTlvUserBase + 1): a counter and its checksum.
inline constexpr uint16_t kTlvStressControl = shmx::kTlvUserBase + 1;
std::vector<uint8_t> encode_control(uint64_t counter, uint32_t length);
bool check_control(const std::vector<uint8_t>& value);

// Metadata whose every stream carries a checksum of itself: a torn or half-written copy fails.
std::vector<shmx::StreamInfo> make_metadata(uint64_t version, size_t streams);
std::string check_metadata(const shmx::Metadata& md);

// ------------------------------------------------------------------ probes: a child's state, kept across kill -9

// One per child, in a memfd shared by the controller and every child (inherited across exec).
// Children store their phase and counters with relaxed atomics; the controller reads them after the kill.
enum Phase : uint32_t {
  kPhaseStart = 0,   // process started, before anything else
  kPhaseCreate,      // Server::create / Client::open in progress
  kPhaseIdle,        // between operations
  kPhaseLoan,        // inside Server::loan
  kPhaseFill,        // filling a loaned slot (the slot's sequence is odd)
  kPhaseCommit,      // inside Server::commit
  kPhaseMetadata,    // inside Server::set_metadata
  kPhaseControl,     // Server::poll_control / reap_stale_readers, or Client::send
  kPhaseRead,        // Client::read_latest / wait_next
  kPhaseHolding,     // a reader holding at least one slot, between reads
  kPhaseBackoff,     // waiting after RingFull / NoFreeSlot
  kPhaseCount
};
const char* phase_name(uint32_t phase);

struct alignas(64) Probe {
  std::atomic<uint32_t> phase;
  std::atomic<uint32_t> ready;           // 1 once the child reached its main loop
  std::atomic<uint64_t> frames;          // frames committed (writer) or validated (reader)
  std::atomic<uint64_t> sessions;        // sessions seen (reader)
  std::atomic<uint64_t> errors;          // validation failures: torn/foreign frames, bad messages
  std::atomic<uint64_t> max_gap_ns;      // longest time without progress (writer: between commits)
  std::atomic<uint64_t> held;            // slots held now (reader)
  std::atomic<uint64_t> messages;        // control messages sent (reader) or received (writer)
  std::atomic<uint64_t> no_free_slot;    // loans refused (writer)
  std::atomic<uint64_t> reaped;          // readers reaped (writer)
  std::atomic<uint64_t> ring_resets;     // corrupt control rings reported by the library (writer)
  std::atomic<uint64_t> metadata_reads;  // metadata copies validated (reader)
  std::atomic<uint64_t> torn_rejected;   // reads the library detected as torn and retried (reader)
  std::atomic<uint64_t> unexpected;      // library errors outside the ones the scenario allows
  std::atomic<uint64_t> last_error_code; // shmx::Errc of the last unexpected error
  char detail[128];                      // first failure, for the log
};

class ProbeTable {
 public:
  // Controller: creates a table of `count` probes in a memfd that children inherit.
  static ProbeTable create(size_t count);
  // Child: maps the table passed as "--probes FD".
  static ProbeTable attach(int fd);
  ProbeTable() = default;
  Probe& at(size_t index) const { return probes_[index]; }
  size_t size() const { return count_; }
  int fd() const { return fd_; }
  void reset(size_t index) const;

 private:
  Probe* probes_ = nullptr;
  size_t count_ = 0;
  int fd_ = -1;
};
// Records the first failure in a probe (keeps the earliest message).
void probe_fail(Probe& probe, const std::string& what);

// ------------------------------------------------------------------ child processes

// Starts this same executable (/proc/self/exe) with `args`; the child inherits the probe memfd.
pid_t spawn_self(const std::vector<std::string>& args);
// Waits for `pid` up to `timeout_ns`; returns its wait status, or -1 (and SIGKILLs it) on timeout.
int wait_child(pid_t pid, uint64_t timeout_ns);
// SIGKILL and reap.
int kill9(pid_t pid);
// SIGTERM, then SIGKILL after `timeout_ns`; returns the wait status.
int stop_child(pid_t pid, uint64_t timeout_ns);
std::string describe_status(int status);
// True once SIGTERM/SIGINT arrived (children install this in their main loop).
void install_stop_handler();
bool stop_requested();

// ------------------------------------------------------------------ inspecting a live segment from outside

// A read-only mapping of a segment file, for the controller to observe reader slots and counters
// without being a reader. Nothing here takes a lock.
class SegmentView {
 public:
  bool open(const std::string& name);
  void close();
  ~SegmentView() { close(); }
  bool valid() const { return data_ != nullptr; }
  const shmx::GlobalHeader* header() const { return reinterpret_cast<const shmx::GlobalHeader*>(data_); }
  // Reader slot `index` (bounds-checked against the header; nullptr if out of range).
  const shmx::ReaderSlot* reader(uint32_t index) const;
  uint64_t frames_committed() const;
  uint64_t identity() const { return inode_; }

 private:
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  uint64_t inode_ = 0;
};

}  // namespace shmx_stress
