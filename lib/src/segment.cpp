// SPDX-License-Identifier: MIT
// segment.cpp: segment lifetime, geometry loading and the per-reader control ring.
#include "segment.h"

#include <algorithm>
#include <bitset>
#include <thread>

namespace shmx::detail {

Segment::Segment(Map map) : map_(std::move(map)) {}

Segment::~Segment() {
  if (reader_index >= 0) unregister_reader();
  map_.close();
}

void Segment::unref() {
  // acq_rel: the last owner must see every other owner's writes before tearing down.
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

void Segment::unregister_reader() {
  ReaderSlot* slot = reader(static_cast<uint32_t>(reader_index));
  // Only undo our own registration: the writer may have reaped it and given the slot to another reader.
  // The slot itself is freed by the writer only (on BYE, or by reaping once our lock is gone), so
  // that no registration can appear under a poll_control that is draining this ring.
  if (slot->reader_id.load(std::memory_order_acquire) == reader_id) {
    if (send_bye)
      ring_push(slot, ring_data(static_cast<uint32_t>(reader_index)), ring_capacity, kTlvBye, nullptr, 0);
    // release: our reads of held slots happen before the writer reuses them.
    slot->held_mask.store(0, std::memory_order_release);
  }
  map_.unlock_reader(static_cast<uint32_t>(reader_index));
  reader_index = -1;
}

Status Segment::load_geometry() {
  // Validate and use one private copy, so that nothing another process writes meanwhile can move a
  // bound after it was checked.
  GlobalHeader h;
  std::memcpy(static_cast<void*>(&h), map_.data(), sizeof h);
  if (Status s = validate_header(h, map_.size()); !s)
    return Status(s.code(), "segment '" + map_.name() + "': " + s.message());
  session_id = h.session_id;
  metadata_offset = h.metadata_offset;
  metadata_capacity = h.metadata_capacity;
  slot_control_offset = h.slot_control_offset;
  slots_offset = h.slots_offset;
  slot_payload_capacity = h.slot_payload_capacity;
  slot_count = h.slot_count;
  slot_stride = h.slot_stride;
  reader_region_offset = h.reader_region_offset;
  reader_capacity = h.reader_capacity;
  reader_stride = h.reader_stride;
  ring_capacity = h.control_ring_capacity;
  reader_timeout_ms = h.reader_timeout_ms;
  return Status::ok();
}

Result<Segment*> open_segment(const std::string& name) {
  auto map = Map::open(name);
  if (!map) return map.status();
  const GlobalHeader* h = reinterpret_cast<const GlobalHeader*>(map->data());
  const std::string what = "segment '" + name + "'";
  // Check identity before trusting any other field: another version may place them elsewhere.
  if (h->magic != kMagic) {
    // Zero magic: a writer between resize and initialisation, or one that died there.
    if (h->magic == 0) {
      if (map->writer_alive()) return Status(Errc::NotReady, what + " is being created by its writer");
      return Status(Errc::WriterGone, what + " was left uninitialised by a writer that died");
    }
    return Status(Errc::NotShmx, what + " is not a shmx segment (bad magic)");
  }
  if (h->layout_version != kLayoutVersion)
    return Status(Errc::VersionMismatch, what + " has layout version " + std::to_string(h->layout_version) +
                                             "; this library reads version " +
                                             std::to_string(kLayoutVersion));
  // acquire: pairs with the writer's release of Ready; the header is complete.
  const uint32_t state = h->state.load(std::memory_order_acquire);
  if (state == static_cast<uint32_t>(SegmentState::Closed))
    return Status(Errc::Closed, what + " was closed by its writer");
  if (state != static_cast<uint32_t>(SegmentState::Ready)) {
    if (state != static_cast<uint32_t>(SegmentState::Init))
      return Status(Errc::Corrupt, what + " has an invalid state " + std::to_string(state));
    if (map->writer_alive()) return Status(Errc::NotReady, what + " is being created by its writer");
    return Status(Errc::WriterGone, what + " was left half-created by a writer that died");
  }
  auto* seg = new Segment(std::move(map).value());
  if (Status s = seg->load_geometry(); !s) {
    seg->unref();
    return s;
  }
  if (!seg->map().writer_alive()) {
    const uint32_t pid = seg->header()->writer_pid;
    seg->unref();
    return Status(Errc::WriterGone,
                  what + " has no live writer (its writer, pid " + std::to_string(pid) + ", died)");
  }
  return seg;
}

Result<Metadata> read_metadata(const Segment& s) {
  constexpr int kAttempts = 2000;
  const std::string what = "segment '" + s.map().name() + "'";
  const MetadataHeader* m = s.metadata_header();
  std::vector<uint8_t> copy;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    // acquire: pairs with the writer's release of the even sequence.
    const uint64_t seq1 = m->seq.load(std::memory_order_acquire);
    if (seq1 & 1) {
      std::this_thread::yield();
      continue;
    }
    const uint64_t generation = m->generation;
    const uint64_t hash = m->hash;
    const uint32_t size = m->size;
    const bool fits = size <= s.metadata_capacity;
    if (fits) copy.assign(s.metadata_data(), s.metadata_data() + size);
    // acquire fence: the copy above is complete before the sequence is checked again (seqlock reader).
    std::atomic_thread_fence(std::memory_order_acquire);
    if (m->seq.load(std::memory_order_relaxed) != seq1) continue;
    if (!fits)
      return Status(Errc::Corrupt, what + ": metadata size " + std::to_string(size) +
                                       " exceeds its region of " + std::to_string(s.metadata_capacity) +
                                       " bytes");
    if (fnv1a64(copy.data(), copy.size()) != hash)
      return Status(Errc::Corrupt, what + ": metadata hash mismatch");
    auto streams = decode_metadata(copy.data(), copy.size());
    if (!streams) return Status(streams.code(), what + ": " + streams.status().message());
    Metadata md;
    md.generation = generation;
    md.hash = hash;
    md.streams = std::move(streams).value();
    return md;
  }
  return Status(Errc::NotReady, what + ": metadata is being updated (or its writer died mid-update)");
}

bool free_reader(Segment& s, uint32_t index, uint64_t reader_id) {
  ReaderSlot* r = s.reader(index);
  if (!r->reader_id.compare_exchange_strong(reader_id, 0, std::memory_order_acq_rel)) return false;
  r->held_mask.store(0, std::memory_order_seq_cst);
  // release: a reader claiming the slot next sees it cleared.
  r->state.store(static_cast<uint32_t>(ReaderState::Free), std::memory_order_release);
  return true;
}

uint64_t held_by_readers(const Segment& s) {
  // Every slot, whatever its state: a hold is honoured until its bit is cleared.
  uint64_t held = 0;
  for (uint32_t i = 0; i < s.reader_capacity; ++i)
    held |= s.reader(i)->held_mask.load(std::memory_order_seq_cst);
  return held;
}

std::string reader_name(const ReaderSlot* r) {
  return std::string(r->name, strnlen(r->name, kReaderNameLength));
}

ReaderInfo describe_reader(const Segment& s, uint32_t index, uint64_t now) {
  const ReaderSlot* r = s.reader(index);
  ReaderInfo info;
  info.index = index;
  info.reader_id = r->reader_id.load(std::memory_order_acquire);
  info.pid = r->pid;
  info.name = reader_name(r);
  const uint64_t hb = r->heartbeat_ns.load(std::memory_order_relaxed);
  info.heartbeat_age_ns = now > hb ? now - hb : 0;
  info.last_frame_id = r->last_frame_id.load(std::memory_order_relaxed);
  info.frames_received = r->frames_received.load(std::memory_order_relaxed);
  info.frames_skipped = r->frames_skipped.load(std::memory_order_relaxed);
  info.held_slots =
      static_cast<uint32_t>(std::bitset<64>(r->held_mask.load(std::memory_order_relaxed)).count());
  // The counters are free-running and written by two sides: clamp what a torn pair could show.
  const uint64_t head = r->ring_head.load(std::memory_order_acquire);
  const uint64_t tail = r->ring_tail.load(std::memory_order_acquire);
  info.control_ring_capacity = s.ring_capacity;
  info.control_ring_used = static_cast<uint32_t>(head > tail ? std::min<uint64_t>(head - tail, s.ring_capacity) : 0);
  info.control_dropped = r->ring_dropped.load(std::memory_order_relaxed);
  return info;
}

// The ring holds TLVs back to back; positions are free-running byte counters, taken modulo the
// capacity. A TLV never wraps: when it does not fit before the end, a pad TLV fills the rest.
Status ring_push(ReaderSlot* slot, uint8_t* data, uint32_t capacity, uint16_t type, const void* value,
                 uint32_t length) {
  const uint64_t need = tlv_padded_size(length);
  if (length > capacity / 2 || need > capacity / 2)
    return Status(Errc::TooLarge, "control message of " + std::to_string(length) +
                                      " bytes exceeds half the " + std::to_string(capacity) +
                                      "-byte control ring");
  const uint64_t head = slot->ring_head.load(std::memory_order_relaxed);  // only we write it
  const uint64_t tail = slot->ring_tail.load(std::memory_order_acquire);  // pairs with the writer's release
  if (head % kTlvAlignment || tail % kTlvAlignment || head < tail || head - tail > capacity)
    return Status(Errc::Corrupt, "control ring positions " + std::to_string(tail) + ".." +
                                     std::to_string(head) + " are impossible");
  const uint64_t at = head % capacity;
  const uint64_t to_end = capacity - at;
  const uint64_t pad = need > to_end ? to_end : 0;
  if (head - tail > capacity || head - tail + pad + need > capacity) {
    slot->ring_dropped.fetch_add(1, std::memory_order_relaxed);
    return Status(Errc::RingFull, "control ring full (" + std::to_string(head - tail) + " of " +
                                      std::to_string(capacity) + " bytes unread by the writer)");
  }
  uint64_t pos = head;
  if (pad) {
    TlvHeader pad_header{kTlvPad, 0, static_cast<uint32_t>(pad - sizeof(TlvHeader))};
    std::memcpy(data + at, &pad_header, sizeof pad_header);
    pos += pad;
  }
  uint8_t* dst = data + pos % capacity;
  TlvHeader header{type, 0, length};
  std::memcpy(dst, &header, sizeof header);
  if (length) std::memcpy(dst + sizeof header, value, length);
  // release: the writer that sees the new head sees the message bytes.
  slot->ring_head.store(pos + need, std::memory_order_release);
  return Status::ok();
}

bool ring_pop(ReaderSlot* slot, const uint8_t* data, uint32_t capacity, uint64_t head, uint16_t& type,
              std::vector<uint8_t>& value, Status& error) {
  while (true) {
    uint64_t tail = slot->ring_tail.load(std::memory_order_relaxed);  // only we write it
    if (head == tail) return false;
    const auto reset = [&](const std::string& why) {
      error = Status(Errc::Corrupt, "control ring of reader '" + reader_name(slot) + "': " + why);
      slot->ring_tail.store(head, std::memory_order_release);
      return false;
    };
    if (head < tail || head - tail > capacity || head % kTlvAlignment || tail % kTlvAlignment)
      return reset("positions " + std::to_string(tail) + ".." + std::to_string(head) + " are impossible");
    const uint64_t at = tail % capacity;
    TlvHeader header;
    std::memcpy(&header, data + at, sizeof header);
    const uint64_t size = tlv_padded_size(header.length);
    if (header.length > capacity || size > capacity - at || size > head - tail)
      return reset("message of " + std::to_string(header.length) + " bytes overruns the ring");
    if (header.type != kTlvPad) {
      type = header.type;
      value.assign(data + at + sizeof header, data + at + sizeof header + header.length);
    }
    // release: the reader that sees the new tail may reuse these bytes.
    slot->ring_tail.store(tail + size, std::memory_order_release);
    if (header.type != kTlvPad) return true;
  }
}

}  // namespace shmx::detail
