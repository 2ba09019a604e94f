// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmx-clock.cpp: pipeline clock <-> CLOCK_MONOTONIC.
#include "gstshmx-clock.h"

#include <algorithm>

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

bool MonotonicClock::base_time(GstElement* element, uint64_t& out, GstClockTime* element_base_time) {
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
  if (element_base_time) *element_base_time = base_time;
  return true;
}

void MonotonicClock::reset() {
  if (clock_) gst_object_unref(clock_);
  clock_ = nullptr;
  monotonic_ = false;
}

void CaptureTimeline::map(uint64_t pts_capture, uint64_t dts_capture, uint64_t publish, uint64_t arrival,
                          uint64_t base, uint64_t run, uint64_t session, uint16_t stream, GstClockTime& pts,
                          GstClockTime& dts) {
  // The writer's capture-to-publish delay, plus the reader's wake-up: what the reader must report.
  const uint64_t delay = (publish > pts_capture ? publish - pts_capture : 0) + kWakeUpMargin;
  const GstClockTime latency = latency_.load(std::memory_order_relaxed);
  if (!GST_CLOCK_TIME_IS_VALID(latency) || delay > latency) {
    latency_.store(delay, std::memory_order_relaxed);
    latency_changed_ = true;
  }
  // A new run (the element's base time changed): timestamps start again. Not `base`, which moves by
  // the sampled offset of a clock other than the monotonic system clock at every call.
  if (run != run_) last_pts_.clear();
  if (last_pts_.size() <= stream) last_pts_.resize(stream + 1u, GST_CLOCK_TIME_NONE);
  const int64_t true_rt = static_cast<int64_t>(pts_capture - base);
  if (!anchored_ || run != run_ || session != session_) {
    // The first frame of a session: at its true running time if that is >= 0 and on time (it
    // arrives no later than its running time plus the latency), else the least later time that is.
    const int64_t on_time = static_cast<int64_t>(arrival - base) - static_cast<int64_t>(latency_.load());
    const int64_t target = std::max<int64_t>({true_rt, on_time, 0});
    shift_ = target - true_rt;
    anchored_ = true;
    run_ = run;
    session_ = session;
  }
  const int64_t rt = std::max<int64_t>(true_rt + shift_, 0);
  pts = static_cast<GstClockTime>(rt);
  // Never twice the same timestamp, never backwards (a writer restart re-anchors the timeline).
  GstClockTime& last = last_pts_[stream];
  if (GST_CLOCK_TIME_IS_VALID(last) && pts <= last) pts = last + 1;
  last = pts;
  if (dts_capture == UINT64_MAX) {
    dts = GST_CLOCK_TIME_NONE;
  } else {
    const int64_t dts_rt = static_cast<int64_t>(dts_capture - base) + shift_;
    dts = static_cast<GstClockTime>(std::max<int64_t>(dts_rt, 0));
  }
}

bool CaptureTimeline::take_latency_changed() {
  const bool changed = latency_changed_;
  latency_changed_ = false;
  return changed;
}

void CaptureTimeline::reset() {
  anchored_ = false;
  run_ = session_ = 0;
  shift_ = 0;
  last_pts_.clear();
  latency_.store(GST_CLOCK_TIME_NONE, std::memory_order_relaxed);
  latency_changed_ = false;
}

}  // namespace gst_shmx
