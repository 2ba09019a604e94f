// SPDX-License-Identifier: MIT
// fuzz_segment.cpp: libFuzzer target: a reader (and a writer's control plane) over arbitrary segment bytes.
//
// Every input becomes a real shared-memory object (/dev/shm/shmx.fuzz-<pid>) that inspect_segment()
// reads and a Client opens and reads through its whole path: open (header checks, geometry), metadata(), read_latest in Copy and
// Hold mode, wait_next with a tiny timeout, TLV iteration of every payload, send() and heartbeats on
// its control ring. The same bytes also go straight to decode_metadata, TlvReader and
// validate_header. With kServerPass, a real Server's reader slots and control rings (and the
// writer-side counters of its header) are overwritten from the input, then poll_control,
// reap_stale_readers, readers(), stats(), loan/commit and set_metadata run over them.
// Input format: tests/fuzz/fuzz_segment.h. Seeds: tests/fuzz/corpus (from gen_corpus).
#include "fuzz_segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "shmx_client.h"
#include "shmx_inspect.h"
#include "shmx_server.h"

namespace shmx_fuzz {
namespace {

using namespace shmx;

constexpr uint64_t kMaxSegment = 1 << 20;

volatile uint8_t g_sink;

void touch(const uint8_t* data, size_t size) {
  if (size) g_sink = static_cast<uint8_t>(g_sink + data[0] + data[size - 1]);
}

void walk_tlvs(const uint8_t* data, size_t size) {
  TlvReader reader(data, size);
  TlvView tlv;
  while (reader.next(tlv)) touch(tlv.value, tlv.length);
  TlvView found;
  if (find_tlv(data, size, kTlvStreamData, 0, found)) touch(found.value, found.length);
}

void use_frame(Result<FrameView>& f) {
  if (!f) return;
  touch(reinterpret_cast<const uint8_t*>(&f->header), sizeof f->header);
  walk_tlvs(f->payload, f->payload_size);
  TlvView data;
  if (f->stream_data(0, data)) touch(data.value, data.length);
  if (f->held) Client::release(f->hold);
}

// Clamps the layout parameters found in the header to small valid ones (keeping those already
// valid, so that real segments from the corpus stay as they are) and recomputes every offset and the
// total size from them. Returns the size the segment must have.
uint64_t fix_geometry(GlobalHeader& h) {
  const uint32_t slots = h.slot_count >= 3 && h.slot_count <= 8 ? h.slot_count : 3 + h.slot_count % 6;
  const uint64_t payload = h.slot_stride >= 4096 && h.slot_stride <= 3 * 4096 && h.slot_stride % 4096 == 0
                               ? h.slot_stride - sizeof(FrameHeader)
                               : 1 + h.slot_stride % (3 * 4096 - sizeof(FrameHeader));
  const uint32_t readers = h.reader_capacity >= 1 && h.reader_capacity <= 4 ? h.reader_capacity : 1 + h.reader_capacity % 4;
  const uint32_t ring = h.control_ring_capacity == 256 || h.control_ring_capacity == 512 || h.control_ring_capacity == 1024
                            ? h.control_ring_capacity
                            : 256u << (h.control_ring_capacity % 3);
  const uint64_t metadata = h.metadata_capacity >= 1024 && h.metadata_capacity <= 5120 ? h.metadata_capacity
                                                                                        : 1024 + h.metadata_capacity % 4096;
  auto plan = plan_layout(slots, payload, readers, ring, metadata);
  if (!plan) return 0;
  const LayoutPlan& p = *plan;
  h.metadata_offset = p.metadata_offset;
  h.metadata_capacity = p.metadata_capacity;
  h.slot_control_offset = p.slot_control_offset;
  h.slot_count = p.slot_count;
  h.slot_stride = p.slot_stride;
  h.slots_offset = p.slots_offset;
  h.slot_payload_capacity = p.slot_stride - sizeof(FrameHeader);
  h.reader_region_offset = p.reader_region_offset;
  h.reader_capacity = p.reader_capacity;
  h.reader_stride = p.reader_stride;
  h.control_ring_capacity = p.control_ring_capacity;
  h.total_size = p.total_size;
  return p.total_size;
}

// The raw bytes, straight into the decoders that take untrusted buffers.
void decode_directly(const uint8_t* data, size_t size) {
  auto md = decode_metadata(data, size);
  if (md) g_sink = static_cast<uint8_t>(g_sink + md->size());
  walk_tlvs(data, size);
  if (size >= sizeof(GlobalHeader)) {
    alignas(GlobalHeader) uint8_t raw[sizeof(GlobalHeader)];
    std::memcpy(raw, data, sizeof raw);
    (void)validate_header(*reinterpret_cast<const GlobalHeader*>(raw), size);
  }
}

void reader_pass(const FuzzPrefix& prefix, const uint8_t* image, size_t image_size) {
  const std::string name = "fuzz-" + std::to_string(getpid());
  const std::string path = "/dev/shm/shmx." + name;
  // The size: from the (repaired) header, or the image's own.
  uint64_t size = image_size;
  alignas(GlobalHeader) uint8_t header_bytes[sizeof(GlobalHeader)] = {};
  std::memcpy(header_bytes, image, std::min(image_size, sizeof header_bytes));
  auto* header = reinterpret_cast<GlobalHeader*>(header_bytes);
  if (prefix.flags & kFixGeometry) size = fix_geometry(*header);
  if (size > kMaxSegment) return;

  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  uint8_t* map = nullptr;
  if (size && ftruncate(fd, static_cast<off_t>(size)) == 0) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) map = static_cast<uint8_t*>(p);
  }
  if (map) {
    std::memcpy(map, image, std::min<uint64_t>(size, image_size));
    if (size >= sizeof(GlobalHeader)) {
      if (prefix.flags & kFixGeometry) std::memcpy(map, header_bytes, sizeof header_bytes);
      auto* h = reinterpret_cast<GlobalHeader*>(map);
      if (prefix.flags & kFixIdentity) {
        h->magic = kMagic;
        h->layout_version = kLayoutVersion;
        h->header_size = sizeof(GlobalHeader);
      }
      if ((prefix.flags & kFixSession) && h->session_id == 0) h->session_id = 1;
      if (prefix.flags & kFixState) h->state.store(static_cast<uint32_t>(SegmentState::Ready));
    }
  }
  if (prefix.flags & kHoldWriterLock) {
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 1;
    fcntl(fd, F_OFD_SETLK, &fl);
  }

  {
    // The inspector reads everything a tool shows: header, metadata, latest frame, reader slots.
    auto snapshot = inspect_segment(name);
    if (snapshot) g_sink = static_cast<uint8_t>(g_sink + snapshot->readers.size());
  }
  {
    Client client;
    ClientOptions options;
    options.reader_name = "fuzz";
    options.send_hello = prefix.client_flags & 1;
    options.max_held_slots = (prefix.client_flags >> 1) & 3;
    options.heartbeat_thread = (prefix.client_flags & 8) != 0;
    if (client.open(name, options)) {
      auto md = client.metadata();
      if (md) g_sink = static_cast<uint8_t>(g_sink + md->streams.size());
      auto copy = client.read_latest(ReadMode::Copy);
      use_frame(copy);
      auto held = client.read_latest(ReadMode::Hold);
      auto held_too = client.read_latest(ReadMode::Hold);  // a second hold while the first is kept
      use_frame(held_too);
      use_frame(held);
      auto next = client.wait_next(1000, (prefix.client_flags & 16) ? ReadMode::Hold : ReadMode::Copy);
      use_frame(next);
      const uint32_t length = static_cast<uint32_t>(std::min<size_t>(image_size, 200));
      (void)client.send(kTlvUserBase, image, length);
      (void)client.send_heartbeat();
      client.heartbeat();
      (void)client.writer_alive();
      (void)client.stats();
      (void)client.session_id();
      (void)client.slot_count();
    }
    client.close();
  }

  if (map) munmap(map, size);
  close(fd);  // drops the writer lock
  unlink(path.c_str());
}

// A real writer whose reader table, rings and writer-side counters come from the input.
void server_pass(const uint8_t* image, size_t image_size) {
  const std::string name = "fuzzsrv-" + std::to_string(getpid());
  ServerOptions options;
  options.slot_count = 4;
  options.slot_payload_capacity = 4096 - sizeof(FrameHeader);
  options.reader_capacity = 2;
  options.control_ring_capacity = 256;
  options.metadata_capacity = 1024;
  options.reader_timeout_ms = 1000;
  auto created = Server::create(name, options);
  if (!created) return;
  Server server = std::move(created).value();
  auto plan = plan_layout(options.slot_count, options.slot_payload_capacity, options.reader_capacity,
                          options.control_ring_capacity, options.metadata_capacity);
  const int fd = open(("/dev/shm/shmx." + name).c_str(), O_RDWR | O_CLOEXEC);
  if (fd >= 0 && plan) {
    void* p = mmap(nullptr, plan->total_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
      auto* map = static_cast<uint8_t*>(p);
      // The reader region from the image's own reader region (or its start, if it is shorter).
      const uint64_t region = plan->total_size - plan->reader_region_offset;
      const uint8_t* src = image_size >= plan->reader_region_offset + region ? image + plan->reader_region_offset : image;
      std::memcpy(map + plan->reader_region_offset, src, std::min<uint64_t>(region, image_size));
      // The counters a reader or an attacker could change: latest, loaned slots, frame ids, slot sequences.
      if (image_size >= sizeof(GlobalHeader)) {
        auto* h = reinterpret_cast<GlobalHeader*>(map);
        uint64_t latest, loaned;  // the image may be unaligned: copy the fields out by offset
        std::memcpy(&latest, image + offsetof(GlobalHeader, latest), sizeof latest);
        std::memcpy(&loaned, image + offsetof(GlobalHeader, loaned_mask), sizeof loaned);
        h->latest.store(latest);
        h->loaned_mask.store(loaned);
      }
      for (uint32_t i = 0; i < options.slot_count && image_size >= 512 + 16 * (i + 1); ++i) {
        uint64_t frame_id;
        std::memcpy(&frame_id, image + 256 + 16 * i, sizeof frame_id);
        std::memcpy(map + plan->slots_offset + uint64_t{i} * plan->slot_stride, &frame_id, sizeof frame_id);
      }
      std::vector<uint8_t> value;
      server.poll_control([&](const ControlMessage& m) { value = m.value; });
      touch(value.data(), value.size());
      (void)server.readers();
      (void)server.reap_stale_readers();
      (void)server.stats();
      auto loan = server.loan();
      if (loan) {
        (void)loan->tlvs().append(kTlvStreamData, 0, image, static_cast<uint32_t>(std::min<size_t>(image_size, 64)));
        (void)server.commit(std::move(loan).value());
      }
      const uint8_t byte = 1;
      (void)server.publish({{0, &byte, 1}});
      (void)server.set_metadata({StreamInfo{"s", "t", "l", {}, {}}});
      (void)server.publish_eos();
      server.poll_control(nullptr);
      munmap(map, plan->total_size);
    }
  }
  if (fd >= 0) close(fd);
  server.close();
}

}  // namespace
}  // namespace shmx_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shmx_fuzz;
  if (size < sizeof(FuzzPrefix)) return 0;
  FuzzPrefix prefix;
  std::memcpy(&prefix, data, sizeof prefix);
  const uint8_t* image = data + sizeof prefix;
  const size_t image_size = size - sizeof prefix;
  decode_directly(image, image_size);
  reader_pass(prefix, image, image_size);
  if (prefix.flags & kServerPass) server_pass(image, image_size);
  return 0;
}
