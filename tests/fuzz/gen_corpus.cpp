// SPDX-License-Identifier: MIT
// gen_corpus.cpp: writes the seed corpus of fuzz_segment: real segments in interesting states, made by the library.
//
// Usage: fuzz_gen_corpus DIR. Each seed is a FuzzPrefix plus the bytes of a live segment, captured from
// /dev/shm while its writer (and a reader) are still attached. Segments are small (3-4 slots of one
// page, one or two readers, 256-byte rings). Seeds that let the harness repair the geometry have their
// trailing zero bytes cut (the harness zero-fills up to the size the header implies).
// The corpus in tests/fuzz/corpus is this program's output; regenerate it after a layout change.
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_segment.h"
#include "shmx_client.h"
#include "shmx_server.h"

namespace {

using namespace shmx;
using namespace shmx_fuzz;

std::string g_dir;
int g_written = 0;

std::vector<uint8_t> capture(const std::string& name) {
  std::ifstream in("/dev/shm/shmx." + name, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_seed(const std::string& seed, std::vector<uint8_t> image, uint8_t flags, uint8_t client_flags) {
  if (flags & kFixGeometry) {
    while (!image.empty() && image.back() == 0) image.pop_back();
  }
  FuzzPrefix prefix{flags, client_flags, 0, 0};
  std::ofstream out(g_dir + "/" + seed, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(&prefix), sizeof prefix);
  out.write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
  std::printf("%-24s %6zu bytes\n", seed.c_str(), sizeof prefix + image.size());
  ++g_written;
}

ServerOptions small(uint32_t slots = 3, uint32_t readers = 1, uint32_t ring = 256) {
  ServerOptions o;
  o.slot_count = slots;
  o.slot_payload_capacity = 4096 - sizeof(FrameHeader);
  o.reader_capacity = readers;
  o.control_ring_capacity = ring;
  o.metadata_capacity = 1024;
  o.reader_timeout_ms = 1000;
  return o;
}

std::vector<StreamInfo> streams() {
  StreamInfo video{"video0", "video/x-raw,format=RGBA,width=4,height=2", "row-major RGBA 4x2 stride 16",
                   {{"rgba", DType::U8, 32}}, {{7, {1, 2, 3}}}};
  StreamInfo tick{"tick", "application/x-tick", "", {{"count", DType::U64, 1}, {"time", DType::F64, 1}}, {}};
  return {video, tick};
}

void publish_frames(Server& server, int count) {
  for (int i = 0; i < count; ++i) {
    uint8_t video[32];
    std::memset(video, 0x40 + i, sizeof video);
    const uint64_t tick = static_cast<uint64_t>(i);
    auto loan = server.loan();
    if (!loan) return;
    auto dst = loan->tlvs().reserve(kTlvStreamData, 0, sizeof video, kPayloadAlignment);
    if (dst) std::memcpy(*dst, video, sizeof video);
    (void)loan->tlvs().append(kTlvStreamData, 1, &tick, sizeof tick);
    const char note[] = "app";
    (void)loan->tlvs().append(kTlvUserBase + 2, 0, note, sizeof note);
    (void)server.commit(std::move(loan).value(), FrameInfo{1000u * static_cast<uint64_t>(i), 0});
  }
}

ClientOptions quiet_reader() {
  ClientOptions o;
  o.reader_name = "seed-reader";
  o.heartbeat_thread = false;
  return o;
}

// Runs `build` against a fresh segment and captures it while everything is still attached.
void make(const std::string& seed, const ServerOptions& options, uint8_t flags, uint8_t client_flags,
          const std::function<void(Server&, const std::string&)>& build,
          const std::function<void(std::vector<uint8_t>&)>& edit = nullptr) {
  const std::string name = "fuzzseed-" + std::to_string(getpid()) + "-" + seed;
  auto server = Server::create(name, options, streams());
  if (!server) {
    std::fprintf(stderr, "%s: %s\n", seed.c_str(), server.status().to_string().c_str());
    return;
  }
  build(*server, name);
  std::vector<uint8_t> image = capture(name);
  if (edit) edit(image);
  write_seed(seed, std::move(image), flags, client_flags);
  server->close();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  g_dir = argv[1];
  const uint8_t all = kFixAll;

  make("empty", small(), all, 1, [](Server&, const std::string&) {});
  make("frames", small(), all | kServerPass, 1, [](Server& s, const std::string&) { publish_frames(s, 5); });
  make("frames-raw", small(), 0, 0, [](Server& s, const std::string&) { publish_frames(s, 2); });
  make("frames-locked", small(), kHoldWriterLock, 2, [](Server& s, const std::string&) { publish_frames(s, 2); });
  make("eos", small(), all, 1, [](Server& s, const std::string&) {
    publish_frames(s, 1);
    (void)s.publish_eos();
  });
  // A reader registered, holding a slot, with HELLO, a heartbeat and a user message unread in its ring.
  Client holder;
  HoldToken hold;
  make("reader-holding", small(4, 2), all | kServerPass, 1 | (2 << 1), [&](Server& s, const std::string& name) {
    publish_frames(s, 3);
    if (!holder.open(name, quiet_reader())) return;
    auto f = holder.read_latest(ReadMode::Hold);
    if (f && f->held) hold = f->hold;
    const char msg[] = "force-key-unit";
    (void)holder.send(kTlvUserBase + 5, msg, sizeof msg);
    (void)holder.send_heartbeat();
    publish_frames(s, 1);
  });
  Client::release(hold);
  holder.close();
  // A control ring whose positions wrapped, with messages left unread.
  Client sender;
  make("ring-wrapped", small(3, 1, 256), all | kServerPass, 1, [&](Server& s, const std::string& name) {
    if (!sender.open(name, quiet_reader())) return;
    const uint8_t value[40] = {1, 2, 3};
    for (int i = 0; i < 23; ++i) {
      (void)sender.send(kTlvUserBase + 1, value, sizeof value - (i % 7));
      if (i % 3 == 0) s.poll_control(nullptr);
    }
    publish_frames(s, 4);
  });
  sender.close();
  make("metadata-odd", small(), all, 1, [](Server& s, const std::string&) { publish_frames(s, 1); },
       [](std::vector<uint8_t>& image) { image[sizeof(GlobalHeader)] |= 1; });  // the seqlock mid-update
  make("closed", small(), kFixIdentity | kFixGeometry | kHoldWriterLock | kFixSession, 1,
       [](Server& s, const std::string&) { publish_frames(s, 2); },
       [](std::vector<uint8_t>& image) { image[offsetof(GlobalHeader, state)] = static_cast<uint8_t>(SegmentState::Closed); });
  make("more-slots", small(8, 4, 1024), all | kServerPass, 1 | 8, [](Server& s, const std::string&) { publish_frames(s, 11); });

  return g_written > 0 ? 0 : 1;
}
