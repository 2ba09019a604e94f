// SPDX-License-Identifier: LGPL-2.1-or-later
// test_helpers.cpp: gst-check tests of the plugin's pure helpers: caps <-> StreamInfo, buffer info, upstream
// events.
#include <gst/video/video.h>

#include "gstshmx-bufferinfo.h"
#include "gstshmx-caps.h"
#include "gstshmx-events.h"
#include "shmx-test-util.h"

GST_START_TEST(test_caps_round_trip) {
  const char* texts[] = {
      "video/x-raw, format=(string)RGBA, width=(int)320, height=(int)240, framerate=(fraction)30/1",
      "video/x-raw, format=(string)I420, width=(int)64, height=(int)48, framerate=(fraction)0/1",
      "video/x-h264, stream-format=(string)byte-stream, alignment=(string)au, width=(int)1280, "
      "height=(int)720",
      "audio/x-raw, format=(string)S16LE, layout=(string)interleaved, rate=(int)48000, channels=(int)2",
      "application/x-custom, foo=(string)bar, n=(int)3",
  };
  for (const char* text : texts) {
    GstCaps* caps = gst_caps_from_string(text);
    shmx::StreamInfo info;
    fail_unless(gst_shmx::stream_info_from_caps(caps, "stream0", info));
    fail_unless_equals_string(info.name.c_str(), "stream0");
    fail_if(info.layout.empty());
    fail_if(info.components.empty());
    GstCaps* back = gst_shmx::caps_from_stream_info(info);
    fail_unless(back != nullptr, "caps '%s' did not parse back", info.type.c_str());
    fail_unless(gst_caps_is_equal(caps, back), "caps changed: %s -> %s", text, info.type.c_str());
    gst_caps_unref(back);
    gst_caps_unref(caps);
  }
}
GST_END_TEST;

GST_START_TEST(test_caps_description) {
  GstCaps* caps = gst_caps_from_string("video/x-raw,format=I420,width=64,height=48");
  shmx::StreamInfo info;
  fail_unless(gst_shmx::stream_info_from_caps(caps, "video0", info));
  fail_unless_equals_int(info.components.size(), 3);  // Y, U, V planes
  fail_unless_equals_string(info.components[0].name.c_str(), "plane0");
  fail_unless_equals_int(info.components[0].count, 64 * 48);
  fail_unless(info.layout.find("I420 64x48") != std::string::npos, "layout: %s", info.layout.c_str());
  fail_unless_equals_uint64(gst_shmx::slot_payload_for_caps(caps),
                            shmx::align_up(64 * 48 * 3 / 2 + 1024, 4096));
  gst_caps_unref(caps);

  caps = gst_caps_from_string("audio/x-raw,format=F32LE,layout=interleaved,rate=44100,channels=2");
  fail_unless(gst_shmx::stream_info_from_caps(caps, "audio0", info));
  fail_unless_equals_int(info.components.size(), 1);
  fail_unless(info.components[0].dtype == shmx::DType::F32);
  fail_unless_equals_int(info.components[0].count, 2);
  fail_unless_equals_uint64(gst_shmx::slot_payload_for_caps(caps), gst_shmx::kDefaultSlotPayload);
  gst_caps_unref(caps);

  // Unfixed caps cannot describe a stream; garbage is not caps.
  caps = gst_caps_from_string("video/x-raw,width=[1,100]");
  fail_if(gst_shmx::stream_info_from_caps(caps, "x", info));
  gst_caps_unref(caps);
  shmx::StreamInfo garbage;
  garbage.type = "not caps at all ,,,=";
  fail_unless(gst_shmx::caps_from_stream_info(garbage) == nullptr);
  garbage.type = "";
  fail_unless(gst_shmx::caps_from_stream_info(garbage) == nullptr);
  // A library writer's type (examples/server_test) parses as caps but names no media type.
  garbage.type = "u64";
  fail_unless(gst_shmx::caps_from_stream_info(garbage) == nullptr);
}
GST_END_TEST;

GST_START_TEST(test_buffer_info_round_trip) {
  GstBuffer* buffer = gst_buffer_new_allocate(nullptr, 320 * 48, nullptr);
  GST_BUFFER_PTS(buffer) = 5 * GST_SECOND;
  GST_BUFFER_DTS(buffer) = 4 * GST_SECOND;
  GST_BUFFER_DURATION(buffer) = 33 * GST_MSECOND;
  GST_BUFFER_OFFSET(buffer) = 17;
  GST_BUFFER_OFFSET_END(buffer) = 18;
  GST_BUFFER_FLAG_SET(buffer, GST_BUFFER_FLAG_DELTA_UNIT | GST_BUFFER_FLAG_MARKER);
  gsize offsets[4] = {0};
  gint strides[4] = {320};
  gst_buffer_add_video_meta_full(buffer, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_FORMAT_RGBA, 64, 48, 1, offsets,
                                 strides);

  gst_shmx::BufferInfo info = gst_shmx::buffer_info_from_buffer(buffer);
  info.pts_monotonic_ns = 123456789;
  std::vector<uint8_t> wire(gst_shmx::buffer_info_encoded_size());
  gst_shmx::encode_buffer_info(info, wire.data());

  gst_shmx::BufferInfo decoded;
  fail_unless(gst_shmx::decode_buffer_info(wire.data(), wire.size(), decoded));
  fail_unless_equals_uint64(decoded.pts_monotonic_ns, 123456789);
  fail_unless_equals_uint64(decoded.dts_monotonic_ns, gst_shmx::kNoTime);

  GstBuffer* copy = gst_buffer_new_allocate(nullptr, 320 * 48, nullptr);
  fail_unless(gst_shmx::apply_buffer_info(decoded, copy));
  fail_unless_equals_uint64(GST_BUFFER_PTS(copy), 5 * GST_SECOND);
  fail_unless_equals_uint64(GST_BUFFER_DTS(copy), 4 * GST_SECOND);
  fail_unless_equals_uint64(GST_BUFFER_DURATION(copy), 33 * GST_MSECOND);
  fail_unless_equals_uint64(GST_BUFFER_OFFSET(copy), 17);
  fail_unless_equals_uint64(GST_BUFFER_OFFSET_END(copy), 18);
  fail_unless(GST_BUFFER_FLAG_IS_SET(copy, GST_BUFFER_FLAG_DELTA_UNIT));
  fail_unless(GST_BUFFER_FLAG_IS_SET(copy, GST_BUFFER_FLAG_MARKER));
  GstVideoMeta* meta = gst_buffer_get_video_meta(copy);
  fail_unless(meta != nullptr);
  fail_unless_equals_int(meta->stride[0], 320);
  fail_unless_equals_int(meta->width, 64);

  // Hostile bytes: short, wrong version, impossible video meta.
  fail_if(gst_shmx::decode_buffer_info(wire.data(), wire.size() - 1, decoded));
  std::vector<uint8_t> bad = wire;
  bad[0] = 99;
  fail_if(gst_shmx::decode_buffer_info(bad.data(), bad.size(), decoded));
  info.video.n_planes = 9;
  gst_shmx::encode_buffer_info(info, bad.data());
  fail_if(gst_shmx::decode_buffer_info(bad.data(), bad.size(), decoded));

  // A meta that reaches past the data is left out rather than trusted.
  info.video.n_planes = 1;
  info.video.stride[0] = 100000;
  gst_shmx::encode_buffer_info(info, bad.data());
  fail_unless(gst_shmx::decode_buffer_info(bad.data(), bad.size(), decoded));
  GstBuffer* small = gst_buffer_new_allocate(nullptr, 100, nullptr);
  fail_if(gst_shmx::apply_buffer_info(decoded, small));
  fail_unless(gst_buffer_get_video_meta(small) == nullptr);

  gst_buffer_unref(small);
  gst_buffer_unref(copy);
  gst_buffer_unref(buffer);
}
GST_END_TEST;

GST_START_TEST(test_upstream_event_round_trip) {
  GstEvent* event = gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 3);
  fail_unless(gst_shmx::is_forwarded_upstream_event(event));
  const std::string value = gst_shmx::serialize_upstream_event(event);
  GstEvent* back =
      gst_shmx::deserialize_upstream_event(reinterpret_cast<const uint8_t*>(value.data()), value.size());
  fail_unless(back != nullptr);
  fail_unless(gst_video_event_is_force_key_unit(back));
  gboolean all_headers = FALSE;
  guint count = 0;
  fail_unless(gst_video_event_parse_upstream_force_key_unit(back, nullptr, &all_headers, &count));
  fail_unless(all_headers);
  fail_unless_equals_int(count, 3);
  gst_event_unref(back);
  gst_event_unref(event);

  GstEvent* flush = gst_event_new_flush_start();
  fail_if(gst_shmx::is_forwarded_upstream_event(flush));
  gst_event_unref(flush);

  const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 'x'};
  fail_unless(gst_shmx::deserialize_upstream_event(garbage, sizeof(garbage)) == nullptr);
  fail_unless(gst_shmx::deserialize_upstream_event(garbage, 2) == nullptr);
}
GST_END_TEST;

static Suite* helpers_suite() {
  Suite* s = suite_create("shmx-helpers");
  TCase* tc = tcase_create("helpers");
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_caps_round_trip);
  tcase_add_test(tc, test_caps_description);
  tcase_add_test(tc, test_buffer_info_round_trip);
  tcase_add_test(tc, test_upstream_event_round_trip);
  return s;
}

int main(int argc, char** argv) { return shmx_test::test_main(argc, argv, helpers_suite, "shmx-helpers"); }
