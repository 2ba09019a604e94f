// SPDX-License-Identifier: MIT
// gst-hop-latency: the latency GStreamer alone adds, with no transport: appsrc ! appsink in one
// process, 4 KiB buffers stamped with CLOCK_MONOTONIC at about 1000/s, p50/p90/p99 of stamp->callback.
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace {

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

constexpr int kWarmup = 500;
constexpr int kFrames = 3000;

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  // The publisher settings of shmx-bench's appsrc publisher, with appsink directly behind.
  GstElement* pipeline = gst_parse_launch(
      "appsrc name=src is-live=true format=time block=true max-buffers=2 "
      "caps=video/x-raw,format=RGBA,width=32,height=32,framerate=1000/1 ! "
      "appsink name=sink sync=false async=false enable-last-sample=false max-buffers=4",
      nullptr);
  if (!pipeline) return 1;
  static std::vector<uint64_t> latencies;
  latencies.reserve(kFrames);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  GstAppSinkCallbacks callbacks{};
  callbacks.new_sample = [](GstAppSink* appsink, gpointer) -> GstFlowReturn {
    const uint64_t received = monotonic_ns();
    GstSample* sample = gst_app_sink_pull_sample(appsink);
    uint64_t stamp = 0;
    gst_buffer_extract(gst_sample_get_buffer(sample), 0, &stamp, sizeof stamp);
    latencies.push_back(received - stamp);
    gst_sample_unref(sample);
    return GST_FLOW_OK;
  };
  gst_app_sink_set_callbacks(GST_APP_SINK(sink), &callbacks, nullptr, nullptr);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstElement* src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
  for (int i = 0; i < kFrames; ++i) {
    GstBuffer* buffer = gst_buffer_new_allocate(nullptr, 4096, nullptr);
    const uint64_t stamp = monotonic_ns();
    gst_buffer_fill(buffer, 0, &stamp, sizeof stamp);
    gst_app_src_push_buffer(GST_APP_SRC(src), buffer);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(src);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
  if (latencies.size() <= kWarmup) return 1;
  std::vector<uint64_t> measured(latencies.begin() + kWarmup, latencies.end());
  std::sort(measured.begin(), measured.end());
  const auto at = [&](double q) { return measured[static_cast<size_t>(q * (measured.size() - 1))] / 1e3; };
  std::printf("appsrc ! appsink in one process, 4 KiB at ~1000/s: %zu frames, p50 %.1f us, p90 %.1f us, p99 %.1f us\n",
              measured.size(), at(0.5), at(0.9), at(0.99));
  return 0;
}
