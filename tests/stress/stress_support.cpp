// SPDX-License-Identifier: MIT
// Helpers of the stress and crash-loop suites (see stress_support.h).
#include "stress_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace shmx_stress {
namespace {

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void fill_words(uint8_t* out, size_t length, uint64_t key) {
  size_t i = 0;
  for (uint64_t k = 0; i + 8 <= length; ++k, i += 8) {
    const uint64_t w = mix(key ^ k);
    std::memcpy(out + i, &w, 8);
  }
  const uint64_t w = mix(key ^ 0xfeedull);
  for (size_t j = 0; i < length; ++i, ++j) out[i] = static_cast<uint8_t>(w >> (8 * j));
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Segment names this process created, unlinked by the cleanup even from a signal handler.
constexpr size_t kMaxTracked = 64;
char g_tracked[kMaxTracked][256];
std::atomic<size_t> g_tracked_count{0};

void unlink_tracked() {
  const size_t n = g_tracked_count.load();
  for (size_t i = 0; i < n && i < kMaxTracked; ++i) unlink(g_tracked[i]);  // async-signal-safe
}

void on_fatal_signal(int sig) {
  unlink_tracked();
  signal(sig, SIG_DFL);
  raise(sig);
}

volatile sig_atomic_t g_stop = 0;
void on_stop_signal(int) { g_stop = 1; }

}  // namespace

uint64_t run_seed() {
  static const uint64_t seed = []() -> uint64_t {
    if (const char* s = std::getenv("SHMX_SEED"); s && *s) return std::strtoull(s, nullptr, 0);
    return mix(now_ns() ^ (static_cast<uint64_t>(getpid()) << 32));
  }();
  return seed;
}

uint64_t now_ns() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void sleep_ns(uint64_t ns) {
  struct timespec ts {};
  ts.tv_sec = static_cast<time_t>(ns / 1000000000ull);
  ts.tv_nsec = static_cast<long>(ns % 1000000000ull);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_stop) {
  }
}

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* s = std::getenv(name);
  return s && *s ? std::strtoull(s, nullptr, 0) : fallback;
}

double stress_seconds(double fallback) {
  const char* s = std::getenv("SHMX_STRESS_SECONDS");
  return s && *s ? std::strtod(s, nullptr) : fallback;
}

// ------------------------------------------------------------------ names and cleanup

static std::string own_prefix() { return "rel-" + std::to_string(getpid()) + "-"; }

std::string segment_name(const std::string& tag) {
  const std::string name = own_prefix() + tag;
  const std::string path = "/dev/shm/shmx." + name;
  const size_t i = g_tracked_count.load();
  bool known = false;
  for (size_t j = 0; j < i && j < kMaxTracked; ++j) known = known || path == g_tracked[j];
  if (!known && i < kMaxTracked && path.size() < sizeof g_tracked[0]) {
    std::memcpy(g_tracked[i], path.c_str(), path.size() + 1);
    g_tracked_count.store(i + 1);
  }
  return name;
}

std::vector<std::string> own_segments() {
  std::vector<std::string> found;
  const std::string prefix = "shmx." + own_prefix();
  DIR* dir = opendir("/dev/shm");
  if (!dir) return found;
  while (dirent* e = readdir(dir))
    if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) found.emplace_back(e->d_name);
  closedir(dir);
  return found;
}

void remove_own_segments() {
  unlink_tracked();
  for (const std::string& entry : own_segments()) unlink(("/dev/shm/" + entry).c_str());
}

void install_segment_cleanup() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  std::atexit(remove_own_segments);
  for (int sig : {SIGINT, SIGTERM, SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) signal(sig, on_fatal_signal);
}

// ------------------------------------------------------------------ frames, control messages, metadata

void encode_frame(uint8_t* out, uint64_t frame_id, uint64_t session_id, uint32_t length, uint32_t salt) {
  FrameStamp stamp{frame_id, session_id, length, salt};
  std::memcpy(out, &stamp, sizeof stamp);
  fill_words(out + sizeof stamp, length, frame_id * 0x100000001b3ull ^ session_id ^ salt);
  const uint64_t sum = shmx::fnv1a64(out, sizeof stamp + length);
  std::memcpy(out + sizeof stamp + length, &sum, sizeof sum);
}

std::string check_frame(const shmx::FrameView& view, uint64_t expected_session, bool stamped_id) {
  if (view.header.session_id != expected_session)
    return "frame " + std::to_string(view.header.frame_id) + " of session " + hex64(view.header.session_id) +
           " returned to a reader of session " + hex64(expected_session);
  shmx::TlvView tlv;
  if (!view.stream_data(0, tlv)) return "frame " + std::to_string(view.header.frame_id) + " has no stream 0 TLV";
  if (tlv.length < kFrameOverhead) return "stream 0 TLV of " + std::to_string(tlv.length) + " bytes is too short";
  FrameStamp stamp;
  std::memcpy(&stamp, tlv.value, sizeof stamp);
  if ((stamped_id ? stamp.frame_id != view.header.frame_id : stamp.frame_id != 0) ||
      stamp.session_id != view.header.session_id)
    return "frame header says id " + std::to_string(view.header.frame_id) + " but its payload was written as id " +
           std::to_string(stamp.frame_id) + " (torn or misplaced)";
  if (uint64_t{stamp.length} + kFrameOverhead != tlv.length)
    return "payload length " + std::to_string(stamp.length) + " disagrees with its TLV of " + std::to_string(tlv.length);
  uint64_t sum;
  std::memcpy(&sum, tlv.value + sizeof stamp + stamp.length, sizeof sum);
  if (shmx::fnv1a64(tlv.value, sizeof stamp + stamp.length) != sum)
    return "frame " + std::to_string(stamp.frame_id) + ": payload checksum mismatch (torn frame)";
  return "";
}

std::vector<uint8_t> encode_control(uint64_t counter, uint32_t length) {
  std::vector<uint8_t> v(8 + length + 8);
  std::memcpy(v.data(), &counter, 8);
  fill_words(v.data() + 8, length, counter);
  const uint64_t sum = shmx::fnv1a64(v.data(), 8 + length);
  std::memcpy(v.data() + 8 + length, &sum, 8);
  return v;
}

bool check_control(const std::vector<uint8_t>& v) {
  if (v.size() < 16) return false;
  uint64_t sum;
  std::memcpy(&sum, v.data() + v.size() - 8, 8);
  return shmx::fnv1a64(v.data(), v.size() - 8) == sum;
}

std::vector<shmx::StreamInfo> make_metadata(uint64_t version, size_t streams) {
  std::vector<shmx::StreamInfo> out;
  for (size_t i = 0; i < streams; ++i) {
    shmx::StreamInfo s;
    s.name = "s" + std::to_string(i) + "-v" + std::to_string(version);
    s.type = "video/x-stress,version=(guint64)" + std::to_string(version) + ",stream=" + std::to_string(i);
    shmx::Extra extra;
    extra.key = static_cast<uint32_t>(version);
    extra.value.resize(512 + (mix(version ^ i) % 3000));
    fill_words(extra.value.data(), extra.value.size(), version * 131 + i);
    s.extras.push_back(extra);
    s.components.push_back({"c", shmx::DType::U8, static_cast<uint32_t>(extra.value.size())});
    std::string all = s.name + s.type;
    all.append(extra.value.begin(), extra.value.end());
    s.layout = hex64(shmx::fnv1a64(all.data(), all.size()));
    out.push_back(std::move(s));
  }
  return out;
}

std::string check_metadata(const shmx::Metadata& md) {
  if (md.streams.empty()) return "";  // a writer that has not set any yet
  uint64_t version = 0;
  for (size_t i = 0; i < md.streams.size(); ++i) {
    const shmx::StreamInfo& s = md.streams[i];
    if (s.extras.size() != 1) return "stream " + std::to_string(i) + " has " + std::to_string(s.extras.size()) + " extras";
    std::string all = s.name + s.type;
    all.append(s.extras[0].value.begin(), s.extras[0].value.end());
    if (s.layout != hex64(shmx::fnv1a64(all.data(), all.size())))
      return "stream " + std::to_string(i) + " (" + s.name + ") fails its checksum: torn metadata";
    if (i == 0) version = s.extras[0].key;
    if (s.extras[0].key != version) return "streams of different metadata versions in one copy";
  }
  return "";
}

// ------------------------------------------------------------------ probes

const char* phase_name(uint32_t phase) {
  static const char* const names[kPhaseCount] = {"start", "create/open", "idle", "loan", "fill",
                                                  "commit", "metadata", "control", "read", "holding", "backoff"};
  return phase < kPhaseCount ? names[phase] : "?";
}

ProbeTable ProbeTable::create(size_t count) {
  ProbeTable t;
  t.fd_ = memfd_create("shmx-stress-probes", 0);  // no CLOEXEC: children inherit it across exec
  if (t.fd_ < 0 || ftruncate(t.fd_, static_cast<off_t>(count * sizeof(Probe))) != 0) std::abort();
  void* p = mmap(nullptr, count * sizeof(Probe), PROT_READ | PROT_WRITE, MAP_SHARED, t.fd_, 0);
  if (p == MAP_FAILED) std::abort();
  t.probes_ = static_cast<Probe*>(p);
  t.count_ = count;
  return t;
}

ProbeTable ProbeTable::attach(int fd) {
  ProbeTable t;
  struct stat st {};
  if (fstat(fd, &st) != 0) std::abort();
  void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) std::abort();
  t.probes_ = static_cast<Probe*>(p);
  t.count_ = static_cast<size_t>(st.st_size) / sizeof(Probe);
  t.fd_ = fd;
  return t;
}

void ProbeTable::reset(size_t index) const { std::memset(static_cast<void*>(&probes_[index]), 0, sizeof(Probe)); }

void probe_fail(Probe& probe, const std::string& what) {
  if (probe.errors.fetch_add(1) == 0) {
    std::snprintf(probe.detail, sizeof probe.detail, "%s", what.c_str());
  }
  std::fprintf(stderr, "[pid %d] FAILURE: %s\n", static_cast<int>(getpid()), what.c_str());
}

// ------------------------------------------------------------------ child processes

pid_t spawn_self(const std::vector<std::string>& args) {
  std::vector<std::string> all;
  all.push_back("/proc/self/exe");
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Die with the controller, so a failed run leaves no orphan writing to /dev/shm.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(99);
    execv(argv[0], argv.data());
    _exit(98);
  }
  return pid;
}

int wait_child(pid_t pid, uint64_t timeout_ns) {
  const uint64_t deadline = now_ns() + timeout_ns;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -1;
    if (now_ns() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    sleep_ns(1'000'000);
  }
}

int kill9(pid_t pid) {
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

int stop_child(pid_t pid, uint64_t timeout_ns) {
  kill(pid, SIGTERM);
  return wait_child(pid, timeout_ns);
}

std::string describe_status(int status) {
  if (status == -1) return "did not exit in time (killed)";
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

void install_stop_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

bool stop_requested() { return g_stop != 0; }

// ------------------------------------------------------------------ SegmentView

bool SegmentView::open(const std::string& name) {
  close();
  const int fd = ::open(("/dev/shm/shmx." + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < sizeof(shmx::GlobalHeader)) {
    ::close(fd);
    return false;
  }
  void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);  // the mapping stays; no lock is ever taken on this descriptor
  if (p == MAP_FAILED) return false;
  data_ = static_cast<uint8_t*>(p);
  size_ = static_cast<uint64_t>(st.st_size);
  inode_ = static_cast<uint64_t>(st.st_ino);
  return true;
}

void SegmentView::close() {
  if (data_) munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

const shmx::ReaderSlot* SegmentView::reader(uint32_t index) const {
  if (!data_) return nullptr;
  const shmx::GlobalHeader* h = header();
  if (index >= h->reader_capacity) return nullptr;
  const uint64_t at = h->reader_region_offset + sizeof(shmx::ReaderTableHeader) + uint64_t{index} * h->reader_stride;
  if (h->reader_region_offset > size_ || at + sizeof(shmx::ReaderSlot) > size_) return nullptr;
  return reinterpret_cast<const shmx::ReaderSlot*>(data_ + at);
}

uint64_t SegmentView::frames_committed() const {
  return data_ ? header()->frames_committed.load(std::memory_order_relaxed) : 0;
}

}  // namespace shmx_stress
