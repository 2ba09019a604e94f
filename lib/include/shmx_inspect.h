// SPDX-License-Identifier: MIT
// shmx_inspect.h: a passive look at a segment (no registration, nothing written) for tools.
#pragma once

#include "shmx_server.h"

namespace shmx {

struct SegmentSnapshot {
  std::string name;
  uint32_t layout_version = 0;
  uint64_t session_id = 0;
  uint32_t writer_pid = 0;
  bool writer_alive = false;
  uint64_t created_realtime_ns = 0;
  uint64_t writer_heartbeat_age_ns = 0;
  uint32_t slot_count = 0;
  uint64_t slot_payload_capacity = 0;
  uint64_t total_size = 0;
  uint32_t reader_capacity = 0;
  uint32_t reader_timeout_ms = 0;  // readers with an older heartbeat are flagged stale
  uint64_t latest_frame_id = 0;
  uint64_t latest_frame_age_ns = 0;  // since the latest frame's publish time; 0 if none
  uint64_t latest_publish_ns = 0;    // the latest frame's publish time (CLOCK_MONOTONIC); 0 if none
  uint64_t frames_committed = 0;
  uint64_t loans_refused = 0;
  uint32_t slots_loaned = 0;
  uint32_t slots_held = 0;
  Metadata metadata;
  std::vector<ReaderInfo> readers;  // Active readers; frames behind = latest_frame_id - last_frame_id
};

// Maps the segment read-only, validates it like a reader does and copies out what tools show.
// A segment whose writer died is still shown (writer_alive = false).
Result<SegmentSnapshot> inspect_segment(const std::string& name);

}  // namespace shmx
