// SPDX-License-Identifier: MIT
// layout.cpp: where every region of a segment lives, and the check that a mapped header agrees.
#include "shmx_common.h"

namespace shmx {
namespace {

constexpr uint64_t kMaxSlotPayload = 1ull << 30;      // 1 GiB per slot
constexpr uint64_t kMinMetadata = 1024, kMaxMetadata = 16ull << 20;
constexpr uint32_t kMinRing = 256, kMaxRing = 1u << 20;
constexpr uint32_t kMinSlots = 3;

bool is_power_of_two(uint64_t v) { return v && (v & (v - 1)) == 0; }

Status bad(const std::string& why) { return Status(Errc::InvalidArgument, why); }

}  // namespace

Result<LayoutPlan> plan_layout(uint32_t slot_count, uint64_t slot_payload_capacity, uint32_t reader_capacity,
                               uint32_t control_ring_capacity, uint64_t metadata_capacity) {
  if (slot_count < kMinSlots || slot_count > kMaxSlots)
    return bad("slot count " + std::to_string(slot_count) + " is outside " + std::to_string(kMinSlots) + ".." +
               std::to_string(kMaxSlots));
  if (slot_payload_capacity == 0 || slot_payload_capacity > kMaxSlotPayload)
    return bad("slot payload capacity " + std::to_string(slot_payload_capacity) + " is outside 1.." +
               std::to_string(kMaxSlotPayload) + " bytes");
  if (reader_capacity == 0 || reader_capacity > kMaxReaders)
    return bad("reader capacity " + std::to_string(reader_capacity) + " is outside 1.." + std::to_string(kMaxReaders));
  if (!is_power_of_two(control_ring_capacity) || control_ring_capacity < kMinRing || control_ring_capacity > kMaxRing)
    return bad("control ring capacity " + std::to_string(control_ring_capacity) + " is not a power of two in " +
               std::to_string(kMinRing) + ".." + std::to_string(kMaxRing));
  if (metadata_capacity < kMinMetadata || metadata_capacity > kMaxMetadata)
    return bad("metadata capacity " + std::to_string(metadata_capacity) + " is outside " +
               std::to_string(kMinMetadata) + ".." + std::to_string(kMaxMetadata) + " bytes");

  LayoutPlan p{};
  p.metadata_offset = sizeof(GlobalHeader);
  p.metadata_capacity = align_up(metadata_capacity, kCacheLine);
  p.slot_control_offset = p.metadata_offset + sizeof(MetadataHeader) + p.metadata_capacity;
  p.slot_count = slot_count;
  p.slots_offset = align_up(p.slot_control_offset + uint64_t{slot_count} * sizeof(SlotControl), kPageSize);
  p.slot_stride = static_cast<uint32_t>(align_up(sizeof(FrameHeader) + slot_payload_capacity, kPageSize));
  p.reader_region_offset = p.slots_offset + uint64_t{slot_count} * p.slot_stride;
  p.reader_capacity = reader_capacity;
  p.control_ring_capacity = control_ring_capacity;
  p.reader_stride = static_cast<uint32_t>(sizeof(ReaderSlot) + control_ring_capacity);
  p.total_size = align_up(p.reader_region_offset + sizeof(ReaderTableHeader) + uint64_t{reader_capacity} * p.reader_stride,
                          kPageSize);
  return p;
}

Status validate_header(const GlobalHeader& h, uint64_t mapped_size) {
  if (mapped_size < sizeof(GlobalHeader))
    return Status(Errc::Corrupt, "segment is " + std::to_string(mapped_size) + " bytes, smaller than its header");
  if (h.magic != kMagic) return Status(Errc::NotShmx, "not a shmx segment (bad magic)");
  if (h.layout_version != kLayoutVersion)
    return Status(Errc::VersionMismatch, "segment has layout version " + std::to_string(h.layout_version) +
                                             "; this library reads version " + std::to_string(kLayoutVersion));
  if (h.header_size != sizeof(GlobalHeader))
    return Status(Errc::Corrupt, "header size " + std::to_string(h.header_size) + " is not " +
                                     std::to_string(sizeof(GlobalHeader)));
  if (h.total_size != mapped_size)
    return Status(Errc::Corrupt, "header says " + std::to_string(h.total_size) + " bytes but the segment has " +
                                     std::to_string(mapped_size));
  if (h.session_id == 0) return Status(Errc::Corrupt, "session id is 0");
  if (h.slot_stride < sizeof(FrameHeader) + 1)
    return Status(Errc::Corrupt, "slot stride " + std::to_string(h.slot_stride) + " is too small");
  // The layout is a function of its parameters: recompute it and require every field to agree.
  auto plan = plan_layout(h.slot_count, h.slot_stride - sizeof(FrameHeader), h.reader_capacity,
                          h.control_ring_capacity, h.metadata_capacity);
  if (!plan) return Status(Errc::Corrupt, "header parameters are invalid: " + plan.status().message());
  const LayoutPlan& p = *plan;
  struct Field {
    const char* name;
    uint64_t have, want;
  } fields[] = {
      {"metadata_offset", h.metadata_offset, p.metadata_offset},
      {"metadata_capacity", h.metadata_capacity, p.metadata_capacity},
      {"slot_control_offset", h.slot_control_offset, p.slot_control_offset},
      {"slots_offset", h.slots_offset, p.slots_offset},
      {"slot_stride", h.slot_stride, p.slot_stride},
      {"slot_payload_capacity", h.slot_payload_capacity, uint64_t{p.slot_stride} - sizeof(FrameHeader)},
      {"reader_region_offset", h.reader_region_offset, p.reader_region_offset},
      {"reader_stride", h.reader_stride, p.reader_stride},
      {"total_size", h.total_size, p.total_size},
  };
  for (const Field& f : fields) {
    if (f.have != f.want)
      return Status(Errc::Corrupt, std::string("header field ") + f.name + " is " + std::to_string(f.have) +
                                       "; the layout requires " + std::to_string(f.want));
  }
  return Status::ok();
}

}  // namespace shmx
