// SPDX-License-Identifier: MIT
// appsink_consumer: a GStreamer app that pulls frames from shmxsrc through appsink and prints their caps, timestamps
// and per-frame latency: publish->receive (the shared-memory hop: now minus the writer's commit time) and
// capture->receive (now minus the writer's capture time). shmxsrc attaches both times, on CLOCK_MONOTONIC, as
// GstReferenceTimestampMeta with caps "timestamp/x-shmx-publish" and "timestamp/x-shmx-capture".
//
// Usage: appsink_consumer [SEGMENT] [--frames N]   (default segment "demo"; N = 0 reads until EOS or Ctrl-C)
#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <time.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

std::string pop_error(GstBus* bus) {
  GstMessage* message = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  if (!message) return {};
  GError* error = nullptr;
  gchar* debug = nullptr;
  gst_message_parse_error(message, &error, &debug);
  std::string text = std::string(error->message) + (debug ? std::string(" (") + debug + ")" : "");
  g_clear_error(&error);
  g_free(debug);
  gst_message_unref(message);
  return text;
}

guint64 monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<guint64>(ts.tv_sec) * GST_SECOND + static_cast<guint64>(ts.tv_nsec);
}

// A reference timestamp shmxsrc attached (CLOCK_MONOTONIC ns), or GST_CLOCK_TIME_NONE.
GstClockTime reference_time(GstBuffer* buffer, GstStaticCaps* reference) {
  GstReferenceTimestampMeta* meta = gst_buffer_get_reference_timestamp_meta(buffer, gst_static_caps_get(reference));
  return meta ? meta->timestamp : GST_CLOCK_TIME_NONE;
}

GstStaticCaps publish_caps = GST_STATIC_CAPS("timestamp/x-shmx-publish");
GstStaticCaps capture_caps = GST_STATIC_CAPS("timestamp/x-shmx-capture");

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(p * static_cast<double>(values.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  std::string segment = "demo";
  guint64 max_frames = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--frames") == 0 && i + 1 < argc) {
      max_frames = std::strtoull(argv[++i], nullptr, 10);
    } else if (argv[i][0] != '-') {
      segment = argv[i];
    } else {
      std::fprintf(stderr, "usage: %s [SEGMENT] [--frames N]\n", argv[0]);
      return 2;
    }
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  GstElement* pipeline = gst_pipeline_new("consumer");
  GstElement* src = gst_element_factory_make("shmxsrc", "src");
  GstElement* appsink = gst_element_factory_make("appsink", "sink");
  if (!pipeline || !src || !appsink) {
    std::fprintf(stderr, "missing element (is GST_PLUGIN_PATH pointing at the shmx plugin?)\n");
    return 1;
  }
  // The name the writer and shmx-inspect show for this reader.
  g_object_set(src, "segment", segment.c_str(), "reader-name", "appsink_consumer", nullptr);
  // No caps set on appsink: shmxsrc produces the writer's caps by itself. Keep only the newest frames.
  g_object_set(appsink, "sync", FALSE, "max-buffers", 2, "drop", TRUE, nullptr);
  gst_bin_add_many(GST_BIN(pipeline), src, appsink, nullptr);
  gst_element_link(src, appsink);

  GstBus* bus = gst_element_get_bus(pipeline);
  int exit_code = 0;
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    std::fprintf(stderr, "cannot start the pipeline: %s\n", pop_error(bus).c_str());
    exit_code = 1;
  }

  GstCaps* last_caps = nullptr;
  guint64 frames = 0;
  std::vector<double> hop_latencies_us;
  while (exit_code == 0 && !g_stop && (max_frames == 0 || frames < max_frames)) {
    // Bounded pulls so Ctrl-C and bus errors are noticed while waiting for a writer.
    GstSample* sample = gst_app_sink_try_pull_sample(GST_APP_SINK(appsink), 200 * GST_MSECOND);
    if (!sample) {
      if (gst_app_sink_is_eos(GST_APP_SINK(appsink))) {
        std::printf("end of stream after %" G_GUINT64_FORMAT " frames\n", frames);
        break;
      }
      std::string error = pop_error(bus);
      if (!error.empty()) {
        std::fprintf(stderr, "pipeline error: %s\n", error.c_str());
        exit_code = 1;
      }
      continue;
    }
    GstCaps* caps = gst_sample_get_caps(sample);
    if (caps && (!last_caps || !gst_caps_is_equal(caps, last_caps))) {
      gchar* text = gst_caps_to_string(caps);
      std::printf("caps: %s\n", text);
      g_free(text);
      gst_caps_replace(&last_caps, caps);
    }
    GstBuffer* buffer = gst_sample_get_buffer(sample);
    const guint64 received_ns = monotonic_ns();
    const GstClockTime published_ns = reference_time(buffer, &publish_caps);
    const GstClockTime captured_ns = reference_time(buffer, &capture_caps);
    std::string latency;
    if (GST_CLOCK_TIME_IS_VALID(published_ns) && received_ns >= published_ns) {
      const double us = static_cast<double>(received_ns - published_ns) / 1e3;
      hop_latencies_us.push_back(us);
      latency += " publish->receive " + std::to_string(static_cast<long long>(us)) + " us";
    }
    if (GST_CLOCK_TIME_IS_VALID(captured_ns) && received_ns >= captured_ns) {
      const double ms = static_cast<double>(received_ns - captured_ns) / 1e6;
      char text[48];
      std::snprintf(text, sizeof text, " capture->receive %.2f ms", ms);
      latency += text;
    }
    std::printf("frame %" G_GUINT64_FORMAT ": pts %" GST_TIME_FORMAT " duration %" GST_TIME_FORMAT " size %zu%s\n",
                frames, GST_TIME_ARGS(GST_BUFFER_PTS(buffer)), GST_TIME_ARGS(GST_BUFFER_DURATION(buffer)),
                gst_buffer_get_size(buffer), latency.c_str());
    std::fflush(stdout);
    ++frames;
    gst_sample_unref(sample);
  }

  if (!hop_latencies_us.empty())
    std::printf("received %" G_GUINT64_FORMAT " frames; publish->receive latency p50 %.0f us, p99 %.0f us, max %.0f us\n",
                frames, percentile(hop_latencies_us, 0.5), percentile(hop_latencies_us, 0.99),
                percentile(hop_latencies_us, 1.0));
  gst_caps_replace(&last_caps, nullptr);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
  return exit_code;
}
