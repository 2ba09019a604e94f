// SPDX-License-Identifier: MIT
// fuzz_segment.h: the input format of the hostile-segment fuzz target, shared with its corpus generator.
#pragma once

#include <cstdint>

namespace shmx_fuzz {

// A fuzz input is a FuzzPrefix followed by a segment image. The prefix lets the fuzzer choose how
// much of the image is repaired before the reader sees it, so that it reaches past the header
// checks as well as hitting them.
struct FuzzPrefix {
  uint8_t flags;         // FuzzFlags
  uint8_t client_flags;  // bit 0: send HELLO/BYE; bits 1-2: max_held_slots; bit 3: heartbeat thread
  uint16_t reserved;
  uint32_t reserved2;
};
static_assert(sizeof(FuzzPrefix) == 8);

enum FuzzFlags : uint8_t {
  kFixIdentity = 1 << 0,     // write the right magic, layout version and header size
  kFixGeometry = 1 << 1,     // clamp the layout parameters and recompute every offset and the size from them
  kFixState = 1 << 2,        // state = Ready
  kHoldWriterLock = 1 << 3,  // the harness holds the writer lock (else the reader sees no live writer)
  kServerPass = 1 << 4,      // also run a real Server over reader slots and rings taken from the image
  kFixSession = 1 << 5,      // a non-zero session id
};
inline constexpr uint8_t kFixAll = kFixIdentity | kFixGeometry | kFixState | kHoldWriterLock | kFixSession;

}  // namespace shmx_fuzz
