// SPDX-License-Identifier: MIT
// segment.h: the process-local handle on one mapped segment, shared by Server, Client, loans and holds.
#pragma once

#include <atomic>

#include "shmx_server.h"

namespace shmx::detail {

// Geometry is copied out of the header once, after validate_header(), so that no later change to
// shared memory can move a bound. Reference counted: the Server or Client holds one reference, each
// outstanding Loan or held frame another; the mapping goes away with the last.
class Segment {
 public:
  explicit Segment(Map map);
  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  void ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  // Drops a reference; deletes the segment at zero.
  void unref();

  Map& map() { return map_; }
  const Map& map() const { return map_; }
  GlobalHeader* header() const { return reinterpret_cast<GlobalHeader*>(map_.data()); }
  MetadataHeader* metadata_header() const { return reinterpret_cast<MetadataHeader*>(map_.data() + metadata_offset); }
  uint8_t* metadata_data() const { return map_.data() + metadata_offset + sizeof(MetadataHeader); }
  SlotControl* slot_control(uint32_t slot) const {
    return reinterpret_cast<SlotControl*>(map_.data() + slot_control_offset) + slot;
  }
  FrameHeader* frame(uint32_t slot) const {
    return reinterpret_cast<FrameHeader*>(map_.data() + slots_offset + uint64_t{slot} * slot_stride);
  }
  uint8_t* payload(uint32_t slot) const { return reinterpret_cast<uint8_t*>(frame(slot)) + sizeof(FrameHeader); }
  ReaderTableHeader* reader_table() const {
    return reinterpret_cast<ReaderTableHeader*>(map_.data() + reader_region_offset);
  }
  ReaderSlot* reader(uint32_t index) const {
    return reinterpret_cast<ReaderSlot*>(map_.data() + reader_region_offset + sizeof(ReaderTableHeader) +
                                         uint64_t{index} * reader_stride);
  }
  uint8_t* ring_data(uint32_t index) const { return reinterpret_cast<uint8_t*>(reader(index)) + sizeof(ReaderSlot); }

  // Copies and checks the geometry from the mapped header (reader side).
  Status load_geometry();

  // Validated geometry.
  uint64_t session_id = 0;
  uint64_t metadata_offset = 0, metadata_capacity = 0;
  uint64_t slot_control_offset = 0, slots_offset = 0, slot_payload_capacity = 0;
  uint32_t slot_count = 0, slot_stride = 0;
  uint64_t reader_region_offset = 0;
  uint32_t reader_capacity = 0, reader_stride = 0, ring_capacity = 0;
  uint32_t reader_timeout_ms = 0;

  // Writer side.
  std::atomic<bool> closed{false};          // Server::close() ran: loans can no longer commit
  std::atomic<uint64_t> next_frame_id{1};
  // Process-local mirrors, so that writer threads never read shared memory another writer thread
  // is writing: each slot's frame id (0 while loaned or never used) and the metadata generation.
  std::atomic<uint64_t> slot_frame_id[kMaxSlots] = {};
  std::atomic<uint64_t> metadata_generation{0};

  // Reader side: the registration this process owns in this segment, undone with the last reference.
  int32_t reader_index = -1;
  uint64_t reader_id = 0;
  bool send_bye = false;

 private:
  void unregister_reader();
  Map map_;
  std::atomic<int32_t> refs_{1};
};

// Maps the named segment for reading and checks, in this order, that it is a shmx segment, of our
// layout version, Ready (not being created, closed or left half-created), with a consistent header
// and a live writer. NotFound/NotReady/WriterGone/Closed mean "no writer yet"; the rest are fatal.
Result<Segment*> open_segment(const std::string& name);

// A consistent copy of the static metadata, retried under the writer's seqlock; the hash and every
// record are checked.
Result<Metadata> read_metadata(const Segment& segment);

// Returns the registration `reader_id` of slot `index` to the free pool, and its holds to the
// writer. False if the slot no longer holds that registration (someone else freed it first).
bool free_reader(Segment& segment, uint32_t index, uint64_t reader_id);

// Union of every reader slot's holds, whatever its state (seq_cst loads: half of the loan/hold handshake).
uint64_t held_by_readers(const Segment& segment);
std::string reader_name(const ReaderSlot* slot);
// A snapshot of reader slot `index` (alive is left true; the caller probes the lock).
ReaderInfo describe_reader(const Segment& segment, uint32_t index, uint64_t now);

// Control ring operations (SPSC over a ReaderSlot's ring). push: reader side; pop: writer side.
Status ring_push(ReaderSlot* slot, uint8_t* data, uint32_t capacity, uint16_t type, const void* value,
                 uint32_t length);
// Pops one message below `head` (the caller's acquire snapshot of ring_head, so that a reader that
// keeps writing cannot keep the writer here) into `type`/`value`. Returns false when none is left.
// A corrupt ring is reset and reported through `error`.
bool ring_pop(ReaderSlot* slot, const uint8_t* data, uint32_t capacity, uint64_t head, uint16_t& type,
              std::vector<uint8_t>& value, Status& error);

}  // namespace shmx::detail
