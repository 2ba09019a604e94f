// SPDX-License-Identifier: LGPL-2.1-or-later
// test_streams.cpp: gst-check tests of shmxsink's writer side of several streams per frame (request
// pads), of the reader TLVs it surfaces (reader-message), and of a reader's force-key-unit reaching an
// x264enc in the writer's process. Frames are read with the library Client.
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include "gstshmx-bufferinfo.h"
#include "gstshmx-events.h"
#include "shmx-test-util.h"
#include "shmx_client.h"

using namespace shmx_test;

namespace {

const char* kVideoCaps = "video/x-raw,format=GRAY8,width=16,height=16,framerate=30/1";
const char* kImuCaps = "application/x-imu,rate=(int)200";
constexpr GstClockTime kMs = GST_MSECOND;

// shmxsink with one harness per pad (harnesses on request pads request them), sync=false: a buffer
// pushed on the primary pad is published before the push returns.
struct MultiWriter {
  GstBus* bus = gst_bus_new();
  GstElement* element = nullptr;
  std::vector<GstHarness*> pads;

  explicit MultiWriter(const std::string& segment) {
    element = make_element("shmxsink", bus);
    g_object_set(element, "segment", segment.c_str(), "sync", FALSE, nullptr);
  }
  ~MultiWriter() {
    for (auto it = pads.rbegin(); it != pads.rend(); ++it) gst_harness_teardown(*it);
    gst_element_set_state(element, GST_STATE_NULL);
    gst_object_unref(element);
    gst_object_unref(bus);
  }
  // A harness on `pad` ("sink", "sink_1", ...) named `stream_name` (nullptr: the default), with `caps`.
  GstHarness* add(const char* pad, const char* stream_name, const char* caps) {
    GstHarness* h = gst_harness_new_with_element(element, pad, nullptr);
    fail_unless(h != nullptr, "no harness on %s", pad);
    if (stream_name) {
      GstPad* element_pad = gst_pad_get_peer(h->srcpad);
      fail_unless(element_pad != nullptr, "no pad %s", pad);
      g_object_set(element_pad, "stream-name", stream_name, nullptr);
      gst_object_unref(element_pad);
    }
    gst_harness_play(h);
    if (caps) gst_harness_set_src_caps_str(h, caps);
    pads.push_back(h);
    return h;
  }
};

// Kills a writer process and removes the segment it leaves behind.
void stop_writer(pid_t pid, const std::string& segment) {
  kill_child(pid);
  unlink(shm_path(segment).c_str());
}

// A buffer of `size` bytes, each `fill`, with a PTS.
GstBuffer* make_buffer(gsize size, guint8 fill, GstClockTime pts) {
  GstBuffer* buffer = gst_buffer_new_allocate(nullptr, size, nullptr);
  gst_buffer_memset(buffer, 0, fill, size);
  GST_BUFFER_PTS(buffer) = pts;
  return buffer;
}

// What a frame holds for one stream.
struct StreamInFrame {
  bool present = false;
  gst_shmx::BufferInfo info;
  uint64_t seq = 0;
  std::vector<uint8_t> data;
};

StreamInFrame stream_in_frame(const shmx::FrameView& frame, uint16_t stream) {
  StreamInFrame out;
  shmx::TlvView data, info, seq;
  const bool has_data = frame.stream_data(stream, data);
  const bool has_info =
      shmx::find_tlv(frame.payload, frame.payload_size, gst_shmx::kTlvBufferInfo, stream, info);
  const bool has_seq =
      shmx::find_tlv(frame.payload, frame.payload_size, gst_shmx::kTlvStreamSeq, stream, seq);
  fail_unless(has_data == has_info && has_data == has_seq,
              "stream %u: data %d, buffer info %d, seq %d: all or none expected", stream, has_data, has_info,
              has_seq);
  if (!has_data) return out;
  out.present = true;
  fail_unless(gst_shmx::decode_buffer_info(info.value, info.length, out.info));
  fail_unless_equals_int(seq.length, sizeof(uint64_t));
  std::memcpy(&out.seq, seq.value, sizeof out.seq);
  out.data.assign(data.value, data.value + data.length);
  return out;
}

// A library reader on `segment` (the writer exists already).
struct TestReader {
  shmx::Client client;
  explicit TestReader(const std::string& segment, const char* name = "test-client") {
    shmx::ClientOptions options;
    options.reader_name = name;
    const shmx::Status status = client.open_wait(segment, options, 3 * GST_SECOND);
    fail_unless(status.is_ok(), "cannot open %s: %s", segment.c_str(), status.to_string().c_str());
  }
  // The next frame within `ms`, or fails.
  shmx::FrameView next(int ms = 2000) {
    shmx::Result<shmx::FrameView> frame = client.wait_next(static_cast<uint64_t>(ms) * GST_MSECOND);
    fail_unless(frame.is_ok(), "no frame: %s", frame.status().to_string().c_str());
    return frame.value();
  }
  // True when no new frame is there.
  bool nothing_new() {
    shmx::Result<shmx::FrameView> frame = client.read_latest();
    return !frame.is_ok() && frame.code() == shmx::Errc::NoFrame;
  }
  std::vector<shmx::StreamInfo> streams() {
    shmx::Result<shmx::Metadata> metadata = client.metadata();
    fail_unless(metadata.is_ok());
    return metadata.value().streams;
  }
};

}  // namespace

// A single-stream pipeline publishes what it did before multi-stream frames, plus the sequence
// number: exactly the buffer info, the data and kTlvStreamSeq of stream 0, copied or in place.
GST_START_TEST(test_single_stream_frame_layout) {
  const std::string segment = segment_name("single");
  MultiWriter writer(segment);
  GstHarness* video = writer.add("sink", nullptr, kVideoCaps);
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 1, 0)), GST_FLOW_OK);
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 2, 33 * kMs)), GST_FLOW_OK);
  TestReader reader(segment);
  const std::vector<shmx::StreamInfo> streams = reader.streams();
  fail_unless_equals_int(streams.size(), 1);
  fail_unless_equals_string(streams[0].name.c_str(), "stream0");
  shmx::FrameView frame = reader.next();
  std::vector<std::pair<uint16_t, uint16_t>> tlvs;  // (type, stream)
  shmx::TlvReader tlv_reader(frame.payload, frame.payload_size);
  shmx::TlvView tlv;
  while (tlv_reader.next(tlv)) tlvs.emplace_back(tlv.type, tlv.stream);
  fail_unless(tlv_reader.error().is_ok());
  const std::vector<std::pair<uint16_t, uint16_t>> expected = {
      {gst_shmx::kTlvBufferInfo, 0}, {shmx::kTlvStreamData, 0}, {gst_shmx::kTlvStreamSeq, 0}};
  fail_unless(tlvs == expected, "frame has %zu TLVs, not buffer info, data and seq of stream 0", tlvs.size());
  const StreamInFrame v = stream_in_frame(frame, 0);
  fail_unless_equals_uint64(v.seq, 2);
  fail_unless_equals_int(v.data[0], 2);
}
GST_END_TEST;

// Two streams in one frame: for each primary buffer, the newest IMU buffer whose running time is not
// after it; a buffer repeats (same sequence number) until a newer one comes.
GST_START_TEST(test_two_streams_in_step) {
  const std::string segment = segment_name("in-step");
  MultiWriter writer(segment);
  GstHarness* video = writer.add("sink", "video", kVideoCaps);
  GstHarness* imu = writer.add("sink_1", "imu", kImuCaps);

  // IMU at 200 Hz: buffers 0..12 at 0, 5, ..., 60 ms, byte value = index.
  for (guint8 i = 0; i <= 12; ++i)
    fail_unless_equals_int(gst_harness_push(imu, make_buffer(24, i, i * 5 * kMs)), GST_FLOW_OK);
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 0xA0, 33 * kMs)), GST_FLOW_OK);

  TestReader reader(segment);
  const std::vector<shmx::StreamInfo> streams = reader.streams();
  fail_unless_equals_int(streams.size(), 2);
  fail_unless_equals_string(streams[0].name.c_str(), "video");
  fail_unless(streams[0].type.find("video/x-raw") == 0, "type %s", streams[0].type.c_str());
  fail_unless_equals_string(streams[1].name.c_str(), "imu");
  fail_unless(streams[1].type.find("application/x-imu") == 0, "type %s", streams[1].type.c_str());

  shmx::FrameView frame = reader.next();
  StreamInFrame v = stream_in_frame(frame, 0), m = stream_in_frame(frame, 1);
  fail_unless(v.present && m.present);
  fail_unless_equals_uint64(v.info.pts, 33 * kMs);
  fail_unless_equals_uint64(v.seq, 1);
  fail_unless_equals_uint64(m.info.pts, 30 * kMs);  // the newest not after 33 ms
  fail_unless_equals_uint64(m.seq, 7);              // the 7th IMU buffer
  fail_unless_equals_int(m.data.size(), 24);
  fail_unless_equals_int(m.data[0], 6);

  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 0xA1, 66 * kMs)), GST_FLOW_OK);
  frame = reader.next();
  v = stream_in_frame(frame, 0);
  m = stream_in_frame(frame, 1);
  fail_unless_equals_uint64(v.seq, 2);
  fail_unless_equals_uint64(m.info.pts, 60 * kMs);
  fail_unless_equals_uint64(m.seq, 13);
  fail_unless_equals_int(m.data[0], 12);

  // No new IMU buffer: the frame repeats the last one with its number.
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 0xA2, 100 * kMs)), GST_FLOW_OK);
  frame = reader.next();
  m = stream_in_frame(frame, 1);
  fail_unless_equals_uint64(m.info.pts, 60 * kMs);
  fail_unless_equals_uint64(m.seq, 13);
  // The capture times are each buffer's own.
  fail_unless(m.info.pts_monotonic_ns == gst_shmx::kNoTime ||
              stream_in_frame(frame, 0).info.pts_monotonic_ns - m.info.pts_monotonic_ns == 40 * kMs);

  // An IMU buffer later than the video buffer waits for a later video buffer; when every queued
  // buffer is later, the oldest is carried.
  fail_unless_equals_int(gst_harness_push(imu, make_buffer(24, 20, 140 * kMs)), GST_FLOW_OK);
  fail_unless_equals_int(gst_harness_push(imu, make_buffer(24, 21, 150 * kMs)), GST_FLOW_OK);
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 0xA3, 133 * kMs)), GST_FLOW_OK);
  m = stream_in_frame(reader.next(), 1);
  fail_unless_equals_uint64(m.info.pts, 60 * kMs);  // 60 ms still queued and not after 133 ms
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 0xA4, 145 * kMs)), GST_FLOW_OK);
  m = stream_in_frame(reader.next(), 1);
  fail_unless_equals_uint64(m.info.pts, 140 * kMs);
  fail_unless_equals_uint64(m.seq, 14);
}
GST_END_TEST;

// Frames of a live pipeline carry both streams in step: a live camera-like video stream and a 100 Hz
// audio stream standing in for an IMU, received by a reader in another pipeline's process.
GST_START_TEST(test_live_streams_in_step) {
  const std::string segment = segment_name("live-step");
  const std::string launch =
      "videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=30/1 ! shmxsink name=s segment=" +
      segment +
      " sink::stream-name=camera sink_1::stream-name=imu "
      "audiotestsrc is-live=true samplesperbuffer=480 ! audio/x-raw,rate=48000,channels=1 ! s.sink_1";
  const pid_t writer = spawn_pipeline(launch, 20);
  fail_unless(wait_until(5000, [&] { return segment_exists(segment); }), "writer did not create the segment");
  TestReader reader(segment);
  fail_unless(wait_until(3000, [&] { return reader.streams().size() == 2; }),
              "the audio stream is not listed");
  const std::vector<shmx::StreamInfo> streams = reader.streams();
  fail_unless_equals_string(streams[0].name.c_str(), "camera");
  fail_unless_equals_string(streams[1].name.c_str(), "imu");
  fail_unless(streams[1].type.find("audio/x-raw") == 0, "type %s", streams[1].type.c_str());

  int both = 0, in_step = 0;
  uint64_t last_imu_seq = 0;
  for (int i = 0; i < 20; ++i) {
    shmx::FrameView frame = reader.next(2000);
    const StreamInFrame v = stream_in_frame(frame, 0), a = stream_in_frame(frame, 1);
    if (!v.present || !a.present) continue;  // (no camera frame: published by the audio stream alone)
    both++;
    // The audio buffer is the newest not after the video frame: behind it by about one audio buffer
    // (10 ms), more only when a loaded machine delays the audio thread; after it only at the start,
    // when every queued audio buffer is later (the oldest is carried then).
    const int64_t lag = static_cast<int64_t>(v.info.pts_monotonic_ns - a.info.pts_monotonic_ns);
    fail_unless(lag > -static_cast<int64_t>(40 * kMs) && lag < static_cast<int64_t>(500 * kMs),
                "audio %" G_GINT64_FORMAT " ns behind video", lag);
    if (lag >= 0) in_step++;
    fail_unless(a.seq >= last_imu_seq);
    last_imu_seq = a.seq;
  }
  fail_unless(both >= 15, "only %d of 20 frames carried both streams", both);
  fail_unless(in_step >= both - 2, "only %d of %d frames carried audio not after their video", in_step, both);
  fail_unless(last_imu_seq >= 20, "the audio stream's sequence did not advance: %" G_GUINT64_FORMAT,
              last_imu_seq);
  stop_writer(writer, segment);
}
GST_END_TEST;

// A request pad that receives nothing does not hold the primary stream back: a live pipeline with an
// idle appsrc still publishes at the camera's rate, frames without the idle stream.
GST_START_TEST(test_idle_stream_does_not_stall) {
  const std::string segment = segment_name("idle");
  const std::string launch =
      "videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=30/1 ! shmxsink name=s segment=" +
      segment + " appsrc name=idle is-live=true format=time caps=application/x-imu ! s.";
  GstElement* pipeline = gst_parse_launch(launch.c_str(), nullptr);
  fail_unless(pipeline != nullptr);
  GstElement* idle = gst_bin_get_by_name(GST_BIN(pipeline), "idle");
  fail_unless_equals_int(gst_element_set_state(pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_ASYNC);
  fail_unless(wait_until(5000, [&] { return segment_exists(segment); }));
  TestReader reader(segment);

  const auto start = Clock::now();
  int frames = 0;
  while (Clock::now() - start < std::chrono::milliseconds(1000)) {
    shmx::Result<shmx::FrameView> frame = reader.client.wait_next(500 * GST_MSECOND);
    if (!frame.is_ok()) continue;
    fail_unless(stream_in_frame(frame.value(), 0).present);
    frames++;
  }
  fail_unless(frames >= 20, "%d frames in 1 s with an idle stream", frames);

  // Once the idle stream has a buffer, the following frames carry it.
  GstBuffer* buffer = make_buffer(8, 7, GST_CLOCK_TIME_NONE);
  fail_unless_equals_int(gst_app_src_push_buffer(GST_APP_SRC(idle), buffer), GST_FLOW_OK);
  bool carried = false;
  for (int i = 0; i < 30 && !carried; ++i) {
    shmx::FrameView frame = reader.next();
    const StreamInFrame imu = stream_in_frame(frame, 1);
    carried = imu.present && imu.data.size() == 8 && imu.data[0] == 7 && imu.seq == 1;
  }
  fail_unless(carried, "the appsrc buffer never reached a frame");

  // The camera's frames stay zero-copy with the other stream appended after the image.
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "s");
  auto zero_copy_frames = [&] { return stats_field(sink, "frames-zero-copy"); };
  const guint64 before = zero_copy_frames();
  for (int i = 0; i < 5; ++i) {
    const StreamInFrame imu = stream_in_frame(reader.next(), 1);
    fail_unless(imu.present && imu.seq == 1);
  }
  fail_unless(zero_copy_frames() >= before + 4, "frames with two streams were copied");
  gst_object_unref(sink);
  gst_object_unref(idle);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}
GST_END_TEST;

// When the primary stream is silent for longer than stream-timeout, a buffer on another stream
// publishes a frame by itself (without the primary stream); before that, and with stream-timeout=0,
// it does not.
GST_START_TEST(test_silent_primary_lets_others_publish) {
  const std::string segment = segment_name("timeout");
  MultiWriter writer(segment);
  g_object_set(writer.element, "stream-timeout", 500u, nullptr);
  GstHarness* video = writer.add("sink", nullptr, kVideoCaps);
  GstHarness* imu = writer.add("sink_1", "imu", kImuCaps);
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 1, 0)), GST_FLOW_OK);
  TestReader reader(segment);
  fail_unless(stream_in_frame(reader.next(), 0).present);

  // Within the timeout of the last primary buffer: queued only.
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 1, 1 * kMs)), GST_FLOW_OK);
  fail_unless(stream_in_frame(reader.next(), 0).present);
  fail_unless_equals_int(gst_harness_push(imu, make_buffer(24, 1, 5 * kMs)), GST_FLOW_OK);
  sleep_ms(50);
  fail_unless(reader.nothing_new(), "a secondary buffer published while the primary stream is active");

  sleep_ms(550);
  fail_unless_equals_int(gst_harness_push(imu, make_buffer(24, 2, 10 * kMs)), GST_FLOW_OK);
  shmx::FrameView frame = reader.next(1000);
  fail_unless(!stream_in_frame(frame, 0).present,
              "a frame without primary buffer carries the primary stream");
  StreamInFrame m = stream_in_frame(frame, 1);
  fail_unless(m.present);
  fail_unless_equals_uint64(m.seq, 2);
  fail_unless_equals_int(m.data[0], 2);
  // Each further buffer publishes a frame of its own.
  fail_unless_equals_int(gst_harness_push(imu, make_buffer(24, 3, 15 * kMs)), GST_FLOW_OK);
  fail_unless_equals_uint64(stream_in_frame(reader.next(1000), 1).seq, 3);

  // The primary stream back: frames follow it again.
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 2, 33 * kMs)), GST_FLOW_OK);
  frame = reader.next(1000);
  fail_unless(stream_in_frame(frame, 0).present);
  fail_unless_equals_uint64(stream_in_frame(frame, 0).seq, 3);
  fail_unless_equals_uint64(stream_in_frame(frame, 1).seq, 3);
  fail_unless_equals_int(gst_harness_push(imu, make_buffer(24, 4, 40 * kMs)), GST_FLOW_OK);
  sleep_ms(50);
  fail_unless(reader.nothing_new());

  // stream-timeout=0: never without the primary stream.
  g_object_set(writer.element, "stream-timeout", 0u, nullptr);
  sleep_ms(600);
  fail_unless_equals_int(gst_harness_push(imu, make_buffer(24, 5, 45 * kMs)), GST_FLOW_OK);
  sleep_ms(100);
  fail_unless(reader.nothing_new(), "stream-timeout=0 published without the primary stream");
}
GST_END_TEST;

// Pads come and go: sink_%u takes the lowest free number, sink_<N> that number; the metadata lists
// the streams with caps in pad order (wire index = position), and releasing a pad removes its stream.
GST_START_TEST(test_request_pads_and_release) {
  const std::string segment = segment_name("release");
  MultiWriter writer(segment);
  GstHarness* video = writer.add("sink", nullptr, kVideoCaps);
  GstPad* pad5 = gst_element_request_pad_simple(writer.element, "sink_5");
  fail_unless(pad5 != nullptr);
  fail_unless_equals_string(GST_PAD_NAME(pad5), "sink_5");
  fail_unless(gst_element_request_pad_simple(writer.element, "sink_0") == nullptr, "sink_0 is the primary");
  gst_element_release_request_pad(writer.element, pad5);
  gst_object_unref(pad5);

  GstHarness* gps = writer.add("sink_2", "gps", "application/x-gps");
  GstHarness* imu = writer.add("sink_%u", "imu", kImuCaps);  // the lowest free number: 1
  GstPad* imu_pad = gst_element_get_static_pad(writer.element, "sink_1");
  fail_unless(imu_pad != nullptr, "sink_%%u did not take number 1");
  gchar* name = nullptr;
  g_object_get(imu_pad, "stream-name", &name, nullptr);
  fail_unless_equals_string(name, "imu");
  g_free(name);

  fail_unless_equals_int(gst_harness_push(gps, make_buffer(16, 0x62, 0)), GST_FLOW_OK);
  fail_unless_equals_int(gst_harness_push(imu, make_buffer(24, 0x61, 0)), GST_FLOW_OK);
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 0, 10 * kMs)), GST_FLOW_OK);
  TestReader reader(segment);
  std::vector<shmx::StreamInfo> streams = reader.streams();
  fail_unless_equals_int(streams.size(), 3);
  fail_unless_equals_string(streams[0].name.c_str(), "stream0");
  fail_unless_equals_string(streams[1].name.c_str(), "imu");
  fail_unless_equals_string(streams[2].name.c_str(), "gps");
  shmx::FrameView frame = reader.next();
  fail_unless_equals_int(stream_in_frame(frame, 1).data[0], 0x61);
  fail_unless_equals_int(stream_in_frame(frame, 2).data[0], 0x62);

  // Release sink_1: gps becomes stream 1.
  gst_object_unref(imu_pad);
  auto it = std::find(writer.pads.begin(), writer.pads.end(), imu);
  writer.pads.erase(it);
  gst_harness_teardown(imu);  // releases the requested pad
  fail_unless(gst_element_get_static_pad(writer.element, "sink_1") == nullptr, "sink_1 not released");
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 0, 20 * kMs)), GST_FLOW_OK);
  streams = reader.streams();
  fail_unless_equals_int(streams.size(), 2);
  fail_unless_equals_string(streams[1].name.c_str(), "gps");
  frame = reader.next();
  fail_unless_equals_int(stream_in_frame(frame, 1).data[0], 0x62);
  fail_unless(!stream_in_frame(frame, 2).present);
}
GST_END_TEST;

// Request pads added, fed and released while the primary stream publishes from another thread: every
// frame stays well formed (each stream present with its three TLVs) and the primary never fails.
GST_START_TEST(test_pads_come_and_go_while_publishing) {
  const std::string segment = segment_name("churn");
  MultiWriter writer(segment);
  GstHarness* video = writer.add("sink", nullptr, kVideoCaps);
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 0, 0)), GST_FLOW_OK);
  TestReader reader(segment);

  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, pushed{0};
  std::thread primary([&] {
    for (GstClockTime pts = 10 * kMs; !stop; pts += 10 * kMs) {
      if (gst_harness_push(video, make_buffer(256, 1, pts)) != GST_FLOW_OK) failures++;
      pushed++;
      sleep_ms(2);
    }
  });
  int frames = 0, with_extra = 0;
  for (int round = 0; round < 20; ++round) {
    GstHarness* extra = gst_harness_new_with_element(writer.element, "sink_%u", nullptr);
    gst_harness_play(extra);
    gst_harness_set_src_caps_str(extra, kImuCaps);
    for (guint8 i = 0; i < 3; ++i)
      fail_unless_equals_int(gst_harness_push(extra, make_buffer(24, i, round * 10 * kMs + i * kMs)),
                             GST_FLOW_OK);
    sleep_ms(20);  // the primary stream publishes meanwhile, with this stream
    while (true) {
      shmx::Result<shmx::FrameView> frame = reader.client.read_latest();
      if (!frame.is_ok()) break;
      for (uint16_t stream = 0; stream < 4; ++stream) stream_in_frame(frame.value(), stream);
      frames++;
      if (stream_in_frame(frame.value(), 1).present) with_extra++;
    }
    gst_harness_teardown(extra);
  }
  stop = true;
  primary.join();
  fail_unless_equals_int(failures.load(), 0);
  fail_unless(frames >= 10, "only %d frames read while %d pushed", frames, pushed.load());
  fail_unless(with_extra >= 10, "only %d of %d frames carried the request pad's stream", with_extra, frames);
  fail_unless(reader.streams().size() == 1, "released streams still listed");
}
GST_END_TEST;

// The slots hold the frame with every stream: a request pad's big buffer grows them (slot-size=0), or
// is a clear error naming the size with an explicit slot-size.
GST_START_TEST(test_other_streams_size_the_slots) {
  const std::string segment = segment_name("grow");
  {
    MultiWriter writer(segment);
    GstHarness* video = writer.add("sink", nullptr, kVideoCaps);
    GstHarness* depth = writer.add("sink_1", "depth", "application/x-depth");
    fail_unless_equals_int(gst_harness_push(depth, make_buffer(300000, 9, 0)), GST_FLOW_OK);
    fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 1, 10 * kMs)), GST_FLOW_OK);
    const guint64 slot_size = stats_field(writer.element, "slot-size");
    fail_unless_equals_uint64(stats_field(writer.element, "segment-recreations"), 1);
    fail_unless(slot_size >= 300000 + 256, "slots of %" G_GUINT64_FORMAT " bytes", slot_size);
    TestReader reader(segment);
    shmx::Result<shmx::FrameView> frame = reader.client.read_latest();
    fail_unless(frame.is_ok());
    const StreamInFrame d = stream_in_frame(frame.value(), 1);
    fail_unless_equals_int(d.data.size(), 300000);
    fail_unless_equals_int(d.data[299999], 9);
    fail_unless(stream_in_frame(frame.value(), 0).present);
  }
  MultiWriter fixed(segment);
  g_object_set(fixed.element, "slot-size", static_cast<guint64>(65536), nullptr);
  GstHarness* video = fixed.add("sink", nullptr, kVideoCaps);
  GstHarness* depth = fixed.add("sink_1", "depth", "application/x-depth");
  fail_unless_equals_int(gst_harness_push(depth, make_buffer(300000, 9, 0)), GST_FLOW_OK);
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 1, 10 * kMs)), GST_FLOW_ERROR);
  const std::string error = wait_for_text(fixed.bus, GST_MESSAGE_ERROR, "does not fit", 2000);
  fail_unless(error.find("300256 bytes") != std::string::npos, "error: %s", error.c_str());
}
GST_END_TEST;

// Two pads naming the same stream is a clear error (readers name their pads after the streams).
GST_START_TEST(test_duplicate_stream_name_refused) {
  const std::string segment = segment_name("dup");
  MultiWriter writer(segment);
  writer.add("sink", "same", kVideoCaps);
  writer.add("sink_1", "same", kImuCaps);
  const std::string error = wait_for_text(writer.bus, GST_MESSAGE_ERROR, "named 'same'", 2000);
  fail_unless(!error.empty(), "no error naming the duplicate stream");
  fail_unless(error.find("stream-name") != std::string::npos, "error: %s", error.c_str());
}
GST_END_TEST;

// A reader's application TLV reaches the app: the reader-message signal and the shmx-reader-message
// element message, with the reader's name, the type and the bytes. Upstream events are not surfaced.
struct ReceivedTlv {
  std::mutex lock;
  std::string reader;
  guint pid = 0;
  guint type = 0;
  std::string bytes;
  int count = 0;
};

static void on_reader_message(GstElement*, const gchar* reader, guint pid, guint type, GBytes* value,
                              ReceivedTlv* received) {
  std::lock_guard<std::mutex> locker(received->lock);
  received->reader = reader;
  received->pid = pid;
  received->type = type;
  gsize size = 0;
  const char* data = static_cast<const char*>(g_bytes_get_data(value, &size));
  received->bytes.assign(data ? data : "", size);
  received->count++;
}

GST_START_TEST(test_reader_message_signal) {
  const std::string segment = segment_name("tlv");
  MultiWriter writer(segment);
  ReceivedTlv received;
  g_signal_connect(writer.element, "reader-message", G_CALLBACK(on_reader_message), &received);
  GstHarness* video = writer.add("sink", nullptr, kVideoCaps);
  fail_unless_equals_int(gst_harness_push(video, make_buffer(256, 0, 0)), GST_FLOW_OK);
  TestReader reader(segment, "tlv-reader");

  // An upstream event is the sink's own: no signal.
  GstEvent* event = gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 1);
  const std::string serialized = gst_shmx::serialize_upstream_event(event);
  gst_event_unref(event);
  fail_unless(reader.client.send(gst_shmx::kTlvUpstreamEvent, serialized.data(), serialized.size()).is_ok());
  const uint16_t type = shmx::kTlvUserBase + 0x200;
  const char payload[] = "calibrate\0now";
  fail_unless(reader.client.send(type, payload, sizeof payload).is_ok());

  fail_unless(wait_until(3000,
                         [&] {
                           std::lock_guard<std::mutex> locker(received.lock);
                           return received.count > 0;
                         }),
              "no reader-message signal");
  {
    std::lock_guard<std::mutex> locker(received.lock);
    fail_unless_equals_int(received.count, 1);
    fail_unless_equals_string(received.reader.c_str(), "tlv-reader");
    fail_unless_equals_int(received.pid, getpid());
    fail_unless_equals_int(received.type, type);
    fail_unless(received.bytes == std::string(payload, sizeof payload), "bytes differ");
  }
  GstMessage* message = wait_for_element_message(writer.bus, "shmx-reader-message", 2000);
  fail_unless(message != nullptr, "no shmx-reader-message");
  const GstStructure* s = gst_message_get_structure(message);
  fail_unless_equals_string(gst_structure_get_string(s, "name"), "tlv-reader");
  fail_unless_equals_string(gst_structure_get_string(s, "segment"), segment.c_str());
  guint message_type = 0;
  fail_unless(gst_structure_get_uint(s, "type", &message_type));
  fail_unless_equals_int(message_type, type);
  GBytes* value = nullptr;
  fail_unless(gst_structure_get(s, "value", G_TYPE_BYTES, &value, nullptr));
  fail_unless_equals_int(g_bytes_get_size(value), sizeof payload);
  g_bytes_unref(value);
  gst_message_unref(message);
}
GST_END_TEST;

// A reader asks the encoder of the writer's pipeline (another process) for a key frame: x264enc with
// one key frame per 1000 frames sends delta frames only, until the force-key-unit the reader sent over
// the control ring reaches it; the next frames then carry a key frame.
GST_START_TEST(test_force_key_unit_reaches_x264enc) {
  const std::string segment = segment_name("x264");
  const std::string launch =
      "videotestsrc is-live=true ! video/x-raw,format=I420,width=160,height=120,framerate=30/1 ! "
      "x264enc key-int-max=1000 tune=zerolatency speed-preset=ultrafast ! "
      "video/x-h264,stream-format=byte-stream ! shmxsink segment=" +
      segment;
  const pid_t writer = spawn_pipeline(launch, 30);
  fail_unless(wait_until(5000, [&] { return segment_exists(segment); }), "writer did not create the segment");
  TestReader reader(segment, "h264-reader");

  // Joined late: delta frames only (at most the first frame is a key frame).
  int deltas = 0;
  for (int i = 0; i < 40 && deltas < 15; ++i) {
    const StreamInFrame video = stream_in_frame(reader.next(2000), 0);
    fail_unless(video.present);
    deltas = (video.info.flags & GST_BUFFER_FLAG_DELTA_UNIT) ? deltas + 1 : 0;
  }
  fail_unless(deltas >= 15, "key frames keep coming without a request");

  GstEvent* event = gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 1);
  const std::string serialized = gst_shmx::serialize_upstream_event(event);
  gst_event_unref(event);
  fail_unless(reader.client.send(gst_shmx::kTlvUpstreamEvent, serialized.data(), serialized.size()).is_ok());
  const auto deadline = deadline_in(3000);
  bool key_frame = false;
  while (!key_frame && Clock::now() < deadline) {
    shmx::Result<shmx::FrameView> frame = reader.client.wait_next(500 * GST_MSECOND);
    if (!frame.is_ok()) continue;
    const StreamInFrame video = stream_in_frame(frame.value(), 0);
    key_frame = video.present && !(video.info.flags & GST_BUFFER_FLAG_DELTA_UNIT);
  }
  fail_unless(key_frame, "no key frame within 3 s of the force-key-unit request");
  stop_writer(writer, segment);
}
GST_END_TEST;

// The same through GStreamer on the reading side, with nothing asked of the application: a decoding
// pipeline (shmxsrc ! h264parse ! openh264dec) that joins after the key frame requests one itself
// (h264parse and the decoder send force-key-unit upstream when they start on delta frames), and
// decodes within a bounded time instead of waiting for the encoder's next key frame (33 s away).
GST_START_TEST(test_late_decoder_gets_key_frame) {
  const std::string segment = segment_name("x264-dec");
  const std::string launch =
      "videotestsrc is-live=true ! video/x-raw,format=I420,width=160,height=120,framerate=30/1 ! "
      "x264enc key-int-max=1000 tune=zerolatency speed-preset=ultrafast ! h264parse ! shmxsink segment=" +
      segment;
  const pid_t writer = spawn_pipeline(launch, 30);
  fail_unless(wait_until(5000, [&] { return segment_exists(segment); }), "writer did not create the segment");
  {
    TestReader probe(segment);  // wait until the key frame is past
    int deltas = 0;
    for (int i = 0; i < 40 && deltas < 10; ++i)
      deltas =
          (stream_in_frame(probe.next(2000), 0).info.flags & GST_BUFFER_FLAG_DELTA_UNIT) ? deltas + 1 : 0;
    fail_unless(deltas >= 10, "key frames keep coming without a request");
  }

  GstElement* pipeline = gst_parse_launch(
      ("shmxsrc segment=" + segment + " ! h264parse ! openh264dec ! appsink name=out sync=false").c_str(),
      nullptr);
  fail_unless(pipeline != nullptr, "cannot build the decoding pipeline (openh264dec missing?)");
  GstElement* out = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  const auto start = Clock::now();
  fail_if(gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE);
  GstSample* sample = gst_app_sink_try_pull_sample(GST_APP_SINK(out), 3 * GST_SECOND);
  fail_unless(sample != nullptr, "nothing decoded within 3 s of joining");
  GST_INFO(
      "first frame decoded %d ms after joining",
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count()));
  gst_sample_unref(sample);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(out);
  gst_object_unref(pipeline);
  stop_writer(writer, segment);
}
GST_END_TEST;

static Suite* streams_suite() {
  Suite* s = suite_create("shmx-streams");
  TCase* tc = tcase_create("streams");
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_single_stream_frame_layout);
  tcase_add_test(tc, test_two_streams_in_step);
  tcase_add_test(tc, test_live_streams_in_step);
  tcase_add_test(tc, test_idle_stream_does_not_stall);
  tcase_add_test(tc, test_silent_primary_lets_others_publish);
  tcase_add_test(tc, test_request_pads_and_release);
  tcase_add_test(tc, test_pads_come_and_go_while_publishing);
  tcase_add_test(tc, test_other_streams_size_the_slots);
  tcase_add_test(tc, test_duplicate_stream_name_refused);
  tcase_add_test(tc, test_reader_message_signal);
  tcase_add_test(tc, test_force_key_unit_reaches_x264enc);
  tcase_add_test(tc, test_late_decoder_gets_key_frame);
  return s;
}

int main(int argc, char** argv) { return shmx_test::test_main(argc, argv, streams_suite, "shmx-streams"); }
