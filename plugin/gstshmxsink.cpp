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
 * Several streams per frame: besides the always pad `sink` (the primary stream, which drives the
 * frames: clock sync, preroll, latency, the slot pool), request pads `sink_%u` each carry one more
 * stream with its own caps, named by the pad property `stream-name` (default `stream<N>`; the always
 * pad's default is `stream0`; names must be unique). The segment's metadata lists the streams that have
 * caps in pad-number order; a stream's index on the wire is its position in that list (releasing
 * `sink_1` moves `sink_2` to index 1). Request pads never block their upstream: each keeps its newest
 * buffers (at most 32, at most 1 s of running time). Every frame published for a primary buffer of
 * running time T carries, for every other stream, the newest queued buffer whose running time is not
 * after T (the oldest when all are later; a stream with no buffer yet is absent); a buffer repeats
 * in later frames until a newer one comes, with the same `kTlvStreamSeq` number. When the primary
 * stream has sent nothing for #GstShmxSink:stream-timeout while PLAYING, each buffer on a request
 * pad publishes a frame by itself, without the primary stream. Only the primary stream's EOS ends the
 * readers' stream.
 *
 * Readers are visible to the application: the #GstShmxSink:readers and
 * #GstShmxSink:reader-stats properties, and element messages `shmx-reader-connected`,
 * `shmx-reader-disconnected` and `shmx-reader-reaped` (fields `segment`, `name`, `pid`, `index`).
 * Upstream events sent by a reader pipeline (force-key-unit, navigation, custom upstream events)
 * are pushed upstream from the always pad `sink`. Any other application TLV a reader sends
 * (`shmx::Client::send`, type >= 0x1000) is emitted as the #GstShmxSink::reader-message signal and
 * posted as the element message `shmx-reader-message` (fields `segment`, `name`, `pid`, `index`,
 * `type`, `value` as #GBytes).
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
 * |[
 * gst-launch-1.0 shmxsink name=s segment=rig sink::stream-name=camera sink_1::stream-name=imu
 * videotestsrc is-live=true ! video/x-raw,width=640,height=480,framerate=30/1 ! s.sink
 * audiotestsrc is-live=true samplesperbuffer=240 ! audio/x-raw,rate=48000,channels=1 ! s.sink_1
 * ]| Two streams in one frame: the camera and a 200 Hz sensor-like stream at the same running time.
 */

#include "gstshmxsink.h"

#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
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
#include "gstshmxsinkpad.h"
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
  PROP_STREAM_TIMEOUT,
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
#define DEFAULT_STREAM_TIMEOUT 200

enum {
  SIGNAL_READER_MESSAGE,
  LAST_SIGNAL,
};
static guint gst_shmx_sink_signals[LAST_SIGNAL] = {0};

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

// A request pad queues at most this many buffers, and none older than kQueueSpan of running time behind
// its newest: the primary stream takes the newest one not after its own buffer at each frame.
static constexpr size_t kQueueMaxBuffers = 32;
static constexpr GstClockTime kQueueSpan = GST_SECOND;

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
static GstStaticPadTemplate request_template =
    GST_STATIC_PAD_TEMPLATE("sink_%u", GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS_ANY);

namespace {

// A buffer queued on a request pad, with the running times of its PTS and DTS in that pad's segment.
struct QueuedBuffer {
  GstBuffer* buffer = nullptr;  // a reference
  GstClockTime pts_running_time = GST_CLOCK_TIME_NONE;
  GstClockTime dts_running_time = GST_CLOCK_TIME_NONE;
  uint64_t seq = 0;  // the kTlvStreamSeq of the buffer

  // The running time that places the buffer against the primary stream (PTS, else DTS).
  GstClockTime running_time() const {
    return GST_CLOCK_TIME_IS_VALID(pts_running_time) ? pts_running_time : dts_running_time;
  }
};

// One input stream: the always pad `sink` (number 0, the primary stream that drives the frames) or a
// request pad `sink_N`.
struct InputStream {
  GstPad* pad = nullptr;  // not a reference: the element owns its pads and erases this entry first
  bool has_caps = false;  // info holds the caps (and the stream name read when they were set)
  shmx::StreamInfo info;
  int wire_index = -1;    // the stream's index in the segment's metadata; -1 = not listed (no caps yet)
  uint64_t received = 0;  // buffers received on the pad: the kTlvStreamSeq of the newest
  // Request pads only: their segment, and their newest buffers (oldest first; bounded).
  GstSegment segment;
  std::deque<QueuedBuffer> queue;
};

// The buffer a frame carries for one stream.
struct StreamPick {
  uint16_t wire_index = 0;
  GstBuffer* buffer = nullptr;  // a reference
  gst_shmx::BufferInfo info;
  uint64_t seq = 0;
};

// The streams of one frame besides the primary one; unrefs its buffers when it goes out of scope
// (declared before any lock so that this happens after the unlock).
struct FramePicks {
  std::vector<StreamPick> streams;
  std::vector<GstBuffer*> dropped;  // buffers taken out of the queues, unreffed without locks
  FramePicks() = default;
  FramePicks(const FramePicks&) = delete;
  FramePicks& operator=(const FramePicks&) = delete;
  ~FramePicks() {
    for (StreamPick& pick : streams) gst_buffer_unref(pick.buffer);
    for (GstBuffer* buffer : dropped) gst_buffer_unref(buffer);
  }
};

// An application TLV a reader sent that the sink does not consume itself.
struct ReaderTlv {
  std::string reader;
  uint32_t pid = 0;
  uint32_t index = 0;
  uint16_t type = 0;
  GBytes* value = nullptr;  // a reference
};

// Element messages, upstream events and reader TLVs produced under the state's locks and delivered
// after them.
struct Deferred {
  std::vector<GstMessage*> messages;
  std::vector<GstEvent*> events;
  std::vector<ReaderTlv> tlvs;
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
// Locking: publish_lock is held by whoever publishes a frame (the primary stream's render, a request
// pad publishing on its own, EOS), creates, replaces or closes the server, or sets its metadata.
// Holding it, a thread uses the server without segment->lock: nobody else replaces it. Replacing it
// also takes segment->lock (a shared mutex) exclusively, and so does setting the metadata: the pools
// (in upstream's threads), the service thread and property reads use the server under it shared.
// control_lock serializes the Server calls that are not thread-safe (poll_control, readers, reaping,
// heartbeat). streams_lock guards the inputs (caps, queues, wire indices); nothing is taken and no
// buffer is unreffed under it. Lock order: publish_lock, segment->lock, control_lock; the object lock
// and streams_lock are taken alone (or innermost). None is held while posting a message, emitting a
// signal or pushing an event.
struct SinkState {
  std::shared_ptr<gst_shmx::WriterSegment> segment = std::make_shared<gst_shmx::WriterSegment>();
  std::mutex control_lock;
  std::mutex publish_lock;

  // Set in start(), read by the streaming threads.
  SinkSettings settings;
  // Protected by publish_lock.
  std::vector<shmx::StreamInfo> metadata;  // what the segment lists now, in wire-index order
  gst_shmx::MonotonicClock clock;
  bool primary_eos = false;  // the primary stream ended (readers got EOS): request pads publish nothing alone

  // The input streams by pad number (0 = the always pad); protected by streams_lock.
  std::mutex streams_lock;
  std::map<guint, InputStream> inputs;

  std::atomic<uint64_t> slot_payload{0};  // payload capacity of the current segment's slots
  std::atomic<uint64_t> session{0};       // session of the current segment, 0 = none
  // g_get_monotonic_time() of the primary stream's last buffer (or of going to PLAYING).
  std::atomic<gint64> primary_active_us{0};

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
    for (auto& [number, input] : inputs)
      for (QueuedBuffer& queued : input.queue) gst_buffer_unref(queued.buffer);
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
  guint stream_timeout;

  SinkState* state;
};

static void gst_shmx_sink_child_proxy_init(gpointer g_iface, gpointer iface_data);

#define gst_shmx_sink_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE(GstShmxSink, gst_shmx_sink, GST_TYPE_BASE_SINK,
                        G_IMPLEMENT_INTERFACE(GST_TYPE_CHILD_PROXY, gst_shmx_sink_child_proxy_init));
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

// The `what` of a failed gst_shmx_sink_list_streams.
static const char kListingStreams[] = "listing the streams";

// Lists the streams that have caps, in pad-number order (the primary first), and gives each its wire
// index: its position in the list. Must be called with publish_lock held; the caller sets the result
// as the segment's metadata. Fails when two streams have the same name.
static shmx::Status gst_shmx_sink_list_streams(SinkState& state, std::vector<shmx::StreamInfo>& out) {
  std::lock_guard<std::mutex> locker(state.streams_lock);
  // Listed aside: on failure `out` (the metadata) and the wire indices stay as they were.
  std::vector<shmx::StreamInfo> listed;
  for (const auto& [number, input] : state.inputs) {
    if (!input.has_caps) continue;
    for (const shmx::StreamInfo& other : listed)
      if (other.name == input.info.name)
        return shmx::Status(shmx::Errc::InvalidArgument, "two pads carry a stream named '" + other.name +
                                                             "': give each pad a unique stream-name");
    listed.push_back(input.info);
  }
  out = std::move(listed);
  int wire_index = 0;
  for (auto& [number, input] : state.inputs) input.wire_index = input.has_caps ? wire_index++ : -1;
  return shmx::Status::ok();
}

// Lists the streams again and sets them as the metadata of the current segment, if any. Must be called
// with publish_lock held. On failure `what` names the step that failed.
static shmx::Status gst_shmx_sink_update_metadata(SinkState& state, const char*& what) {
  what = kListingStreams;
  shmx::Status status = gst_shmx_sink_list_streams(state, state.metadata);
  if (!status || !state.segment->server) return status;
  what = "Server::set_metadata";
  // Exclusive: set_metadata is not to run beside the service thread, nor a pool's loan.
  std::unique_lock<std::shared_mutex> locker(state.segment->lock);
  return state.segment->server->set_metadata(state.metadata);
}

// (Re)creates the segment with slots of `payload` bytes and the streams of state.metadata. Must be
// called with publish_lock held. A previous segment is closed first (readers see it closed and follow the new
// session); the loans of pool buffers still upstream stay mapped, and their commit is refused (see render).
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
  shmx::Result<shmx::Server> server = shmx::Server::create(settings.segment, options, state.metadata);
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
          // HEARTBEAT is the library's; any application TLV the sink does not consume is the app's.
          if (message.type >= shmx::kTlvUserBase) {
            GST_LOG_OBJECT(self, "TLV type 0x%04x (%zu bytes) from reader '%s'", message.type,
                           message.value.size(), message.reader_name.c_str());
            deferred.tlvs.push_back(ReaderTlv{message.reader_name, message.pid, message.reader_index,
                                              message.type,
                                              g_bytes_new(message.value.data(), message.value.size())});
          }
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
  for (ReaderTlv& tlv : deferred.tlvs) {
    g_signal_emit(self, gst_shmx_sink_signals[SIGNAL_READER_MESSAGE], 0, tlv.reader.c_str(), tlv.pid,
                  static_cast<guint>(tlv.type), tlv.value);
    GstStructure* s = gst_structure_new(
        "shmx-reader-message", "segment", G_TYPE_STRING, segment.c_str(), "name", G_TYPE_STRING,
        tlv.reader.c_str(), "pid", G_TYPE_UINT, tlv.pid, "index", G_TYPE_UINT, tlv.index, "type", G_TYPE_UINT,
        static_cast<guint>(tlv.type), "value", G_TYPE_BYTES, tlv.value, nullptr);
    gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
    g_bytes_unref(tlv.value);
  }
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
  {
    std::lock_guard<std::mutex> locker(state.publish_lock);
    state.primary_eos = false;
  }
  state.primary_active_us = g_get_monotonic_time();
  state.service_stop = false;
  state.service = std::thread(gst_shmx_sink_service_loop, self, settings.segment);
  return TRUE;
}

// Drops the queued buffers and the segments of every stream; with `segment_closed` (the segment is
// gone) also their wire indices and buffer counts. Their caps stay: a restarted upstream sends them
// again, and a stream without new caps keeps its old ones. While the segment lives, the counts go on:
// readers output a buffer only when its stream's count changed.
static void gst_shmx_sink_reset_inputs(SinkState& state, bool segment_closed) {
  std::vector<GstBuffer*> dropped;
  {
    std::lock_guard<std::mutex> locker(state.streams_lock);
    for (auto& [number, input] : state.inputs) {
      for (QueuedBuffer& queued : input.queue) dropped.push_back(queued.buffer);
      input.queue.clear();
      if (segment_closed) {
        input.wire_index = -1;
        input.received = 0;
      }
      gst_segment_init(&input.segment, GST_FORMAT_TIME);
    }
  }
  for (GstBuffer* buffer : dropped) gst_buffer_unref(buffer);
}

static gboolean gst_shmx_sink_stop(GstBaseSink* sink) {
  GstShmxSink* self = GST_SHMX_SINK(sink);
  SinkState& state = *self->state;
  gst_shmx_sink_stop_service(self);
  {
    std::lock_guard<std::mutex> publish_locker(state.publish_lock);
    {
      std::unique_lock<std::shared_mutex> locker(state.segment->lock);
      if (state.segment->server) {
        state.segment->server->close();  // pool buffers still upstream keep their loans until released
        state.segment->server.reset();
      }
    }
    state.metadata.clear();
    state.clock.reset();
    state.primary_eos = false;
  }
  {
    std::lock_guard<std::mutex> locker(state.pool_lock);
    if (state.pool) gst_object_unref(state.pool);
    if (state.pool_caps) gst_caps_unref(state.pool_caps);
    state.pool = nullptr;
    state.pool_caps = nullptr;
  }
  gst_shmx_sink_reset_inputs(state, true);
  state.slot_payload = 0;
  state.session = 0;
  return TRUE;
}

// Posts the error of a failed stream listing (a stream name used twice) or library call.
static void gst_shmx_sink_post_metadata_error(GstShmxSink* self, const std::string& segment,
                                              const shmx::Status& status, const char* what) {
  if (what == kListingStreams)
    GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("Segment '%s': %s.", segment.c_str(), status.message().c_str()),
                      ("%s", status.to_string().c_str()));
  else
    gst_shmx_sink_post_error(self, segment, status, what);
}

// Caps of the primary stream (the always pad): the segment is created with them (they size its slots),
// or its metadata is updated.
static gboolean gst_shmx_sink_set_caps(GstBaseSink* sink, GstCaps* caps) {
  GstShmxSink* self = GST_SHMX_SINK(sink);
  SinkState& state = *self->state;
  const SinkSettings& settings = state.settings;

  shmx::StreamInfo info;
  const std::string name = gst_shmx_sink_pad_stream_name(GST_SHMX_SINK_PAD(GST_BASE_SINK_PAD(sink)));
  if (!gst_shmx::stream_info_from_caps(caps, name, info)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("Caps are not fixed."), ("caps %" GST_PTR_FORMAT, caps));
    return FALSE;
  }
  const uint64_t wanted = settings.slot_size ? shmx::align_up(settings.slot_size, shmx::kPageSize)
                                             : gst_shmx::slot_payload_for_caps(caps);
  GST_DEBUG_OBJECT(self, "caps %" GST_PTR_FORMAT ", layout '%s', slot payload %" G_GUINT64_FORMAT, caps,
                   info.layout.c_str(), wanted);

  shmx::Status status;
  const char* what = kListingStreams;
  {
    std::lock_guard<std::mutex> publish_locker(state.publish_lock);
    {
      std::lock_guard<std::mutex> locker(state.streams_lock);
      InputStream& primary = state.inputs[0];
      primary.info = std::move(info);
      primary.has_caps = true;
    }
    const bool create = !state.segment->server || (!settings.slot_size && wanted > state.slot_payload);
    if (create) {
      if (state.segment->server)
        GST_INFO_OBJECT(
            self, "new caps need slots of %" G_GUINT64_FORMAT " bytes: creating the segment again", wanted);
      status = gst_shmx_sink_list_streams(state, state.metadata);
      if (status) {
        what = "Server::create";
        status = gst_shmx_sink_create_segment(self, settings, wanted);
      }
    } else {
      status = gst_shmx_sink_update_metadata(state, what);
    }
  }
  if (!status) {
    gst_shmx_sink_post_metadata_error(self, settings.segment, status, what);
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

// The running time of a buffer time in `segment`, or GST_CLOCK_TIME_NONE.
static GstClockTime gst_shmx_sink_running_time(const GstSegment& segment, GstClockTime time) {
  if (!GST_CLOCK_TIME_IS_VALID(time) || segment.format != GST_FORMAT_TIME) return GST_CLOCK_TIME_NONE;
  return gst_segment_to_running_time(&segment, GST_FORMAT_TIME, time);
}

// Absolute CLOCK_MONOTONIC time of a running time at this sink (base time on the monotonic clock plus
// running time), or kNoTime.
static uint64_t gst_shmx_sink_monotonic_time(GstClockTime running_time, bool have_base, uint64_t base) {
  if (!have_base || !GST_CLOCK_TIME_IS_VALID(running_time)) return gst_shmx::kNoTime;
  return base + running_time;
}

// Takes, for every request-pad stream listed in the metadata that has a buffer, the one the frame
// carries: the newest queued buffer whose running time is not after `primary_time` (a buffer without
// a running time counts as not after), else the oldest one; with no `primary_time`, the newest. Older
// buffers leave the queue; the one taken stays (it repeats in later frames with its sequence number).
// Counts the primary buffer into `primary_seq` when given. Must be called with publish_lock held.
static void gst_shmx_sink_pick_streams(SinkState& state, GstClockTime primary_time, uint64_t* primary_seq,
                                       bool have_base, uint64_t base, FramePicks& picks) {
  std::lock_guard<std::mutex> locker(state.streams_lock);
  for (auto& [number, input] : state.inputs) {
    if (number == 0) {
      if (primary_seq) *primary_seq = ++input.received;
      continue;
    }
    if (input.wire_index < 0 || input.queue.empty()) continue;
    size_t chosen = input.queue.size() - 1;
    if (GST_CLOCK_TIME_IS_VALID(primary_time)) {
      chosen = 0;
      for (size_t i = input.queue.size(); i-- > 0;) {
        const GstClockTime time = input.queue[i].running_time();
        if (!GST_CLOCK_TIME_IS_VALID(time) || time <= primary_time) {
          chosen = i;
          break;
        }
      }
    }
    for (; chosen > 0; --chosen) {
      picks.dropped.push_back(input.queue.front().buffer);
      input.queue.pop_front();
    }
    const QueuedBuffer& queued = input.queue.front();
    StreamPick pick;
    pick.wire_index = static_cast<uint16_t>(input.wire_index);
    pick.buffer = gst_buffer_ref(queued.buffer);
    pick.seq = queued.seq;
    pick.info = gst_shmx::buffer_info_from_buffer(queued.buffer);
    pick.info.pts_monotonic_ns = gst_shmx_sink_monotonic_time(queued.pts_running_time, have_base, base);
    pick.info.dts_monotonic_ns = gst_shmx_sink_monotonic_time(queued.dts_running_time, have_base, base);
    picks.streams.push_back(std::move(pick));
  }
}

// Appends one stream's TLVs to a frame: its buffer info, its data (64-byte aligned; unless upstream
// wrote it in place already) and its sequence number.
static shmx::Status gst_shmx_sink_append_stream(shmx::TlvWriter& tlvs, uint16_t index, GstBuffer* buffer,
                                                const gst_shmx::BufferInfo& info, uint64_t seq,
                                                bool data_in_place) {
  shmx::Result<uint8_t*> info_value =
      tlvs.reserve(gst_shmx::kTlvBufferInfo, index, gst_shmx::buffer_info_encoded_size());
  if (!info_value) return info_value.status();
  gst_shmx::encode_buffer_info(info, info_value.value());

  if (!data_in_place) {
    const gsize size = gst_buffer_get_size(buffer);
    shmx::Result<uint8_t*> data =
        tlvs.reserve(shmx::kTlvStreamData, index, static_cast<uint32_t>(size), shmx::kPayloadAlignment);
    if (!data) return data.status();
    gst_buffer_extract(buffer, 0, data.value(), size);
  }
  return tlvs.append(gst_shmx::kTlvStreamSeq, index, &seq, sizeof seq);
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

// One frame: the primary stream's buffer (none when a request pad publishes on its own) and the
// buffers of the other streams.
struct FrameContent {
  GstBuffer* primary = nullptr;
  gst_shmx::BufferInfo primary_info;
  uint64_t primary_seq = 0;
  const FramePicks* picks = nullptr;
  shmx::FrameInfo frame_info;
};

// What a failed publish reports: the step that failed, the frame's data bytes and the slot payload
// it needs.
struct PublishFailure {
  const char* what = "publishing";
  uint64_t bytes = 0;
  uint64_t needed = 0;
};

// Publishes one frame: in place when the primary buffer is a slot of the pool (the other streams are
// appended after its data), else copied into a loaned slot, the slots grown first if needed. Returns
// the failure, and in `failure` what failed and the frame's size. Must be called with
// publish_lock held, the server created.
static shmx::Status gst_shmx_sink_publish_locked(GstShmxSink* self, const FrameContent& frame,
                                                 PublishFailure& failure) {
  SinkState& state = *self->state;
  const SinkSettings& settings = state.settings;
  const std::vector<StreamPick>& others = frame.picks->streams;
  // publish_lock: nobody replaces the server under us (see SinkState).
  std::optional<shmx::Server>& server = state.segment->server;

  uint64_t bytes = frame.primary ? gst_buffer_get_size(frame.primary) : 0;
  for (const StreamPick& pick : others) bytes += gst_buffer_get_size(pick.buffer);
  failure.bytes = bytes;

  // Zero copy: upstream wrote the primary buffer into the slot; add the TLVs after the data and commit.
  shmx::Loan slot;
  if (frame.primary && gst_shmx_sink_take_slot(state, frame.primary, slot)) {
    shmx::Status appended = gst_shmx_sink_append_stream(slot.tlvs(), 0, frame.primary, frame.primary_info,
                                                        frame.primary_seq, true);
    for (const StreamPick& pick : others) {
      if (!appended) break;
      appended =
          gst_shmx_sink_append_stream(slot.tlvs(), pick.wire_index, pick.buffer, pick.info, pick.seq, false);
    }
    if (appended) {
      shmx::Result<uint64_t> frame_id = server->commit(std::move(slot), frame.frame_info);
      if (frame_id) {
        state.frames_published++;
        state.frames_zero_copy++;
        state.bytes_published += bytes;
        GST_LOG_OBJECT(self, "published frame %" G_GUINT64_FORMAT " in place (%" G_GUINT64_FORMAT " bytes)",
                       frame_id.value(), bytes);
        return shmx::Status::ok();
      }
      GST_DEBUG_OBJECT(self, "commit in place failed (%s): copying", frame_id.status().to_string().c_str());
    } else {
      GST_DEBUG_OBJECT(self, "no room for the TLVs after the data: copying");
    }
    // The loan (if not consumed) is abandoned here; the memory still maps the slot: copy from it.
    slot = shmx::Loan();
  }

  const size_t n_streams = (frame.primary ? 1 : 0) + others.size();
  const uint64_t needed =
      gst_shmx::slot_payload_for_buffer(bytes + (n_streams - 1) * gst_shmx::kSlotHeadroom);
  failure.needed = needed;
  if (needed > state.slot_payload) {
    if (settings.slot_size) {
      failure.what = "sizing the frame";
      return shmx::Status(shmx::Errc::TooLarge, "frame data of " + std::to_string(bytes) +
                                                    " bytes does not fit a slot of " +
                                                    std::to_string(state.slot_payload) + " bytes");
    }
    if (needed > MAX_SLOT_SIZE) {
      failure.what = "sizing the frame";
      return shmx::Status(shmx::Errc::TooLarge,
                          "frame data of " + std::to_string(bytes) + " bytes is too large");
    }
    // Grow by at least half so that slowly growing encoded frames do not recreate every time.
    const uint64_t grown = std::min<uint64_t>(
        MAX_SLOT_SIZE, std::max(needed, shmx::align_up(state.slot_payload * 3 / 2, shmx::kPageSize)));
    GST_INFO_OBJECT(self,
                    "frame data of %" G_GUINT64_FORMAT " bytes needs bigger slots: %" G_GUINT64_FORMAT
                    " -> %" G_GUINT64_FORMAT " bytes",
                    bytes, state.slot_payload.load(), grown);
    failure.what = "Server::create";
    if (shmx::Status status = gst_shmx_sink_create_segment(self, settings, grown); !status) return status;
  }

  failure.what = "Server::loan";
  shmx::Result<shmx::Loan> loan = server->loan();
  if (!loan && loan.code() == shmx::Errc::NoFreeSlot) {
    // Every slot is latest, loaned or held by readers; the writer never waits for them.
    const uint64_t dropped = ++state.frames_dropped;
    GST_DEBUG_OBJECT(self, "no free slot: frame dropped (%" G_GUINT64_FORMAT " so far)", dropped);
    return shmx::Status::ok();
  }
  if (!loan) return loan.status();
  failure.what = "filling the slot";
  shmx::Status status;
  if (frame.primary)
    status = gst_shmx_sink_append_stream(loan->tlvs(), 0, frame.primary, frame.primary_info,
                                         frame.primary_seq, false);
  for (const StreamPick& pick : others) {
    if (!status) break;
    status =
        gst_shmx_sink_append_stream(loan->tlvs(), pick.wire_index, pick.buffer, pick.info, pick.seq, false);
  }
  if (!status) {
    server->abandon(std::move(loan.value()));
    return status;
  }
  failure.what = "Server::commit";
  shmx::Result<uint64_t> frame_id = server->commit(std::move(loan.value()), frame.frame_info);
  if (!frame_id) return frame_id.status();
  state.frames_published++;
  state.frames_copied++;
  state.bytes_published += bytes;
  GST_LOG_OBJECT(self,
                 "published frame %" G_GUINT64_FORMAT " (%zu stream(s), %" G_GUINT64_FORMAT " bytes copied)",
                 frame_id.value(), n_streams, bytes);
  return shmx::Status::ok();
}

// Posts the error of a failed publish. Must be called without the state's locks.
static void gst_shmx_sink_post_publish_error(GstShmxSink* self, const shmx::Status& status,
                                             const PublishFailure& failure) {
  const SinkSettings& settings = self->state->settings;
  if (status.code() == shmx::Errc::TooLarge && settings.slot_size) {
    GST_ELEMENT_ERROR(self, RESOURCE, NO_SPACE_LEFT,
                      ("Frame data of %" G_GUINT64_FORMAT " bytes does not fit a slot of segment '%s'.",
                       failure.bytes, settings.segment.c_str()),
                      ("slot-size=%" G_GUINT64_FORMAT " bytes; set slot-size to at least %" G_GUINT64_FORMAT
                       " or to 0 (grow as needed). %s",
                       settings.slot_size, failure.needed, status.to_string().c_str()));
  } else {
    gst_shmx_sink_post_error(self, settings.segment, status, failure.what);
  }
}

// The primary stream's buffer, at its clock time: publishes a frame with it and, for every other
// stream, its buffer at the same running time.
static GstFlowReturn gst_shmx_sink_render(GstBaseSink* sink, GstBuffer* buffer) {
  GstShmxSink* self = GST_SHMX_SINK(sink);
  SinkState& state = *self->state;
  state.primary_active_us = g_get_monotonic_time();

  GST_OBJECT_LOCK(self);
  const GstSegment segment = sink->segment;
  GST_OBJECT_UNLOCK(self);
  const GstClockTime pts_running_time = gst_shmx_sink_running_time(segment, GST_BUFFER_PTS(buffer));
  const GstClockTime dts_running_time = gst_shmx_sink_running_time(segment, GST_BUFFER_DTS(buffer));

  FramePicks picks;  // before the lock: its buffers are unreffed after the unlock
  FrameContent frame;
  frame.primary = buffer;
  frame.primary_info = gst_shmx::buffer_info_from_buffer(buffer);
  frame.picks = &picks;
  shmx::Status status;
  PublishFailure failure;
  {
    std::lock_guard<std::mutex> locker(state.publish_lock);
    uint64_t base = 0;
    const bool have_base = state.clock.base_time(GST_ELEMENT(self), base);
    frame.primary_info.pts_monotonic_ns = gst_shmx_sink_monotonic_time(pts_running_time, have_base, base);
    frame.primary_info.dts_monotonic_ns = gst_shmx_sink_monotonic_time(dts_running_time, have_base, base);
    const gst_shmx::BufferInfo& info = frame.primary_info;
    frame.frame_info.timestamp_ns =
        info.pts_monotonic_ns != gst_shmx::kNoTime
            ? info.pts_monotonic_ns
            : (info.dts_monotonic_ns != gst_shmx::kNoTime ? info.dts_monotonic_ns : 0);
    gst_shmx_sink_pick_streams(
        state, GST_CLOCK_TIME_IS_VALID(pts_running_time) ? pts_running_time : dts_running_time,
        &frame.primary_seq, have_base, base, picks);
    if (!state.segment->server)  // unreachable after set_caps succeeded; kept so bad input never crashes
      status = shmx::Status(shmx::Errc::InvalidArgument, "buffer before caps");
    else
      status = gst_shmx_sink_publish_locked(self, frame, failure);
  }
  if (!status) {
    gst_shmx_sink_post_publish_error(self, status, failure);
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

// A request pad's buffer when the primary stream has been silent for stream-timeout: publishes a frame
// of the other streams' newest buffers. False after posting an error.
static bool gst_shmx_sink_publish_without_primary(GstShmxSink* self) {
  SinkState& state = *self->state;
  FramePicks picks;  // before the lock: its buffers are unreffed after the unlock
  FrameContent frame;
  frame.picks = &picks;
  shmx::Status status;
  PublishFailure failure;
  {
    std::lock_guard<std::mutex> locker(state.publish_lock);
    if (!state.segment->server || state.primary_eos) return true;
    uint64_t base = 0;
    const bool have_base = state.clock.base_time(GST_ELEMENT(self), base);
    gst_shmx_sink_pick_streams(state, GST_CLOCK_TIME_NONE, nullptr, have_base, base, picks);
    if (picks.streams.empty()) return true;
    // The frame's time is its newest buffer's.
    for (const StreamPick& pick : picks.streams) {
      const uint64_t time = pick.info.pts_monotonic_ns != gst_shmx::kNoTime ? pick.info.pts_monotonic_ns
                                                                            : pick.info.dts_monotonic_ns;
      if (time != gst_shmx::kNoTime)
        frame.frame_info.timestamp_ns = std::max(frame.frame_info.timestamp_ns, time);
    }
    status = gst_shmx_sink_publish_locked(self, frame, failure);
  }
  if (!status) {
    gst_shmx_sink_post_publish_error(self, status, failure);
    return false;
  }
  return true;
}

static gboolean gst_shmx_sink_event(GstBaseSink* sink, GstEvent* event) {
  GstShmxSink* self = GST_SHMX_SINK(sink);
  SinkState& state = *self->state;

  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    shmx::Status status;
    {
      std::lock_guard<std::mutex> locker(state.publish_lock);
      state.primary_eos = true;
      if (state.segment->server) {
        shmx::Result<uint64_t> frame_id = state.segment->server->publish_eos();
        if (!frame_id) status = frame_id.status();
      }
    }
    if (status)
      GST_DEBUG_OBJECT(self, "EOS published");
    else
      GST_ELEMENT_WARNING(self, RESOURCE, WRITE, ("Could not publish EOS to the readers."),
                          ("%s", status.to_string().c_str()));
  } else if (GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_STOP) {
    std::lock_guard<std::mutex> locker(state.publish_lock);
    state.primary_eos = false;
  }
  return GST_BASE_SINK_CLASS(parent_class)->event(sink, event);
}

// ---------------------------------------------------------------------------
// Request pads: the other streams
// ---------------------------------------------------------------------------

// Queues a buffer of a request pad (never waiting), and publishes a frame without the primary stream
// when that has been silent for stream-timeout while PLAYING.
static GstFlowReturn gst_shmx_sink_request_chain(GstPad* pad, GstObject* parent, GstBuffer* buffer) {
  GstShmxSink* self = GST_SHMX_SINK(parent);
  SinkState& state = *self->state;
  std::vector<GstBuffer*> dropped;
  GstFlowReturn result = GST_FLOW_OK;
  {
    std::lock_guard<std::mutex> locker(state.streams_lock);
    auto found = std::find_if(state.inputs.begin(), state.inputs.end(),
                              [&](const auto& entry) { return entry.second.pad == pad; });
    if (found == state.inputs.end()) {
      result = GST_FLOW_FLUSHING;  // being released
    } else if (!found->second.has_caps) {
      result = GST_FLOW_NOT_NEGOTIATED;
    } else {
      InputStream& input = found->second;
      QueuedBuffer queued;
      queued.buffer = buffer;
      queued.pts_running_time = gst_shmx_sink_running_time(input.segment, GST_BUFFER_PTS(buffer));
      queued.dts_running_time = gst_shmx_sink_running_time(input.segment, GST_BUFFER_DTS(buffer));
      queued.seq = ++input.received;
      buffer = nullptr;
      const GstClockTime newest = queued.running_time();
      input.queue.push_back(queued);
      while (input.queue.size() > kQueueMaxBuffers ||
             (input.queue.size() > 1 && GST_CLOCK_TIME_IS_VALID(newest) &&
              GST_CLOCK_TIME_IS_VALID(input.queue.front().running_time()) &&
              input.queue.front().running_time() + kQueueSpan < newest)) {
        dropped.push_back(input.queue.front().buffer);
        input.queue.pop_front();
      }
    }
  }
  if (buffer) gst_buffer_unref(buffer);
  for (GstBuffer* old : dropped) gst_buffer_unref(old);
  if (result == GST_FLOW_NOT_NEGOTIATED)
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("Pad %s received a buffer before caps.", GST_PAD_NAME(pad)),
                      (nullptr));
  if (result != GST_FLOW_OK) return result;

  GST_OBJECT_LOCK(self);
  const guint timeout_ms = self->stream_timeout;
  const bool playing = GST_STATE(self) == GST_STATE_PLAYING;
  GST_OBJECT_UNLOCK(self);
  const gint64 silent_us = g_get_monotonic_time() - state.primary_active_us.load();
  if (timeout_ms && playing && silent_us >= static_cast<gint64>(timeout_ms) * 1000) {
    GST_LOG_OBJECT(pad, "primary stream silent for %" G_GINT64_FORMAT " ms: publishing without it",
                   silent_us / 1000);
    if (!gst_shmx_sink_publish_without_primary(self)) return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

// Caps of a request pad: its stream is listed in the metadata (or updated there).
static bool gst_shmx_sink_request_caps(GstShmxSink* self, GstPad* pad, GstCaps* caps) {
  SinkState& state = *self->state;
  shmx::StreamInfo info;
  if (!gst_shmx::stream_info_from_caps(caps, gst_shmx_sink_pad_stream_name(GST_SHMX_SINK_PAD(pad)), info)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("Caps on pad %s are not fixed.", GST_PAD_NAME(pad)),
                      ("caps %" GST_PTR_FORMAT, caps));
    return false;
  }
  GST_DEBUG_OBJECT(pad, "caps %" GST_PTR_FORMAT ", stream '%s'", caps, info.name.c_str());
  shmx::Status status;
  const char* what = kListingStreams;
  std::vector<GstBuffer*> dropped;
  {
    std::lock_guard<std::mutex> publish_locker(state.publish_lock);
    {
      std::lock_guard<std::mutex> locker(state.streams_lock);
      for (auto& [number, input] : state.inputs) {
        if (input.pad != pad) continue;
        // Buffers queued under other caps must not go out described by the new ones.
        if (input.has_caps && input.info.type != info.type) {
          for (QueuedBuffer& queued : input.queue) dropped.push_back(queued.buffer);
          input.queue.clear();
        }
        input.info = std::move(info);
        input.has_caps = true;
      }
    }
    status = gst_shmx_sink_update_metadata(state, what);
  }
  for (GstBuffer* buffer : dropped) gst_buffer_unref(buffer);
  if (!status) {
    gst_shmx_sink_post_metadata_error(self, state.settings.segment, status, what);
    return false;
  }
  return true;
}

static gboolean gst_shmx_sink_request_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  GstShmxSink* self = GST_SHMX_SINK(parent);
  SinkState& state = *self->state;
  gboolean result = TRUE;
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_CAPS: {
      GstCaps* caps = nullptr;
      gst_event_parse_caps(event, &caps);
      result = gst_shmx_sink_request_caps(self, pad, caps);
      break;
    }
    case GST_EVENT_SEGMENT: {
      const GstSegment* segment = nullptr;
      gst_event_parse_segment(event, &segment);
      if (segment->format != GST_FORMAT_TIME)
        GST_WARNING_OBJECT(pad, "segment in %s, not time: its buffers are matched by arrival only",
                           gst_format_get_name(segment->format));
      std::lock_guard<std::mutex> locker(state.streams_lock);
      for (auto& [number, input] : state.inputs)
        if (input.pad == pad) gst_segment_copy_into(segment, &input.segment);
      break;
    }
    case GST_EVENT_EOS:
      // The stream ends: its last buffer stays in the frames. Only the primary stream's EOS ends the
      // element's (and the readers') stream.
      GST_DEBUG_OBJECT(pad, "stream ended");
      break;
    case GST_EVENT_FLUSH_STOP: {
      std::vector<GstBuffer*> dropped;
      {
        std::lock_guard<std::mutex> locker(state.streams_lock);
        for (auto& [number, input] : state.inputs) {
          if (input.pad != pad) continue;
          for (QueuedBuffer& queued : input.queue) dropped.push_back(queued.buffer);
          input.queue.clear();
          gst_segment_init(&input.segment, GST_FORMAT_TIME);
        }
      }
      for (GstBuffer* buffer : dropped) gst_buffer_unref(buffer);
      break;
    }
    default:
      // Stream-start, tags, gaps, flush-start (the chain never waits) and the rest: nothing to do.
      break;
  }
  gst_event_unref(event);
  return result;
}

static gboolean gst_shmx_sink_request_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  if (GST_QUERY_TYPE(query) == GST_QUERY_ALLOCATION) {
    // No slot pool (the frame is filled from the primary stream's buffer); padded strides travel.
    gst_query_add_allocation_meta(query, GST_VIDEO_META_API_TYPE, nullptr);
    return TRUE;
  }
  return gst_pad_query_default(pad, parent, query);
}

// A request for `sink_%u` (no number: the lowest free number from 1) or for `sink_<N>` (N >= 1).
static GstPad* gst_shmx_sink_request_new_pad(GstElement* element, GstPadTemplate* templ, const gchar* name,
                                             const GstCaps* caps) {
  GstShmxSink* self = GST_SHMX_SINK(element);
  SinkState& state = *self->state;
  (void)caps;

  guint number = 0;
  if (name && std::strcmp(name, "sink_%u") != 0) {
    gchar* end = nullptr;
    const guint64 parsed =
        g_str_has_prefix(name, "sink_") ? g_ascii_strtoull(name + std::strlen("sink_"), &end, 10) : 0;
    if (!end || *end != '\0' || end == name + std::strlen("sink_") || parsed < 1 || parsed > G_MAXUINT16) {
      GST_WARNING_OBJECT(self, "pad name '%s' refused: request sink_%%u or sink_<N> with 1 <= N <= 65535",
                         name);
      return nullptr;
    }
    number = static_cast<guint>(parsed);
  }

  GstPad* pad = nullptr;
  {
    std::lock_guard<std::mutex> locker(state.streams_lock);
    if (number == 0) {
      number = 1;
      while (state.inputs.count(number)) number++;
    } else if (state.inputs.count(number)) {
      GST_WARNING_OBJECT(self, "pad sink_%u is already in use", number);
      return nullptr;
    }
    gchar* pad_name = g_strdup_printf("sink_%u", number);
    pad = gst_pad_new_from_template(templ, pad_name);
    g_free(pad_name);
    InputStream& input = state.inputs[number];
    input.pad = pad;
    gst_segment_init(&input.segment, GST_FORMAT_TIME);
  }
  gst_pad_set_chain_function(pad, GST_DEBUG_FUNCPTR(gst_shmx_sink_request_chain));
  gst_pad_set_event_function(pad, GST_DEBUG_FUNCPTR(gst_shmx_sink_request_event));
  gst_pad_set_query_function(pad, GST_DEBUG_FUNCPTR(gst_shmx_sink_request_query));
  gst_element_add_pad(element, pad);
  gst_child_proxy_child_added(GST_CHILD_PROXY(self), G_OBJECT(pad), GST_OBJECT_NAME(pad));
  GST_DEBUG_OBJECT(self, "added pad %s", GST_PAD_NAME(pad));
  return pad;
}

// Releasing a request pad removes its stream from the metadata (the remaining streams' wire indices
// close the gap).
static void gst_shmx_sink_release_pad(GstElement* element, GstPad* pad) {
  GstShmxSink* self = GST_SHMX_SINK(element);
  SinkState& state = *self->state;
  std::vector<GstBuffer*> dropped;
  shmx::Status status;
  const char* what = kListingStreams;
  {
    std::lock_guard<std::mutex> publish_locker(state.publish_lock);
    bool listed = false;
    {
      std::lock_guard<std::mutex> locker(state.streams_lock);
      for (auto entry = state.inputs.begin(); entry != state.inputs.end(); ++entry) {
        if (entry->second.pad != pad || entry->first == 0) continue;
        for (QueuedBuffer& queued : entry->second.queue) dropped.push_back(queued.buffer);
        listed = entry->second.wire_index >= 0;
        state.inputs.erase(entry);
        break;
      }
    }
    if (listed) status = gst_shmx_sink_update_metadata(state, what);
  }
  for (GstBuffer* buffer : dropped) gst_buffer_unref(buffer);
  if (!status)
    GST_ELEMENT_WARNING(self, RESOURCE, WRITE,
                        ("Could not remove the stream of pad %s from the metadata.", GST_PAD_NAME(pad)),
                        ("%s: %s", what, status.to_string().c_str()));
  GST_DEBUG_OBJECT(self, "releasing pad %s", GST_PAD_NAME(pad));
  gst_child_proxy_child_removed(GST_CHILD_PROXY(self), G_OBJECT(pad), GST_OBJECT_NAME(pad));
  gst_element_remove_pad(element, pad);
}

static GstStateChangeReturn gst_shmx_sink_change_state(GstElement* element, GstStateChange transition) {
  GstShmxSink* self = GST_SHMX_SINK(element);
  // stream-timeout counts from going to PLAYING when the primary stream has sent nothing since.
  if (transition == GST_STATE_CHANGE_PAUSED_TO_PLAYING)
    self->state->primary_active_us = g_get_monotonic_time();
  const GstStateChangeReturn result = GST_ELEMENT_CLASS(parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    // The pads are deactivated now (no chain runs). start()/stop() are NULL<->READY in GstBaseSink, so
    // a READY->PAUSED->PLAYING run must not begin with the last run's queued buffers (their running
    // times belong to its segments) nor with its primary EOS (which would keep stream-timeout off).
    SinkState& state = *self->state;
    {
      std::lock_guard<std::mutex> locker(state.publish_lock);
      state.primary_eos = false;
    }
    gst_shmx_sink_reset_inputs(state, false);
  }
  return result;
}

// ---------------------------------------------------------------------------
// GstChildProxy: the pads, so that `shmxsink sink_1::stream-name=imu` works in a launch line
// ---------------------------------------------------------------------------

static GObject* gst_shmx_sink_child_proxy_get_child_by_index(GstChildProxy* proxy, guint index) {
  GObject* child = nullptr;
  GST_OBJECT_LOCK(proxy);
  if (gpointer pad = g_list_nth_data(GST_ELEMENT(proxy)->sinkpads, index))
    child = G_OBJECT(gst_object_ref(pad));
  GST_OBJECT_UNLOCK(proxy);
  return child;
}

static guint gst_shmx_sink_child_proxy_get_children_count(GstChildProxy* proxy) {
  GST_OBJECT_LOCK(proxy);
  const guint count = GST_ELEMENT(proxy)->numsinkpads;
  GST_OBJECT_UNLOCK(proxy);
  return count;
}

static void gst_shmx_sink_child_proxy_init(gpointer g_iface, gpointer iface_data) {
  (void)iface_data;
  GstChildProxyInterface* iface = static_cast<GstChildProxyInterface*>(g_iface);
  iface->get_child_by_index = gst_shmx_sink_child_proxy_get_child_by_index;
  iface->get_children_count = gst_shmx_sink_child_proxy_get_children_count;
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
  GstStructure* stats = gst_structure_new(
      "shmx-sink-stats", "frames-published", G_TYPE_UINT64, state.frames_published.load(), "frames-zero-copy",
      G_TYPE_UINT64, state.frames_zero_copy.load(), "frames-copied", G_TYPE_UINT64,
      state.frames_copied.load(), "frames-dropped", G_TYPE_UINT64, state.frames_dropped.load(),
      "pool-fallbacks", G_TYPE_UINT64, state.segment->pool_fallbacks.load(), "bytes-published", G_TYPE_UINT64,
      state.bytes_published.load(), "segment-recreations", G_TYPE_UINT64, state.segment_recreations.load(),
      "session-id", G_TYPE_UINT64, session, "slot-count", G_TYPE_UINT, slot_count, "slot-size", G_TYPE_UINT64,
      slot_payload, "readers", G_TYPE_UINT, readers, "slots-held", G_TYPE_UINT,
      server_stats.slots_held_by_readers, "slots-loaned", G_TYPE_UINT, server_stats.slots_loaned, nullptr);
  // This property replaces GstBaseSink's 'stats': keep its fields too.
  if (GstStructure* base = gst_base_sink_get_stats(GST_BASE_SINK(self))) {
    gst_structure_foreach(
        base,
        [](GQuark field, const GValue* value, gpointer user_data) -> gboolean {
          gst_structure_id_set_value(static_cast<GstStructure*>(user_data), field, value);
          return TRUE;
        },
        stats);
    gst_structure_free(base);
  }
  return stats;
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
    case PROP_STREAM_TIMEOUT:
      self->stream_timeout = g_value_get_uint(value);
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
    case PROP_STREAM_TIMEOUT:
      GST_OBJECT_LOCK(self);
      g_value_set_uint(value, self->stream_timeout);
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
  self->stream_timeout = DEFAULT_STREAM_TIMEOUT;
  self->state = new SinkState();
  InputStream& primary = self->state->inputs[0];
  primary.pad = GST_BASE_SINK_PAD(self);
  gst_segment_init(&primary.segment, GST_FORMAT_TIME);
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
          "Number of frame slots in the segment (frames, 3-64; 1 and 2 are raised to 3); more slots let readers hold more frames "
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
                        "(permissions=0660); must include owner read-write (0600). Readers map the segment "
                        "read-write (their reader table), so other users need read and write: 0660 for the "
                        "group, 0666 for everyone. The default 0600 (384 in decimal) is owner-only",
                        0, 0777, DEFAULT_PERMISSIONS, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_STREAM_TIMEOUT,
      g_param_spec_uint(
          "stream-timeout", "Stream timeout",
          "When the primary stream (pad 'sink') has sent no buffer for this long while PLAYING, each buffer "
          "on a request pad publishes a frame by itself, with the newest buffer of every other stream "
          "(milliseconds); 0 = never: frames only come with the primary stream",
          0, G_MAXUINT, DEFAULT_STREAM_TIMEOUT,
          static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)));
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
          "slot-size (bytes), readers, slots-held (by readers), slots-loaned; and GstBaseSink's "
          "average-rate, dropped, rendered",
          GST_TYPE_STRUCTURE, read_only));

  gst_element_class_set_static_metadata(
      element_class, "Shared-memory latest-frame sink", "Sink/Network",
      "Publishes buffers, their caps and timestamps as the latest frame of a shmx shared-memory segment, "
      "with more synchronized streams in the same frame through request pads; readers never block the "
      "writer, and may send events and messages back (reader-message signal). Element messages: "
      "shmx-reader-connected, shmx-reader-disconnected, shmx-reader-reaped, shmx-reader-message "
      "(fields in docs/elements.md)",
      "shmx developers");
  // The request template first: linking to the element without a pad name ("src ! s.") takes the
  // first template whose caps fit once the always pad is linked, and only a request template helps.
  gst_element_class_add_static_pad_template_with_gtype(element_class, &request_template,
                                                       GST_TYPE_SHMX_SINK_PAD);
  gst_element_class_add_static_pad_template_with_gtype(element_class, &sink_template, GST_TYPE_SHMX_SINK_PAD);
  gst_type_mark_as_plugin_api(GST_TYPE_SHMX_SINK_PAD, static_cast<GstPluginAPIFlags>(0));

  /**
   * GstShmxSink::reader-message:
   * @sink: the shmxsink
   * @reader: the reader's name
   * @pid: the reader's process id
   * @type: the TLV type (>= 0x1000, shmx::kTlvUserBase)
   * @value: the TLV's bytes
   *
   * A reader sent an application TLV (`shmx::Client::send`) that the sink does not consume itself
   * (it consumes the upstream events of shmxsrc). Emitted from the sink's service thread; do not block
   * in the handler. The same TLV is also posted as the element message `shmx-reader-message`.
   */
  gst_shmx_sink_signals[SIGNAL_READER_MESSAGE] =
      g_signal_new("reader-message", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, nullptr, nullptr,
                   nullptr, G_TYPE_NONE, 4, G_TYPE_STRING, G_TYPE_UINT, G_TYPE_UINT, G_TYPE_BYTES);

  element_class->request_new_pad = GST_DEBUG_FUNCPTR(gst_shmx_sink_request_new_pad);
  element_class->release_pad = GST_DEBUG_FUNCPTR(gst_shmx_sink_release_pad);
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_shmx_sink_change_state);

  basesink_class->start = GST_DEBUG_FUNCPTR(gst_shmx_sink_start);
  basesink_class->stop = GST_DEBUG_FUNCPTR(gst_shmx_sink_stop);
  basesink_class->set_caps = GST_DEBUG_FUNCPTR(gst_shmx_sink_set_caps);
  basesink_class->render = GST_DEBUG_FUNCPTR(gst_shmx_sink_render);
  basesink_class->event = GST_DEBUG_FUNCPTR(gst_shmx_sink_event);
  basesink_class->propose_allocation = GST_DEBUG_FUNCPTR(gst_shmx_sink_propose_allocation);

  GST_DEBUG_CATEGORY_INIT(gst_shmx_sink_debug, "shmxsink", 0, "shmx shared-memory sink");
}
