// SPDX-License-Identifier: MIT
// Pins the shared-memory layout byte by byte and checks plan_layout() and validate_header().
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <functional>
#include <limits>

#include "shmx_common.h"
#include "shmx_server.h"
#include "test_support.h"

using namespace shmx;

namespace {

// --- Pinned layout: any change here is a layout version change and must update docs/layout.md. ---

TEST(Layout, GlobalHeaderFields) {
  EXPECT_EQ(sizeof(GlobalHeader), 256u);
  EXPECT_EQ(alignof(GlobalHeader), 64u);
  EXPECT_EQ(offsetof(GlobalHeader, magic), 0u);
  EXPECT_EQ(offsetof(GlobalHeader, layout_version), 8u);
  EXPECT_EQ(offsetof(GlobalHeader, header_size), 12u);
  EXPECT_EQ(offsetof(GlobalHeader, total_size), 16u);
  EXPECT_EQ(offsetof(GlobalHeader, session_id), 24u);
  EXPECT_EQ(offsetof(GlobalHeader, created_realtime_ns), 32u);
  EXPECT_EQ(offsetof(GlobalHeader, writer_pid), 40u);
  EXPECT_EQ(offsetof(GlobalHeader, state), 44u);
  EXPECT_EQ(offsetof(GlobalHeader, metadata_offset), 48u);
  EXPECT_EQ(offsetof(GlobalHeader, metadata_capacity), 56u);
  EXPECT_EQ(offsetof(GlobalHeader, slot_control_offset), 64u);
  EXPECT_EQ(offsetof(GlobalHeader, slot_count), 72u);
  EXPECT_EQ(offsetof(GlobalHeader, slot_stride), 76u);
  EXPECT_EQ(offsetof(GlobalHeader, slots_offset), 80u);
  EXPECT_EQ(offsetof(GlobalHeader, slot_payload_capacity), 88u);
  EXPECT_EQ(offsetof(GlobalHeader, reader_region_offset), 96u);
  EXPECT_EQ(offsetof(GlobalHeader, reader_capacity), 104u);
  EXPECT_EQ(offsetof(GlobalHeader, reader_stride), 108u);
  EXPECT_EQ(offsetof(GlobalHeader, control_ring_capacity), 112u);
  EXPECT_EQ(offsetof(GlobalHeader, reader_timeout_ms), 116u);
  EXPECT_EQ(offsetof(GlobalHeader, latest), 120u);
  EXPECT_EQ(offsetof(GlobalHeader, commit_futex), 128u);
  EXPECT_EQ(offsetof(GlobalHeader, reserved0), 132u);
  EXPECT_EQ(offsetof(GlobalHeader, frames_committed), 136u);
  EXPECT_EQ(offsetof(GlobalHeader, loans_refused), 144u);
  EXPECT_EQ(offsetof(GlobalHeader, loaned_mask), 152u);
  EXPECT_EQ(offsetof(GlobalHeader, writer_heartbeat_ns), 160u);
  EXPECT_EQ(offsetof(GlobalHeader, reserved), 168u);
  EXPECT_EQ(sizeof(GlobalHeader::reserved), 88u);
}

TEST(Layout, MetadataHeaderFields) {
  EXPECT_EQ(sizeof(MetadataHeader), 64u);
  EXPECT_EQ(alignof(MetadataHeader), 64u);
  EXPECT_EQ(offsetof(MetadataHeader, seq), 0u);
  EXPECT_EQ(offsetof(MetadataHeader, generation), 8u);
  EXPECT_EQ(offsetof(MetadataHeader, hash), 16u);
  EXPECT_EQ(offsetof(MetadataHeader, size), 24u);
  EXPECT_EQ(offsetof(MetadataHeader, reserved0), 28u);
  EXPECT_EQ(offsetof(MetadataHeader, reserved), 32u);
  EXPECT_EQ(sizeof(MetadataHeader::reserved), 32u);
}

TEST(Layout, SlotControlFields) {
  EXPECT_EQ(sizeof(SlotControl), 64u);
  EXPECT_EQ(alignof(SlotControl), 64u);
  EXPECT_EQ(offsetof(SlotControl, seq), 0u);
  EXPECT_EQ(offsetof(SlotControl, reserved), 8u);
  EXPECT_EQ(sizeof(SlotControl::reserved), 56u);
}

TEST(Layout, FrameHeaderFields) {
  EXPECT_EQ(sizeof(FrameHeader), 64u);
  EXPECT_EQ(alignof(FrameHeader), 64u);
  EXPECT_EQ(offsetof(FrameHeader, frame_id), 0u);
  EXPECT_EQ(offsetof(FrameHeader, session_id), 8u);
  EXPECT_EQ(offsetof(FrameHeader, publish_ns), 16u);
  EXPECT_EQ(offsetof(FrameHeader, timestamp_ns), 24u);
  EXPECT_EQ(offsetof(FrameHeader, flags), 32u);
  EXPECT_EQ(offsetof(FrameHeader, payload_size), 36u);
  EXPECT_EQ(offsetof(FrameHeader, metadata_generation), 40u);
  EXPECT_EQ(offsetof(FrameHeader, reserved), 48u);
  EXPECT_EQ(sizeof(FrameHeader::reserved), 16u);
  EXPECT_TRUE(std::is_trivially_copyable_v<FrameHeader>);
}

TEST(Layout, ReaderTableHeaderFields) {
  EXPECT_EQ(sizeof(ReaderTableHeader), 64u);
  EXPECT_EQ(alignof(ReaderTableHeader), 64u);
  EXPECT_EQ(offsetof(ReaderTableHeader, waiters), 0u);
  EXPECT_EQ(offsetof(ReaderTableHeader, reserved0), 4u);
  EXPECT_EQ(offsetof(ReaderTableHeader, registrations), 8u);
  EXPECT_EQ(offsetof(ReaderTableHeader, reserved), 16u);
  EXPECT_EQ(sizeof(ReaderTableHeader::reserved), 48u);
}

TEST(Layout, ReaderSlotFields) {
  EXPECT_EQ(sizeof(ReaderSlot), 256u);
  EXPECT_EQ(alignof(ReaderSlot), 64u);
  EXPECT_EQ(offsetof(ReaderSlot, state), 0u);
  EXPECT_EQ(offsetof(ReaderSlot, pid), 4u);
  EXPECT_EQ(offsetof(ReaderSlot, reader_id), 8u);
  EXPECT_EQ(offsetof(ReaderSlot, heartbeat_ns), 16u);
  EXPECT_EQ(offsetof(ReaderSlot, last_frame_id), 24u);
  EXPECT_EQ(offsetof(ReaderSlot, frames_received), 32u);
  EXPECT_EQ(offsetof(ReaderSlot, frames_skipped), 40u);
  EXPECT_EQ(offsetof(ReaderSlot, held_mask), 48u);
  EXPECT_EQ(offsetof(ReaderSlot, registered_ns), 56u);
  EXPECT_EQ(offsetof(ReaderSlot, name), 64u);
  EXPECT_EQ(sizeof(ReaderSlot::name), kReaderNameLength);
  EXPECT_EQ(offsetof(ReaderSlot, ring_head), 128u);
  EXPECT_EQ(offsetof(ReaderSlot, ring_tail), 136u);
  EXPECT_EQ(offsetof(ReaderSlot, ring_dropped), 144u);
  EXPECT_EQ(offsetof(ReaderSlot, reserved), 152u);
  EXPECT_EQ(sizeof(ReaderSlot::reserved), 104u);
}

TEST(Layout, TlvHeaderAndConstants) {
  EXPECT_EQ(sizeof(TlvHeader), 8u);
  EXPECT_EQ(offsetof(TlvHeader, type), 0u);
  EXPECT_EQ(offsetof(TlvHeader, stream), 2u);
  EXPECT_EQ(offsetof(TlvHeader, length), 4u);
  char magic[8];
  std::memcpy(magic, &kMagic, sizeof(magic));
  EXPECT_EQ(std::string(magic, 8), "SHMXSEG1");
  EXPECT_EQ(kLayoutVersion, 1u);
  EXPECT_EQ(kMaxSlots, 64u);
  EXPECT_EQ(kMaxReaders, 256u);
  EXPECT_EQ(static_cast<uint32_t>(SegmentState::Ready), 1u);
  EXPECT_EQ(static_cast<uint32_t>(ReaderState::Active), 2u);
  EXPECT_EQ(kFrameFlagEos, 1u);
  EXPECT_EQ(align_up(0, 4096), 0u);
  EXPECT_EQ(align_up(1, 4096), 4096u);
  EXPECT_EQ(align_up(4096, 4096), 4096u);
  EXPECT_EQ(align_up(4097, 64), 4160u);
}

// --- plan_layout() ---

void expect_plan_consistent(const LayoutPlan& p, uint32_t slots, uint64_t payload, uint32_t readers,
                            uint32_t ring, uint64_t metadata) {
  EXPECT_EQ(p.slot_count, slots);
  EXPECT_EQ(p.reader_capacity, readers);
  EXPECT_EQ(p.control_ring_capacity, ring);
  EXPECT_GE(p.metadata_capacity, metadata);
  // Regions in order, none overlapping.
  EXPECT_GE(p.metadata_offset, sizeof(GlobalHeader));
  EXPECT_EQ(p.metadata_offset % kCacheLine, 0u);
  EXPECT_GE(p.slot_control_offset, p.metadata_offset + sizeof(MetadataHeader) + p.metadata_capacity);
  EXPECT_EQ(p.slot_control_offset % kCacheLine, 0u);
  EXPECT_GE(p.slots_offset, p.slot_control_offset + uint64_t{slots} * sizeof(SlotControl));
  EXPECT_EQ(p.slots_offset % kPageSize, 0u);
  // Slots are whole pages and hold a header plus the requested payload, wasting less than a page.
  EXPECT_EQ(p.slot_stride % kPageSize, 0u);
  EXPECT_GE(p.slot_stride, sizeof(FrameHeader) + payload);
  EXPECT_LT(p.slot_stride, sizeof(FrameHeader) + payload + kPageSize);
  EXPECT_GE(p.reader_region_offset, p.slots_offset + uint64_t{slots} * p.slot_stride);
  EXPECT_EQ(p.reader_region_offset % kPageSize, 0u);
  EXPECT_EQ(p.reader_stride, sizeof(ReaderSlot) + ring);
  EXPECT_EQ(p.reader_stride % kCacheLine, 0u);
  EXPECT_GE(p.total_size,
            p.reader_region_offset + sizeof(ReaderTableHeader) + uint64_t{readers} * p.reader_stride);
}

TEST(PlanLayout, DefaultsAreAlignedAndOrdered) {
  auto plan = plan_layout(8, 1 << 20, 16, 4096, 64 * 1024);
  ASSERT_TRUE(plan) << plan.status().to_string();
  expect_plan_consistent(*plan, 8, 1 << 20, 16, 4096, 64 * 1024);
}

TEST(PlanLayout, OddSizesAreRoundedUp) {
  auto plan = plan_layout(5, 1000, 3, 256, 1500);
  ASSERT_TRUE(plan) << plan.status().to_string();
  expect_plan_consistent(*plan, 5, 1000, 3, 256, 1500);
  EXPECT_EQ(plan->slot_stride, 4096u);
}

TEST(PlanLayout, BoundaryValuesAccepted) {
  for (uint32_t slots : {3u, 64u}) {
    auto plan = plan_layout(slots, 4096, 1, 256, 4096);
    ASSERT_TRUE(plan) << "slots=" << slots << ": " << plan.status().to_string();
    expect_plan_consistent(*plan, slots, 4096, 1, 256, 4096);
  }
  auto many_readers = plan_layout(3, 4096, 256, 256, 4096);
  ASSERT_TRUE(many_readers) << many_readers.status().to_string();
  expect_plan_consistent(*many_readers, 3, 4096, 256, 256, 4096);
}

TEST(PlanLayout, LimitsRefused) {
  struct Case {
    const char* what;
    uint32_t slots;
    uint64_t payload;
    uint32_t readers;
    uint32_t ring;
  };
  const Case cases[] = {
      {"0 slots", 0, 4096, 4, 4096},       {"2 slots", 2, 4096, 4, 4096},
      {"65 slots", 65, 4096, 4, 4096},     {"0 readers", 8, 4096, 0, 4096},
      {"257 readers", 8, 4096, 257, 4096}, {"ring not a power of two", 8, 4096, 4, 1000},
      {"ring 3*1024", 8, 4096, 4, 3072},   {"ring below 256", 8, 4096, 4, 128},
      {"ring 0", 8, 4096, 4, 0},
  };
  for (const Case& c : cases) {
    auto plan = plan_layout(c.slots, c.payload, c.readers, c.ring, 4096);
    EXPECT_FALSE(plan) << c.what;
    if (!plan) {
      EXPECT_EQ(plan.code(), Errc::InvalidArgument) << c.what << ": " << plan.status().to_string();
      EXPECT_FALSE(plan.status().message().empty()) << c.what;
    }
  }
}

TEST(PlanLayout, HugeSizesRefusedWithoutOverflow) {
  // slot_stride is 32 bits: a payload that does not fit it must be refused, not truncated.
  for (uint64_t payload : {uint64_t{1} << 32, uint64_t{1} << 62, std::numeric_limits<uint64_t>::max()}) {
    auto plan = plan_layout(8, payload, 4, 4096, 4096);
    EXPECT_FALSE(plan) << "payload " << payload << " gave stride " << (plan ? plan->slot_stride : 0);
  }
  auto metadata = plan_layout(8, 4096, 4, 4096, std::numeric_limits<uint64_t>::max() - 10);
  EXPECT_FALSE(metadata) << "metadata capacity near 2^64 must not wrap";
  auto ring = plan_layout(8, 4096, 4, 1u << 31, 4096);
  if (ring) {
    // If accepted, the reader stride must really hold the ring (32-bit field).
    EXPECT_EQ(uint64_t{ring->reader_stride}, sizeof(ReaderSlot) + (uint64_t{1} << 31));
  }
}

// --- validate_header() on a header copied from a real segment ---

class ValidateHeader : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.slot_count = 4;
    options.slot_payload_capacity = 8192;
    options.reader_capacity = 2;
    options.control_ring_capacity = 512;
    options.metadata_capacity = 1024;
    auto server = Server::create(cleanup_.name(), options);
    ASSERT_TRUE(server) << server.status().to_string();
    server_ = std::move(server.value());
    auto map = Map::open(cleanup_.name());
    ASSERT_TRUE(map) << map.status().to_string();
    mapped_size_ = map->size();
    std::memcpy(storage_, map->data(), sizeof(GlobalHeader));
    std::memcpy(saved_storage_, map->data(), sizeof(GlobalHeader));
  }
  // A private copy of the header: GlobalHeader holds atomics, so it is copied as bytes.
  GlobalHeader& header() { return *reinterpret_cast<GlobalHeader*>(storage_); }
  const GlobalHeader& original() const { return *reinterpret_cast<const GlobalHeader*>(saved_storage_); }
  void reset() { std::memcpy(storage_, saved_storage_, sizeof(GlobalHeader)); }

  shmx_test::SegmentCleanup cleanup_{shmx_test::unique_segment_name("hdr")};
  Server server_;
  uint64_t mapped_size_ = 0;
  alignas(64) unsigned char storage_[sizeof(GlobalHeader)];
  alignas(64) unsigned char saved_storage_[sizeof(GlobalHeader)];
};

TEST_F(ValidateHeader, RealHeaderIsValid) {
  const GlobalHeader& h = header();
  EXPECT_EQ(h.magic, kMagic);
  EXPECT_EQ(h.layout_version, kLayoutVersion);
  EXPECT_EQ(h.header_size, sizeof(GlobalHeader));
  EXPECT_EQ(h.total_size, mapped_size_);
  EXPECT_EQ(h.session_id, server_.session_id());
  EXPECT_NE(h.session_id, 0u);
  EXPECT_EQ(h.state.load(), static_cast<uint32_t>(SegmentState::Ready));
  EXPECT_EQ(h.slot_count, 4u);
  EXPECT_EQ(h.slot_payload_capacity, uint64_t{h.slot_stride} - sizeof(FrameHeader));
  EXPECT_EQ(h.reader_capacity, 2u);
  EXPECT_EQ(h.control_ring_capacity, 512u);
  EXPECT_EQ(h.writer_pid, shmx_test::current_pid());
  Status st = validate_header(h, mapped_size_);
  EXPECT_TRUE(st) << st.to_string();
}

TEST_F(ValidateHeader, BadMagicIsNotShmx) {
  header().magic = 0x1122334455667788ull;
  Status st = validate_header(header(), mapped_size_);
  EXPECT_EQ(st.code(), Errc::NotShmx) << st.to_string();
  EXPECT_FALSE(st.message().empty());
  EXPECT_EQ(st.to_string().rfind("NotShmx", 0), 0u) << st.to_string();
}

TEST_F(ValidateHeader, OtherVersionIsVersionMismatch) {
  header().layout_version = kLayoutVersion + 1;
  Status st = validate_header(header(), mapped_size_);
  EXPECT_EQ(st.code(), Errc::VersionMismatch) << st.to_string();
  EXPECT_FALSE(st.message().empty());
}

TEST_F(ValidateHeader, CorruptFieldsRefused) {
  const uint64_t total = header().total_size;
  const GlobalHeader& o = original();
  struct Mutation {
    const char* what;
    std::function<void(GlobalHeader&)> apply;
    uint64_t mapped;
  };
  const std::vector<Mutation> mutations = {
      {"total_size larger than mapping", [&](GlobalHeader& h) { h.total_size = total + 4096; }, total},
      {"total_size smaller than mapping", [&](GlobalHeader& h) { h.total_size = total - 4096; }, total},
      {"mapping smaller than total_size", [](GlobalHeader&) {}, total - 4096},
      {"mapping smaller than a header", [](GlobalHeader&) {}, sizeof(GlobalHeader) - 1},
      {"header_size wrong", [](GlobalHeader& h) { h.header_size = 128; }, total},
      {"metadata past the end", [&](GlobalHeader& h) { h.metadata_offset = total; }, total},
      {"metadata capacity past the end", [&](GlobalHeader& h) { h.metadata_capacity = total; }, total},
      {"metadata capacity wraps", [](GlobalHeader& h) { h.metadata_capacity = ~uint64_t{0} - 16; }, total},
      {"metadata inside the header", [](GlobalHeader& h) { h.metadata_offset = 64; }, total},
      {"slot control overlaps metadata", [&](GlobalHeader& h) { h.slot_control_offset = o.metadata_offset; },
       total},
      {"slots overlap slot control", [&](GlobalHeader& h) { h.slots_offset = o.slot_control_offset; }, total},
      {"slots misaligned", [&](GlobalHeader& h) { h.slots_offset = o.slots_offset + 64; }, total},
      {"slots past the end", [](GlobalHeader& h) { h.slots_offset = ~uint64_t{0} & ~uint64_t{4095}; }, total},
      {"slot_count 0", [](GlobalHeader& h) { h.slot_count = 0; }, total},
      {"slot_count 65", [](GlobalHeader& h) { h.slot_count = 65; }, total},
      {"slot_count past the end", [](GlobalHeader& h) { h.slot_count = 64; }, total},
      {"slot_stride not page multiple", [&](GlobalHeader& h) { h.slot_stride = o.slot_stride + 64; }, total},
      {"slot_stride 0", [](GlobalHeader& h) { h.slot_stride = 0; }, total},
      {"payload capacity beyond stride", [&](GlobalHeader& h) { h.slot_payload_capacity = o.slot_stride; },
       total},
      {"reader region misaligned",
       [&](GlobalHeader& h) { h.reader_region_offset = o.reader_region_offset + 64; }, total},
      {"reader region overlaps slots", [&](GlobalHeader& h) { h.reader_region_offset = o.slots_offset; },
       total},
      {"reader_capacity past the end", [](GlobalHeader& h) { h.reader_capacity = 256; }, total},
      {"reader_capacity 0", [](GlobalHeader& h) { h.reader_capacity = 0; }, total},
      {"reader_capacity huge", [](GlobalHeader& h) { h.reader_capacity = 0xFFFFFFFFu; }, total},
      {"ring not a power of two", [](GlobalHeader& h) { h.control_ring_capacity = 500; }, total},
      {"reader_stride too small for ring", [](GlobalHeader& h) { h.reader_stride = sizeof(ReaderSlot); },
       total},
  };
  for (const Mutation& m : mutations) {
    reset();
    m.apply(header());
    Status st = validate_header(header(), m.mapped);
    EXPECT_EQ(st.code(), Errc::Corrupt) << m.what << " -> " << st.to_string();
    if (!st) {
      EXPECT_FALSE(st.message().empty()) << m.what;
    }
  }
  reset();
  EXPECT_TRUE(validate_header(header(), mapped_size_)) << "reset copy must still be valid";
}

}  // namespace
