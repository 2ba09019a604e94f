// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmx-clock.h: translation between a pipeline clock and CLOCK_MONOTONIC, the time base shared by
// processes.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <vector>

namespace gst_shmx {

// CLOCK_MONOTONIC minus the time of `clock`, in ns: 0 for the system clock in monotonic mode (the
// default pipeline clock), a sampled offset for any other clock.
int64_t monotonic_offset(GstClock* clock);

// The CLOCK_MONOTONIC time at which an element's running time 0 occurred (its base time on the
// monotonic clock), for every buffer: whether the element's clock is the monotonic system clock
// (offset 0) is looked up once per clock, not per call. One thread at a time.
class MonotonicClock {
 public:
  MonotonicClock() = default;
  ~MonotonicClock() { reset(); }
  MonotonicClock(const MonotonicClock&) = delete;
  MonotonicClock& operator=(const MonotonicClock&) = delete;

  // False when the element has no clock or no base time. `element_base_time`, if given, receives the
  // element's own base time (in its clock's time) too.
  bool base_time(GstElement* element, uint64_t& out, GstClockTime* element_base_time = nullptr);
  void reset();

 private:
  GstClock* clock_ = nullptr;  // a reference to the clock last seen
  bool monotonic_ = false;     // clock_ is the system clock in monotonic mode
};

// Maps writer capture times (CLOCK_MONOTONIC ns) onto a reader pipeline's running time, and the
// latency the reader must report for its buffers to be on time.
//
// A frame's true running time is capture - base (base: the monotonic time of running time 0). A
// reader that joins a running writer first gets frames captured before its running time 0, whose
// true running time is negative. Clamping each to 0 would give several buffers the same timestamp,
// which encoders and muxers refuse; instead the timeline of a session is shifted once, at its first
// frame, by the least amount that puts that frame at or after 0 and on time. Later frames keep
// their exact spacing. Frames of a reader started before its writer are not shifted at all.
//
// Latency: a frame is published some time after its capture (the writer pipeline's own latency:
// a sink renders a buffer at its running time plus the latency). The reader reports the largest
// capture-to-publish delay seen plus a wake-up margin, and says when that grew, so that the caller
// can post a LATENCY message. One streaming thread calls map(); latency() is safe from any thread.
class CaptureTimeline {
 public:
  // Margin for the reader's wake-up after the commit, added to the writer's delay.
  static constexpr uint64_t kWakeUpMargin = 2 * GST_MSECOND;

  // pts_capture / dts_capture: monotonic ns (dts may be UINT64_MAX = none); publish: the frame's
  // commit time; arrival: now; base: monotonic time of running time 0; run: the element's base time
  // (identifies the run; base itself moves with the sampled offset of a non-monotonic clock); session:
  // the writer's;
  // stream: the buffer's stream (every stream of a session shares one shift, so streams stay in
  // step). Sets pts (strictly increasing per stream within a base time) and dts (GST_CLOCK_TIME_NONE
  // if none).
  void map(uint64_t pts_capture, uint64_t dts_capture, uint64_t publish, uint64_t arrival, uint64_t base,
           uint64_t run, uint64_t session, uint16_t stream, GstClockTime& pts, GstClockTime& dts);
  // GST_CLOCK_TIME_NONE before the first frame.
  GstClockTime latency() const { return latency_.load(std::memory_order_relaxed); }
  // True once after the latency grew (the caller posts a LATENCY message).
  bool take_latency_changed();
  void reset();

 private:
  bool anchored_ = false;
  uint64_t run_ = 0;  // the element's base time (pipeline clock) of the anchored run
  uint64_t session_ = 0;
  int64_t shift_ = 0;  // added to capture - base; >= 0
  std::vector<GstClockTime> last_pts_;  // per stream
  std::atomic<GstClockTime> latency_{GST_CLOCK_TIME_NONE};
  bool latency_changed_ = false;
};

}  // namespace gst_shmx
