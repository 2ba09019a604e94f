// SPDX-License-Identifier: MIT
// TLV codec: round trips, alignment and padding, capacity limits and hostile input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "shmx_common.h"

using namespace shmx;

namespace {

// Exactly-sized heap copy, so that ASan flags any read past the end.
struct ExactBuffer {
  explicit ExactBuffer(const void* src, size_t n) : size(n), bytes(n ? new uint8_t[n] : nullptr) {
    if (n) std::memcpy(bytes.get(), src, n);
  }
  size_t size;
  std::unique_ptr<uint8_t[]> bytes;
  const uint8_t* data() const { return bytes.get(); }
};

std::vector<uint8_t> header_bytes(uint16_t type, uint16_t stream, uint32_t length) {
  TlvHeader h{type, stream, length};
  std::vector<uint8_t> out(sizeof(h));
  std::memcpy(out.data(), &h, sizeof(h));
  return out;
}

// Every TLV a reader returns must lie inside the buffer, and iteration must terminate.
void expect_views_in_bounds(const uint8_t* data, size_t size, size_t* count = nullptr,
                            Status* error = nullptr) {
  TlvReader reader(data, size);
  TlvView view;
  size_t n = 0;
  while (reader.next(view)) {
    ASSERT_LT(n, size / sizeof(TlvHeader) + 1) << "reader does not terminate";
    ASSERT_GE(view.value, data);
    ASSERT_LE(view.value + view.length, data + size);
    EXPECT_NE(view.type, kTlvPad) << "pads must be skipped";
    ++n;
  }
  EXPECT_LE(reader.offset(), size);
  if (count) *count = n;
  if (error) *error = reader.error();
}

TEST(Tlv, PaddedSize) {
  EXPECT_EQ(tlv_padded_size(0), 8u);
  EXPECT_EQ(tlv_padded_size(1), 16u);
  EXPECT_EQ(tlv_padded_size(8), 16u);
  EXPECT_EQ(tlv_padded_size(9), 24u);
  EXPECT_EQ(tlv_padded_size(0xFFFFFFFFu), 8u + 0x100000000ull);
}

TEST(Tlv, RoundTrip) {
  alignas(8) uint8_t buffer[256];
  TlvWriter writer(buffer, sizeof(buffer));
  const std::string hello = "hello";
  const uint8_t sixteen[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  ASSERT_TRUE(writer.append(kTlvStreamData, 3, hello.data(), static_cast<uint32_t>(hello.size())));
  ASSERT_TRUE(writer.append(kTlvBye, 0, nullptr, 0));
  ASSERT_TRUE(writer.append(kTlvUserBase + 7, 65535, sixteen, sizeof(sixteen)));
  EXPECT_EQ(writer.size(), tlv_padded_size(5) + tlv_padded_size(0) + tlv_padded_size(16));

  TlvReader reader(buffer, writer.size());
  TlvView view;
  ASSERT_TRUE(reader.next(view));
  EXPECT_EQ(view.type, kTlvStreamData);
  EXPECT_EQ(view.stream, 3);
  ASSERT_EQ(view.length, 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(view.value), view.length), hello);
  EXPECT_EQ(view.value, buffer + sizeof(TlvHeader));

  ASSERT_TRUE(reader.next(view));
  EXPECT_EQ(view.type, kTlvBye);
  EXPECT_EQ(view.length, 0u);

  ASSERT_TRUE(reader.next(view));
  EXPECT_EQ(view.type, kTlvUserBase + 7);
  EXPECT_EQ(view.stream, 65535);
  ASSERT_EQ(view.length, 16u);
  EXPECT_EQ(std::memcmp(view.value, sixteen, 16), 0);

  EXPECT_FALSE(reader.next(view));
  EXPECT_TRUE(reader.error()) << reader.error().to_string();
  EXPECT_EQ(reader.offset(), writer.size());
}

TEST(Tlv, HeadersAreEightByteAlignedAndPaddingZeroed) {
  alignas(8) uint8_t buffer[128];
  std::memset(buffer, 0xCC, sizeof(buffer));
  TlvWriter writer(buffer, sizeof(buffer));
  const char value[3] = {'a', 'b', 'c'};
  ASSERT_TRUE(writer.append(kTlvUserBase, 0, value, 3));
  EXPECT_EQ(writer.size(), 16u);
  ASSERT_TRUE(writer.append(kTlvUserBase + 1, 0, value, 1));
  EXPECT_EQ(writer.size(), 32u);
  // Padding is zeroed: the encoding is deterministic (metadata is hashed) and leaks no old bytes.
  for (size_t i = 8 + 3; i < 16; ++i) EXPECT_EQ(buffer[i], 0) << "padding byte " << i;
  for (size_t i = 16 + 8 + 1; i < 32; ++i) EXPECT_EQ(buffer[i], 0) << "padding byte " << i;
}

TEST(Tlv, ReserveAlignsValueFromEveryStartOffset) {
  for (uint32_t filler = 0; filler <= 128; filler += 8) {
    for (size_t alignment : {size_t{8}, size_t{64}, size_t{4096}}) {
      SCOPED_TRACE("filler " + std::to_string(filler) + " alignment " + std::to_string(alignment));
      std::vector<uint8_t> storage(3 * 4096 + 4096);
      uint8_t* buffer =
          reinterpret_cast<uint8_t*>(align_up(reinterpret_cast<uintptr_t>(storage.data()), 4096));
      const size_t capacity = 3 * 4096;
      TlvWriter writer(buffer, capacity);
      std::vector<uint8_t> filler_bytes(filler, 0x5A);
      if (filler > 0) {
        ASSERT_TRUE(writer.append(kTlvUserBase, 0, filler_bytes.data(), filler - 8));
      }
      ASSERT_EQ(writer.size(), filler);
      auto value = writer.reserve(kTlvStreamData, 2, 100, alignment);
      ASSERT_TRUE(value) << value.status().to_string();
      uint8_t* p = *value;
      EXPECT_EQ((p - buffer) % alignment, 0u);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u);
      EXPECT_GE(p, buffer + filler + sizeof(TlvHeader));
      EXPECT_EQ(writer.size(), static_cast<size_t>(p - buffer) + align_up(100, kTlvAlignment));
      for (int i = 0; i < 100; ++i) p[i] = static_cast<uint8_t>(i);

      // Reading back skips the pads and finds the filler, then the reserved TLV at p.
      TlvReader reader(buffer, writer.size());
      TlvView view;
      if (filler > 0) {
        ASSERT_TRUE(reader.next(view));
        EXPECT_EQ(view.type, kTlvUserBase);
        EXPECT_EQ(view.length, filler - 8);
      }
      ASSERT_TRUE(reader.next(view)) << reader.error().to_string();
      EXPECT_EQ(view.type, kTlvStreamData);
      EXPECT_EQ(view.stream, 2);
      EXPECT_EQ(view.value, p);
      ASSERT_EQ(view.length, 100u);
      for (int i = 0; i < 100; ++i) ASSERT_EQ(view.value[i], i);
      EXPECT_FALSE(reader.next(view));
      EXPECT_TRUE(reader.error()) << reader.error().to_string();
    }
  }
}

TEST(Tlv, FullBufferIsTooLargeAndUnchanged) {
  alignas(8) uint8_t buffer[32];
  TlvWriter writer(buffer, sizeof(buffer));
  uint8_t value[16] = {};
  ASSERT_TRUE(writer.append(kTlvUserBase, 0, value, 16));  // 24 bytes
  EXPECT_EQ(writer.size(), 24u);
  Status st = writer.append(kTlvUserBase, 0, value, 1);  // needs 16
  EXPECT_EQ(st.code(), Errc::TooLarge) << st.to_string();
  EXPECT_EQ(writer.size(), 24u);
  auto reserved = writer.reserve(kTlvUserBase, 0, 9);
  EXPECT_EQ(reserved.code(), Errc::TooLarge);
  EXPECT_EQ(writer.size(), 24u);
  ASSERT_TRUE(writer.append(kTlvBye, 0, nullptr, 0));  // exactly fills it
  EXPECT_EQ(writer.size(), 32u);
  EXPECT_EQ(writer.append(kTlvBye, 0, nullptr, 0).code(), Errc::TooLarge);

  // An aligned reserve whose pad alone would overflow is refused too, and leaves nothing behind.
  alignas(64) uint8_t small[72];
  TlvWriter aligned(small, sizeof(small));
  ASSERT_TRUE(aligned.append(kTlvUserBase, 0, value, 8));  // 16 bytes; next 64-aligned value at 64
  auto r = aligned.reserve(kTlvStreamData, 0, 16, 64);     // would end at 80 > 72
  EXPECT_EQ(r.code(), Errc::TooLarge);
  EXPECT_EQ(aligned.size(), 16u);

  // Lengths near 2^32 must not wrap the capacity check.
  TlvWriter huge(buffer, sizeof(buffer));
  EXPECT_EQ(huge.reserve(kTlvUserBase, 0, 0xFFFFFFFFu).code(), Errc::TooLarge);
  EXPECT_EQ(huge.reserve(kTlvUserBase, 0, 0xFFFFFFF9u, 64).code(), Errc::TooLarge);
  EXPECT_EQ(huge.size(), 0u);
}

TEST(TlvHostile, EmptyBufferHasNoTlvAndNoError) {
  TlvReader null_reader(nullptr, 0);
  TlvView view;
  EXPECT_FALSE(null_reader.next(view));
  EXPECT_TRUE(null_reader.error());
  ExactBuffer empty(nullptr, 0);
  TlvReader reader(empty.data(), 0);
  EXPECT_FALSE(reader.next(view));
  EXPECT_TRUE(reader.error());
}

TEST(TlvHostile, LengthPastEnd) {
  auto bytes = header_bytes(kTlvUserBase, 0, 100);
  bytes.resize(16, 0x11);
  ExactBuffer buf(bytes.data(), bytes.size());
  TlvReader reader(buf.data(), buf.size);
  TlvView view;
  EXPECT_FALSE(reader.next(view));
  EXPECT_EQ(reader.error().code(), Errc::Corrupt) << reader.error().to_string();
  EXPECT_FALSE(reader.error().message().empty());
}

TEST(TlvHostile, HugeLengthDoesNotWrap) {
  for (uint32_t length : {0xFFFFFFFFu, 0xFFFFFFF8u, 0xFFFFFFF9u, 0x80000000u}) {
    auto bytes = header_bytes(kTlvUserBase, 0, length);
    bytes.resize(64, 0);
    ExactBuffer buf(bytes.data(), bytes.size());
    TlvReader reader(buf.data(), buf.size);
    TlvView view;
    EXPECT_FALSE(reader.next(view)) << "length " << length;
    EXPECT_EQ(reader.error().code(), Errc::Corrupt) << "length " << length;
  }
  // A pad with a huge length is as malformed as any other TLV.
  auto pad = header_bytes(kTlvPad, 0, 0xFFFFFFF0u);
  ExactBuffer buf(pad.data(), pad.size());
  TlvReader reader(buf.data(), buf.size);
  TlvView view;
  EXPECT_FALSE(reader.next(view));
  EXPECT_EQ(reader.error().code(), Errc::Corrupt);
}

TEST(TlvHostile, TruncatedHeader) {
  for (size_t size = 1; size < sizeof(TlvHeader); ++size) {
    auto bytes = header_bytes(kTlvUserBase, 1, 0);
    ExactBuffer buf(bytes.data(), size);
    TlvReader reader(buf.data(), buf.size);
    TlvView view;
    EXPECT_FALSE(reader.next(view)) << "size " << size;
    EXPECT_FALSE(reader.error()) << "a truncated header must be reported, size " << size;
  }
}

TEST(TlvHostile, EveryTruncationOfAValidBufferStaysInBounds) {
  alignas(8) uint8_t encoded[256];
  TlvWriter writer(encoded, sizeof(encoded));
  const char a[5] = {'1', '2', '3', '4', '5'};
  ASSERT_TRUE(writer.append(kTlvUserBase, 0, a, 5));       // [0,16)
  ASSERT_TRUE(writer.append(kTlvUserBase + 1, 0, a, 0));   // [16,24)
  ASSERT_TRUE(writer.reserve(kTlvStreamData, 0, 13, 64));  // pad [24,56), header [56,64), value [64,77) -> 80
  const size_t full = writer.size();
  ASSERT_EQ(full, 80u);
  // Complete TLVs (pads included) end at 16, 24, 56 and 80; values end at 13 and 77.
  auto complete_before = [](size_t size) -> size_t { return (size >= 16) + (size >= 24) + (size >= 80); };
  for (size_t size = 0; size <= full; ++size) {
    SCOPED_TRACE("size " + std::to_string(size));
    ExactBuffer buf(encoded, size);
    size_t count = 0;
    Status error;
    expect_views_in_bounds(buf.data(), buf.size, &count, &error);
    const bool at_boundary = size == 0 || size == 16 || size == 24 || size == 56 || size == 80;
    // Value complete, only its padding cut: either answer is fine (the views are still in bounds).
    if ((size > 13 - 1 && size < 16) || (size >= 77 && size < 80)) continue;
    EXPECT_EQ(count, complete_before(size));
    if (at_boundary) {
      EXPECT_TRUE(error) << error.to_string();
    } else {
      EXPECT_FALSE(error) << "a TLV cut in the middle must be reported";
    }
  }
}

TEST(TlvHostile, RandomBytesStayInBounds) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 2000; ++round) {
    const size_t size = rng() % 200;
    std::vector<uint8_t> bytes(size);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    // Small lengths make deeper walks likely.
    for (size_t off = 4; off + 4 <= size; off += 8) {
      if (rng() % 2) {
        uint32_t len = rng() % 48;
        std::memcpy(&bytes[off], &len, 4);
      }
    }
    ExactBuffer buf(bytes.data(), size);
    expect_views_in_bounds(buf.data(), buf.size);
    TlvView out;
    if (find_tlv(buf.data(), buf.size, kTlvStreamData, 0, out)) {
      EXPECT_GE(out.value, buf.data());
      EXPECT_LE(out.value + out.length, buf.data() + size);
    }
  }
}

TEST(Tlv, FindTlv) {
  alignas(8) uint8_t buffer[256];
  TlvWriter writer(buffer, sizeof(buffer));
  const uint32_t s0 = 0xA0, s1 = 0xB1, other = 0xC2;
  ASSERT_TRUE(writer.append(kTlvUserBase, 0, &other, 4));
  ASSERT_TRUE(writer.append(kTlvStreamData, 0, &s0, 4));
  auto reserved = writer.reserve(kTlvStreamData, 1, 4, 64);
  ASSERT_TRUE(reserved);
  std::memcpy(*reserved, &s1, 4);
  ASSERT_TRUE(writer.append(kTlvStreamData, 0, &other, 4));  // a second one for stream 0: first wins

  TlvView view;
  ASSERT_TRUE(find_tlv(buffer, writer.size(), kTlvStreamData, 0, view));
  EXPECT_EQ(view.length, 4u);
  EXPECT_EQ(std::memcmp(view.value, &s0, 4), 0);
  ASSERT_TRUE(find_tlv(buffer, writer.size(), kTlvStreamData, 1, view));
  EXPECT_EQ(std::memcmp(view.value, &s1, 4), 0);
  EXPECT_EQ((view.value - buffer) % 64, 0);
  EXPECT_FALSE(find_tlv(buffer, writer.size(), kTlvStreamData, 2, view));
  EXPECT_FALSE(find_tlv(buffer, writer.size(), kTlvHello, 0, view));
  EXPECT_FALSE(find_tlv(nullptr, 0, kTlvStreamData, 0, view));

  // Malformed bytes before the target: not found, no out-of-bounds read.
  auto bad = header_bytes(kTlvUserBase, 0, 1000);
  auto good = header_bytes(kTlvStreamData, 0, 0);
  bad.insert(bad.end(), good.begin(), good.end());
  ExactBuffer buf(bad.data(), bad.size());
  EXPECT_FALSE(find_tlv(buf.data(), buf.size, kTlvStreamData, 0, view));
}

}  // namespace
