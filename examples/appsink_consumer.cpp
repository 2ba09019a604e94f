// SPDX-License-Identifier: MIT
// appsink_consumer: a GStreamer app that pulls frames from shmxsrc through appsink and prints their caps and timing.
//
// Usage: appsink_consumer [SEGMENT] [--frames N]   (default segment "demo"; N = 0 reads until EOS or Ctrl-C)
#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

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
  g_object_set(src, "segment", segment.c_str(), nullptr);
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
    std::printf("frame %" G_GUINT64_FORMAT ": pts %" GST_TIME_FORMAT " duration %" GST_TIME_FORMAT " size %zu\n",
                frames, GST_TIME_ARGS(GST_BUFFER_PTS(buffer)), GST_TIME_ARGS(GST_BUFFER_DURATION(buffer)),
                gst_buffer_get_size(buffer));
    std::fflush(stdout);
    ++frames;
    gst_sample_unref(sample);
  }

  gst_caps_replace(&last_caps, nullptr);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
  return exit_code;
}
