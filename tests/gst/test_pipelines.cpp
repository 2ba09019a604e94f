// SPDX-License-Identifier: LGPL-2.1-or-later
// test_pipelines.cpp: gst-check tests with whole pipelines, writers and readers in separate processes.
#include <map>

#include "gstshmx-clock.h"
#include "shmx-test-util.h"

using namespace shmx_test;

namespace {

gint caps_width(GstSample* sample) {
  gint width = 0;
  gst_structure_get_int(gst_caps_get_structure(gst_sample_get_caps(sample), 0), "width", &width);
  return width;
}

bool element_available(const char* factory) {
  GstElementFactory* f = gst_element_factory_find(factory);
  if (f) gst_object_unref(f);
  return f != nullptr;
}

std::string video_writer(const std::string& segment, int width, const char* extra = "") {
  return "videotestsrc is-live=true " + std::string(extra) +
         " ! video/x-raw,format=RGBA,width=" + std::to_string(width) +
         ",height=48,framerate=30/1 ! shmxsink segment=" + segment;
}

}  // namespace

// A writer killed with SIGKILL is detected; a new writer (other caps) reclaims the segment and the reader
// resumes with its caps, then receives its EOS. Nothing stays in /dev/shm.
GST_START_TEST(test_writer_killed_and_restarted) {
  const std::string segment = segment_name("restart");
  pid_t writer = spawn_pipeline(video_writer(segment, 64), 30);
  Pipeline reader("shmxsrc segment=" + segment +
                  " wait-warning-interval=1 ! appsink name=out sync=false max-buffers=2 drop=true");
  reader.play();
  GstSample* sample = reader.pull("out", 5000);
  fail_unless(sample != nullptr, "no frame from the first writer");
  fail_unless_equals_int(caps_width(sample), 64);
  gst_sample_unref(sample);

  kill_child(writer);
  fail_unless(segment_exists(segment), "a killed writer cannot clean up");
  const std::string warning = wait_for_text(reader.bus, GST_MESSAGE_WARNING, segment, 3000);
  fail_unless(warning.find("gone") != std::string::npos, "no writer-gone warning: '%s'", warning.c_str());
  while (GstSample* stale = reader.pull("out", 0)) gst_sample_unref(stale);

  writer = spawn_pipeline(video_writer(segment, 32, "num-buffers=45"), 20);
  bool new_caps = false;
  const auto deadline = deadline_in(8000);
  while (!new_caps && Clock::now() < deadline) {
    if (GstSample* s = reader.pull("out", 100)) {
      new_caps = caps_width(s) == 32;
      gst_sample_unref(s);
    }
  }
  fail_unless(new_caps, "the reader did not resume with the new writer's caps");
  fail_unless(reader.wait_eos("out", 8000), "EOS of the new writer did not reach the reader");
  fail_unless_equals_int(wait_child(writer, 5000), 0);
  fail_if(reader.has_error());
  fail_if(segment_exists(segment), "segment left in /dev/shm after a clean writer exit");
}
GST_END_TEST;

// A reader started before its writer (another process) waits, then plays; start order does not matter.
GST_START_TEST(test_reader_before_writer_process) {
  const std::string segment = segment_name("order");
  Pipeline reader("shmxsrc segment=" + segment + " wait-warning-interval=1 ! appsink name=out sync=false");
  reader.play();
  const std::string warning = wait_for_text(reader.bus, GST_MESSAGE_WARNING, segment, 3000);
  fail_if(warning.empty(), "no waiting warning naming the segment");
  const pid_t writer = spawn_pipeline(video_writer(segment, 64, "num-buffers=30"), 20);
  GstSample* sample = reader.pull("out", 5000);
  fail_unless(sample != nullptr);
  gst_sample_unref(sample);
  fail_unless(reader.wait_eos("out", 5000), "no EOS from the writer");
  fail_unless_equals_int(wait_child(writer, 5000), 0);
  fail_if(reader.has_error());
}
GST_END_TEST;

// Two pipelines on the system clock agree on capture times: the running time a reader stamps plus its base
// time is the writer's base time plus the writer's PTS, and lies just before the publish time.
// Reads `count` frames from the appsink `name` of `reader`: frame offset -> capture time in the reader's
// monotonic terms (its base time + PTS) and as carried in the capture meta. PTS must strictly increase
// and every frame must carry its publish time, no earlier than its capture.
// Also the writer's capture time, which every buffer carries as a reference timestamp meta.
struct Mapped {
  GstClockTime clock_capture;  // the reader's base time + PTS
  GstClockTime meta_capture;   // the timestamp/x-shmx-capture meta
};

static std::map<guint64, Mapped> mapped_captures(Pipeline& reader, const char* name, int count) {
  std::map<guint64, Mapped> mapped;
  GstCaps* reference = gst_caps_from_string("timestamp/x-shmx-publish");
  GstCaps* capture_reference = gst_caps_from_string("timestamp/x-shmx-capture");
  GstClockTime last_pts = GST_CLOCK_TIME_NONE;
  for (int i = 0; i < count; ++i) {
    GstSample* sample = reader.pull(name, 3000);
    fail_unless(sample != nullptr);
    GstBuffer* buffer = gst_sample_get_buffer(sample);
    fail_unless(GST_BUFFER_PTS_IS_VALID(buffer));
    if (GST_CLOCK_TIME_IS_VALID(last_pts))
      fail_unless(GST_BUFFER_PTS(buffer) > last_pts, "PTS %" GST_TIME_FORMAT " after %" GST_TIME_FORMAT,
                  GST_TIME_ARGS(GST_BUFFER_PTS(buffer)), GST_TIME_ARGS(last_pts));
    last_pts = GST_BUFFER_PTS(buffer);
    const GstClockTime capture = gst_element_get_base_time(reader.pipeline) + GST_BUFFER_PTS(buffer);
    GstReferenceTimestampMeta* publish = gst_buffer_get_reference_timestamp_meta(buffer, reference);
    fail_unless(publish != nullptr);
    GstReferenceTimestampMeta* captured = gst_buffer_get_reference_timestamp_meta(buffer, capture_reference);
    fail_unless(captured != nullptr);
    fail_unless(captured->timestamp <= publish->timestamp, "captured after published");
    mapped[GST_BUFFER_OFFSET(buffer)] = {capture, captured->timestamp};
    gst_sample_unref(sample);
  }
  gst_caps_unref(reference);
  gst_caps_unref(capture_reference);
  return mapped;
}

// For the frames both readers saw: the clock reader's capture time minus the writer's (its base time
// + the original PTS). One value for every frame: the timeline is shifted as a whole, never per frame.
static GstClockTime capture_shift(Pipeline& reader, Pipeline& writer, const std::map<guint64, Mapped>& mapped) {
  GstClockTime shift = GST_CLOCK_TIME_NONE;
  int checked = 0;
  for (int i = 0; i < 60 && checked < 5; ++i) {
    GstSample* sample = reader.pull("original", 3000);
    fail_unless(sample != nullptr);
    GstBuffer* buffer = gst_sample_get_buffer(sample);
    auto it = mapped.find(GST_BUFFER_OFFSET(buffer));
    if (it != mapped.end()) {
      const GstClockTime writer_capture = gst_element_get_base_time(writer.pipeline) + GST_BUFFER_PTS(buffer);
      fail_unless_equals_uint64(it->second.meta_capture, writer_capture);
      fail_unless(it->second.clock_capture >= writer_capture, "mapped before captured");
      if (!GST_CLOCK_TIME_IS_VALID(shift)) shift = it->second.clock_capture - writer_capture;
      fail_unless_equals_uint64(it->second.clock_capture - writer_capture, shift);
      checked++;
    }
    gst_sample_unref(sample);
  }
  fail_unless(checked > 0, "no frame seen by both readers");
  return shift;
}

// timestamp-mode=clock maps the writer's capture times onto the reader's running time. A reader started
// before its writer gets them exactly; a reader that joins late gets them shifted by one constant, just
// enough for its first frame (captured before the reader started) to be at running time >= 0, so
// timestamps never repeat and frame spacing stays exact (encoders and muxers downstream rely on both).
GST_START_TEST(test_timestamps_mapped_to_clock) {
  {
    const std::string segment = segment_name("clock-late");
    Pipeline writer(video_writer(segment, 64));
    writer.play();
    sleep_ms(300);  // different base times for the pipelines; the reader joins late
    Pipeline reader("shmxsrc name=clock segment=" + segment + " ! appsink name=mapped sync=false   shmxsrc segment=" +
                    segment + " timestamp-mode=original ! appsink name=original sync=false");
    reader.play();
    const auto mapped = mapped_captures(reader, "mapped", 20);
    const GstClockTime shift = capture_shift(reader, writer, mapped);
    fail_unless(shift < 200 * GST_MSECOND, "late-join shift %" GST_TIME_FORMAT, GST_TIME_ARGS(shift));
    // A live source whose buffers arrive the writer's capture-to-publish delay after their running time.
    GstQuery* query = gst_query_new_latency();
    fail_unless(gst_element_query(reader.get("clock"), query));
    gboolean live = FALSE;
    GstClockTime min = 0, max = 0;
    gst_query_parse_latency(query, &live, &min, &max);
    gst_query_unref(query);
    fail_unless(live);
    fail_unless(min >= gst_shmx::CaptureTimeline::kWakeUpMargin && min < 200 * GST_MSECOND,
                "latency %" GST_TIME_FORMAT, GST_TIME_ARGS(min));
    fail_if(reader.has_error());
    fail_if(writer.has_error());
  }
  {
    const std::string segment = segment_name("clock-first");
    Pipeline reader("shmxsrc segment=" + segment + " ! appsink name=mapped sync=false   shmxsrc segment=" +
                    segment + " timestamp-mode=original ! appsink name=original sync=false");
    reader.play();
    sleep_ms(300);  // the readers wait for the writer
    Pipeline writer(video_writer(segment, 64));
    writer.play();
    const auto mapped = mapped_captures(reader, "mapped", 20);
    fail_unless_equals_uint64(capture_shift(reader, writer, mapped), 0);
    fail_if(reader.has_error());
    fail_if(writer.has_error());
  }
  {
    // A reader pipeline on another clock (here the system clock in realtime mode): its offset to
    // CLOCK_MONOTONIC is sampled per buffer and jitters, yet the late joiner's timeline is anchored
    // once: strictly increasing PTS (mapped_captures checks), starting near 0.
    const std::string segment = segment_name("clock-other");
    Pipeline writer(video_writer(segment, 64));
    writer.play();
    sleep_ms(300);
    Pipeline reader("shmxsrc segment=" + segment + " ! appsink name=mapped sync=false   shmxsrc segment=" +
                    segment + " timestamp-mode=original ! appsink name=original sync=false");
    GstClock* realtime = GST_CLOCK(g_object_new(GST_TYPE_SYSTEM_CLOCK, "clock-type", GST_CLOCK_TYPE_REALTIME, nullptr));
    gst_pipeline_use_clock(GST_PIPELINE(reader.pipeline), realtime);
    gst_object_unref(realtime);
    reader.play();
    const auto mapped = mapped_captures(reader, "mapped", 20);
    GstClockTime first = GST_CLOCK_TIME_NONE;
    for (const auto& [offset, m] : mapped)
      if (!GST_CLOCK_TIME_IS_VALID(first) || m.clock_capture < first) first = m.clock_capture;
    const GstClockTime first_pts = first - gst_element_get_base_time(reader.pipeline);
    fail_unless(first_pts < 200 * GST_MSECOND, "first PTS %" GST_TIME_FORMAT, GST_TIME_ARGS(first_pts));
    fail_if(reader.has_error());
    fail_if(writer.has_error());
  }
}
GST_END_TEST;

// A slow reader in another process, and a stopped one, never slow the writer; the slow one counts skips
// and the stopped one is reported stale; once killed it is reaped.
GST_START_TEST(test_slow_reader_does_not_slow_writer) {
  const std::string segment = segment_name("slow");
  Pipeline writer(
      "videotestsrc is-live=true ! video/x-raw,format=RGBA,width=320,height=240,framerate=200/1 ! "
      "shmxsink name=sink reader-timeout=500 segment=" +
      segment);
  writer.play();
  GstElement* sink = writer.get("sink");
  const pid_t slow = spawn_pipeline(
      "shmxsrc segment=" + segment + " reader-name=slow ! identity sleep-time=50000 ! fakesink sync=false",
      30);
  const pid_t stalled =
      spawn_pipeline("shmxsrc segment=" + segment + " reader-name=stalled ! fakesink sync=false", 30);
  guint readers = 0;
  fail_unless(wait_until(5000,
                         [&] {
                           g_object_get(sink, "readers", &readers, nullptr);
                           return readers == 2;
                         }),
              "readers did not attach");
  kill(stalled, SIGSTOP);

  auto published = [&] { return stats_field(sink, "frames-published"); };
  const guint64 before = published();
  sleep_ms(1000);
  const guint64 rate = published() - before;
  fail_unless(rate >= 170, "the writer published %" G_GUINT64_FORMAT " frames/s instead of ~200", rate);
  {
    // The sink's 'stats' replaces GstBaseSink's and keeps its fields.
    GstStructure* stats = nullptr;
    g_object_get(sink, "stats", &stats, nullptr);
    guint64 rendered = 0;
    fail_unless(gst_structure_get_uint64(stats, "rendered", &rendered) && rendered >= before,
                "stats: %" GST_PTR_FORMAT, stats);
    fail_unless(gst_structure_has_field(stats, "average-rate") && gst_structure_has_field(stats, "dropped"));
    gst_structure_free(stats);
  }

  GValue stats = G_VALUE_INIT;
  g_value_init(&stats, GST_TYPE_ARRAY);
  g_object_get_property(G_OBJECT(sink), "reader-stats", &stats);
  bool slow_skipped = false, stalled_stale = false;
  for (guint i = 0; i < gst_value_array_get_size(&stats); ++i) {
    const GstStructure* s = gst_value_get_structure(gst_value_array_get_value(&stats, i));
    guint64 skipped = 0;
    gboolean stale = FALSE;
    if (g_strcmp0(gst_structure_get_string(s, "name"), "slow") == 0 &&
        gst_structure_get_uint64(s, "frames-skipped", &skipped))
      slow_skipped = skipped > 50;
    if (g_strcmp0(gst_structure_get_string(s, "name"), "stalled") == 0 &&
        gst_structure_get_boolean(s, "stale", &stale))
      stalled_stale = stale;
  }
  g_value_unset(&stats);
  fail_unless(slow_skipped, "the slow reader's skipped frames were not counted");
  fail_unless(stalled_stale, "the stopped reader is not reported stale");

  // A reader killed while holding slots is reaped at once and its slots return to the writer.
  kill_child(stalled);
  GstMessage* reaped = wait_for_element_message(writer.bus, "shmx-reader-reaped", 3000);
  fail_unless(reaped != nullptr, "the killed reader was not reaped");
  fail_unless_equals_string(gst_structure_get_string(gst_message_get_structure(reaped), "name"), "stalled");
  gst_message_unref(reaped);

  kill_child(stalled);
  kill_child(slow);
  fail_if(writer.has_error());
}
GST_END_TEST;

// Encoded video, audio: caps the writer negotiated are the caps the reader outputs.
GST_START_TEST(test_media_types) {
  struct Case {
    const char* name;
    const char* writer_head;
    const char* needs;
  };
  const Case cases[] = {
      {"h264-x264",
       "videotestsrc num-buffers=40 ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc "
       "tune=zerolatency ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au",
       "x264enc"},
      {"h264-openh264",
       "videotestsrc num-buffers=40 ! video/x-raw,width=320,height=240,framerate=30/1 ! openh264enc "
       "! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au",
       "openh264enc"},
      {"audio", "audiotestsrc num-buffers=40 ! audio/x-raw,format=S16LE,rate=48000,channels=2",
       "audiotestsrc"},
  };
  int ran = 0;
  for (const Case& c : cases) {
    if (!element_available(c.needs)) {
      g_print("media type %s skipped: element %s is not installed\n", c.name, c.needs);
      continue;
    }
    ran++;
    const std::string segment = segment_name(c.name);
    Pipeline reader("shmxsrc segment=" + segment + " copy=true ! appsink name=out sync=false");
    reader.play();
    Pipeline writer(std::string(c.writer_head) + " ! shmxsink name=sink segment=" + segment);
    writer.play();
    GstSample* sample = reader.pull("out", 10000);
    fail_unless(sample != nullptr, "%s: no frame", c.name);
    GstCaps* sent = gst_pad_get_current_caps(gst_element_get_static_pad(writer.get("sink"), "sink"));
    fail_unless(sent != nullptr);
    fail_unless(gst_caps_is_equal(sent, gst_sample_get_caps(sample)),
                "%s: %" GST_PTR_FORMAT " != %" GST_PTR_FORMAT, c.name, sent, gst_sample_get_caps(sample));
    gst_caps_unref(sent);
    gst_sample_unref(sample);
    fail_unless(reader.wait_eos("out", 10000), "%s: no EOS", c.name);
    fail_if(reader.has_error());
    fail_if(writer.has_error());
  }
  fail_unless(ran > 0);
}
GST_END_TEST;

// Stopping reader and writer in either order posts no ERROR and leaves nothing in /dev/shm.
GST_START_TEST(test_clean_stop) {
  for (int writer_first = 0; writer_first < 2; ++writer_first) {
    const std::string segment = segment_name("stop");
    Pipeline writer(video_writer(segment, 64));
    Pipeline reader("shmxsrc segment=" + segment + " ! fakesink sync=true");
    writer.play();
    reader.play();
    sleep_ms(500);
    if (writer_first) {
      gst_element_set_state(writer.pipeline, GST_STATE_NULL);
      sleep_ms(300);
      gst_element_set_state(reader.pipeline, GST_STATE_NULL);
    } else {
      gst_element_set_state(reader.pipeline, GST_STATE_NULL);
      gst_element_set_state(writer.pipeline, GST_STATE_NULL);
    }
    fail_if(reader.has_error());
    fail_if(writer.has_error());
    fail_if(segment_exists(segment));
  }
}
GST_END_TEST;

static Suite* pipelines_suite() {
  Suite* s = suite_create("shmx-pipelines");
  TCase* tc = tcase_create("pipelines");
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_writer_killed_and_restarted);
  tcase_add_test(tc, test_reader_before_writer_process);
  tcase_add_test(tc, test_timestamps_mapped_to_clock);
  tcase_add_test(tc, test_slow_reader_does_not_slow_writer);
  tcase_add_test(tc, test_media_types);
  tcase_add_test(tc, test_clean_stop);
  return s;
}

int main(int argc, char** argv) {
  return shmx_test::test_main(argc, argv, pipelines_suite, "shmx-pipelines");
}
