// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmx-clock.cpp: pipeline clock <-> CLOCK_MONOTONIC.
#include "gstshmx-clock.h"

#include "shmx_common.h"

namespace gst_shmx {

namespace {

bool is_monotonic_system_clock(GstClock* clock) {
  if (!GST_IS_SYSTEM_CLOCK(clock)) return false;
  GstClockType type = GST_CLOCK_TYPE_REALTIME;
  g_object_get(clock, "clock-type", &type, nullptr);
  // GstSystemClock reads clock_gettime(CLOCK_MONOTONIC) itself: the times are the same.
  return type == GST_CLOCK_TYPE_MONOTONIC;
}

}  // namespace

int64_t monotonic_offset(GstClock* clock) {
  if (is_monotonic_system_clock(clock)) return 0;
  const uint64_t before = shmx::monotonic_ns();
  const GstClockTime now = gst_clock_get_time(clock);
  const uint64_t after = shmx::monotonic_ns();
  return static_cast<int64_t>(before + (after - before) / 2) - static_cast<int64_t>(now);
}

bool monotonic_base_time(GstElement* element, uint64_t& out) {
  GstClock* clock = gst_element_get_clock(element);
  if (!clock) return false;
  const GstClockTime base_time = gst_element_get_base_time(element);
  const int64_t offset = monotonic_offset(clock);
  gst_object_unref(clock);
  if (!GST_CLOCK_TIME_IS_VALID(base_time)) return false;
  out = static_cast<uint64_t>(static_cast<int64_t>(base_time) + offset);
  return true;
}

bool MonotonicClock::base_time(GstElement* element, uint64_t& out) {
  GstClock* clock = gst_element_get_clock(element);
  if (!clock) return false;
  if (clock != clock_) {
    reset();
    clock_ = GST_CLOCK(gst_object_ref(clock));
    monotonic_ = is_monotonic_system_clock(clock);
  }
  const GstClockTime base_time = gst_element_get_base_time(element);
  // Another clock drifts against CLOCK_MONOTONIC: sampled every time.
  const int64_t offset = monotonic_ ? 0 : monotonic_offset(clock);
  gst_object_unref(clock);
  if (!GST_CLOCK_TIME_IS_VALID(base_time)) return false;
  out = static_cast<uint64_t>(static_cast<int64_t>(base_time) + offset);
  return true;
}

void MonotonicClock::reset() {
  if (clock_) gst_object_unref(clock_);
  clock_ = nullptr;
  monotonic_ = false;
}

}  // namespace gst_shmx
