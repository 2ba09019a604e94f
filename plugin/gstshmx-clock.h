// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmx-clock.h: translation between a pipeline clock and CLOCK_MONOTONIC, the time base shared by
// processes.
#pragma once

#include <gst/gst.h>

#include <cstdint>

namespace gst_shmx {

// CLOCK_MONOTONIC minus the time of `clock`, in ns: 0 for the system clock in monotonic mode (the
// default pipeline clock), a sampled offset for any other clock.
int64_t monotonic_offset(GstClock* clock);

// The CLOCK_MONOTONIC time at which `element`'s running time 0 occurred (its base time on the
// monotonic clock), or false when the element has no clock.
bool monotonic_base_time(GstElement* element, uint64_t& out);

// monotonic_base_time() for every buffer: whether the element's clock is the monotonic system clock
// (offset 0) is looked up once per clock, not per call. One thread at a time.
class MonotonicClock {
 public:
  MonotonicClock() = default;
  ~MonotonicClock() { reset(); }
  MonotonicClock(const MonotonicClock&) = delete;
  MonotonicClock& operator=(const MonotonicClock&) = delete;

  bool base_time(GstElement* element, uint64_t& out);
  void reset();

 private:
  GstClock* clock_ = nullptr;  // a reference to the clock last seen
  bool monotonic_ = false;     // clock_ is the system clock in monotonic mode
};

}  // namespace gst_shmx
