// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmxsink.cpp: shmxsink, a GstBaseSink that publishes every buffer as the latest frame of a shmx segment.

/**
 * SECTION:element-shmxsink
 * @title: shmxsink
 * @see_also: shmxsrc
 *
 * Publishes each buffer as the newest frame of the shared-memory segment named by
 * #GstShmxSink:segment, with "latest frame" semantics: the sink never waits for a reader, and a
 * slow or stalled reader only skips frames. The negotiated caps travel in the segment's static
 * metadata (so `shmxsrc` needs no capsfilter), and each frame carries the buffer's PTS, DTS,
 * duration, offsets, flags, #GstVideoMeta and its capture time on the monotonic clock.
 *
 * The segment is created when caps are first negotiated. With `slot-size=0` (the default) a slot
 * holds one raw video frame of the negotiated caps (or 1 MiB for other caps) and grows when a
 * bigger buffer arrives: the segment is then created again with bigger slots, a new session that
 * readers follow on their own. With an explicit `slot-size`, a buffer that does not fit is an
 * error. A second writer on a segment whose writer is alive is refused; a segment left behind by
 * a writer that died is reclaimed. On EOS the readers receive EOS; on stop the segment is removed.
 *
 * Zero copy: for raw video the sink answers the ALLOCATION query with a buffer pool whose buffers
 * are ring slots. An upstream element that writes into downstream buffers (videotestsrc,
 * videoconvert, decoders, an application pushing pool buffers into appsrc) then fills shared memory
 * directly and the sink only commits the slot (counted in `frames-zero-copy`). Any other buffer is
 * copied once into a slot (`frames-copied`). A pool buffer that finds no free slot is backed by
 * ordinary memory instead (`pool-fallbacks`; upstream never waits) and copied, or dropped if still
 * no slot is free at render. A pool buffer still referenced elsewhere when it is rendered (a `tee`,
 * `enable-last-sample=true`) is copied, so that nobody sees a committed slot being reused. With
 * `slot-count=0` (the default) the segment has room for the pool (3 slots), the latest frame and
 * two held buffers for each of up to four readers.
 *
 * Readers are visible to the application: the #GstShmxSink:readers and
 * #GstShmxSink:reader-stats properties, and element messages `shmx-reader-connected`,
 * `shmx-reader-disconnected` and `shmx-reader-reaped` (fields `segment`, `name`, `pid`, `index`).
 * Upstream events sent by a reader pipeline (force-key-unit, navigation, custom upstream events)
 * are pushed upstream from this sink's pad.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,width=640,height=480 ! shmxsink segment=cam0
 * ]| Publishes raw video on segment `cam0`; read it with `shmxsrc segment=cam0`.
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency ! h264parse ! shmxsink
 * segment=cam0-h264
 * ]| Publishes an H.264 byte-stream.
 * |[
 * gst-launch-1.0 audiotestsrc is-live=true ! shmxsink segment=mic permissions=0660
 * ]| Publishes audio on a segment readable and writable by the owner's group too.
 */

#include "gstshmxsink.h"

#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "gstshmx-bufferinfo.h"
#include "gstshmx-caps.h"
#include "gstshmx-clock.h"
#include "gstshmx-events.h"
#include "gstshmxslotpool.h"
#include "shmx_server.h"

GST_DEBUG_CATEGORY_STATIC(gst_shmx_sink_debug);
#define GST_CAT_DEFAULT gst_shmx_sink_debug

enum {
  PROP_0,
  PROP_SEGMENT,
  PROP_SLOT_COUNT,
  PROP_SLOT_SIZE,
  PROP_MAX_READERS,
  PROP_READER_TIMEOUT,
  PROP_PERMISSIONS,
  PROP_READERS,
  PROP_READER_STATS,
  PROP_STATS,
};

#define DEFAULT_SEGMENT nullptr
#define DEFAULT_SLOT_COUNT 0
#define DEFAULT_SLOT_SIZE 0
#define DEFAULT_MAX_READERS 16
#define DEFAULT_READER_TIMEOUT 5000
#define DEFAULT_PERMISSIONS 0600

// shmx caps a slot (FrameHeader included) at 32 bits of bytes.
#define MAX_SLOT_SIZE (G_MAXUINT32 - shmx::kPageSize - sizeof(shmx::FrameHeader))
// Period of the service thread: control messages, reaping, writer heartbeat.
static constexpr std::chrono::milliseconds kServicePeriod{20};

// The buffer pool proposed upstream: buffers allocated up front (two, so that the pool's own
// wake-up pipe stays untouched while one buffer cycles) and no upper bound (upstream never waits
// for a buffer; one that finds no free slot is backed by ordinary memory).
static constexpr guint kPoolMinBuffers = 2;
// slot-count=0 sizes the ring for: the pool buffers upstream fills at once (one being filled, one in
// a queue, one rendering), the latest frame, and two held buffers for each of up to four readers.
static constexpr guint kPoolSlots = 3;
static constexpr guint kHeldSlotsPerReader = 2;
static constexpr guint kReadersBudgeted = 4;

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

namespace {

// One input stream. Today the sink has one (stream 0 on the always sink pad); request pads
// would each own one of these and publish into the same frame.
struct SinkStream {
  uint16_t index = 0;
  shmx::StreamInfo info;
};

// An element message or an upstream event produced under the state's locks and delivered after them.
struct Deferred {
  std::vector<GstMessage*> messages;
  std::vector<GstEvent*> events;
};

// Settings copied out of the properties (under the object lock) for use without it.
struct SinkSettings {
  std::string segment;
  guint slot_count = DEFAULT_SLOT_COUNT;
  guint64 slot_size = DEFAULT_SLOT_SIZE;
  guint max_readers = DEFAULT_MAX_READERS;
  guint reader_timeout = DEFAULT_READER_TIMEOUT;
  guint permissions = DEFAULT_PERMISSIONS;
};

// C++ state of the element; new'd in _init, deleted in finalize.
//
// Locking: segment->lock (a shared mutex) guards the server's lifetime. The streaming thread creates
// and replaces the server (set_caps, render) under it exclusively and otherwise uses it without
// taking it (it is the only thread that replaces it while streaming; stop() runs once streaming has
// stopped). The service thread, property reads and the pools (in upstream's thread) take it shared.
// control_lock serializes the Server calls that are not thread-safe (poll_control, readers, reaping,
// heartbeat); lock order: object lock, segment->lock, control_lock; none is held while posting a
// message or pushing an event.
struct SinkState {
  std::shared_ptr<gst_shmx::WriterSegment> segment = std::make_shared<gst_shmx::WriterSegment>();
  std::mutex control_lock;

  // Streaming-thread state (set in start(), used by set_caps, propose_allocation, render, event).
  SinkSettings settings;
  std::vector<SinkStream> streams;
  std::atomic<uint64_t> slot_payload{0};  // payload capacity of the current segment's slots
  std::atomic<uint64_t> session{0};       // session of the current segment, 0 = none
  gst_shmx::MonotonicClock clock;

  // The pool last proposed upstream and its caps; protected by pool_lock (ALLOCATION queries may come
  // from any upstream thread).
  std::mutex pool_lock;
  GstBufferPool* pool = nullptr;
  GstCaps* pool_caps = nullptr;

  // Counters: written by the streaming thread, read by property getters.
  std::atomic<uint64_t> frames_published{0};
  std::atomic<uint64_t> frames_zero_copy{0};
  std::atomic<uint64_t> frames_copied{0};
  std::atomic<uint64_t> frames_dropped{0};
  std::atomic<uint64_t> bytes_published{0};
  std::atomic<uint64_t> segment_recreations{0};

  // Service thread; service_stop is protected by service_lock.
  std::thread service;
  std::mutex service_lock;
  std::condition_variable service_wake;
  bool service_stop = false;

  ~SinkState() {
    if (pool) gst_object_unref(pool);
    if (pool_caps) gst_caps_unref(pool_caps);
  }
};

}  // namespace

struct _GstShmxSink {
  GstBaseSink parent;

  // Properties, protected by the object lock.
  gchar* segment;
  guint slot_count;
  guint64 slot_size;
  guint max_readers;
  guint reader_timeout;
  guint permissions;

  SinkState* state;
};

#define gst_shmx_sink_parent_class parent_class
G_DEFINE_TYPE(GstShmxSink, gst_shmx_sink, GST_TYPE_BASE_SINK);
GST_ELEMENT_REGISTER_DEFINE(shmxsink, "shmxsink", GST_RANK_NONE, GST_TYPE_SHMX_SINK);

// The slot count of slot-count=0: see kPoolSlots.
static guint gst_shmx_sink_auto_slot_count(guint max_readers) {
  return std::min<guint>(shmx::kMaxSlots,
                         kPoolSlots + 1 + kHeldSlotsPerReader * std::min(max_readers, kReadersBudgeted));
}

static SinkSettings gst_shmx_sink_settings(GstShmxSink* self) {
  SinkSettings settings;
  GST_OBJECT_LOCK(self);
  settings.segment = self->segment ? self->segment : "";
  settings.slot_count =
      self->slot_count ? std::max(3u, self->slot_count) : gst_shmx_sink_auto_slot_count(self->max_readers);
  settings.slot_size = self->slot_size;
  settings.max_readers = self->max_readers;
  settings.reader_timeout = self->reader_timeout;
  settings.permissions = self->permissions;
  GST_OBJECT_UNLOCK(self);
  return settings;
}

// Posts the error for a failed library call. Must be called without the state's locks.
static void gst_shmx_sink_post_error(GstShmxSink* self, const std::string& segment,
                                     const shmx::Status& status, const char* what) {
  const std::string debug = status.to_string();
  switch (status.code()) {
    case shmx::Errc::LiveWriter:
      GST_ELEMENT_ERROR(
          self, RESOURCE, BUSY,
          ("Segment '%s' already has a live writer; a second writer is refused.", segment.c_str()),
          ("%s: %s", what, debug.c_str()));
      break;
    case shmx::Errc::PermissionDenied:
      GST_ELEMENT_ERROR(self, RESOURCE, OPEN_WRITE, ("Permission denied on segment '%s'.", segment.c_str()),
                        ("%s: %s", what, debug.c_str()));
      break;
    case shmx::Errc::InvalidName:
      GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS,
                        ("Invalid segment name '%s': use 1-200 characters of A-Z a-z 0-9 . _ - not starting "
                         "with a dot.",
                         segment.c_str()),
                        ("%s: %s", what, debug.c_str()));
      break;
    case shmx::Errc::TooLarge:
      GST_ELEMENT_ERROR(self, RESOURCE, NO_SPACE_LEFT, ("Data does not fit segment '%s'.", segment.c_str()),
                        ("%s: %s", what, debug.c_str()));
      break;
    case shmx::Errc::InvalidArgument:
      GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("Invalid settings for segment '%s'.", segment.c_str()),
                        ("%s: %s", what, debug.c_str()));
      break;
    default:
      GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("Could not write to segment '%s'.", segment.c_str()),
                        ("%s: %s", what, debug.c_str()));
      break;
  }
}

static std::vector<shmx::StreamInfo> gst_shmx_sink_stream_infos(const SinkState& state) {
  std::vector<shmx::StreamInfo> infos;
  for (const SinkStream& stream : state.streams) infos.push_back(stream.info);
  return infos;
}

// (Re)creates the segment with slots of `payload` bytes and the current streams. Streaming thread
// only. A previous segment is closed first (readers see it closed and follow the new session); the
// loans of pool buffers still upstream stay mapped, and their commit is refused (see render).
static shmx::Status gst_shmx_sink_create_segment(GstShmxSink* self, const SinkSettings& settings,
                                                 uint64_t payload) {
  SinkState& state = *self->state;
  std::unique_lock<std::shared_mutex> locker(state.segment->lock);
  std::optional<shmx::Server>& server_slot = state.segment->server;
  if (server_slot) {
    server_slot->close();
    server_slot.reset();
    state.session = 0;
    state.segment_recreations++;
  }

  shmx::ServerOptions options;
  options.slot_count = settings.slot_count;
  options.slot_payload_capacity = payload;
  options.reader_capacity = settings.max_readers;
  options.permissions = settings.permissions;
  options.reader_timeout_ms = settings.reader_timeout;
  shmx::Result<shmx::Server> server =
      shmx::Server::create(settings.segment, options, gst_shmx_sink_stream_infos(state));
  if (!server) return server.status();
  server_slot.emplace(std::move(server.value()));
  state.slot_payload = server_slot->slot_payload_capacity();
  state.session = server_slot->session_id();
  GST_INFO_OBJECT(self,
                  "created segment '%s': %u slots of %" G_GUINT64_FORMAT
                  " bytes, session %016" G_GINT64_MODIFIER "x",
                  settings.segment.c_str(), server_slot->slot_count(), state.slot_payload.load(),
                  server_slot->session_id());
  return shmx::Status::ok();
}

// ---------------------------------------------------------------------------
// Service thread: control messages, reaping, heartbeat
// ---------------------------------------------------------------------------

static GstMessage* gst_shmx_sink_reader_message(GstShmxSink* self, const char* name,
                                                const std::string& segment, const std::string& reader,
                                                uint32_t pid, uint32_t index) {
  GstStructure* s =
      gst_structure_new(name, "segment", G_TYPE_STRING, segment.c_str(), "name", G_TYPE_STRING,
                        reader.c_str(), "pid", G_TYPE_UINT, pid, "index", G_TYPE_UINT, index, nullptr);
  return gst_message_new_element(GST_OBJECT(self), s);
}

// One round of the service thread. Must be called without any of the state's locks.
static void gst_shmx_sink_service_once(GstShmxSink* self, const std::string& segment) {
  SinkState& state = *self->state;
  Deferred deferred;
  {
    std::shared_lock<std::shared_mutex> segment_locker(state.segment->lock);
    std::lock_guard<std::mutex> locker(state.control_lock);
    std::optional<shmx::Server>& server = state.segment->server;
    if (!server) return;
    server->poll_control([&](const shmx::ControlMessage& message) {
      switch (message.type) {
        case shmx::kTlvHello:
          GST_INFO_OBJECT(self, "reader '%s' (pid %u) connected", message.reader_name.c_str(), message.pid);
          deferred.messages.push_back(gst_shmx_sink_reader_message(self, "shmx-reader-connected", segment,
                                                                   message.reader_name, message.pid,
                                                                   message.reader_index));
          break;
        case shmx::kTlvBye:
          GST_INFO_OBJECT(self, "reader '%s' (pid %u) disconnected", message.reader_name.c_str(),
                          message.pid);
          deferred.messages.push_back(gst_shmx_sink_reader_message(self, "shmx-reader-disconnected", segment,
                                                                   message.reader_name, message.pid,
                                                                   message.reader_index));
          break;
        case gst_shmx::kTlvUpstreamEvent:
          if (GstEvent* event =
                  gst_shmx::deserialize_upstream_event(message.value.data(), message.value.size())) {
            GST_DEBUG_OBJECT(self, "upstream event %" GST_PTR_FORMAT " from reader '%s'", event,
                             message.reader_name.c_str());
            deferred.events.push_back(event);
          } else {
            GST_WARNING_OBJECT(self, "malformed upstream event from reader '%s' ignored",
                               message.reader_name.c_str());
          }
          break;
        default:
          break;
      }
    });
    for (const shmx::ReaderInfo& reader : server->reap_stale_readers()) {
      GST_INFO_OBJECT(self, "reader '%s' (pid %u) reaped: its process is gone", reader.name.c_str(),
                      reader.pid);
      deferred.messages.push_back(gst_shmx_sink_reader_message(self, "shmx-reader-reaped", segment,
                                                               reader.name, reader.pid, reader.index));
    }
    server->heartbeat();
  }
  for (GstMessage* message : deferred.messages) gst_element_post_message(GST_ELEMENT(self), message);
  for (GstEvent* event : deferred.events) gst_pad_push_event(GST_BASE_SINK_PAD(self), event);
}

static void gst_shmx_sink_service_loop(GstShmxSink* self, std::string segment) {
  SinkState& state = *self->state;
  std::unique_lock<std::mutex> locker(state.service_lock);
  while (!state.service_stop) {
    locker.unlock();
    gst_shmx_sink_service_once(self, segment);
    locker.lock();
    state.service_wake.wait_for(locker, kServicePeriod, [&] { return state.service_stop; });
  }
}

static void gst_shmx_sink_stop_service(GstShmxSink* self) {
  SinkState& state = *self->state;
  {
    std::lock_guard<std::mutex> locker(state.service_lock);
    state.service_stop = true;
  }
  state.service_wake.notify_all();
  if (state.service.joinable()) state.service.join();
}

// ---------------------------------------------------------------------------
// GstBaseSink
// ---------------------------------------------------------------------------

static gboolean gst_shmx_sink_start(GstBaseSink* sink) {
  GstShmxSink* self = GST_SHMX_SINK(sink);
  const SinkSettings settings = gst_shmx_sink_settings(self);

  if (settings.segment.empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("No segment name given."),
                      ("set the 'segment' property, e.g. shmxsink segment=cam0"));
    return FALSE;
  }
  if (shmx::Status valid = shmx::validate_segment_name(settings.segment); !valid) {
    gst_shmx_sink_post_error(self, settings.segment, valid, "validate_segment_name");
    return FALSE;
  }
  // The segment is created once caps are known, but a live writer is refused at once.
  if (shmx::Result<shmx::Map> existing = shmx::Map::open(settings.segment);
      existing && existing->writer_alive()) {
    gst_shmx_sink_post_error(self, settings.segment,
                             shmx::Status(shmx::Errc::LiveWriter, "the writer lock of the segment is held"),
                             "start");
    return FALSE;
  }

  SinkState& state = *self->state;
  state.settings = settings;  // the properties are GST_PARAM_MUTABLE_READY: fixed until stop
  state.frames_published = 0;
  state.frames_zero_copy = 0;
  state.frames_copied = 0;
  state.frames_dropped = 0;
  state.bytes_published = 0;
  state.segment_recreations = 0;
  state.segment->pool_fallbacks = 0;
  state.service_stop = false;
  state.service = std::thread(gst_shmx_sink_service_loop, self, settings.segment);
  return TRUE;
}

static gboolean gst_shmx_sink_stop(GstBaseSink* sink) {
  GstShmxSink* self = GST_SHMX_SINK(sink);
  SinkState& state = *self->state;
  gst_shmx_sink_stop_service(self);
  {
    std::unique_lock<std::shared_mutex> locker(state.segment->lock);
    if (state.segment->server) {
      state.segment->server->close();  // pool buffers still upstream keep their loans until released
      state.segment->server.reset();
    }
  }
  {
    std::lock_guard<std::mutex> locker(state.pool_lock);
    if (state.pool) gst_object_unref(state.pool);
    if (state.pool_caps) gst_caps_unref(state.pool_caps);
    state.pool = nullptr;
    state.pool_caps = nullptr;
  }
  state.streams.clear();
  state.slot_payload = 0;
  state.session = 0;
  state.clock.reset();
  return TRUE;
}

static gboolean gst_shmx_sink_set_caps(GstBaseSink* sink, GstCaps* caps) {
  GstShmxSink* self = GST_SHMX_SINK(sink);
  SinkState& state = *self->state;
  const SinkSettings& settings = state.settings;

  shmx::StreamInfo info;
  if (!gst_shmx::stream_info_from_caps(caps, "stream0", info)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("Caps are not fixed."), ("caps %" GST_PTR_FORMAT, caps));
    return FALSE;
  }
  const uint64_t wanted = settings.slot_size ? shmx::align_up(settings.slot_size, shmx::kPageSize)
                                             : gst_shmx::slot_payload_for_caps(caps);
  GST_DEBUG_OBJECT(self, "caps %" GST_PTR_FORMAT ", layout '%s', slot payload %" G_GUINT64_FORMAT, caps,
                   info.layout.c_str(), wanted);

  shmx::Status status;
  const char* what = "Server::set_metadata";
  state.streams.assign(1, SinkStream{0, std::move(info)});
  if (!state.segment->server) {
    what = "Server::create";
    status = gst_shmx_sink_create_segment(self, settings, wanted);
  } else if (!settings.slot_size && wanted > state.slot_payload) {
    GST_INFO_OBJECT(self, "new caps need slots of %" G_GUINT64_FORMAT " bytes: creating the segment again",
                    wanted);
    what = "Server::create";
    status = gst_shmx_sink_create_segment(self, settings, wanted);
  } else {
    // Exclusive: no frame is committed against half-updated metadata by a pool in another thread.
    std::unique_lock<std::shared_mutex> locker(state.segment->lock);
    status = state.segment->server->set_metadata(gst_shmx_sink_stream_infos(state));
  }
  if (!status) {
    gst_shmx_sink_post_error(self, settings.segment, status, what);
    return FALSE;
  }
  return TRUE;
}

// Offers upstream a pool of ring slots for raw video (whose frame size the caps give), and says that
// GstVideoMeta is understood (padded strides travel to the readers).
static gboolean gst_shmx_sink_propose_allocation(GstBaseSink* sink, GstQuery* query) {
  GstShmxSink* self = GST_SHMX_SINK(sink);
  SinkState& state = *self->state;
  GstCaps* caps = nullptr;
  gboolean need_pool = FALSE;
  gst_query_parse_allocation(query, &caps, &need_pool);
  if (!caps) return FALSE;

  GstVideoInfo info;
  const bool raw_video = gst_caps_is_fixed(caps) &&
                         gst_structure_has_name(gst_caps_get_structure(caps, 0), "video/x-raw") &&
                         gst_video_info_from_caps(&info, caps);
  if (raw_video && need_pool) {
    GstBufferPool* pool = nullptr;
    {
      std::lock_guard<std::mutex> locker(state.pool_lock);
      // The same caps get the same pool: upstream keeps its buffers (and their loans) when it asks again.
      if (state.pool && state.pool_caps && gst_caps_is_equal(state.pool_caps, caps)) {
        pool = GST_BUFFER_POOL(gst_object_ref(state.pool));
      } else {
        pool = gst_shmx_slot_pool_new(state.segment, 0);
        GstStructure* config = gst_buffer_pool_get_config(pool);
        gst_buffer_pool_config_set_params(config, caps, GST_VIDEO_INFO_SIZE(&info), kPoolMinBuffers, 0);
        gst_buffer_pool_config_add_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META);
        if (!gst_buffer_pool_set_config(pool, config)) {
          GST_WARNING_OBJECT(self, "slot pool refused caps %" GST_PTR_FORMAT, caps);
          gst_object_unref(pool);
          return FALSE;
        }
        if (state.pool) gst_object_unref(state.pool);
        if (state.pool_caps) gst_caps_unref(state.pool_caps);
        state.pool = GST_BUFFER_POOL(gst_object_ref(pool));
        state.pool_caps = gst_caps_ref(caps);
      }
    }
    GST_DEBUG_OBJECT(self, "proposing slot pool %" GST_PTR_FORMAT " for %" GST_PTR_FORMAT, pool, caps);
    gst_query_add_allocation_pool(query, pool, GST_VIDEO_INFO_SIZE(&info), kPoolMinBuffers, 0);
    gst_object_unref(pool);
  }
  gst_query_add_allocation_meta(query, GST_VIDEO_META_API_TYPE, nullptr);
  return TRUE;
}

// Absolute CLOCK_MONOTONIC time of a buffer time at this sink, or kNoTime.
static uint64_t gst_shmx_sink_monotonic_time(GstShmxSink* self, GstClockTime time, uint64_t base_monotonic) {
  if (!GST_CLOCK_TIME_IS_VALID(time)) return gst_shmx::kNoTime;
  GstBaseSink* sink = GST_BASE_SINK(self);
  GST_OBJECT_LOCK(self);
  const guint64 running_time = sink->segment.format == GST_FORMAT_TIME
                                   ? gst_segment_to_running_time(&sink->segment, GST_FORMAT_TIME, time)
                                   : GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK(self);
  if (!GST_CLOCK_TIME_IS_VALID(running_time)) return gst_shmx::kNoTime;
  return base_monotonic + running_time;
}

// Fills a loaned slot with a copy of the buffer: the buffer-info TLV, then the stream data (64-byte
// aligned).
static shmx::Status gst_shmx_sink_fill_slot(shmx::Loan& loan, const SinkStream& stream, GstBuffer* buffer,
                                            const gst_shmx::BufferInfo& info) {
  const uint32_t info_size = gst_shmx::buffer_info_encoded_size();
  shmx::Result<uint8_t*> info_value = loan.tlvs().reserve(gst_shmx::kTlvBufferInfo, stream.index, info_size);
  if (!info_value) return info_value.status();
  gst_shmx::encode_buffer_info(info, info_value.value());

  const gsize size = gst_buffer_get_size(buffer);
  shmx::Result<uint8_t*> data = loan.tlvs().reserve(shmx::kTlvStreamData, stream.index,
                                                    static_cast<uint32_t>(size), shmx::kPayloadAlignment);
  if (!data) return data.status();
  gst_buffer_extract(buffer, 0, data.value(), size);
  return shmx::Status::ok();
}

// Takes the loan of a buffer that upstream filled in a slot of the current segment, if the slot may
// be committed as it is: one slot memory showing its whole reserved data, and nobody but this sink
// holding the buffer or the memory (after the commit the slot is the readers', and is reused later).
static bool gst_shmx_sink_take_slot(SinkState& state, GstBuffer* buffer, shmx::Loan& loan) {
  if (gst_buffer_n_memory(buffer) != 1) return false;
  GstMemory* memory = gst_buffer_peek_memory(buffer, 0);
  if (!gst_shmx_is_slot_memory(memory)) return false;
  if (GST_MINI_OBJECT_REFCOUNT_VALUE(buffer) != 1 || GST_MINI_OBJECT_REFCOUNT_VALUE(memory) != 1)
    return false;
  return gst_shmx_slot_memory_take_loan(memory, state.session, loan);
}

static GstFlowReturn gst_shmx_sink_render(GstBaseSink* sink, GstBuffer* buffer) {
  GstShmxSink* self = GST_SHMX_SINK(sink);
  SinkState& state = *self->state;
  const SinkSettings& settings = state.settings;
  const gsize size = gst_buffer_get_size(buffer);

  gst_shmx::BufferInfo info = gst_shmx::buffer_info_from_buffer(buffer);
  uint64_t base_monotonic = 0;
  if (state.clock.base_time(GST_ELEMENT(self), base_monotonic)) {
    info.pts_monotonic_ns = gst_shmx_sink_monotonic_time(self, GST_BUFFER_PTS(buffer), base_monotonic);
    info.dts_monotonic_ns = gst_shmx_sink_monotonic_time(self, GST_BUFFER_DTS(buffer), base_monotonic);
  }
  shmx::FrameInfo frame_info;
  frame_info.timestamp_ns = info.pts_monotonic_ns != gst_shmx::kNoTime
                                ? info.pts_monotonic_ns
                                : (info.dts_monotonic_ns != gst_shmx::kNoTime ? info.dts_monotonic_ns : 0);

  // The streaming thread is the only one that replaces the server: no lock here (see SinkState).
  std::optional<shmx::Server>& server = state.segment->server;
  if (!server || state.streams.empty()) {
    // Unreachable after set_caps succeeded; kept so bad input never crashes.
    gst_shmx_sink_post_error(self, settings.segment,
                             shmx::Status(shmx::Errc::InvalidArgument, "buffer before caps"), "render");
    return GST_FLOW_ERROR;
  }
  const SinkStream& stream = state.streams[0];

  // Zero copy: upstream wrote the frame into the slot; add the buffer info after the data and commit.
  shmx::Loan slot;
  if (gst_shmx_sink_take_slot(state, buffer, slot)) {
    uint8_t encoded[256];
    static_assert(sizeof(encoded) >= 160, "room for the encoded buffer info");
    gst_shmx::encode_buffer_info(info, encoded);
    shmx::Status appended = slot.tlvs().append(gst_shmx::kTlvBufferInfo, stream.index, encoded,
                                               gst_shmx::buffer_info_encoded_size());
    if (appended) {
      shmx::Result<uint64_t> frame_id = server->commit(std::move(slot), frame_info);
      if (frame_id) {
        state.frames_published++;
        state.frames_zero_copy++;
        state.bytes_published += size;
        GST_LOG_OBJECT(self, "published frame %" G_GUINT64_FORMAT " in place (%" G_GSIZE_FORMAT " bytes)",
                       frame_id.value(), size);
        return GST_FLOW_OK;
      }
      GST_DEBUG_OBJECT(self, "commit in place failed (%s): copying", frame_id.status().to_string().c_str());
    } else {
      GST_DEBUG_OBJECT(self, "no room for the buffer info after the data: copying");
    }
    // The loan (if not consumed) is abandoned here; the memory still maps the slot: copy from it.
    slot = shmx::Loan();
  }

  const uint64_t needed = gst_shmx::slot_payload_for_buffer(size);
  shmx::Status status;
  const char* what = "Server::loan";
  if (needed > state.slot_payload) {
    if (settings.slot_size) {
      status = shmx::Status(shmx::Errc::TooLarge, "buffer of " + std::to_string(size) +
                                                      " bytes does not fit a slot of " +
                                                      std::to_string(state.slot_payload) + " bytes");
    } else if (needed > MAX_SLOT_SIZE) {
      status =
          shmx::Status(shmx::Errc::TooLarge, "buffer of " + std::to_string(size) + " bytes is too large");
    } else {
      // Grow by at least half so that slowly growing encoded frames do not recreate every time.
      const uint64_t grown = std::min<uint64_t>(
          MAX_SLOT_SIZE, std::max(needed, shmx::align_up(state.slot_payload * 3 / 2, shmx::kPageSize)));
      GST_INFO_OBJECT(self,
                      "buffer of %" G_GSIZE_FORMAT " bytes needs bigger slots: %" G_GUINT64_FORMAT
                      " -> %" G_GUINT64_FORMAT " bytes",
                      size, state.slot_payload.load(), grown);
      what = "Server::create";
      status = gst_shmx_sink_create_segment(self, settings, grown);
    }
  }

  if (status) {
    shmx::Result<shmx::Loan> loan = server->loan();
    if (!loan && loan.code() == shmx::Errc::NoFreeSlot) {
      // Every slot is latest, loaned or held by readers; the writer never waits for them.
      const uint64_t dropped = ++state.frames_dropped;
      GST_DEBUG_OBJECT(self, "no free slot: frame dropped (%" G_GUINT64_FORMAT " so far)", dropped);
      return GST_FLOW_OK;
    }
    if (!loan) {
      status = loan.status();
    } else if (status = gst_shmx_sink_fill_slot(loan.value(), stream, buffer, info); !status) {
      what = "filling the slot";
      server->abandon(std::move(loan.value()));
    } else {
      shmx::Result<uint64_t> frame_id = server->commit(std::move(loan.value()), frame_info);
      if (!frame_id) {
        what = "Server::commit";
        status = frame_id.status();
      } else {
        state.frames_published++;
        state.frames_copied++;
        state.bytes_published += size;
        GST_LOG_OBJECT(self, "published frame %" G_GUINT64_FORMAT " (%" G_GSIZE_FORMAT " bytes copied)",
                       frame_id.value(), size);
      }
    }
  }

  if (!status) {
    if (status.code() == shmx::Errc::TooLarge && settings.slot_size) {
      GST_ELEMENT_ERROR(self, RESOURCE, NO_SPACE_LEFT,
                        ("A buffer of %" G_GSIZE_FORMAT " bytes does not fit a slot of segment '%s'.", size,
                         settings.segment.c_str()),
                        ("slot-size=%" G_GUINT64_FORMAT " bytes; set slot-size to at least %" G_GUINT64_FORMAT
                         " or to 0 (grow as needed). %s",
                         settings.slot_size, needed, status.to_string().c_str()));
    } else {
      gst_shmx_sink_post_error(self, settings.segment, status, what);
    }
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

static gboolean gst_shmx_sink_event(GstBaseSink* sink, GstEvent* event) {
  GstShmxSink* self = GST_SHMX_SINK(sink);
  SinkState& state = *self->state;

  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    shmx::Status status;
    // Streaming thread: the server is not replaced under us (see SinkState).
    if (state.segment->server) {
      shmx::Result<uint64_t> frame_id = state.segment->server->publish_eos();
      if (!frame_id) status = frame_id.status();
    }
    if (status)
      GST_DEBUG_OBJECT(self, "EOS published");
    else
      GST_ELEMENT_WARNING(self, RESOURCE, WRITE, ("Could not publish EOS to the readers."),
                          ("%s", status.to_string().c_str()));
  }
  return GST_BASE_SINK_CLASS(parent_class)->event(sink, event);
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

static GstStructure* gst_shmx_sink_reader_structure(const shmx::ReaderInfo& reader) {
  return gst_structure_new("shmx-reader", "name", G_TYPE_STRING, reader.name.c_str(), "pid", G_TYPE_UINT,
                           reader.pid, "index", G_TYPE_UINT, reader.index, "frames-received", G_TYPE_UINT64,
                           reader.frames_received, "frames-skipped", G_TYPE_UINT64, reader.frames_skipped,
                           "last-frame-id", G_TYPE_UINT64, reader.last_frame_id, "heartbeat-age",
                           G_TYPE_UINT64, reader.heartbeat_age_ns, "held-slots", G_TYPE_UINT,
                           reader.held_slots, "alive", G_TYPE_BOOLEAN, reader.alive ? TRUE : FALSE, "stale",
                           G_TYPE_BOOLEAN, reader.stale ? TRUE : FALSE, nullptr);
}

static std::vector<shmx::ReaderInfo> gst_shmx_sink_readers(GstShmxSink* self) {
  SinkState& state = *self->state;
  std::shared_lock<std::shared_mutex> segment_locker(state.segment->lock);
  std::lock_guard<std::mutex> locker(state.control_lock);
  return state.segment->server ? state.segment->server->readers() : std::vector<shmx::ReaderInfo>{};
}

static GstStructure* gst_shmx_sink_stats(GstShmxSink* self) {
  SinkState& state = *self->state;
  uint64_t session = 0, slot_payload = 0;
  guint slot_count = 0, readers = 0;
  shmx::ServerStats server_stats;
  {
    std::shared_lock<std::shared_mutex> segment_locker(state.segment->lock);
    std::lock_guard<std::mutex> locker(state.control_lock);
    if (const std::optional<shmx::Server>& server = state.segment->server) {
      session = server->session_id();
      slot_count = server->slot_count();
      slot_payload = server->slot_payload_capacity();
      readers = server->readers().size();
      server_stats = server->stats();
    }
  }
  return gst_structure_new(
      "shmx-sink-stats", "frames-published", G_TYPE_UINT64, state.frames_published.load(), "frames-zero-copy",
      G_TYPE_UINT64, state.frames_zero_copy.load(), "frames-copied", G_TYPE_UINT64,
      state.frames_copied.load(), "frames-dropped", G_TYPE_UINT64, state.frames_dropped.load(),
      "pool-fallbacks", G_TYPE_UINT64, state.segment->pool_fallbacks.load(), "bytes-published", G_TYPE_UINT64,
      state.bytes_published.load(), "segment-recreations", G_TYPE_UINT64, state.segment_recreations.load(),
      "session-id", G_TYPE_UINT64, session, "slot-count", G_TYPE_UINT, slot_count, "slot-size", G_TYPE_UINT64,
      slot_payload, "readers", G_TYPE_UINT, readers, "slots-held", G_TYPE_UINT,
      server_stats.slots_held_by_readers, "slots-loaned", G_TYPE_UINT, server_stats.slots_loaned, nullptr);
}

static void gst_shmx_sink_set_property(GObject* object, guint prop_id, const GValue* value,
                                       GParamSpec* pspec) {
  GstShmxSink* self = GST_SHMX_SINK(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_SEGMENT:
      g_free(self->segment);
      self->segment = g_value_dup_string(value);
      break;
    case PROP_SLOT_COUNT:
      self->slot_count = g_value_get_uint(value);
      break;
    case PROP_SLOT_SIZE:
      self->slot_size = g_value_get_uint64(value);
      break;
    case PROP_MAX_READERS:
      self->max_readers = g_value_get_uint(value);
      break;
    case PROP_READER_TIMEOUT:
      self->reader_timeout = g_value_get_uint(value);
      break;
    case PROP_PERMISSIONS:
      self->permissions = g_value_get_uint(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_shmx_sink_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstShmxSink* self = GST_SHMX_SINK(object);
  switch (prop_id) {
    case PROP_SEGMENT:
      GST_OBJECT_LOCK(self);
      g_value_set_string(value, self->segment);
      GST_OBJECT_UNLOCK(self);
      break;
    case PROP_SLOT_COUNT:
      GST_OBJECT_LOCK(self);
      g_value_set_uint(value, self->slot_count);
      GST_OBJECT_UNLOCK(self);
      break;
    case PROP_SLOT_SIZE:
      GST_OBJECT_LOCK(self);
      g_value_set_uint64(value, self->slot_size);
      GST_OBJECT_UNLOCK(self);
      break;
    case PROP_MAX_READERS:
      GST_OBJECT_LOCK(self);
      g_value_set_uint(value, self->max_readers);
      GST_OBJECT_UNLOCK(self);
      break;
    case PROP_READER_TIMEOUT:
      GST_OBJECT_LOCK(self);
      g_value_set_uint(value, self->reader_timeout);
      GST_OBJECT_UNLOCK(self);
      break;
    case PROP_PERMISSIONS:
      GST_OBJECT_LOCK(self);
      g_value_set_uint(value, self->permissions);
      GST_OBJECT_UNLOCK(self);
      break;
    case PROP_READERS:
      g_value_set_uint(value, gst_shmx_sink_readers(self).size());
      break;
    case PROP_READER_STATS: {
      for (const shmx::ReaderInfo& reader : gst_shmx_sink_readers(self)) {
        GValue item = G_VALUE_INIT;
        g_value_init(&item, GST_TYPE_STRUCTURE);
        g_value_take_boxed(&item, gst_shmx_sink_reader_structure(reader));
        gst_value_array_append_and_take_value(value, &item);
      }
      break;
    }
    case PROP_STATS:
      g_value_take_boxed(value, gst_shmx_sink_stats(self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
}

// ---------------------------------------------------------------------------
// GObject
// ---------------------------------------------------------------------------

static void gst_shmx_sink_finalize(GObject* object) {
  GstShmxSink* self = GST_SHMX_SINK(object);
  delete self->state;
  g_free(self->segment);
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

static void gst_shmx_sink_init(GstShmxSink* self) {
  self->segment = g_strdup(DEFAULT_SEGMENT);
  self->slot_count = DEFAULT_SLOT_COUNT;
  self->slot_size = DEFAULT_SLOT_SIZE;
  self->max_readers = DEFAULT_MAX_READERS;
  self->reader_timeout = DEFAULT_READER_TIMEOUT;
  self->permissions = DEFAULT_PERMISSIONS;
  self->state = new SinkState();
  // The last sample would keep a reference to the last buffer: a pool buffer rendered while it is
  // referenced elsewhere must be copied (its slot is reused after the commit), so it is off by default.
  gst_base_sink_set_last_sample_enabled(GST_BASE_SINK(self), FALSE);
}

static void gst_shmx_sink_class_init(GstShmxSinkClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseSinkClass* basesink_class = GST_BASE_SINK_CLASS(klass);

  gobject_class->set_property = gst_shmx_sink_set_property;
  gobject_class->get_property = gst_shmx_sink_get_property;
  gobject_class->finalize = gst_shmx_sink_finalize;

  const GParamFlags rw_ready =
      static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const GParamFlags read_only = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_property(
      gobject_class, PROP_SEGMENT,
      g_param_spec_string(
          "segment", "Segment",
          "Name of the shared-memory segment to publish on (1-200 characters of A-Z a-z 0-9 . _ -; "
          "/dev/shm/shmx.<segment> on Linux). Required",
          DEFAULT_SEGMENT, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_SLOT_COUNT,
      g_param_spec_uint(
          "slot-count", "Slot count",
          "Number of frame slots in the segment (frames, 3-64); more slots let readers hold more frames "
          "without copying. 0 = automatic: 3 for the buffer pool offered upstream + 1 for the latest "
          "frame + 2 held buffers for each of up to 4 readers (max-readers), 12 with the defaults",
          0, shmx::kMaxSlots, DEFAULT_SLOT_COUNT, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_SLOT_SIZE,
      g_param_spec_uint64(
          "slot-size", "Slot size",
          "Bytes of frame data per slot, rounded up to 4096. 0 = automatic: one raw video frame of "
          "the caps (else 1 MiB), grown by creating the segment again (a new session) when a "
          "buffer does not fit. A fixed size makes a bigger buffer an error",
          0, MAX_SLOT_SIZE, DEFAULT_SLOT_SIZE, rw_ready));
  g_object_class_install_property(gobject_class, PROP_MAX_READERS,
                                  g_param_spec_uint("max-readers", "Maximum readers",
                                                    "Number of readers that can attach at once (readers)", 1,
                                                    shmx::kMaxReaders, DEFAULT_MAX_READERS, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_READER_TIMEOUT,
      g_param_spec_uint(
          "reader-timeout", "Reader timeout",
          "A live reader without a heartbeat for this long is reported stale in reader-stats "
          "(milliseconds); a reader whose process died is reaped at once and its held slots freed",
          100, G_MAXUINT, DEFAULT_READER_TIMEOUT, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_PERMISSIONS,
      g_param_spec_uint("permissions", "Permissions",
                        "Permission bits of the segment as for chmod, in octal on the command line "
                        "(permissions=0660); the default 0600 (384 in decimal) is owner-only",
                        0, 0777, DEFAULT_PERMISSIONS, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_READERS,
      g_param_spec_uint("readers", "Readers", "Number of readers currently attached (readers)", 0, G_MAXUINT,
                        0, read_only));
  g_object_class_install_property(
      gobject_class, PROP_READER_STATS,
      gst_param_spec_array(
          "reader-stats", "Reader statistics",
          "One GstStructure 'shmx-reader' per attached reader: name, pid, index, frames-received, "
          "frames-skipped, last-frame-id, heartbeat-age (ns), held-slots, alive, stale (no heartbeat for "
          "reader-timeout)",
          g_param_spec_boxed("reader", "Reader", "Statistics of one reader", GST_TYPE_STRUCTURE, read_only),
          read_only));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed(
          "stats", "Statistics",
          "GstStructure 'shmx-sink-stats': frames-published, frames-zero-copy (written in place by "
          "upstream through the slot pool), frames-copied, frames-dropped (no free slot: every slot "
          "latest, loaned or held by readers), pool-fallbacks (pool buffers backed by ordinary memory "
          "for lack of a slot), bytes-published, segment-recreations, session-id, slot-count, "
          "slot-size (bytes), readers, slots-held (by readers), slots-loaned",
          GST_TYPE_STRUCTURE, read_only));

  gst_element_class_set_static_metadata(
      element_class, "Shared-memory latest-frame sink", "Sink/Network",
      "Publishes buffers, their caps and timestamps as the latest frame of a shmx shared-memory segment; "
      "readers never block the writer",
      "shmx developers");
  gst_element_class_add_static_pad_template(element_class, &sink_template);

  basesink_class->start = GST_DEBUG_FUNCPTR(gst_shmx_sink_start);
  basesink_class->stop = GST_DEBUG_FUNCPTR(gst_shmx_sink_stop);
  basesink_class->set_caps = GST_DEBUG_FUNCPTR(gst_shmx_sink_set_caps);
  basesink_class->render = GST_DEBUG_FUNCPTR(gst_shmx_sink_render);
  basesink_class->event = GST_DEBUG_FUNCPTR(gst_shmx_sink_event);
  basesink_class->propose_allocation = GST_DEBUG_FUNCPTR(gst_shmx_sink_propose_allocation);

  GST_DEBUG_CATEGORY_INIT(gst_shmx_sink_debug, "shmxsink", 0, "shmx shared-memory sink");
}
