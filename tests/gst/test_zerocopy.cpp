// SPDX-License-Identifier: LGPL-2.1-or-later
// test_zerocopy.cpp: gst-check tests of zero copy on both ends: the sink's slot pool, held slots at the
// source, copy fallbacks, and slots given back by a reader that dies.
#include <gst/video/video.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "shmx-test-util.h"

using namespace shmx_test;

namespace {

const char* kCaps = "video/x-raw,format=RGBA,width=64,height=48,framerate=30/1";
constexpr gsize kFrameSize = 64 * 48 * 4;


// True when `address` lies in a mapping of the segment's shared-memory object in this process, writable
// (the writer's mapping) or not.
bool in_segment_mapping(const std::string& segment, const void* address, bool writable) {
  std::ifstream maps("/proc/self/maps");
  const std::string path = shm_path(segment);
  const auto where = reinterpret_cast<uintptr_t>(address);
  for (std::string line; std::getline(maps, line);) {
    if (line.find(path) == std::string::npos) continue;
    uintptr_t from = 0, to = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &from, &to, perms) != 3) continue;
    if (where >= from && where < to && (perms[1] == 'w') == writable) return true;
  }
  return false;
}

struct Writer {
  GstBus* bus = gst_bus_new();
  GstElement* element = nullptr;
  GstHarness* h = nullptr;
  GstBufferPool* pool = nullptr;

  Writer(const std::string& segment, guint slot_count = 0) {
    element = make_element("shmxsink", bus);
    g_object_set(element, "segment", segment.c_str(), "sync", FALSE, "slot-count", slot_count, nullptr);
    h = gst_harness_new_with_element(element, "sink", nullptr);
    gst_harness_set_src_caps_str(h, kCaps);
  }
  ~Writer() {
    if (pool) {
      gst_buffer_pool_set_active(pool, FALSE);
      gst_object_unref(pool);
    }
    gst_harness_teardown(h);
    gst_object_unref(element);
    gst_object_unref(bus);
  }
  // Asks the sink for its pool as an upstream element would, and activates it.
  GstBufferPool* query_pool() {
    GstCaps* caps = gst_caps_from_string(kCaps);
    GstQuery* query = gst_query_new_allocation(caps, TRUE);
    fail_unless(gst_pad_peer_query(h->srcpad, query), "the sink did not answer the ALLOCATION query");
    fail_unless(gst_query_get_n_allocation_pools(query) > 0, "no pool proposed");
    guint size = 0, min = 0, max = 0;
    gst_query_parse_nth_allocation_pool(query, 0, &pool, &size, &min, &max);
    fail_unless(pool != nullptr);
    fail_unless_equals_int(size, kFrameSize);
    guint index = 0;
    fail_unless(gst_query_find_allocation_meta(query, GST_VIDEO_META_API_TYPE, &index), "no video meta");
    GstStructure* config = gst_buffer_pool_get_config(pool);
    gst_buffer_pool_config_set_params(config, caps, size, min, max);
    gst_buffer_pool_config_add_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META);
    fail_unless(gst_buffer_pool_set_config(pool, config));
    fail_unless(gst_buffer_pool_set_active(pool, TRUE));
    gst_query_unref(query);
    gst_caps_unref(caps);
    return pool;
  }
  // A pool buffer filled with `byte`; `where` receives the address upstream wrote to.
  GstBuffer* pool_buffer(guint8 byte, const guint8** where = nullptr) {
    GstBuffer* buffer = nullptr;
    fail_unless_equals_int(gst_buffer_pool_acquire_buffer(pool, &buffer, nullptr), GST_FLOW_OK);
    GstMapInfo map;
    fail_unless(gst_buffer_map(buffer, &map, GST_MAP_WRITE));
    std::memset(map.data, byte, map.size);
    if (where) *where = map.data;
    gst_buffer_unmap(buffer, &map);
    GST_BUFFER_OFFSET(buffer) = byte;
    return buffer;
  }
  GstFlowReturn push_plain(guint8 byte, gsize size = kFrameSize) {
    GstBuffer* buffer = gst_buffer_new_allocate(nullptr, size, nullptr);
    gst_buffer_memset(buffer, 0, byte, size);
    GST_BUFFER_OFFSET(buffer) = byte;
    return gst_harness_push(h, buffer);
  }
};

struct Reader {
  GstBus* bus = gst_bus_new();
  GstElement* element = nullptr;
  GstHarness* h = nullptr;

  explicit Reader(const std::string& segment, guint max_held = 0) {
    element = make_element("shmxsrc", bus);
    g_object_set(element, "segment", segment.c_str(), "timestamp-mode", 1, "max-held-slots", max_held,
                 nullptr);
    h = gst_harness_new_with_element(element, nullptr, "src");
    gst_harness_play(h);
  }
  ~Reader() {
    gst_harness_teardown(h);
    gst_object_unref(element);
    gst_object_unref(bus);
  }
  // Pulls buffers until one with `offset` arrives (earlier ones are dropped).
  GstBuffer* pull_offset(guint64 offset, int ms = 3000) {
    const auto deadline = deadline_in(ms);
    while (Clock::now() < deadline) {
      GstBuffer* buffer = pull_within(h, 50);
      if (!buffer) continue;
      if (GST_BUFFER_OFFSET(buffer) == offset) return buffer;
      gst_buffer_unref(buffer);
    }
    return nullptr;
  }
};

bool all_bytes(GstBuffer* buffer, guint8 byte, const guint8** where = nullptr) {
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) return false;
  bool same = map.size > 0;
  for (gsize i = 0; i < map.size && same; ++i) same = map.data[i] == byte;
  if (where) *where = map.data;
  gst_buffer_unmap(buffer, &map);
  return same;
}

}  // namespace

// A buffer from the pool the sink proposes is written by upstream straight into the segment and
// committed without a copy; a plain buffer, or a pool buffer still referenced elsewhere, is copied.
GST_START_TEST(test_pool_buffer_reaches_shared_memory_without_copy) {
  const std::string segment = segment_name("zcpool");
  Writer writer(segment);
  fail_unless_equals_int(writer.push_plain(1), GST_FLOW_OK);  // creates the segment
  Reader reader(segment);
  GstBuffer* first = reader.pull_offset(1);
  fail_unless(first != nullptr);
  gst_buffer_unref(first);

  writer.query_pool();
  const guint8* written = nullptr;
  GstBuffer* buffer = writer.pool_buffer(0xa5, &written);
  fail_unless(in_segment_mapping(segment, written, true), "upstream did not write into the segment");
  fail_unless_equals_int(gst_harness_push(writer.h, buffer), GST_FLOW_OK);
  fail_unless_equals_uint64(stats_field(writer.element, "frames-zero-copy"), 1);
  fail_unless_equals_uint64(stats_field(writer.element, "frames-copied"), 1);  // the plain first buffer

  GstBuffer* got = reader.pull_offset(0xa5);
  fail_unless(got != nullptr, "the reader did not get the pool buffer's frame");
  const guint8* read_at = nullptr;
  fail_unless(all_bytes(got, 0xa5, &read_at), "the reader did not get the pattern");
  fail_unless(in_segment_mapping(segment, read_at, false), "the reader's buffer does not wrap the slot");
  fail_unless(stats_field(reader.element, "frames-zero-copy") >= 1);
  gst_buffer_unref(got);

  // A pool buffer that someone else still references is copied: the extra holder's bytes stay valid.
  GstBuffer* shared = writer.pool_buffer(0x3c);
  gst_buffer_ref(shared);
  fail_unless_equals_int(gst_harness_push(writer.h, shared), GST_FLOW_OK);
  fail_unless_equals_uint64(stats_field(writer.element, "frames-copied"), 2);
  for (guint8 i = 10; i < 40; ++i) fail_unless_equals_int(writer.push_plain(i), GST_FLOW_OK);
  fail_unless(all_bytes(shared, 0x3c), "a referenced pool buffer was overwritten");
  gst_buffer_unref(shared);
  fail_unless_equals_uint64(stats_field(writer.element, "frames-dropped"), 0);
}
GST_END_TEST;

// A pool buffer acquired before the segment is created again (bigger slots) is copied from the old
// slot, which stays mapped while the buffer holds its loan.
GST_START_TEST(test_pool_buffer_survives_segment_recreation) {
  const std::string segment = segment_name("zcrecreate");
  Writer writer(segment);
  fail_unless_equals_int(writer.push_plain(1), GST_FLOW_OK);
  writer.query_pool();
  GstBuffer* early = writer.pool_buffer(0x77);
  fail_unless_equals_int(writer.push_plain(2, kFrameSize * 4), GST_FLOW_OK);  // grows the slots
  fail_unless_equals_uint64(stats_field(writer.element, "segment-recreations"), 1);
  Reader reader(segment);
  fail_unless_equals_int(gst_harness_push(writer.h, early), GST_FLOW_OK);
  GstBuffer* got = reader.pull_offset(0x77);
  fail_unless(got != nullptr);
  fail_unless(all_bytes(got, 0x77));
  gst_buffer_unref(got);
  fail_unless_equals_uint64(stats_field(writer.element, "frames-zero-copy"), 0);
  // Buffers acquired from now on loan slots of the new segment.
  GstBuffer* late = writer.pool_buffer(0x78);
  fail_unless_equals_int(gst_harness_push(writer.h, late), GST_FLOW_OK);
  fail_unless_equals_uint64(stats_field(writer.element, "frames-zero-copy"), 1);
}
GST_END_TEST;

// When upstream acquires a pool buffer and no slot is free, it gets ordinary memory at once (no wait, no
// error), and that frame is copied at render.
GST_START_TEST(test_pool_without_free_slot_falls_back) {
  const std::string segment = segment_name("zcnoslot");
  Writer writer(segment, 3);
  fail_unless_equals_int(writer.push_plain(1), GST_FLOW_OK);  // slot 1 of 3 is the latest frame
  writer.query_pool();
  const guint8 *first_at = nullptr, *second_at = nullptr, *third_at = nullptr;
  GstBuffer* loaned_a = writer.pool_buffer(0x11, &first_at);
  GstBuffer* loaned_b = writer.pool_buffer(0x12, &second_at);
  GstBuffer* unloaned = writer.pool_buffer(0x13, &third_at);  // the two other slots are loaned
  fail_unless(in_segment_mapping(segment, first_at, true) && in_segment_mapping(segment, second_at, true));
  fail_if(in_segment_mapping(segment, third_at, true), "a fourth loan out of three slots");
  fail_unless_equals_uint64(stats_field(writer.element, "pool-fallbacks"), 1);

  Reader reader(segment);
  fail_unless_equals_int(gst_harness_push(writer.h, loaned_a), GST_FLOW_OK);
  fail_unless_equals_int(gst_harness_push(writer.h, loaned_b), GST_FLOW_OK);
  fail_unless_equals_int(gst_harness_push(writer.h, unloaned), GST_FLOW_OK);
  fail_unless_equals_uint64(stats_field(writer.element, "frames-zero-copy"), 2);
  fail_unless_equals_uint64(stats_field(writer.element, "frames-copied"), 2);  // the plain first buffer too
  GstBuffer* got = reader.pull_offset(0x13);
  fail_unless(got != nullptr);
  fail_unless(all_bytes(got, 0x13));
  gst_buffer_unref(got);
}
GST_END_TEST;

// While a downstream buffer wraps a held slot, the writer never writes that slot, however many frames
// it publishes; once the buffer is dropped the slot is the writer's again.
GST_START_TEST(test_held_slot_never_overwritten) {
  const std::string segment = segment_name("zchold");
  Writer writer(segment, 4);
  fail_unless_equals_int(writer.push_plain(1), GST_FLOW_OK);
  Reader reader(segment, 1);
  GstBuffer* held = reader.pull_offset(1);
  fail_unless(held != nullptr);
  const guint8* held_at = nullptr;
  fail_unless(all_bytes(held, 1, &held_at));
  fail_unless(in_segment_mapping(segment, held_at, false), "the buffer does not wrap the slot");
  fail_unless(wait_until(1000, [&] { return stats_field(writer.element, "slots-held") == 1; }));

  for (guint8 i = 2; i < 40; ++i) fail_unless_equals_int(writer.push_plain(i), GST_FLOW_OK);  // > 4 slots
  fail_unless(all_bytes(held, 1), "a held slot was overwritten");
  fail_unless_equals_uint64(stats_field(writer.element, "frames-dropped"), 0);
  // The reader has read the last frame (a copy: its one hold is taken) and waits: no hold is pending.
  GstBuffer* last = reader.pull_offset(39);
  fail_unless(last != nullptr);
  gst_buffer_unref(last);

  gst_buffer_unref(held);  // the slot goes back to the writer (the library's tests show it is loanable)
  fail_unless(wait_until(1000, [&] { return stats_field(writer.element, "slots-held") == 0; }));
}
GST_END_TEST;

// A reader that holds max-held-slots buffers gets copies (copy-fallbacks) instead of more holds.
GST_START_TEST(test_copy_fallback_when_too_many_held) {
  const std::string segment = segment_name("zcfallback");
  Writer writer(segment);
  fail_unless_equals_int(writer.push_plain(1), GST_FLOW_OK);
  Reader reader(segment, 2);
  std::vector<GstBuffer*> kept;
  kept.push_back(reader.pull_offset(1));
  for (guint8 i = 2; i <= 5; ++i) {
    fail_unless_equals_int(writer.push_plain(i), GST_FLOW_OK);
    kept.push_back(reader.pull_offset(i));
  }
  for (GstBuffer* buffer : kept) fail_unless(buffer != nullptr);
  fail_unless_equals_uint64(stats_field(reader.element, "frames-zero-copy"), 2);
  fail_unless(stats_field(reader.element, "copy-fallbacks") >= 3);
  fail_unless_equals_uint64(stats_field(reader.element, "frames-copied"), 3);
  fail_unless(stats_field(writer.element, "slots-held") <= 2);
  for (guint8 i = 0; i < kept.size(); ++i) {
    fail_unless(all_bytes(kept[i], i + 1));
    gst_buffer_unref(kept[i]);
  }
  fail_unless(wait_until(1000, [&] { return stats_field(writer.element, "slots-held") == 0; }));
  // copy=true copies every frame.
  Reader copier(segment);
  g_object_set(copier.element, "copy", TRUE, nullptr);  // MUTABLE_READY: takes effect on the next start
  gst_element_set_state(copier.element, GST_STATE_NULL);
  gst_element_set_state(copier.element, GST_STATE_PLAYING);
  fail_unless_equals_int(writer.push_plain(9), GST_FLOW_OK);
  GstBuffer* copied = copier.pull_offset(9);
  fail_unless(copied != nullptr);
  fail_unless_equals_uint64(stats_field(copier.element, "frames-zero-copy"), 0);
  gst_buffer_unref(copied);
}
GST_END_TEST;

// videotestsrc writes into the sink's pool buffers: every frame is published without a copy.
GST_START_TEST(test_videotestsrc_uses_pool) {
  const std::string segment = segment_name("zcvts");
  GstElement* pipeline = gst_parse_launch(
      ("videotestsrc num-buffers=30 ! video/x-raw,format=RGBA,width=320,height=240 ! shmxsink name=sink "
       "sync=false segment=" +
       segment)
          .c_str(),
      nullptr);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  GstBus* bus = gst_element_get_bus(pipeline);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstMessage* done =
      pop_message(bus, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR), 10000);
  fail_unless(done && GST_MESSAGE_TYPE(done) == GST_MESSAGE_EOS);
  gst_message_unref(done);
  fail_unless_equals_uint64(stats_field(sink, "frames-zero-copy"), 30);
  fail_unless_equals_uint64(stats_field(sink, "frames-copied"), 0);
  fail_unless_equals_uint64(stats_field(sink, "pool-fallbacks"), 0);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
}
GST_END_TEST;

// A reader process killed (SIGKILL) while its pipeline holds slots gives them back: the writer reaps it,
// its held slots drop to 0 and frames keep flowing in place.
GST_START_TEST(test_dead_reader_gives_slots_back) {
  const std::string segment = segment_name("zcdead");
  GstElement* pipeline = gst_parse_launch(
      ("videotestsrc is-live=true ! video/x-raw,format=RGBA,width=64,height=48,framerate=100/1 ! "
       "shmxsink name=sink segment=" +
       segment)
          .c_str(),
      nullptr);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  GstBus* bus = gst_element_get_bus(pipeline);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  // The reader keeps buffers: a queue in front of an element that sleeps on each one.
  const pid_t reader = spawn_pipeline("shmxsrc segment=" + segment +
                                          " reader-name=holder max-held-slots=3 ! queue max-size-buffers=2 "
                                          "max-size-bytes=0 max-size-time=0 ! identity sleep-time=10000000 ! "
                                          "fakesink sync=false",
                                      30);
  fail_unless(wait_until(5000, [&] { return stats_field(sink, "slots-held") >= 2; }),
              "the reader did not hold slots");
  kill_child(reader);
  GstMessage* reaped = wait_for_element_message(bus, "shmx-reader-reaped", 3000);
  fail_unless(reaped != nullptr, "the dead reader was not reaped");
  gst_message_unref(reaped);
  fail_unless(wait_until(1000, [&] { return stats_field(sink, "slots-held") == 0; }));
  const guint64 before = stats_field(sink, "frames-zero-copy");
  sleep_ms(200);
  fail_unless(stats_field(sink, "frames-zero-copy") > before, "frames stopped flowing");
  fail_unless(gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR) == nullptr);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
}
GST_END_TEST;

static Suite* zerocopy_suite() {
  Suite* s = suite_create("shmx-zerocopy");
  TCase* tc = tcase_create("zerocopy");
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_pool_buffer_reaches_shared_memory_without_copy);
  tcase_add_test(tc, test_pool_buffer_survives_segment_recreation);
  tcase_add_test(tc, test_pool_without_free_slot_falls_back);
  tcase_add_test(tc, test_held_slot_never_overwritten);
  tcase_add_test(tc, test_copy_fallback_when_too_many_held);
  tcase_add_test(tc, test_videotestsrc_uses_pool);
  tcase_add_test(tc, test_dead_reader_gives_slots_back);
  return s;
}

int main(int argc, char** argv) { return shmx_test::test_main(argc, argv, zerocopy_suite, "shmx-zerocopy"); }
