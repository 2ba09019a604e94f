// SPDX-License-Identifier: LGPL-2.1-or-later
// test_elements.cpp: gst-check tests of shmxsink and shmxsrc driven through GstHarness in one process.
#include <gst/video/video.h>

#include "shmx-test-util.h"
#include "shmx_common.h"

using namespace shmx_test;

namespace {

// A writer harness: shmxsink on `segment` (sync=false: the harness clock is not running).
struct Writer {
  GstBus* bus = gst_bus_new();
  GstElement* element = nullptr;
  GstHarness* h = nullptr;

  Writer(const std::string& segment, const char* caps, const char* extra_property = nullptr,
         guint64 value = 0) {
    element = make_element("shmxsink", bus);
    g_object_set(element, "segment", segment.c_str(), "sync", FALSE, nullptr);
    if (extra_property) g_object_set(element, extra_property, value, nullptr);
    h = gst_harness_new_with_element(element, "sink", nullptr);
    if (caps) gst_harness_set_src_caps_str(h, caps);
  }
  ~Writer() {
    gst_harness_teardown(h);
    gst_object_unref(element);
    gst_object_unref(bus);
  }
  GstFlowReturn push(gsize size, GstClockTime pts, guint64 offset) {
    GstBuffer* buffer = gst_buffer_new_allocate(nullptr, size, nullptr);
    gst_buffer_memset(buffer, 0, static_cast<guint8>(offset), size);
    GST_BUFFER_PTS(buffer) = pts;
    GST_BUFFER_OFFSET(buffer) = offset;
    return gst_harness_push(h, buffer);
  }
};

// A reader harness: shmxsrc on `segment`, started at once.
struct Reader {
  GstBus* bus = gst_bus_new();
  GstElement* element = nullptr;
  GstHarness* h = nullptr;

  explicit Reader(const std::string& segment, bool start = true) {
    element = make_element("shmxsrc", bus);
    g_object_set(element, "segment", segment.c_str(), "timestamp-mode", 1 /* original */, "reader-name",
                 "test-reader", nullptr);
    h = gst_harness_new_with_element(element, nullptr, "src");
    if (start) gst_harness_play(h);
  }
  ~Reader() {
    gst_harness_teardown(h);
    gst_object_unref(element);
    gst_object_unref(bus);
  }
  GstCaps* caps() { return gst_pad_get_current_caps(h->sinkpad); }
};

const char* kVideoCaps = "video/x-raw,format=RGBA,width=64,height=48,framerate=30/1";

}  // namespace

// Caps of several media types reach the reader unchanged, with no capsfilter.
GST_START_TEST(test_caps_round_trip) {
  const char* all_caps[] = {
      kVideoCaps,
      "video/x-raw,format=NV12,width=320,height=240,framerate=25/1,interlace-mode=progressive",
      "video/x-h264,stream-format=byte-stream,alignment=au,width=640,height=480,framerate=30/1,profile=high",
      "audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2,channel-mask=(bitmask)0x3",
      "application/x-custom,foo=bar,n=(int)7",
  };
  for (const char* caps_text : all_caps) {
    const std::string segment = segment_name("caps");
    Writer writer(segment, caps_text);
    fail_unless_equals_int(writer.push(1000, 0, 1), GST_FLOW_OK);
    Reader reader(segment);
    GstBuffer* buffer = pull_within(reader.h, 5000);
    fail_unless(buffer != nullptr, "no buffer for %s", caps_text);
    fail_unless_equals_int(gst_buffer_get_size(buffer), 1000);
    gst_buffer_unref(buffer);
    GstCaps* expected = gst_caps_from_string(caps_text);
    GstCaps* got = reader.caps();
    fail_unless(got && gst_caps_is_equal(expected, got), "caps %" GST_PTR_FORMAT " != %" GST_PTR_FORMAT, got,
                expected);
    gst_caps_unref(got);
    gst_caps_unref(expected);
  }
}
GST_END_TEST;

// A reader that starts late gets the latest frame at once, not the first.
GST_START_TEST(test_late_join) {
  const std::string segment = segment_name("late");
  Writer writer(segment, kVideoCaps);
  for (guint64 i = 1; i <= 5; ++i)
    fail_unless_equals_int(writer.push(64 * 48 * 4, i * GST_SECOND, i), GST_FLOW_OK);
  Reader reader(segment);
  GstBuffer* buffer = pull_within(reader.h, 2000);
  fail_unless(buffer != nullptr);
  fail_unless_equals_uint64(GST_BUFFER_OFFSET(buffer), 5);
  fail_unless_equals_uint64(GST_BUFFER_PTS(buffer), 5 * GST_SECOND);
  gst_buffer_unref(buffer);

  fail_unless_equals_int(writer.push(64 * 48 * 4, 6 * GST_SECOND, 6), GST_FLOW_OK);
  buffer = pull_within(reader.h, 2000);
  fail_unless(buffer != nullptr);
  fail_unless_equals_uint64(GST_BUFFER_OFFSET(buffer), 6);
  gst_buffer_unref(buffer);
}
GST_END_TEST;

// A reader that starts first waits, warns naming the segment, and gets the first frame of the writer.
GST_START_TEST(test_reader_before_writer) {
  const std::string segment = segment_name("early");
  Reader reader(segment, false);
  g_object_set(reader.element, "wait-warning-interval", 1, nullptr);
  gst_harness_play(reader.h);

  const std::string warning = wait_for_text(reader.bus, GST_MESSAGE_WARNING, segment, 3000);
  fail_if(warning.empty(), "no warning naming the segment while waiting");
  fail_unless(gst_harness_try_pull(reader.h) == nullptr);

  Writer writer(segment, kVideoCaps);
  fail_unless_equals_int(writer.push(64 * 48 * 4, GST_SECOND, 1), GST_FLOW_OK);
  GstBuffer* buffer = pull_within(reader.h, 3000);
  fail_unless(buffer != nullptr, "the reader did not get the writer's first frame");
  fail_unless_equals_uint64(GST_BUFFER_OFFSET(buffer), 1);
  gst_buffer_unref(buffer);
  fail_unless(pop_message(reader.bus, GST_MESSAGE_ERROR, 0) == nullptr);
}
GST_END_TEST;

// timeout= bounds the wait for a writer with an error naming the segment.
GST_START_TEST(test_reader_timeout) {
  const std::string segment = segment_name("timeout");
  Reader reader(segment, false);
  g_object_set(reader.element, "timeout", 300, nullptr);
  const auto start = Clock::now();
  gst_harness_play(reader.h);
  const std::string error = wait_for_text(reader.bus, GST_MESSAGE_ERROR, segment, 3000);
  fail_if(error.empty(), "no error naming the segment after the timeout");
  fail_unless(error.find("No writer") != std::string::npos, "error: %s", error.c_str());
  fail_unless(Clock::now() - start < std::chrono::seconds(2));
}
GST_END_TEST;

// Caps that the reader's downstream refuses are an error naming the segment (not a bare not-negotiated).
GST_START_TEST(test_caps_refused_downstream) {
  const std::string segment = segment_name("refused");
  Pipeline writer("videotestsrc is-live=true ! video/x-raw,format=I420,width=64,height=48 ! shmxsink segment=" +
                  segment);
  writer.play();
  Pipeline reader("shmxsrc segment=" + segment + " ! video/x-raw,format=RGB ! fakesink");
  reader.play();
  const std::string error = wait_for_text(reader.bus, GST_MESSAGE_ERROR, segment, 5000);
  fail_unless(error.find("Downstream does not accept the caps of segment") != std::string::npos, "error: %s",
              error.c_str());
}
GST_END_TEST;

// New caps at the writer renegotiate the reader.
GST_START_TEST(test_caps_change) {
  const std::string segment = segment_name("capschange");
  Writer writer(segment, kVideoCaps);
  Reader reader(segment);
  fail_unless_equals_int(writer.push(64 * 48 * 4, GST_SECOND, 1), GST_FLOW_OK);
  GstBuffer* buffer = pull_within(reader.h, 3000);
  fail_unless(buffer != nullptr);
  gst_buffer_unref(buffer);

  const char* small = "video/x-raw,format=RGBA,width=32,height=24,framerate=30/1";
  gst_harness_set_src_caps_str(writer.h, small);
  fail_unless_equals_int(writer.push(32 * 24 * 4, 2 * GST_SECOND, 2), GST_FLOW_OK);
  buffer = pull_within(reader.h, 3000);
  fail_unless(buffer != nullptr);
  fail_unless_equals_uint64(GST_BUFFER_OFFSET(buffer), 2);
  fail_unless_equals_int(gst_buffer_get_size(buffer), 32 * 24 * 4);
  gst_buffer_unref(buffer);
  GstCaps* expected = gst_caps_from_string(small);
  GstCaps* got = reader.caps();
  fail_unless(gst_caps_is_equal(expected, got), "caps not renegotiated: %" GST_PTR_FORMAT, got);
  gst_caps_unref(got);

  // Bigger caps than the slots: the segment grows (a new session) and the reader follows.
  const char* big = "video/x-raw,format=RGBA,width=640,height=480,framerate=30/1";
  gst_harness_set_src_caps_str(writer.h, big);
  fail_unless_equals_int(writer.push(640 * 480 * 4, 3 * GST_SECOND, 3), GST_FLOW_OK);
  buffer = pull_within(reader.h, 5000);
  fail_unless(buffer != nullptr, "the reader did not follow the grown segment");
  fail_unless_equals_uint64(GST_BUFFER_OFFSET(buffer), 3);
  gst_buffer_unref(buffer);
  gst_caps_unref(expected);
  expected = gst_caps_from_string(big);
  got = reader.caps();
  fail_unless(gst_caps_is_equal(expected, got));
  gst_caps_unref(got);
  gst_caps_unref(expected);
  fail_unless(pop_message(reader.bus, GST_MESSAGE_ERROR, 0) == nullptr);
}
GST_END_TEST;

// EOS at the writer is EOS at the reader.
GST_START_TEST(test_eos) {
  const std::string segment = segment_name("eos");
  Writer writer(segment, kVideoCaps);
  Reader reader(segment);
  fail_unless_equals_int(writer.push(64 * 48 * 4, GST_SECOND, 1), GST_FLOW_OK);
  GstBuffer* buffer = pull_within(reader.h, 3000);
  fail_unless(buffer != nullptr);
  gst_buffer_unref(buffer);
  fail_unless(gst_harness_push_event(writer.h, gst_event_new_eos()));
  GstEvent* eos = pull_event_within(reader.h, GST_EVENT_EOS, 3000);
  fail_unless(eos != nullptr, "no EOS at the reader");
  gst_event_unref(eos);
}
GST_END_TEST;

// PTS, DTS, duration, offsets, flags, a padded GstVideoMeta and the publish time survive.
GST_START_TEST(test_buffer_facts_preserved) {
  const std::string segment = segment_name("facts");
  Writer writer(segment, kVideoCaps);
  Reader reader(segment);
  const gint stride = 64 * 4 + 64;  // padded rows
  GstBuffer* buffer = gst_buffer_new_allocate(nullptr, stride * 48, nullptr);
  GST_BUFFER_PTS(buffer) = 10 * GST_SECOND;
  GST_BUFFER_DTS(buffer) = 9 * GST_SECOND;
  GST_BUFFER_DURATION(buffer) = GST_SECOND / 30;
  GST_BUFFER_OFFSET(buffer) = 300;
  GST_BUFFER_OFFSET_END(buffer) = 301;
  GST_BUFFER_FLAG_SET(buffer, GST_BUFFER_FLAG_DELTA_UNIT | GST_BUFFER_FLAG_MARKER);
  gsize offsets[4] = {0};
  gint strides[4] = {stride};
  gst_buffer_add_video_meta_full(buffer, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_FORMAT_RGBA, 64, 48, 1, offsets,
                                 strides);
  const guint64 before = shmx::monotonic_ns();
  fail_unless_equals_int(gst_harness_push(writer.h, buffer), GST_FLOW_OK);

  GstBuffer* out = pull_within(reader.h, 3000);
  fail_unless(out != nullptr);
  fail_unless_equals_int(gst_buffer_get_size(out), stride * 48);
  fail_unless_equals_uint64(GST_BUFFER_PTS(out), 10 * GST_SECOND);
  fail_unless_equals_uint64(GST_BUFFER_DTS(out), 9 * GST_SECOND);
  fail_unless_equals_uint64(GST_BUFFER_DURATION(out), GST_SECOND / 30);
  fail_unless_equals_uint64(GST_BUFFER_OFFSET(out), 300);
  fail_unless_equals_uint64(GST_BUFFER_OFFSET_END(out), 301);
  fail_unless(GST_BUFFER_FLAG_IS_SET(out, GST_BUFFER_FLAG_DELTA_UNIT));
  fail_unless(GST_BUFFER_FLAG_IS_SET(out, GST_BUFFER_FLAG_MARKER));
  GstVideoMeta* meta = gst_buffer_get_video_meta(out);
  fail_unless(meta != nullptr, "video meta lost");
  fail_unless_equals_int(meta->stride[0], stride);
  fail_unless_equals_int(meta->format, GST_VIDEO_FORMAT_RGBA);
  fail_unless_equals_int(meta->width, 64);
  fail_unless_equals_int(meta->height, 48);

  GstCaps* reference = gst_caps_from_string("timestamp/x-shmx-publish");
  GstReferenceTimestampMeta* publish = gst_buffer_get_reference_timestamp_meta(out, reference);
  fail_unless(publish != nullptr, "no publish time meta");
  fail_unless(publish->timestamp >= before && publish->timestamp <= shmx::monotonic_ns());
  gst_caps_unref(reference);

  // The frame is wrapped read-only (zero copy) but downstream can still write to a copy.
  GstMapInfo map;
  fail_unless(gst_buffer_map(out, &map, GST_MAP_READ));
  gst_buffer_unmap(out, &map);
  out = gst_buffer_make_writable(out);
  fail_unless(gst_buffer_map(out, &map, GST_MAP_WRITE));
  map.data[0] = 42;
  gst_buffer_unmap(out, &map);
  gst_buffer_unref(out);
}
GST_END_TEST;

// A buffer bigger than an explicit slot-size is a clear error naming the segment.
GST_START_TEST(test_buffer_too_large) {
  const std::string segment = segment_name("toolarge");
  Writer writer(segment, "application/x-custom", "slot-size", 4096);
  fail_unless_equals_int(writer.push(1000, 0, 1), GST_FLOW_OK);
  fail_unless_equals_int(writer.push(100000, 0, 2), GST_FLOW_ERROR);
  const std::string error = wait_for_text(writer.bus, GST_MESSAGE_ERROR, segment, 1000);
  fail_if(error.empty());
  fail_unless(error.find("does not fit") != std::string::npos, "error: %s", error.c_str());
}
GST_END_TEST;

// With slot-size=0 a bigger buffer grows the slots instead.
GST_START_TEST(test_slot_growth) {
  const std::string segment = segment_name("grow");
  Writer writer(segment, "application/x-custom");
  Reader reader(segment);
  fail_unless_equals_int(writer.push(1000, 0, 1), GST_FLOW_OK);
  GstBuffer* buffer = pull_within(reader.h, 3000);
  fail_unless(buffer != nullptr);
  gst_buffer_unref(buffer);
  fail_unless_equals_int(writer.push(3 << 20, 0, 2), GST_FLOW_OK);
  buffer = pull_within(reader.h, 5000);
  fail_unless(buffer != nullptr);
  fail_unless_equals_uint64(GST_BUFFER_OFFSET(buffer), 2);
  fail_unless_equals_int(gst_buffer_get_size(buffer), 3 << 20);
  gst_buffer_unref(buffer);
  fail_unless_equals_uint64(stats_field(writer.element, "segment-recreations"), 1);
}
GST_END_TEST;

// Missing and invalid names are errors at start, for both elements.
GST_START_TEST(test_bad_segment_names) {
  for (const char* factory : {"shmxsink", "shmxsrc"}) {
    for (const char* name : {static_cast<const char*>(nullptr), "bad/name", ".hidden", ""}) {
      GstElement* pipeline = gst_pipeline_new(nullptr);
      GstElement* element = gst_element_factory_make(factory, nullptr);
      GstElement* other =
          gst_element_factory_make(std::strcmp(factory, "shmxsink") ? "fakesink" : "fakesrc", nullptr);
      gst_bin_add_many(GST_BIN(pipeline), element, other, nullptr);
      if (std::strcmp(factory, "shmxsink") == 0)
        gst_element_link(other, element);
      else
        gst_element_link(element, other);
      if (name) g_object_set(element, "segment", name, nullptr);
      GstBus* bus = gst_element_get_bus(pipeline);
      fail_unless_equals_int(gst_element_set_state(pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
      GstMessage* message = pop_message(bus, GST_MESSAGE_ERROR, 1000);
      fail_unless(message != nullptr, "%s segment=%s: no error", factory, name ? name : "(none)");
      const std::string text = message_text(message);
      fail_unless(text.find(name && *name ? name : "segment") != std::string::npos, "%s: %s", factory,
                  text.c_str());
      gst_message_unref(message);
      gst_element_set_state(pipeline, GST_STATE_NULL);
      gst_object_unref(bus);
      gst_object_unref(pipeline);
    }
  }
}
GST_END_TEST;

// A second writer on a live segment is refused; the first keeps working.
GST_START_TEST(test_second_writer_refused) {
  const std::string segment = segment_name("second");
  Writer live(segment, kVideoCaps);
  fail_unless_equals_int(live.push(64 * 48 * 4, 0, 1), GST_FLOW_OK);

  GstElement* pipeline = gst_parse_launch(("fakesrc ! shmxsink segment=" + segment).c_str(), nullptr);
  GstBus* bus = gst_element_get_bus(pipeline);
  fail_unless_equals_int(gst_element_set_state(pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  const std::string error = wait_for_text(bus, GST_MESSAGE_ERROR, segment, 1000);
  fail_unless(error.find("live writer") != std::string::npos, "error: %s", error.c_str());
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(pipeline);

  fail_unless_equals_int(live.push(64 * 48 * 4, 0, 2), GST_FLOW_OK);
  fail_unless(segment_exists(segment));
}
GST_END_TEST;

// A file in the segment's place that is not a shmx segment, or has another layout version, is an error.
GST_START_TEST(test_foreign_segment) {
  for (int version_only = 0; version_only < 2; ++version_only) {
    const std::string segment = segment_name(version_only ? "version" : "foreign");
    const int fd = open(shm_path(segment).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    fail_unless(fd >= 0);
    std::vector<uint8_t> bytes(64 * 1024, 0x5a);
    if (version_only) {
      shmx::GlobalHeader header;
      std::memset(static_cast<void*>(&header), 0, sizeof(header));
      header.magic = shmx::kMagic;
      header.layout_version = shmx::kLayoutVersion + 1;
      header.header_size = sizeof(header);
      header.total_size = bytes.size();
      std::memcpy(bytes.data(), &header, sizeof(header));
    }
    fail_unless_equals_int(write(fd, bytes.data(), bytes.size()), static_cast<int>(bytes.size()));
    // A live writer's lock on byte 0, so that the reader does not just wait for the writer to come back.
    struct flock lock = {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start = 0;
    lock.l_len = 1;
    fail_unless(fcntl(fd, F_OFD_SETLK, &lock) == 0);

    Reader reader(segment, false);
    g_object_set(reader.element, "timeout", 2000, nullptr);
    gst_harness_play(reader.h);
    const std::string error = wait_for_text(reader.bus, GST_MESSAGE_ERROR, segment, 3000);
    fail_if(error.empty(), "no error for a foreign segment");
    fail_unless(error.find(version_only ? "layout version" : "not a shmx segment") != std::string::npos,
                "error: %s", error.c_str());
    close(fd);
    unlink(shm_path(segment).c_str());
  }
}
GST_END_TEST;

// Readers are visible to the writer: count, per-reader stats and bus messages.
GST_START_TEST(test_reader_visibility) {
  const std::string segment = segment_name("visible");
  Writer writer(segment, kVideoCaps);
  fail_unless_equals_int(writer.push(64 * 48 * 4, 0, 1), GST_FLOW_OK);
  {
    Reader reader(segment);
    GstBuffer* buffer = pull_within(reader.h, 3000);
    fail_unless(buffer != nullptr);
    gst_buffer_unref(buffer);

    GstMessage* connected = wait_for_element_message(writer.bus, "shmx-reader-connected", 2000);
    fail_unless(connected != nullptr, "no shmx-reader-connected message");
    const GstStructure* s = gst_message_get_structure(connected);
    fail_unless_equals_string(gst_structure_get_string(s, "name"), "test-reader");
    fail_unless_equals_string(gst_structure_get_string(s, "segment"), segment.c_str());
    guint pid = 0;
    fail_unless(gst_structure_get_uint(s, "pid", &pid));
    fail_unless_equals_int(pid, getpid());
    gst_message_unref(connected);

    guint readers = 0;
    g_object_get(writer.element, "readers", &readers, nullptr);
    fail_unless_equals_int(readers, 1);
    GValue stats = G_VALUE_INIT;
    g_value_init(&stats, GST_TYPE_ARRAY);
    g_object_get_property(G_OBJECT(writer.element), "reader-stats", &stats);
    fail_unless_equals_int(gst_value_array_get_size(&stats), 1);
    const GstStructure* reader_stats = gst_value_get_structure(gst_value_array_get_value(&stats, 0));
    fail_unless_equals_string(gst_structure_get_string(reader_stats, "name"), "test-reader");
    fail_unless(gst_structure_has_field(reader_stats, "heartbeat-age"));
    g_value_unset(&stats);
  }
  GstMessage* gone = wait_for_element_message(writer.bus, "shmx-reader-disconnected", 2000);
  fail_unless(gone != nullptr, "no shmx-reader-disconnected message");
  gst_message_unref(gone);
  guint readers = 1;
  fail_unless(wait_until(1000, [&] {
    g_object_get(writer.element, "readers", &readers, nullptr);
    return readers == 0;
  }));
}
GST_END_TEST;

// Upstream events from the reader's pipeline come out of the writer's sink pad.
GST_START_TEST(test_upstream_events) {
  const std::string segment = segment_name("events");
  Writer writer(segment, kVideoCaps);
  Reader reader(segment);
  fail_unless_equals_int(writer.push(64 * 48 * 4, 0, 1), GST_FLOW_OK);
  GstBuffer* buffer = pull_within(reader.h, 3000);
  fail_unless(buffer != nullptr);
  gst_buffer_unref(buffer);
  // Drop what the writer harness saw so far (reconfigure, latency...).
  while (GstEvent* event = gst_harness_try_pull_upstream_event(writer.h)) gst_event_unref(event);

  fail_unless(gst_harness_push_upstream_event(
      reader.h, gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 7)));
  GstEvent* event = pull_upstream_event_within(writer.h, GST_EVENT_CUSTOM_UPSTREAM, 3000);
  fail_unless(event != nullptr, "force-key-unit did not reach the writer");
  fail_unless(gst_video_event_is_force_key_unit(event));
  guint count = 0;
  fail_unless(gst_video_event_parse_upstream_force_key_unit(event, nullptr, nullptr, &count));
  fail_unless_equals_int(count, 7);
  gst_event_unref(event);

  fail_unless(gst_harness_push_upstream_event(
      reader.h, gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM,
                                     gst_structure_new("my-request", "value", G_TYPE_INT, 42, nullptr))));
  event = pull_upstream_event_within(writer.h, GST_EVENT_CUSTOM_UPSTREAM, 3000);
  fail_unless(event != nullptr);
  gint value = 0;
  fail_unless(gst_structure_has_name(gst_event_get_structure(event), "my-request"));
  fail_unless(gst_structure_get_int(gst_event_get_structure(event), "value", &value));
  fail_unless_equals_int(value, 42);
  gst_event_unref(event);

  // Navigation (a click in the reader's video window) reaches the writer's pipeline with its fields.
  fail_unless(gst_harness_push_upstream_event(
      reader.h, gst_navigation_event_new_mouse_button_press(1, 12.5, 30.0, GST_NAVIGATION_MODIFIER_NONE)));
  event = pull_upstream_event_within(writer.h, GST_EVENT_NAVIGATION, 3000);
  fail_unless(event != nullptr, "navigation did not reach the writer");
  fail_unless_equals_int(gst_navigation_event_get_type(event), GST_NAVIGATION_EVENT_MOUSE_BUTTON_PRESS);
  gint button = 0;
  gdouble x = 0, y = 0;
  fail_unless(gst_navigation_event_parse_mouse_button_event(event, &button, &x, &y));
  fail_unless_equals_int(button, 1);
  fail_unless_equals_float(x, 12.5);
  fail_unless_equals_float(y, 30.0);
  gst_event_unref(event);
}
GST_END_TEST;

// A reader whose process is killed is reaped: shmx-reader-reaped on the writer's bus with its pid.
GST_START_TEST(test_reader_reaped) {
  const std::string segment = segment_name("reaped");
  Writer writer(segment, kVideoCaps);
  fail_unless_equals_int(writer.push(64 * 48 * 4, 0, 1), GST_FLOW_OK);
  const pid_t reader = spawn_pipeline("shmxsrc segment=" + segment + " reader-name=doomed ! fakesink", 20);
  GstMessage* connected = wait_for_element_message(writer.bus, "shmx-reader-connected", 5000);
  fail_unless(connected != nullptr, "the reader process did not connect");
  gst_message_unref(connected);

  kill_child(reader);  // SIGKILL: no BYE
  GstMessage* reaped = wait_for_element_message(writer.bus, "shmx-reader-reaped", 2000);
  fail_unless(reaped != nullptr, "no shmx-reader-reaped message");
  const GstStructure* s = gst_message_get_structure(reaped);
  fail_unless_equals_string(gst_structure_get_string(s, "name"), "doomed");
  fail_unless_equals_string(gst_structure_get_string(s, "segment"), segment.c_str());
  guint pid = 0;
  fail_unless(gst_structure_get_uint(s, "pid", &pid));
  fail_unless_equals_int(pid, reader);
  gst_message_unref(reaped);
  guint readers = 1;
  g_object_get(writer.element, "readers", &readers, nullptr);
  fail_unless_equals_int(readers, 0);
}
GST_END_TEST;

// unlock interrupts a reader waiting for a writer at once.
GST_START_TEST(test_unlock_while_waiting) {
  const std::string segment = segment_name("unlock");
  GstElement* pipeline = gst_parse_launch(("shmxsrc segment=" + segment + " ! fakesink").c_str(), nullptr);
  fail_if(gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE);
  sleep_ms(300);
  const auto start = Clock::now();
  fail_unless_equals_int(gst_element_set_state(pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  fail_unless(Clock::now() - start < std::chrono::milliseconds(500),
              "stopping a waiting reader took too long");
  gst_object_unref(pipeline);
}
GST_END_TEST;

// Any sequence of state changes leaks no fd, thread or mapping and leaves nothing in /dev/shm.
GST_START_TEST(test_state_changes_leak_nothing) {
  const std::string segment = segment_name("states");
  GstElement* writer = gst_parse_launch(
      ("videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=100/1 ! shmxsink segment=" +
       segment)
          .c_str(),
      nullptr);
  GstElement* reader =
      gst_parse_launch(("shmxsrc segment=" + segment + " ! fakesink sync=false").c_str(), nullptr);
  // Warm up once so that lazily created GStreamer threads and fds do not count as leaks.
  gst_element_set_state(writer, GST_STATE_PLAYING);
  gst_element_set_state(reader, GST_STATE_PLAYING);
  sleep_ms(200);
  gst_element_set_state(reader, GST_STATE_NULL);
  gst_element_set_state(writer, GST_STATE_NULL);
  const int fds = open_fds(), mappings = shmx_mappings();

  const GstState states[] = {GST_STATE_NULL, GST_STATE_READY, GST_STATE_PAUSED, GST_STATE_PLAYING};
  for (int round = 0; round < 12; ++round) {
    const GstState w = states[(round * 7 + 3) % 4], r = states[(round * 5 + 1) % 4];
    if (round % 2) {
      gst_element_set_state(writer, w);
      gst_element_set_state(reader, r);
    } else {
      gst_element_set_state(reader, r);
      gst_element_set_state(writer, w);
    }
    sleep_ms(50);
  }
  gst_element_set_state(reader, GST_STATE_NULL);
  gst_element_set_state(writer, GST_STATE_NULL);
  fail_if(segment_exists(segment), "segment left in /dev/shm");
  fail_unless_equals_int(open_fds(), fds);
  fail_unless_equals_int(shmx_mappings(), mappings);
  fail_unless_equals_int(shmx_mappings(), 0);
  gst_object_unref(reader);
  gst_object_unref(writer);
}
GST_END_TEST;

static Suite* elements_suite() {
  Suite* s = suite_create("shmx-elements");
  TCase* tc = tcase_create("elements");
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_caps_round_trip);
  tcase_add_test(tc, test_late_join);
  tcase_add_test(tc, test_reader_before_writer);
  tcase_add_test(tc, test_reader_timeout);
  tcase_add_test(tc, test_caps_refused_downstream);
  tcase_add_test(tc, test_caps_change);
  tcase_add_test(tc, test_eos);
  tcase_add_test(tc, test_buffer_facts_preserved);
  tcase_add_test(tc, test_buffer_too_large);
  tcase_add_test(tc, test_slot_growth);
  tcase_add_test(tc, test_bad_segment_names);
  tcase_add_test(tc, test_second_writer_refused);
  tcase_add_test(tc, test_foreign_segment);
  tcase_add_test(tc, test_reader_visibility);
  tcase_add_test(tc, test_upstream_events);
  tcase_add_test(tc, test_reader_reaped);
  tcase_add_test(tc, test_unlock_while_waiting);
  tcase_add_test(tc, test_state_changes_leak_nothing);
  return s;
}

int main(int argc, char** argv) { return shmx_test::test_main(argc, argv, elements_suite, "shmx-elements"); }
