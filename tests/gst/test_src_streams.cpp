// SPDX-License-Identifier: LGPL-2.1-or-later
// test_src_streams.cpp: gst-check tests of shmxsrc with several streams per segment: one pad per stream, buffers
// in step, repeats not output twice, stream selection, library (non-caps) streams, writer restarts that
// change the streams, and a writer in another process.
#include <map>
#include <utility>

#include "gstshmx-bufferinfo.h"
#include "gstshmx-events.h"
#include "shmx-test-util.h"
#include "shmx_server.h"

using namespace shmx_test;

namespace {

const char* kVideoCaps = "video/x-raw,format=GRAY8,width=8,height=2,framerate=30/1";
const char* kImuCaps = "application/x-imu,rate=(int)200";

// One stream's buffer in a frame, written the way the wire contract says: kTlvBufferInfo (unless pts is
// GST_CLOCK_TIME_NONE), kTlvStreamData, kTlvStreamSeq (unless seq is 0), all with TLV stream = index.
struct Part {
  uint16_t stream;
  uint8_t fill;   // every data byte, also the buffer offset
  uint32_t size;  // data bytes
  uint64_t seq;
  GstClockTime pts = GST_CLOCK_TIME_NONE;
  uint64_t capture_ns = gst_shmx::kNoTime;  // pts_monotonic_ns
};

// A writer built on the library Server, as a shmxsink with request pads (or examples/server_test) would
// write its frames.
struct LibWriter {
  shmx::Server server;

  // Creates the segment; check status() (no check assertions here: the child role uses it too).
  LibWriter(const std::string& segment, const std::vector<std::pair<std::string, std::string>>& streams) {
    std::vector<shmx::StreamInfo> infos;
    for (const auto& [name, type] : streams) {
      shmx::StreamInfo info;
      info.name = name;
      info.type = type;
      infos.push_back(info);
    }
    shmx::ServerOptions options;
    options.slot_payload_capacity = 64 * 1024;
    shmx::Result<shmx::Server> created = shmx::Server::create(segment, options, infos);
    if (created)
      server = std::move(created.value());
    else
      created_status = created.status();
  }
  shmx::Status created_status;

  shmx::Status try_publish(const std::vector<Part>& parts) {
    if (!created_status) return created_status;
    shmx::Result<shmx::Loan> loan = server.loan();
    if (!loan) return loan.status();
    shmx::Status status;
    for (const Part& part : parts) {
      if (status && part.pts != GST_CLOCK_TIME_NONE) {
        gst_shmx::BufferInfo info;
        info.pts = part.pts;
        info.offset = part.fill;
        info.pts_monotonic_ns = part.capture_ns;
        shmx::Result<uint8_t*> value =
            loan->tlvs().reserve(gst_shmx::kTlvBufferInfo, part.stream, gst_shmx::buffer_info_encoded_size());
        if (value)
          gst_shmx::encode_buffer_info(info, value.value());
        else
          status = value.status();
      }
      std::vector<uint8_t> data(part.size, part.fill);
      if (status) status = loan->tlvs().append(shmx::kTlvStreamData, part.stream, data.data(), part.size);
      if (status && part.seq)
        status = loan->tlvs().append(gst_shmx::kTlvStreamSeq, part.stream, &part.seq, sizeof(part.seq));
    }
    if (!status) {
      server.abandon(std::move(loan.value()));
      return status;
    }
    shmx::Result<uint64_t> committed = server.commit(std::move(loan.value()));
    return committed ? shmx::Status::ok() : committed.status();
  }

  void publish(const std::vector<Part>& parts) {
    const shmx::Status status = try_publish(parts);
    fail_unless(status.is_ok(), "publish: %s", status.to_string().c_str());
  }
};

// A reader pipeline: shmxsrc 'r' with appsinks on `src` ("main") and on the sometimes pads listed. Each
// branch has a queue, as after any element with several source pads pushing from one thread: else the
// first sink to preroll blocks the thread the others wait on.
std::string reader_launch(const std::string& segment, const std::string& properties,
                          const std::vector<std::string>& stream_pads) {
  const char* sink = " ! queue ! appsink sync=false enable-last-sample=false name=";
  std::string launch = "shmxsrc name=r segment=" + segment + " reader-name=streams-test " + properties +
                       "  r.src" + sink + "main";
  for (const std::string& pad : stream_pads) launch += "  r.src_" + pad + sink + pad;
  return launch;
}


GstClockTime publish_time(GstBuffer* buffer) {
  GstCaps* reference = gst_caps_from_string("timestamp/x-shmx-publish");
  GstReferenceTimestampMeta* meta = gst_buffer_get_reference_timestamp_meta(buffer, reference);
  gst_caps_unref(reference);
  fail_unless(meta != nullptr, "no publish time");
  return meta->timestamp;
}

// Checks a sample: buffer offset (the part's fill), every byte, size.
void check_sample(GstSample* sample, uint8_t fill, gsize size) {
  fail_unless(sample != nullptr, "no buffer with fill %u", fill);
  GstBuffer* buffer = gst_sample_get_buffer(sample);
  fail_unless_equals_uint64(GST_BUFFER_OFFSET(buffer), fill);
  fail_unless_equals_int(gst_buffer_get_size(buffer), size);
  GstMapInfo map;
  fail_unless(gst_buffer_map(buffer, &map, GST_MAP_READ));
  for (gsize i = 0; i < map.size; ++i) fail_unless_equals_int(map.data[i], fill);
  gst_buffer_unmap(buffer, &map);
}

bool caps_equal(GstSample* sample, const char* expected_text) {
  GstCaps* expected = gst_caps_from_string(expected_text);
  const bool equal = gst_caps_is_equal(gst_sample_get_caps(sample), expected);
  gst_caps_unref(expected);
  return equal;
}

bool has_pad(GstElement* element, const char* name) {
  GstPad* pad = gst_element_get_static_pad(element, name);
  if (pad) gst_object_unref(pad);
  return pad != nullptr;
}

}  // namespace

// Two streams of one frame come out together: `src` and `src_imu`, each with its caps, the same
// timestamps and the same publish time (same frame). Zero copy, their buffers share the slot (whose hold
// is released when both are dropped: else later frames would be copies); with copy=true each is copied.
GST_START_TEST(test_two_streams_in_step) {
  for (const bool copy : {false, true}) {
    const std::string segment = segment_name("instep");
    LibWriter writer(segment, {{"video", kVideoCaps}, {"imu", kImuCaps}});
    Pipeline reader(reader_launch(
        segment, std::string("timestamp-mode=original copy=") + (copy ? "true" : "false"), {"imu"}));
    GstElement* src = reader.get("r");
    reader.play();
    for (uint8_t i = 1; i <= 5; ++i) {
      const GstClockTime pts = i * GST_SECOND;
      writer.publish({{0, i, 16, i, pts}, {1, static_cast<uint8_t>(100 + i), 24, i, pts}});
      GstSample* video = reader.pull("main", 3000);
      GstSample* imu = reader.pull("imu", 3000);
      check_sample(video, i, 16);
      check_sample(imu, 100 + i, 24);
      fail_unless(caps_equal(video, kVideoCaps), "src caps %" GST_PTR_FORMAT, gst_sample_get_caps(video));
      fail_unless(caps_equal(imu, kImuCaps), "src_imu caps %" GST_PTR_FORMAT, gst_sample_get_caps(imu));
      GstBuffer* v = gst_sample_get_buffer(video);
      GstBuffer* m = gst_sample_get_buffer(imu);
      fail_unless_equals_uint64(GST_BUFFER_PTS(v), pts);
      fail_unless_equals_uint64(GST_BUFFER_PTS(m), pts);
      fail_unless_equals_uint64(publish_time(v), publish_time(m));
      // Wrapping the slot, the memory is read-only; a copy is not.
      fail_unless_equals_int(GST_MEMORY_IS_READONLY(gst_buffer_peek_memory(v, 0)), !copy);
      fail_unless_equals_int(GST_MEMORY_IS_READONLY(gst_buffer_peek_memory(m, 0)), !copy);
      fail_unless_equals_int(GST_BUFFER_FLAG_IS_SET(m, GST_BUFFER_FLAG_DISCONT), i == 1);
      gst_sample_unref(video);
      gst_sample_unref(imu);
    }
    fail_unless(has_pad(src, "src_imu"));
    fail_unless_equals_uint64(stats_field(src, "frames-zero-copy"), copy ? 0 : 10);
    fail_unless_equals_uint64(stats_field(src, "frames-copied"), copy ? 10 : 0);
    fail_if(reader.has_error());
  }
}
GST_END_TEST;

// A buffer a frame repeats (same kTlvStreamSeq) is output once; a frame with nothing new for `src` gives
// no duplicate there while the other stream goes on; a jump in a stream's seq marks a DISCONT.
GST_START_TEST(test_repeats_not_output_twice) {
  const std::string segment = segment_name("repeats");
  LibWriter writer(segment, {{"video", kVideoCaps}, {"imu", kImuCaps}});
  Pipeline reader(reader_launch(segment, "timestamp-mode=original", {"imu"}));
  GstElement* src = reader.get("r");
  reader.play();
  auto expect_none = [&](const char* sink) {
    GstSample* sample = reader.pull(sink, 300);
    fail_unless(sample == nullptr, "%s got a repeated buffer, offset %" G_GUINT64_FORMAT, sink,
                sample ? GST_BUFFER_OFFSET(gst_sample_get_buffer(sample)) : 0);
  };
  auto expect = [&](const char* sink, uint8_t fill, gsize size, bool discont) {
    GstSample* sample = reader.pull(sink, 3000);
    check_sample(sample, fill, size);
    fail_unless_equals_int(GST_BUFFER_FLAG_IS_SET(gst_sample_get_buffer(sample), GST_BUFFER_FLAG_DISCONT),
                           discont);
    gst_sample_unref(sample);
  };

  writer.publish({{0, 1, 16, 1, GST_SECOND}, {1, 101, 24, 1, GST_SECOND}});
  expect("main", 1, 16, true);
  expect("imu", 101, 24, true);
  // Video unchanged (seq 1 again), a new IMU sample.
  writer.publish({{0, 1, 16, 1, GST_SECOND}, {1, 102, 24, 2, 2 * GST_SECOND}});
  expect("imu", 102, 24, false);
  expect_none("main");
  // The video stream absent (no buffer yet for it counts the same as nothing new).
  writer.publish({{1, 103, 24, 3, 3 * GST_SECOND}});
  expect("imu", 103, 24, false);
  expect_none("main");
  // A new video frame, the IMU unchanged.
  writer.publish({{0, 2, 16, 2, 4 * GST_SECOND}, {1, 103, 24, 3, 3 * GST_SECOND}});
  expect("main", 2, 16, false);
  expect_none("imu");
  // IMU sample 4 never reached a frame: sample 5 is DISCONT.
  writer.publish({{0, 2, 16, 2, 4 * GST_SECOND}, {1, 105, 24, 5, 5 * GST_SECOND}});
  expect("imu", 105, 24, true);
  expect_none("main");

  fail_unless_equals_uint64(stats_field(src, "repeats-skipped"), 3);
  fail_unless_equals_uint64(stats_field(src, "frames-received"), 5);
  fail_if(reader.has_error());
}
GST_END_TEST;

// 'streams' picks streams by name and order: one stream alone on `src`, a non-zero stream on `src` with
// stream 0 on a sometimes pad; an unknown name is an error naming the segment's streams; a name given
// twice is an error at start.
GST_START_TEST(test_streams_property) {
  const std::string segment = segment_name("select");
  LibWriter writer(segment, {{"video", kVideoCaps}, {"imu", kImuCaps}});
  writer.publish({{0, 1, 16, 1, GST_SECOND}, {1, 101, 24, 1, GST_SECOND}});
  {
    Pipeline reader(reader_launch(segment, "streams=imu", {}));
    reader.play();
    GstSample* imu = reader.pull("main", 3000);
    check_sample(imu, 101, 24);
    fail_unless(caps_equal(imu, kImuCaps));
    gst_sample_unref(imu);
    fail_if(has_pad(reader.get("r"), "src_video"), "an unselected stream got a pad");
    fail_unless_equals_uint64(
        stats_field(reader.get("r"), "frames-zero-copy") + stats_field(reader.get("r"), "frames-copied"), 1);
    fail_if(reader.has_error());
  }
  {
    Pipeline reader(reader_launch(segment, "streams=\"imu, video\"", {"video"}));
    reader.play();
    GstSample* imu = reader.pull("main", 3000);
    GstSample* video = reader.pull("video", 3000);
    check_sample(imu, 101, 24);
    check_sample(video, 1, 16);
    fail_unless(caps_equal(video, kVideoCaps));
    gst_sample_unref(imu);
    gst_sample_unref(video);
    fail_if(reader.has_error());
  }
  {
    Pipeline reader(reader_launch(segment, "streams=video,gps", {}));
    reader.play();
    const std::string error = wait_for_text(reader.bus, GST_MESSAGE_ERROR, segment, 3000);
    fail_unless(error.find("no stream named 'gps'") != std::string::npos, "error: '%s'", error.c_str());
    fail_unless(error.find("'video', 'imu'") != std::string::npos, "error: '%s'", error.c_str());
  }
  {
    Pipeline reader(reader_launch(segment, "streams=imu,imu", {}));
    fail_unless_equals_int(gst_element_set_state(reader.pipeline, GST_STATE_PLAYING),
                           GST_STATE_CHANGE_FAILURE);
    const std::string error = wait_for_text(reader.bus, GST_MESSAGE_ERROR, "imu", 1000);
    fail_unless(error.find("named twice") != std::string::npos, "error: '%s'", error.c_str());
  }
}
GST_END_TEST;

// A segment written with the library alone, like examples/server_test: stream types that are not caps,
// no buffer info, no sequence numbers. Both streams are output, each on its pad, at every frame.
GST_START_TEST(test_library_segment) {
  const std::string segment = segment_name("library");
  LibWriter writer(segment, {{"tick", "u64"}, {"sim time", "f64"}});
  Pipeline reader(reader_launch(segment, "", {"sim_time"}));
  reader.play();
  for (uint8_t i = 1; i <= 3; ++i) {
    // The same bytes twice: without sequence numbers every frame is output.
    for (int repeat = 0; repeat < 2; ++repeat) {
      writer.publish({{0, i, 8, 0}, {1, static_cast<uint8_t>(50 + i), 8, 0}});
      GstSample* tick = reader.pull("main", 3000);
      GstSample* sim_time = reader.pull("sim_time", 3000);
      fail_unless(tick != nullptr && sim_time != nullptr, "frame %u: no buffer", i);
      GstMapInfo map;
      fail_unless(gst_buffer_map(gst_sample_get_buffer(sim_time), &map, GST_MAP_READ));
      fail_unless(map.size == 8 && map.data[0] == 50 + i && map.data[7] == 50 + i);
      gst_buffer_unmap(gst_sample_get_buffer(sim_time), &map);
      fail_unless(caps_equal(tick, "application/x-shmx,stream-type=(string)u64,stream-name=(string)tick"),
                  "caps %" GST_PTR_FORMAT, gst_sample_get_caps(tick));
      fail_unless(
          caps_equal(sim_time, "application/x-shmx,stream-type=(string)f64,stream-name=(string)\"sim time\""),
          "caps %" GST_PTR_FORMAT, gst_sample_get_caps(sim_time));
      gst_sample_unref(tick);
      gst_sample_unref(sim_time);
    }
  }
  fail_if(reader.has_error());
}
GST_END_TEST;

// A new writer with other streams: the pad of a stream it keeps stays (and its link), the pad of a stream
// it dropped gets EOS and goes, a new stream gets a new pad; a sometimes pad nobody links is no error.
GST_START_TEST(test_writer_restart_changes_streams) {
  const std::string segment = segment_name("restreams");
  Pipeline reader(reader_launch(segment, "timestamp-mode=original", {"imu", "pose"}));
  GstElement* src = reader.get("r");
  reader.play();
  GstPad* imu_pad = nullptr;
  {
    LibWriter first(segment, {{"video", kVideoCaps}, {"imu", kImuCaps}, {"pose", "application/x-pose"}});
    first.publish({{0, 1, 16, 1, GST_SECOND}, {1, 101, 24, 1, GST_SECOND}, {2, 201, 8, 1, GST_SECOND}});
    for (const char* sink : {"main", "imu", "pose"}) {
      GstSample* sample = reader.pull(sink, 3000);
      fail_unless(sample != nullptr, "%s: no buffer from the first writer", sink);
      gst_sample_unref(sample);
    }
    imu_pad = gst_element_get_static_pad(src, "src_imu");
    fail_unless(imu_pad != nullptr);
  }
  fail_if(segment_exists(segment));

  LibWriter second(segment, {{"video", kVideoCaps}, {"imu", kImuCaps}, {"gps", "application/x-gps"}});
  fail_unless(wait_until(3000, [&] { return has_pad(src, "src_gps") && !has_pad(src, "src_pose"); }),
              "pads did not follow the new writer's streams");
  GstPad* kept = gst_element_get_static_pad(src, "src_imu");
  fail_unless(kept == imu_pad, "the pad of a stream the new writer keeps was replaced");
  gst_object_unref(kept);
  gst_object_unref(imu_pad);
  GstElement* pose = reader.get("pose");
  fail_unless(wait_until(3000, [&] { return gst_app_sink_is_eos(GST_APP_SINK(pose)); }),
              "no EOS on the pad of the dropped stream");

  // Sequence numbers start again with the new writer; src_gps is not linked.
  second.publish(
      {{0, 2, 16, 1, 2 * GST_SECOND}, {1, 102, 24, 1, 2 * GST_SECOND}, {2, 77, 8, 1, 2 * GST_SECOND}});
  GstSample* video = reader.pull("main", 3000);
  GstSample* imu = reader.pull("imu", 3000);
  check_sample(video, 2, 16);
  check_sample(imu, 102, 24);
  gst_sample_unref(video);
  gst_sample_unref(imu);
  fail_unless(wait_until(1000, [&] { return stats_field(src, "not-linked") == 1; }), "gps buffer not counted");
  fail_if(reader.has_error());
}
GST_END_TEST;

// A writer that renumbers its streams within a session (shmxsink closes the gap a released request pad
// leaves): a stream that keeps its name keeps its pad, gets no EOS, and its buffers go on.
GST_START_TEST(test_renumbered_stream_keeps_its_pad) {
  const std::string segment = segment_name("renumber");
  LibWriter writer(segment, {{"video", kVideoCaps}, {"pose", "application/x-pose"}, {"imu", kImuCaps}});
  fail_unless(writer.created_status.is_ok());
  Pipeline reader(reader_launch(segment, "timestamp-mode=original", {"imu"}));
  GstElement* src = reader.get("r");
  reader.play();
  writer.publish({{0, 1, 16, 1, GST_SECOND}, {1, 51, 8, 1, GST_SECOND}, {2, 101, 24, 1, GST_SECOND}});
  GstSample* sample = reader.pull("imu", 3000);
  check_sample(sample, 101, 24);
  gst_sample_unref(sample);
  GstPad* imu_pad = gst_element_get_static_pad(src, "src_imu");
  fail_unless(imu_pad != nullptr);

  // 'pose' goes: 'imu' moves from index 2 to 1.
  shmx::StreamInfo video, imu;
  video.name = "video";
  video.type = kVideoCaps;
  imu.name = "imu";
  imu.type = kImuCaps;
  fail_unless(writer.server.set_metadata({video, imu}).is_ok());
  writer.publish({{0, 2, 16, 2, 2 * GST_SECOND}, {1, 102, 24, 2, 2 * GST_SECOND}});
  sample = reader.pull("imu", 3000);
  check_sample(sample, 102, 24);
  gst_sample_unref(sample);
  GstPad* kept = gst_element_get_static_pad(src, "src_imu");
  fail_unless(kept == imu_pad, "the pad of a renumbered stream was replaced");
  gst_object_unref(kept);
  gst_object_unref(imu_pad);
  fail_if(gst_app_sink_is_eos(GST_APP_SINK(reader.get("imu"))), "EOS on a stream that goes on");
  fail_if(reader.has_error());
}
GST_END_TEST;

// A reader stopped and started again: its sometimes pads go at the stop (GstBaseSrc starts streaming with
// `src` its only source pad) and come again at the start, with stream-start, caps and segment, and the
// latest frame.
static void link_imu_pad(GstElement* /*src*/, GstPad* pad, gpointer queue) {
  if (std::strcmp(GST_PAD_NAME(pad), "src_imu") != 0) return;
  GstPad* sink = gst_element_get_static_pad(GST_ELEMENT(queue), "sink");
  fail_unless_equals_int(gst_pad_link(pad, sink), GST_PAD_LINK_OK);
  gst_object_unref(sink);
}

GST_START_TEST(test_reader_restart_adds_pads_again) {
  const std::string segment = segment_name("rerun");
  LibWriter writer(segment, {{"video", kVideoCaps}, {"imu", kImuCaps}});
  Pipeline reader(
      "shmxsrc name=r timestamp-mode=original segment=" + segment +
      "  r.src ! queue ! appsink sync=false name=main  queue name=q ! appsink sync=false name=imu");
  GstElement* src = reader.get("r");
  g_signal_connect(src, "pad-added", G_CALLBACK(link_imu_pad), reader.get("q"));
  for (uint8_t round = 1; round <= 3; ++round) {
    const GstClockTime pts = round * GST_SECOND;
    writer.publish({{0, round, 16, round, pts}, {1, static_cast<uint8_t>(100 + round), 24, round, pts}});
    reader.play();
    GstSample* video = reader.pull("main", 3000);
    GstSample* imu = reader.pull("imu", 3000);
    check_sample(video, round, 16);
    check_sample(imu, 100 + round, 24);
    fail_unless(caps_equal(imu, kImuCaps));
    fail_unless(GST_BUFFER_FLAG_IS_SET(gst_sample_get_buffer(imu), GST_BUFFER_FLAG_DISCONT));
    gst_sample_unref(video);
    gst_sample_unref(imu);
    fail_if(reader.has_error());
    fail_unless_equals_int(gst_element_set_state(reader.pipeline, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
    fail_if(has_pad(src, "src_imu"), "a stopped source kept its sometimes pad");
  }
}
GST_END_TEST;

// An upstream event sent into a sometimes pad (here a custom one from the IMU branch) reaches the writer,
// as one sent into `src` does.
GST_START_TEST(test_upstream_event_from_stream_pad) {
  const std::string segment = segment_name("upevent");
  LibWriter writer(segment, {{"video", kVideoCaps}, {"imu", kImuCaps}});
  Pipeline reader(reader_launch(segment, "", {"imu"}));
  reader.play();
  writer.publish({{0, 1, 16, 1, GST_SECOND}, {1, 101, 24, 1, GST_SECOND}});
  GstSample* imu = reader.pull("imu", 3000);
  fail_unless(imu != nullptr);
  gst_sample_unref(imu);

  fail_unless(gst_element_send_event(
      reader.get("imu"),
      gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM,
                           gst_structure_new("imu-request", "rate", G_TYPE_INT, 400, nullptr))));
  gint rate = 0;
  fail_unless(
      wait_until(3000,
                 [&] {
                   writer.server.poll_control([&](const shmx::ControlMessage& message) {
                     if (message.type != gst_shmx::kTlvUpstreamEvent) return;
                     GstEvent* event =
                         gst_shmx::deserialize_upstream_event(message.value.data(), message.value.size());
                     if (event && gst_structure_has_name(gst_event_get_structure(event), "imu-request"))
                       gst_structure_get_int(gst_event_get_structure(event), "rate", &rate);
                     if (event) gst_event_unref(event);
                   });
                   return rate != 0;
                 }),
      "the event did not reach the writer");
  fail_unless_equals_int(rate, 400);
  fail_if(reader.has_error());
}
GST_END_TEST;

// `src` not linked while a sometimes pad is: the linked stream flows, `src`'s buffers are dropped.
GST_START_TEST(test_unlinked_src_does_not_stop_others) {
  const std::string segment = segment_name("unlinked");
  LibWriter writer(segment, {{"video", kVideoCaps}, {"imu", kImuCaps}});
  Pipeline reader("shmxsrc name=r segment=" + segment + " r.src_imu ! appsink sync=false name=imu");
  reader.play();
  for (uint8_t i = 1; i <= 3; ++i) {
    const GstClockTime pts = i * GST_SECOND;
    writer.publish({{0, i, 16, i, pts}, {1, static_cast<uint8_t>(100 + i), 24, i, pts}});
    GstSample* imu = reader.pull("imu", 3000);
    check_sample(imu, 100 + i, 24);
    gst_sample_unref(imu);
  }
  fail_unless(wait_until(1000, [&] { return stats_field(reader.get("r"), "not-linked") == 3; }));
  fail_if(reader.has_error());
}
GST_END_TEST;

// The child role: a library writer of a video stream (~33 Hz) and an IMU stream (200 Hz) in another
// process, for `seconds`; the IMU is silent between 1 s and 2 s. A video frame is captured together with an
// IMU sample (same capture time). Ends with EOS.
static int streams_writer_role(int argc, char** argv) {
  if (argc < 3 || std::strcmp(argv[0], "streams-writer") != 0) return 127;
  const std::string segment = argv[1];
  const int seconds = std::atoi(argv[2]);
  LibWriter writer(segment, {{"video", kVideoCaps}, {"imu", kImuCaps}});
  if (!writer.created_status) {
    std::fprintf(stderr, "streams-writer: %s\n", writer.created_status.to_string().c_str());
    return 1;
  }
  Part video{0, 0, 16, 0};
  Part imu{1, 0, 24, 0};
  const uint64_t start = shmx::monotonic_ns();
  const auto tick = std::chrono::milliseconds(5);
  auto next = Clock::now();
  for (int n = 0; n < seconds * 200; ++n) {
    next += tick;
    std::this_thread::sleep_until(next);
    const uint64_t now = shmx::monotonic_ns();
    const double t = static_cast<double>(now - start) / 1e9;
    std::vector<Part> parts;
    const bool imu_on = t < 1.0 || t >= 2.0;
    if (imu_on) {
      imu.seq++;
      imu.fill = static_cast<uint8_t>(imu.seq);
      imu.pts = imu.seq * 5 * GST_MSECOND;
      imu.capture_ns = now;
    }
    const bool video_new = n % 6 == 0;
    if (video_new) {
      video.seq++;
      video.fill = static_cast<uint8_t>(video.seq);
      video.pts = video.seq * 30 * GST_MSECOND;
      video.capture_ns = now;
    }
    if (!imu_on && !video_new) continue;
    // Every frame carries the newest buffer of each stream.
    if (video.seq) parts.push_back(video);
    if (imu.seq) parts.push_back(imu);
    if (shmx::Status status = writer.try_publish(parts); !status) {
      std::fprintf(stderr, "streams-writer: %s\n", status.to_string().c_str());
      return 1;
    }
  }
  return writer.server.publish_eos().is_ok() ? 0 : 1;
}

struct Received {
  GstClockTime pts;
  GstClockTime publish;
};

// Pulls everything appsink `name` has now.
static void drain(Pipeline& reader, const char* name, std::vector<Received>& into) {
  while (GstSample* sample = reader.pull(name, 0)) {
    GstBuffer* buffer = gst_sample_get_buffer(sample);
    into.push_back({GST_BUFFER_PTS(buffer), publish_time(buffer)});
    gst_sample_unref(sample);
  }
}

// A writer process publishing two streams: the reader outputs both in step (buffers captured together
// have equal timestamps and come from the same frame), the video keeps flowing while the IMU is silent,
// and the writer's EOS ends both pads.
GST_START_TEST(test_two_streams_from_another_process) {
  const std::string segment = segment_name("process");
  Pipeline reader("shmxsrc name=r segment=" + segment +
                  "  r.src ! queue ! appsink name=video sync=false enable-last-sample=false"
                  "  r.src_imu ! queue ! appsink name=imu sync=false enable-last-sample=false");
  reader.play();
  const pid_t writer = spawn_role({"streams-writer", segment, "3"});
  std::vector<Received> video, imu;
  GstAppSink* video_sink = GST_APP_SINK(reader.get("video"));
  GstAppSink* imu_sink = GST_APP_SINK(reader.get("imu"));
  const auto deadline = deadline_in(15000);
  while (Clock::now() < deadline && !(gst_app_sink_is_eos(video_sink) && gst_app_sink_is_eos(imu_sink))) {
    drain(reader, "video", video);
    drain(reader, "imu", imu);
    sleep_ms(10);
  }
  drain(reader, "video", video);
  drain(reader, "imu", imu);
  const int status = wait_child(writer, 5000);
  if (status == INT32_MIN) kill_child(writer);
  fail_unless_equals_int(status, 0);
  fail_unless(gst_app_sink_is_eos(video_sink) && gst_app_sink_is_eos(imu_sink),
              "EOS did not reach both pads");
  fail_unless(video.size() >= 50, "%zu video buffers", video.size());
  fail_unless(imu.size() >= 200, "%zu IMU buffers", imu.size());

  // In step: a video buffer captured with an IMU sample has its timestamp, and both left the same frame.
  std::map<GstClockTime, GstClockTime> imu_publish;
  for (const Received& r : imu) imu_publish[r.pts] = r.publish;
  size_t matched = 0;
  for (const Received& r : video) {
    auto it = imu_publish.find(r.pts);
    if (it == imu_publish.end()) continue;
    fail_unless_equals_uint64(it->second, r.publish);
    matched++;
  }
  // Outside the IMU's silence (a third of the run) every video frame has its IMU sample; a reader that
  // falls behind may miss some.
  fail_unless(matched >= video.size() / 3, "%zu of %zu video buffers matched an IMU sample", matched,
              video.size());

  // No stall: the video goes on through the IMU's silence.
  GstClockTime gap_start = 0, gap_end = 0;
  for (size_t i = 1; i < imu.size(); ++i)
    if (imu[i].pts - imu[i - 1].pts > gap_end - gap_start) {
      gap_start = imu[i - 1].pts;
      gap_end = imu[i].pts;
    }
  fail_unless(gap_end - gap_start >= 900 * GST_MSECOND, "IMU silence of %" GST_TIME_FORMAT " only",
              GST_TIME_ARGS(gap_end - gap_start));
  size_t during_gap = 0;
  for (const Received& r : video) during_gap += r.pts > gap_start && r.pts < gap_end;
  fail_unless(during_gap >= 20, "only %zu video buffers while the IMU was silent", during_gap);
  g_print("video %zu, imu %zu, video matching an IMU sample %zu, video during the %" GST_TIME_FORMAT
          " IMU silence %zu\n",
          video.size(), imu.size(), matched, GST_TIME_ARGS(gap_end - gap_start), during_gap);
  fail_if(reader.has_error());
  fail_if(segment_exists(segment));
}
GST_END_TEST;

static Suite* streams_suite() {
  Suite* s = suite_create("shmx-src-streams");
  TCase* tc = tcase_create("src-streams");
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_two_streams_in_step);
  tcase_add_test(tc, test_repeats_not_output_twice);
  tcase_add_test(tc, test_streams_property);
  tcase_add_test(tc, test_library_segment);
  tcase_add_test(tc, test_writer_restart_changes_streams);
  tcase_add_test(tc, test_renumbered_stream_keeps_its_pad);
  tcase_add_test(tc, test_reader_restart_adds_pads_again);
  tcase_add_test(tc, test_upstream_event_from_stream_pad);
  tcase_add_test(tc, test_unlinked_src_does_not_stop_others);
  tcase_add_test(tc, test_two_streams_from_another_process);
  return s;
}

int main(int argc, char** argv) {
  return shmx_test::test_main(argc, argv, streams_suite, "shmx-src-streams", streams_writer_role);
}
