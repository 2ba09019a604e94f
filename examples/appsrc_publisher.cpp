// SPDX-License-Identifier: MIT
// appsrc_publisher: a GStreamer app that pushes generated RGBA frames through appsrc into shmxsink.
//
// Usage: appsrc_publisher [SEGMENT] [--frames N]   (default segment "demo"; N = 0 pushes until Ctrl-C)
// Read it with: gst-launch-1.0 shmxsrc segment=demo ! videoconvert ! autovideosink
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr int kWidth = 320;
constexpr int kHeight = 240;
constexpr int kFps = 30;

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

// A moving diagonal gradient, so a viewer can see frames advance.
void fill_frame(guint8* rgba, int stride, guint64 index) {
  for (int y = 0; y < kHeight; ++y) {
    guint8* row = rgba + static_cast<size_t>(y) * stride;
    for (int x = 0; x < kWidth; ++x) {
      row[4 * x + 0] = static_cast<guint8>(x + index * 4);
      row[4 * x + 1] = static_cast<guint8>(y + index * 2);
      row[4 * x + 2] = static_cast<guint8>(x + y);
      row[4 * x + 3] = 255;
    }
  }
}

// Returns the first ERROR on the bus as a message string, or an empty string.
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

  GstElement* pipeline = gst_pipeline_new("publisher");
  GstElement* appsrc = gst_element_factory_make("appsrc", "src");
  GstElement* sink = gst_element_factory_make("shmxsink", "sink");
  if (!pipeline || !appsrc || !sink) {
    std::fprintf(stderr, "missing element (is GST_PLUGIN_PATH pointing at the shmx plugin?)\n");
    return 1;
  }
  GstCaps* caps = gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING, "RGBA", "width", G_TYPE_INT, kWidth,
                                      "height", G_TYPE_INT, kHeight, "framerate", GST_TYPE_FRACTION, kFps, 1, nullptr);
  // A live source in TIME format: we stamp each buffer with the pipeline running time at capture.
  g_object_set(appsrc, "caps", caps, "format", GST_FORMAT_TIME, "is-live", TRUE, nullptr);
  gst_caps_unref(caps);
  g_object_set(sink, "segment", segment.c_str(), nullptr);
  gst_bin_add_many(GST_BIN(pipeline), appsrc, sink, nullptr);
  gst_element_link(appsrc, sink);

  GstBus* bus = gst_element_get_bus(pipeline);
  int exit_code = 0;
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    std::fprintf(stderr, "cannot start the pipeline: %s\n", pop_error(bus).c_str());
    exit_code = 1;
  }

  const gsize frame_size = static_cast<gsize>(kWidth) * kHeight * 4;
  const GstClockTime frame_duration = gst_util_uint64_scale_int(GST_SECOND, 1, kFps);
  GstClock* clock = gst_system_clock_obtain();  // the pipeline's default clock too
  GstClockTime next_push = gst_clock_get_time(clock);
  guint64 index = 0;
  while (exit_code == 0 && !g_stop && (max_frames == 0 || index < max_frames)) {
    GstClockID wait = gst_clock_new_single_shot_id(clock, next_push);  // pace at kFps
    gst_clock_id_wait(wait, nullptr);
    gst_clock_id_unref(wait);
    next_push += frame_duration;

    GstBuffer* buffer = gst_buffer_new_allocate(nullptr, frame_size, nullptr);
    GstMapInfo map;
    gst_buffer_map(buffer, &map, GST_MAP_WRITE);
    fill_frame(map.data, kWidth * 4, index);
    gst_buffer_unmap(buffer, &map);
    const GstClockTime base_time = gst_element_get_base_time(pipeline);
    const GstClockTime now = gst_clock_get_time(clock);
    GST_BUFFER_PTS(buffer) = now > base_time ? now - base_time : 0;  // running time at capture
    GST_BUFFER_DURATION(buffer) = frame_duration;
    GST_BUFFER_OFFSET(buffer) = index;
    if (gst_app_src_push_buffer(GST_APP_SRC(appsrc), buffer) != GST_FLOW_OK) break;  // takes the buffer
    if (++index % kFps == 0) {
      std::printf("pushed %" G_GUINT64_FORMAT " frames\n", index);
      std::fflush(stdout);
    }

    std::string error = pop_error(bus);
    if (!error.empty()) {
      std::fprintf(stderr, "pipeline error: %s\n", error.c_str());
      exit_code = 1;
    }
  }
  gst_object_unref(clock);

  if (exit_code == 0) {
    // EOS travels through shmxsink to every reader; wait (bounded) until the sink has handled it.
    gst_app_src_end_of_stream(GST_APP_SRC(appsrc));
    GstMessage* message =
        gst_bus_timed_pop_filtered(bus, 5 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    if (message) gst_message_unref(message);
  }
  std::printf("stopping after %" G_GUINT64_FORMAT " frames\n", index);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
  return exit_code;
}
