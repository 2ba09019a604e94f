// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmxsrc.cpp: shmxsrc, a live GstPushSrc that outputs the latest frames of a shmx segment with their
// caps.

/**
 * SECTION:element-shmxsrc
 * @title: shmxsrc
 * @see_also: shmxsink
 *
 * Reads the frames that `shmxsink` publishes on the shared-memory segment named by
 * #GstShmxSrc:segment and pushes them as buffers, with the writer's caps (no capsfilter needed,
 * for any media type) and renegotiating when the writer's caps change. It is a live source with
 * "latest frame" semantics: when downstream is slower than the writer it skips frames (counted in
 * #GstShmxSrc:stats, logged at debug level, the next buffer marked DISCONT) and never slows the
 * writer down.
 *
 * Start order does not matter. Started after the writer, the source outputs the latest frame at
 * once; started before it, it waits, posting a warning naming the segment every
 * #GstShmxSrc:wait-warning-interval seconds, without limit unless #GstShmxSrc:timeout is set.
 * EOS at the writer becomes EOS here. When the writer dies without EOS (or stops), a warning is
 * posted and the source waits for a new writer, then resumes with its session and caps.
 *
 * Buffers keep the writer's DTS, duration, offsets, flags and #GstVideoMeta. With the default
 * `timestamp-mode=clock`, PTS and DTS are the writer's capture times (taken on the system
 * monotonic clock, the default pipeline clock of both processes) expressed in this pipeline's
 * running time, so that both pipelines agree on when a frame was captured. A reader that joins a
 * running writer first gets frames captured before it started: their whole timeline is shifted by
 * one constant, just enough for the first to be at running time 0 or later, so timestamps never
 * repeat and frame spacing stays exact. The source reports as latency the writer's
 * capture-to-publish delay (posting a LATENCY message when it grows), so synchronizing sinks
 * render on time. With `timestamp-mode=original` they are the writer's PTS and DTS unchanged.
 * Every buffer also carries, as #GstReferenceTimestampMeta on CLOCK_MONOTONIC (ns), the writer's
 * publish time (caps `timestamp/x-shmx-publish`) and, when the writer had a clock, its capture time
 * (caps `timestamp/x-shmx-capture`), whatever the timestamp mode.
 *
 * Zero copy: by default a buffer wraps the shared-memory slot it was read from (read-only memory).
 * The reader holds the slot until downstream drops the buffer (and any sub-buffer or copy sharing
 * its memory); the writer uses other slots meanwhile and never waits. A reader holds at most
 * #GstShmxSrc:max-held-slots slots (by default a quarter of the writer's slots): past that, frames
 * are copied (`copy-fallbacks` in #GstShmxSrc:stats) rather than starving the writer. `copy=true`
 * copies every frame (once, holding the slot only during the copy), for consumers that keep buffers
 * a long time. Buffers, their memory and their
 * metas are recycled: no allocation per frame once running. A reader process that dies holding
 * slots gives them back when the writer reaps it.
 *
 * Upstream events that reach this source (force-key-unit, navigation, custom upstream events)
 * are sent to the writer and pushed upstream from its `shmxsink`.
 *
 * Several streams: a segment may carry several streams (a `shmxsink` with request pads `sink_%u`, or
 * a library writer), each frame holding the newest buffer of every stream. The always pad `src`
 * outputs the first selected stream; every other selected stream gets a sometimes pad `src_<name>`
 * named after the stream (characters other than `A-Z a-z 0-9 _ -` become `_`; an unnamed stream is
 * `stream<index>`; `_<index>` is appended when two streams would share a name). #GstShmxSrc:streams
 * chooses the streams and their order by name (default: all, stream 0 on `src`, so that single-stream
 * pipelines are unchanged). The pads are added (#GstElement::pad-added, then
 * #GstElement::no-more-pads) as soon as the writer's streams are known, before their first buffer, and
 * removed (after EOS on them) when a new writer no longer has their stream, and when the element stops
 * (they come again at the next start, like a demuxer's); they carry the stream-start
 * group of `src`, their own caps, the segment of `src` and, when the writer sends EOS or the source
 * stops streaming, EOS. A buffer that a frame repeats (the stream had nothing newer when the frame was
 * published; `repeats-skipped` in #GstShmxSrc:stats) is output once, and a stream absent from a frame
 * has no buffer yet: a quiet stream never holds the others back. Buffers of one frame are pushed on
 * the sometimes pads first, then on `src`, all from the one streaming thread: give every branch a
 * `queue`, as after a demuxer. Zero copy, they share the hold of their slot (the slot is
 * released when the last of them is dropped). A sometimes pad that is not linked drops its buffers
 * (`not-linked` in #GstShmxSrc:stats); so does `src` while a sometimes pad is linked; with no pad
 * linked at all the source stops with a not-linked error, like a single-pad source. A stream type that
 * is not caps (a library writer) is output as
 * `application/x-shmx, stream-type=(string)<type>, stream-name=(string)<name>`.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 shmxsrc segment=cam0 ! videoconvert ! autovideosink
 * ]| Shows the raw video published on segment `cam0`.
 * |[
 * gst-launch-1.0 shmxsrc segment=cam0-h264 ! h264parse ! avdec_h264 ! videoconvert ! autovideosink
 * ]| Decodes an H.264 byte-stream.
 * |[
 * gst-launch-1.0 shmxsrc segment=cam0 timeout=5000 timestamp-mode=original ! fakesink silent=false -v
 * ]| Fails with an error if no writer appears within 5 s; prints the writer's own timestamps.
 * |[
 * gst-launch-1.0 shmxsrc segment=rig name=r  r.src ! queue ! videoconvert ! autovideosink \
 *     r.src_stream1 ! queue ! fakesink silent=false -v
 * ]| Shows the video of a two-stream segment and prints the buffers of its second stream `stream1`.
 * |[
 * gst-launch-1.0 shmxsrc segment=demo streams=sim_time ! fakesink silent=false -v
 * ]| Outputs only the `sim_time` stream of `examples/server_test`, on `src`.
 */

#include "gstshmxsrc.h"

#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "gstshmx-bufferinfo.h"
#include "gstshmx-caps.h"
#include "gstshmx-clock.h"
#include "gstshmx-events.h"
#include "gstshmxframepool.h"
#include "shmx_client.h"

GST_DEBUG_CATEGORY_STATIC(gst_shmx_src_debug);
#define GST_CAT_DEFAULT gst_shmx_src_debug

enum {
  PROP_0,
  PROP_SEGMENT,
  PROP_TIMEOUT,
  PROP_WAIT_WARNING_INTERVAL,
  PROP_COPY,
  PROP_TIMESTAMP_MODE,
  PROP_READER_NAME,
  PROP_MAX_HELD_SLOTS,
  PROP_STREAMS,
  PROP_STATS,
};

#define DEFAULT_SEGMENT nullptr
#define DEFAULT_TIMEOUT 0
#define DEFAULT_WAIT_WARNING_INTERVAL 5
#define DEFAULT_COPY FALSE
#define DEFAULT_TIMESTAMP_MODE GST_SHMX_SRC_TIMESTAMP_MODE_CLOCK
#define DEFAULT_READER_NAME nullptr
#define DEFAULT_MAX_HELD_SLOTS 0
#define DEFAULT_STREAMS nullptr

// A wait for a frame is sliced so that queued upstream events and stop requests are served promptly.
static constexpr uint64_t kFrameWaitSliceNs = 200 * GST_MSECOND;
// Upstream events kept while no writer is attached; older ones are dropped.
static constexpr size_t kMaxPendingEvents = 64;

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
static GstStaticPadTemplate stream_src_template =
    GST_STATIC_PAD_TEMPLATE("src_%s", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS_ANY);

static GstStaticCaps publish_time_caps = GST_STATIC_CAPS("timestamp/x-shmx-publish");
static GstStaticCaps capture_time_caps = GST_STATIC_CAPS("timestamp/x-shmx-capture");

GType gst_shmx_src_timestamp_mode_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_SHMX_SRC_TIMESTAMP_MODE_CLOCK, "Writer capture time mapped to this pipeline's running time",
       "clock"},
      {GST_SHMX_SRC_TIMESTAMP_MODE_ORIGINAL, "PTS and DTS exactly as the writer had them", "original"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType registered = g_enum_register_static("GstShmxSrcTimestampMode", values);
    g_once_init_leave(&type, registered);
  }
  return type;
}

namespace {

// One output stream: a stream of the segment and the pad it leaves by. Streaming thread only, except
// where noted.
struct SrcStream {
  uint16_t index = 0;
  std::string name;             // as in the metadata
  GstPad* pad = nullptr;        // the always pad (primary, not owned) or a sometimes pad (a reference)
  GstCaps* caps = nullptr;      // caps last set on the pad; for the primary protected by the object lock
  uint64_t last_seq = 0;        // kTlvStreamSeq of the buffer last output in this session; 0 = none
  bool discont = true;          // mark the next buffer DISCONT (new session, lost buffers)
  bool frames_skipped = false;  // frames were skipped since the last buffer (matters without a seq)
  bool started = false;         // sometimes pads: stream-start, caps and segment sent
};

// A stream with a new buffer in the frame being output.
struct StreamOutput {
  SrcStream* stream = nullptr;
  shmx::TlvView data;
  uint64_t seq = 0;
  bool has_seq = false;
};

// The hold of a frame being turned into a buffer: released on scope exit unless handed to the buffer.
class ScopedHold {
 public:
  explicit ScopedHold(const shmx::FrameView& frame) {
    if (frame.held) token_ = frame.hold;
  }
  ~ScopedHold() {
    if (token_.valid()) shmx::Client::release(token_);
  }
  ScopedHold(const ScopedHold&) = delete;
  ScopedHold& operator=(const ScopedHold&) = delete;
  bool valid() const { return token_.valid(); }
  shmx::HoldToken take() { return std::exchange(token_, shmx::HoldToken{}); }

 private:
  shmx::HoldToken token_;
};

struct SrcSettings {
  std::string segment;
  guint timeout = DEFAULT_TIMEOUT;
  guint wait_warning_interval = DEFAULT_WAIT_WARNING_INTERVAL;
  bool copy = DEFAULT_COPY;
  GstShmxSrcTimestampMode timestamp_mode = DEFAULT_TIMESTAMP_MODE;
  std::string reader_name;
  guint max_held_slots = DEFAULT_MAX_HELD_SLOTS;
  std::vector<std::string> streams;  // names chosen with the 'streams' property; empty = all
};

// C++ state of the element; new'd in _init, deleted in finalize.
struct SrcState {
  // Used by the streaming thread (create) and start/stop only; interrupt(), clear_interrupt() and
  // stats() also from unlock/unlock_stop/property reads, which the Client allows from any thread.
  shmx::Client client;
  SrcStream primary;  // the first selected stream, on the always pad 'src'

  // The other selected streams, each on its sometimes pad. The vector, and the pad and started fields
  // of its streams, are changed by the streaming thread (and the stop) under pads_lock, which the EOS and
  // segment probe on 'src' takes to read them; the other fields are the streaming thread's alone.
  // pads_lock is never held while pushing.
  std::mutex pads_lock;
  std::vector<SrcStream> secondaries;
  bool src_segment_seen = false;      // the first segment of 'src' since start (secondaries have a copy)
  bool pads_announced = false;        // no-more-pads emitted since start
  std::vector<StreamOutput> outputs;  // of the frame being output (kept for its capacity)

  // Streaming-thread state (set in start(), used by create()).
  SrcSettings settings;           // the properties are GST_PARAM_MUTABLE_READY: fixed until stop
  GstBufferPool* pool = nullptr;  // the buffers pushed; active between start and stop
  gst_shmx::MonotonicClock clock;
  gst_shmx::CaptureTimeline timeline;  // timestamp-mode=clock: capture times -> running time, latency
  uint64_t metadata_generation = 0;  // of the caps last set
  uint64_t session_id = 0;           // of the caps last set
  bool lost_writer = false;          // the previous writer died: the next session is a restart

  // Set by unlock(), cleared by unlock_stop() and start(): create() returns FLUSHING.
  std::atomic<bool> flushing{false};

  // Upstream events waiting for the streaming thread (the only one allowed to Client::send).
  std::mutex events_lock;
  std::deque<std::string> pending_events;  // protected by events_lock
  // Set with pending_events (release), so that the streaming thread looks at them only when there
  // are some: no lock and no allocation per frame.
  std::atomic<bool> events_pending{false};

  // Counters, written by the streaming thread, read by property getters.
  std::atomic<uint64_t> frames_received{0};
  std::atomic<uint64_t> frames_zero_copy{0};
  std::atomic<uint64_t> frames_copied{0};
  std::atomic<uint64_t> frames_skipped{0};
  std::atomic<uint64_t> sessions{0};  // writer sessions attached to
  std::atomic<uint64_t> writer_losses{0};
  std::atomic<uint64_t> caps_changes{0};
  std::atomic<uint64_t> events_forwarded{0};
  std::atomic<uint64_t> repeats_skipped{0};
  std::atomic<uint64_t> not_linked{0};
};

}  // namespace

struct _GstShmxSrc {
  GstPushSrc parent;

  // Properties, protected by the object lock.
  gchar* segment;
  guint timeout;
  guint wait_warning_interval;
  gboolean copy;
  GstShmxSrcTimestampMode timestamp_mode;
  gchar* reader_name;
  guint max_held_slots;
  gchar* streams;

  SrcState* state;
};

#define gst_shmx_src_parent_class parent_class
G_DEFINE_TYPE(GstShmxSrc, gst_shmx_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE(shmxsrc, "shmxsrc", GST_RANK_NONE, GST_TYPE_SHMX_SRC);

static SrcSettings gst_shmx_src_settings(GstShmxSrc* self) {
  SrcSettings settings;
  GST_OBJECT_LOCK(self);
  settings.segment = self->segment ? self->segment : "";
  settings.timeout = self->timeout;
  settings.wait_warning_interval = self->wait_warning_interval;
  settings.copy = self->copy;
  settings.timestamp_mode = self->timestamp_mode;
  settings.reader_name = self->reader_name ? self->reader_name : GST_OBJECT_NAME(self);
  settings.max_held_slots = self->max_held_slots;
  gchar** names = g_strsplit(self->streams ? self->streams : "", ",", -1);
  GST_OBJECT_UNLOCK(self);
  for (gchar** name = names; *name; ++name) {
    g_strstrip(*name);
    if (**name) settings.streams.emplace_back(*name);
  }
  g_strfreev(names);
  return settings;
}

static void gst_shmx_src_post_error(GstShmxSrc* self, const std::string& segment,
                                    const shmx::Status& status) {
  const std::string debug = status.to_string();
  switch (status.code()) {
    case shmx::Errc::InvalidName:
      GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS,
                        ("Invalid segment name '%s': use 1-200 characters of A-Z a-z 0-9 . _ - not starting "
                         "with a dot.",
                         segment.c_str()),
                        ("%s", debug.c_str()));
      break;
    case shmx::Errc::NotShmx:
      GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("Segment '%s' is not a shmx segment.", segment.c_str()),
                        ("%s", debug.c_str()));
      break;
    case shmx::Errc::VersionMismatch:
      GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ,
                        ("Segment '%s' has another shmx layout version (this reader understands version %u).",
                         segment.c_str(), shmx::kLayoutVersion),
                        ("%s", debug.c_str()));
      break;
    case shmx::Errc::PermissionDenied:
      GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("Permission denied on segment '%s'.", segment.c_str()),
                        ("%s", debug.c_str()));
      break;
    case shmx::Errc::NoReaderSlot:
      GST_ELEMENT_ERROR(
          self, RESOURCE, BUSY,
          ("Segment '%s' has no free reader slot (raise max-readers on its shmxsink).", segment.c_str()),
          ("%s", debug.c_str()));
      break;
    case shmx::Errc::Corrupt:
      GST_ELEMENT_ERROR(self, RESOURCE, READ, ("Segment '%s' is corrupt.", segment.c_str()),
                        ("%s", debug.c_str()));
      break;
    default:
      GST_ELEMENT_ERROR(self, RESOURCE, READ, ("Could not read segment '%s'.", segment.c_str()),
                        ("%s", debug.c_str()));
      break;
  }
}

// Sends the queued upstream events to the writer. Streaming thread only, with the client open.
static void gst_shmx_src_send_events(GstShmxSrc* self) {
  SrcState& state = *self->state;
  if (!state.events_pending.load(std::memory_order_acquire)) return;  // acquire: pairs with the event handler
  std::deque<std::string> events;
  {
    std::lock_guard<std::mutex> locker(state.events_lock);
    events.swap(state.pending_events);
    state.events_pending.store(false, std::memory_order_relaxed);  // relaxed: under events_lock
  }
  for (const std::string& value : events) {
    shmx::Status sent = state.client.send(gst_shmx::kTlvUpstreamEvent, value.data(), value.size());
    if (sent) {
      state.events_forwarded++;
    } else {
      GST_WARNING_OBJECT(self, "upstream event not sent to the writer: %s", sent.to_string().c_str());
    }
  }
}

// Handles Interrupted from the client: FLUSHING for unlock(), else the wake-up was for an event.
static bool gst_shmx_src_interrupted_for_flush(GstShmxSrc* self) {
  SrcState& state = *self->state;
  if (state.flushing) return true;
  state.client.clear_interrupt();
  // unlock() sets the flag before it interrupts: re-checking after the clear cannot lose it.
  return state.flushing.load();
}

// Waits until a writer is attached (the client is open). Streaming thread only.
static GstFlowReturn gst_shmx_src_wait_for_writer(GstShmxSrc* self, const SrcSettings& settings) {
  SrcState& state = *self->state;
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const auto interval = std::chrono::seconds(settings.wait_warning_interval);
  Clock::time_point next_warning = start + interval;
  const Clock::time_point deadline = start + std::chrono::milliseconds(settings.timeout);

  shmx::ClientOptions options;
  options.reader_name = settings.reader_name;
  options.max_held_slots = settings.max_held_slots;

  for (;;) {
    if (state.flushing) return GST_FLOW_FLUSHING;
    Clock::time_point until = Clock::now() + std::chrono::seconds(1);
    if (settings.wait_warning_interval && next_warning < until) until = next_warning;
    if (settings.timeout && deadline < until) until = deadline;
    const auto slice = std::chrono::duration_cast<std::chrono::nanoseconds>(until - Clock::now()).count();

    shmx::Status status =
        state.client.open_wait(settings.segment, options, slice > 0 ? static_cast<uint64_t>(slice) : 1);
    if (status) {
      GST_INFO_OBJECT(self, "attached to segment '%s', session %016" G_GINT64_MODIFIER "x",
                      settings.segment.c_str(), state.client.session_id());
      state.sessions++;
      return GST_FLOW_OK;
    }
    switch (status.code()) {
      case shmx::Errc::Interrupted:
        if (gst_shmx_src_interrupted_for_flush(self)) return GST_FLOW_FLUSHING;
        continue;
      case shmx::Errc::Timeout:
      case shmx::Errc::NotFound:
      case shmx::Errc::NotReady:
      case shmx::Errc::WriterGone:
      case shmx::Errc::Closed:
        break;
      default:
        gst_shmx_src_post_error(self, settings.segment, status);
        return GST_FLOW_ERROR;
    }

    const Clock::time_point now = Clock::now();
    const double waited = std::chrono::duration<double>(now - start).count();
    if (settings.timeout && now >= deadline) {
      GST_ELEMENT_ERROR(
          self, RESOURCE, NOT_FOUND,
          ("No writer on segment '%s' after %u ms.", settings.segment.c_str(), settings.timeout),
          ("timeout=%u ms expired; last status: %s", settings.timeout, status.to_string().c_str()));
      return GST_FLOW_ERROR;
    }
    if (settings.wait_warning_interval && now >= next_warning) {
      GST_ELEMENT_WARNING(
          self, RESOURCE, NOT_FOUND,
          ("Waiting for a writer on segment '%s' (%.0f s so far).", settings.segment.c_str(), waited),
          ("%s", status.to_string().c_str()));
      next_warning = now + interval;
    }
  }
}

// ---------------------------------------------------------------------------
// Streams and their pads
// ---------------------------------------------------------------------------

// The caps a stream is output with: its type when that is caps, else application/x-shmx naming it.
static GstCaps* gst_shmx_src_stream_caps(GstShmxSrc* self, const shmx::StreamInfo& info) {
  if (GstCaps* caps = gst_shmx::caps_from_stream_info(info)) return caps;
  // A writer that is not a GStreamer element: its stream type is not caps.
  GST_WARNING_OBJECT(self, "stream '%s' has type '%s', which is not fixed caps: output as application/x-shmx",
                     info.name.c_str(), info.type.c_str());
  return gst_caps_new_simple("application/x-shmx", "stream-type", G_TYPE_STRING, info.type.c_str(),
                             "stream-name", G_TYPE_STRING, info.name.c_str(), nullptr);
}

// Picks the streams to output, in order (the first goes on 'src'): those named by the 'streams' property,
// or every stream of the segment. False, with an error naming the segment's streams, when one is missing.
static bool gst_shmx_src_select_streams(GstShmxSrc* self, const SrcSettings& settings,
                                        const shmx::Metadata& metadata, std::vector<uint16_t>& selected) {
  selected.clear();
  if (metadata.streams.empty()) {
    GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("Segment '%s' carries no stream.", settings.segment.c_str()),
                      ("metadata generation %" G_GUINT64_FORMAT " is empty", metadata.generation));
    return false;
  }
  // TLVs name streams with 16 bits: streams past that cannot carry data.
  const size_t count = std::min<size_t>(metadata.streams.size(), UINT16_MAX + 1);
  if (settings.streams.empty()) {
    for (size_t i = 0; i < count; ++i) selected.push_back(static_cast<uint16_t>(i));
    return true;
  }
  for (const std::string& wanted : settings.streams) {
    size_t i = 0;
    while (i < count && metadata.streams[i].name != wanted) ++i;
    if (i == count) {
      std::string names;
      for (const shmx::StreamInfo& stream : metadata.streams)
        names += (names.empty() ? "'" : ", '") + stream.name + "'";
      GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND,
                        ("Segment '%s' has no stream named '%s'; its streams are %s.",
                         settings.segment.c_str(), wanted.c_str(), names.c_str()),
                        ("set the 'streams' property to some of them (comma-separated), or leave it empty "
                         "for all; metadata generation %" G_GUINT64_FORMAT,
                         metadata.generation));
      return false;
    }
    selected.push_back(static_cast<uint16_t>(i));
  }
  return true;
}

// "src_<stream name>", every character that a gst-launch pad reference cannot hold replaced by '_';
// "src_stream<index>" for a stream without a name; "_<index>" appended while another pad has the name.
static std::string gst_shmx_src_pad_name(GstShmxSrc* self, const std::string& stream_name, uint16_t index) {
  std::string name = "src_";
  if (stream_name.empty()) name += "stream" + std::to_string(index);
  for (char c : stream_name) name += g_ascii_isalnum(c) || c == '_' || c == '-' ? c : '_';
  while (GstPad* existing = gst_element_get_static_pad(GST_ELEMENT(self), name.c_str())) {
    gst_object_unref(existing);
    name += "_" + std::to_string(index);
  }
  return name;
}

static gboolean gst_shmx_src_stream_pad_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  switch (GST_QUERY_TYPE(query)) {
    case GST_QUERY_CAPS: {
      GstCaps* filter = nullptr;
      gst_query_parse_caps(query, &filter);
      GstCaps* caps = gst_pad_get_current_caps(pad);
      if (!caps) caps = gst_pad_get_pad_template_caps(pad);
      if (filter) {
        GstCaps* intersection = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
        gst_caps_unref(caps);
        caps = intersection;
      }
      gst_query_set_caps_result(query, caps);
      gst_caps_unref(caps);
      return TRUE;
    }
    case GST_QUERY_LATENCY:
      // Every stream leaves at the same time as the one on 'src': the same live latency.
      return gst_pad_query(GST_BASE_SRC_PAD(parent), query);
    default:
      return gst_pad_query_default(pad, parent, query);
  }
}

static void gst_shmx_src_queue_upstream_event(GstShmxSrc* self, GstEvent* event);

static gboolean gst_shmx_src_stream_pad_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  GstShmxSrc* self = GST_SHMX_SRC(parent);
  if (gst_shmx::is_forwarded_upstream_event(event)) {
    GST_DEBUG_OBJECT(pad, "forwarding %" GST_PTR_FORMAT " to the writer", event);
    gst_shmx_src_queue_upstream_event(self, event);
    gst_event_unref(event);
    return TRUE;
  }
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_RECONFIGURE:
    case GST_EVENT_QOS:
    case GST_EVENT_LATENCY:
      // Nothing to do: the source neither negotiates nor paces its output.
      gst_event_unref(event);
      return TRUE;
    default:
      return gst_pad_event_default(pad, parent, event);
  }
}

// Sends stream-start (in the group of 'src', a stream id of its own), the caps and the segment of 'src' on
// a sometimes pad, as 'src' has them.
static void gst_shmx_src_start_stream(GstShmxSrc* self, SrcStream& stream) {
  guint group_id = 0;
  bool has_group = false;
  if (GstEvent* start = gst_pad_get_sticky_event(GST_BASE_SRC_PAD(self), GST_EVENT_STREAM_START, 0)) {
    has_group = gst_event_parse_group_id(start, &group_id);
    gst_event_unref(start);
  }
  gchar* stream_id = gst_pad_create_stream_id(stream.pad, GST_ELEMENT(self), GST_PAD_NAME(stream.pad) + 4);
  GstEvent* start = gst_event_new_stream_start(stream_id);
  g_free(stream_id);
  if (has_group) gst_event_set_group_id(start, group_id);
  gst_pad_push_event(stream.pad, start);
  if (stream.caps) gst_pad_push_event(stream.pad, gst_event_new_caps(stream.caps));
  GstSegment segment;
  GST_OBJECT_LOCK(self);
  gst_segment_copy_into(&GST_BASE_SRC(self)->segment, &segment);
  GST_OBJECT_UNLOCK(self);
  gst_pad_push_event(stream.pad, gst_event_new_segment(&segment));
  stream.started = true;
}

// Removes the pad of a stream: one the writer no longer has (after EOS on it, `eos`), or every one when
// the element stops.
static void gst_shmx_src_remove_stream(GstShmxSrc* self, SrcStream& stream, bool eos) {
  GST_INFO_OBJECT(self, "removing pad %s of stream '%s'", GST_PAD_NAME(stream.pad), stream.name.c_str());
  if (eos && stream.started) gst_pad_push_event(stream.pad, gst_event_new_eos());
  gst_pad_set_active(stream.pad, FALSE);
  gst_element_remove_pad(GST_ELEMENT(self), stream.pad);
  gst_object_unref(stream.pad);
  gst_caps_replace(&stream.caps, nullptr);
}

// A new session: every stream starts again with a DISCONT buffer and no sequence number seen.
static void gst_shmx_src_new_session(SrcState& state) {
  auto restart = [](SrcStream& stream) {
    stream.last_seq = 0;
    stream.discont = true;
    stream.frames_skipped = false;
  };
  restart(state.primary);
  for (SrcStream& stream : state.secondaries) restart(stream);
}

// Reads the metadata of the attached segment and sets up the selected streams: the first one's caps on
// 'src', a sometimes pad for each other one (kept while the writer keeps the stream, added for a new
// stream, removed for a stream gone), then no-more-pads. Streaming thread only.
static GstFlowReturn gst_shmx_src_update_streams(GstShmxSrc* self, const SrcSettings& settings) {
  SrcState& state = *self->state;
  shmx::Result<shmx::Metadata> metadata = state.client.metadata();
  if (!metadata) {
    gst_shmx_src_post_error(self, settings.segment, metadata.status());
    return GST_FLOW_ERROR;
  }
  std::vector<uint16_t> selected;
  if (!gst_shmx_src_select_streams(self, settings, *metadata, selected)) return GST_FLOW_ERROR;
  state.metadata_generation = metadata->generation;
  state.session_id = state.client.session_id();

  // The first stream, on 'src'.
  const shmx::StreamInfo& first = metadata->streams[selected[0]];
  if (state.primary.index != selected[0] || state.primary.name != first.name) {
    state.primary.index = selected[0];
    state.primary.name = first.name;
    state.primary.last_seq = 0;
    state.primary.discont = true;
  }
  GstCaps* caps = gst_shmx_src_stream_caps(self, first);
  GST_OBJECT_LOCK(self);
  const bool same = state.primary.caps && gst_caps_is_equal(state.primary.caps, caps);
  if (!same) gst_caps_replace(&state.primary.caps, caps);
  GST_OBJECT_UNLOCK(self);
  if (!same) {
    GST_INFO_OBJECT(self, "caps of stream '%s' of segment '%s' on src: %" GST_PTR_FORMAT, first.name.c_str(),
                    settings.segment.c_str(), caps);
    state.caps_changes++;
    // Asked first: a refused caps event is only noticed at the first buffer, as a bare not-negotiated.
    GstPad* pad = GST_BASE_SRC_PAD(self);
    if ((gst_pad_is_linked(pad) && !gst_pad_peer_query_accept_caps(pad, caps)) ||
        !gst_base_src_set_caps(GST_BASE_SRC(self), caps)) {
      GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                        ("Downstream does not accept the caps of segment '%s'.", settings.segment.c_str()),
                        ("caps %" GST_PTR_FORMAT, caps));
      gst_caps_unref(caps);
      return GST_FLOW_NOT_NEGOTIATED;
    }
  }
  gst_caps_unref(caps);

  // The others, on sometimes pads. A pad stays while the writer has a selected stream of its name (a
  // writer that releases a request pad renumbers the streams after it); unnamed streams by index.
  std::vector<SrcStream> previous;
  {
    std::lock_guard<std::mutex> locker(state.pads_lock);
    previous.swap(state.secondaries);
  }
  std::vector<SrcStream> next;
  for (SrcStream& stream : previous) {
    auto found = std::find_if(selected.begin() + 1, selected.end(), [&](uint16_t index) {
      const std::string& name = metadata->streams[index].name;
      return stream.name.empty() ? index == stream.index && name.empty() : name == stream.name;
    });
    if (found != selected.end()) {
      stream.index = *found;
      next.push_back(stream);
    } else {
      gst_shmx_src_remove_stream(self, stream, true);
    }
  }
  bool added = false;
  for (auto index = selected.begin() + 1; index != selected.end(); ++index) {
    const shmx::StreamInfo& info = metadata->streams[*index];
    auto it = std::find_if(next.begin(), next.end(), [&](const SrcStream& s) { return s.index == *index; });
    const bool fresh = it == next.end();
    if (fresh) {
      SrcStream stream;
      stream.index = *index;
      stream.name = info.name;
      const std::string pad_name = gst_shmx_src_pad_name(self, info.name, *index);
      GstPadTemplate* templ = gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(self), "src_%s");
      stream.pad = GST_PAD(gst_object_ref_sink(gst_pad_new_from_template(templ, pad_name.c_str())));
      gst_pad_set_query_function(stream.pad, gst_shmx_src_stream_pad_query);
      gst_pad_set_event_function(stream.pad, gst_shmx_src_stream_pad_event);
      gst_pad_set_active(stream.pad, TRUE);
      next.push_back(stream);
      it = next.end() - 1;
    }
    SrcStream& stream = *it;
    caps = gst_shmx_src_stream_caps(self, info);
    if (!stream.caps || !gst_caps_is_equal(stream.caps, caps)) {
      GST_INFO_OBJECT(self, "caps of stream '%s' of segment '%s' on %s: %" GST_PTR_FORMAT, info.name.c_str(),
                      settings.segment.c_str(), GST_PAD_NAME(stream.pad), caps);
      gst_caps_replace(&stream.caps, caps);
      state.caps_changes++;
      if (stream.started) gst_pad_push_event(stream.pad, gst_event_new_caps(caps));
    }
    gst_caps_unref(caps);
    if (!stream.started) gst_shmx_src_start_stream(self, stream);
    if (fresh) {
      GST_INFO_OBJECT(self, "stream '%s' of segment '%s' on new pad %s", info.name.c_str(),
                      settings.segment.c_str(), GST_PAD_NAME(stream.pad));
      gst_element_add_pad(GST_ELEMENT(self), stream.pad);
      added = true;
    }
  }
  {
    std::lock_guard<std::mutex> locker(state.pads_lock);
    state.secondaries.swap(next);
  }
  if (added || !state.pads_announced) {
    state.pads_announced = true;
    gst_element_no_more_pads(GST_ELEMENT(self));
  }
  return GST_FLOW_OK;
}

// 'src' passes its EOS (from the writer, the application, or after an error) and its later segments on to
// the sometimes pads.
static GstPadProbeReturn gst_shmx_src_src_probe(GstPad* /*pad*/, GstPadProbeInfo* info, gpointer user_data) {
  GstShmxSrc* self = GST_SHMX_SRC(user_data);
  SrcState& state = *self->state;
  GstEvent* event = GST_PAD_PROBE_INFO_EVENT(info);
  if (GST_EVENT_TYPE(event) != GST_EVENT_EOS && GST_EVENT_TYPE(event) != GST_EVENT_SEGMENT)
    return GST_PAD_PROBE_OK;
  std::vector<GstPad*> pads;
  {
    std::lock_guard<std::mutex> locker(state.pads_lock);
    // The first segment of 'src' is the one the sometimes pads have a copy of already.
    if (GST_EVENT_TYPE(event) == GST_EVENT_SEGMENT && !std::exchange(state.src_segment_seen, true))
      return GST_PAD_PROBE_OK;
    for (const SrcStream& stream : state.secondaries)
      if (stream.started) pads.push_back(GST_PAD(gst_object_ref(stream.pad)));
  }
  for (GstPad* pad : pads) {
    gst_pad_push_event(pad, gst_event_ref(event));
    gst_object_unref(pad);
  }
  return GST_PAD_PROBE_OK;
}

// ---------------------------------------------------------------------------
// Frames to buffers
// ---------------------------------------------------------------------------

// Keeps `meta` on its buffer when the buffer returns to the pool, to be rewritten for the next frame.
static void gst_shmx_src_mark_pooled(GstMeta* meta) {
  GST_META_FLAGS(meta) = static_cast<GstMetaFlags>(GST_META_FLAGS(meta) | GST_META_FLAG_POOLED);
}

// Sets a reference timestamp (publish or capture time) on a pool buffer: the meta it kept from its last
// frame (pooled), or a new one the first time. GST_CLOCK_TIME_NONE removes a kept one.
static void gst_shmx_src_set_reference_time(GstBuffer* buffer, GstCaps* reference, uint64_t ns) {
  gpointer iter = nullptr;
  while (GstMeta* meta =
             gst_buffer_iterate_meta_filtered(buffer, &iter, GST_REFERENCE_TIMESTAMP_META_API_TYPE)) {
    auto* timestamp = reinterpret_cast<GstReferenceTimestampMeta*>(meta);
    if (timestamp->reference == reference) {
      if (ns == gst_shmx::kNoTime) {
        gst_buffer_remove_meta(buffer, meta);
        return;
      }
      timestamp->timestamp = ns;
      timestamp->duration = GST_CLOCK_TIME_NONE;
      return;
    }
  }
  if (ns == gst_shmx::kNoTime) return;
  GstReferenceTimestampMeta* meta = gst_buffer_add_reference_timestamp_meta(buffer, reference, ns, GST_CLOCK_TIME_NONE);
  gst_shmx_src_mark_pooled(&meta->parent);
}

// The kTlvStreamSeq of `stream` in a frame; false when the frame has none (writers other than shmxsink).
static bool gst_shmx_src_stream_seq(const shmx::FrameView& frame, uint16_t stream, uint64_t& seq) {
  shmx::TlvView tlv;
  if (!shmx::find_tlv(frame.payload, frame.payload_size, gst_shmx::kTlvStreamSeq, stream, tlv)) return false;
  if (tlv.length != sizeof(seq)) return false;  // not this encoding: as if absent (output every frame)
  std::memcpy(&seq, tlv.value, sizeof(seq));
  return true;
}

// Builds the buffer of stream `index` from its `data` in a frame: the slot itself (taking `hold`, or a
// reference to `shared` when several buffers share the slot) or a copy (copy=true, or the library served
// a copy), buffer info, timestamps, publish time. FLUSHING when stopping.
static GstFlowReturn gst_shmx_src_buffer_from_frame(GstShmxSrc* self, const shmx::FrameView& frame,
                                                    uint16_t index, const shmx::TlvView& data,
                                                    ScopedHold& hold, GstShmxSharedHold* shared,
                                                    GstBuffer** out) {
  SrcState& state = *self->state;
  const SrcSettings& settings = state.settings;
  GstBuffer* buffer = nullptr;
  GstFlowReturn flow = gst_buffer_pool_acquire_buffer(state.pool, &buffer, nullptr);
  if (flow != GST_FLOW_OK) return flow;
  if (shared && !settings.copy) {
    gst_shmx_frame_buffer_wrap_shared(buffer, data.value, data.length, shared);
    state.frames_zero_copy++;
  } else if (hold.valid() && !settings.copy) {
    gst_shmx_frame_buffer_wrap(buffer, data.value, data.length, hold.take());
    state.frames_zero_copy++;
  } else if (gst_shmx_frame_buffer_copy(buffer, data.value, data.length)) {
    state.frames_copied++;
  } else {
    gst_buffer_unref(buffer);
    GST_ELEMENT_ERROR(self, RESOURCE, NO_SPACE_LEFT,
                      ("Out of memory copying a frame of %u bytes.", data.length), (nullptr));
    return GST_FLOW_ERROR;
  }

  gst_shmx::BufferInfo info;
  shmx::TlvView info_tlv;
  const bool has_info =
      shmx::find_tlv(frame.payload, frame.payload_size, gst_shmx::kTlvBufferInfo, index, info_tlv) &&
      gst_shmx::decode_buffer_info(info_tlv.value, info_tlv.length, info);
  if (has_info) {
    if (!gst_shmx::apply_buffer_info(info, buffer))
      GST_WARNING_OBJECT(
          self, "video meta of stream %u of frame %" G_GUINT64_FORMAT " does not fit its data: left out",
          index, frame.header.frame_id);
  } else {
    GST_DEBUG_OBJECT(self,
                     "stream %u of frame %" G_GUINT64_FORMAT " has no buffer info (not written by shmxsink)",
                     index, frame.header.frame_id);
    if (GstVideoMeta* stale = gst_buffer_get_video_meta(buffer)) gst_buffer_remove_meta(buffer, &stale->meta);
  }
  // Kept with the buffer when it returns to the pool, and rewritten for its next frame.
  if (GstVideoMeta* meta = gst_buffer_get_video_meta(buffer)) gst_shmx_src_mark_pooled(&meta->meta);

  uint64_t base_monotonic = 0;
  GstClockTime element_base_time = GST_CLOCK_TIME_NONE;
  if (settings.timestamp_mode == GST_SHMX_SRC_TIMESTAMP_MODE_CLOCK &&
      state.clock.base_time(GST_ELEMENT(self), base_monotonic, &element_base_time)) {
    // Without a capture time (no clock at the writer), the publish time is the best estimate.
    const uint64_t pts_monotonic =
        info.pts_monotonic_ns != gst_shmx::kNoTime ? info.pts_monotonic_ns : frame.header.publish_ns;
    GstClockTime pts = GST_CLOCK_TIME_NONE, dts = GST_CLOCK_TIME_NONE;
    state.timeline.map(pts_monotonic, info.dts_monotonic_ns, frame.header.publish_ns, shmx::monotonic_ns(),
                       base_monotonic, element_base_time, frame.header.session_id,
                       index, pts, dts);
    GST_BUFFER_PTS(buffer) = pts;
    GST_BUFFER_DTS(buffer) = dts;
    if (state.timeline.take_latency_changed()) {
      GST_INFO_OBJECT(self, "latency now %" GST_TIME_FORMAT " (the writer's capture-to-publish delay)",
                      GST_TIME_ARGS(state.timeline.latency()));
      gst_element_post_message(GST_ELEMENT(self), gst_message_new_latency(GST_OBJECT(self)));
    }
  }

  static GstCaps* publish_reference = gst_static_caps_get(&publish_time_caps);
  static GstCaps* capture_reference = gst_static_caps_get(&capture_time_caps);
  gst_shmx_src_set_reference_time(buffer, publish_reference, frame.header.publish_ns);
  gst_shmx_src_set_reference_time(buffer, capture_reference, info.pts_monotonic_ns);
  *out = buffer;
  return GST_FLOW_OK;
}

// Pushes a buffer on a sometimes pad. Not linked, flushing (while the element is not) and EOS downstream
// of one pad concern that branch only: the buffer is dropped and the other streams go on.
static GstFlowReturn gst_shmx_src_push_secondary(GstShmxSrc* self, SrcStream& stream, GstBuffer* buffer) {
  SrcState& state = *self->state;
  const GstFlowReturn flow = gst_pad_push(stream.pad, buffer);
  switch (flow) {
    case GST_FLOW_OK:
      return GST_FLOW_OK;
    case GST_FLOW_NOT_LINKED:
      state.not_linked++;
      GST_DEBUG_OBJECT(self, "%s is not linked: buffer of stream '%s' dropped", GST_PAD_NAME(stream.pad),
                       stream.name.c_str());
      return GST_FLOW_OK;
    case GST_FLOW_FLUSHING:
      if (state.flushing) return GST_FLOW_FLUSHING;
      GST_DEBUG_OBJECT(self, "downstream of %s is flushing: buffer dropped", GST_PAD_NAME(stream.pad));
      return GST_FLOW_OK;
    case GST_FLOW_EOS:
      GST_DEBUG_OBJECT(self, "downstream of %s is at EOS: buffer dropped", GST_PAD_NAME(stream.pad));
      return GST_FLOW_OK;
    default:
      GST_ELEMENT_ERROR(self, STREAM, FAILED,
                        ("Internal data stream error on pad %s (stream '%s' of segment '%s').",
                         GST_PAD_NAME(stream.pad), stream.name.c_str(), state.settings.segment.c_str()),
                        ("streaming stopped, reason %s (%d)", gst_flow_get_name(flow), flow));
      return flow;
  }
}

// Outputs a frame: each selected stream present in it with a new buffer (a kTlvStreamSeq other than the
// one last output, or none) gets one; those on sometimes pads are pushed from here, the one for 'src' is
// returned in `primary` (nullptr when the frame has no new buffer for it).
static GstFlowReturn gst_shmx_src_output_frame(GstShmxSrc* self, const shmx::FrameView& frame,
                                               ScopedHold& hold, GstBuffer** primary) {
  SrcState& state = *self->state;
  *primary = nullptr;
  if (frame.skipped) {
    state.frames_skipped += frame.skipped;
    GST_DEBUG_OBJECT(self,
                     "skipped %" G_GUINT64_FORMAT " frame(s) before frame %" G_GUINT64_FORMAT
                     " (%" G_GUINT64_FORMAT " in total)",
                     frame.skipped, frame.header.frame_id, state.frames_skipped.load());
    state.primary.frames_skipped = true;
    for (SrcStream& stream : state.secondaries) stream.frames_skipped = true;
  }

  std::vector<StreamOutput>& outputs = state.outputs;  // reused: no allocation per frame
  outputs.clear();
  auto consider = [&](SrcStream& stream) {
    StreamOutput output;
    output.stream = &stream;
    if (!frame.stream_data(stream.index, output.data)) return;  // absent: no buffer on that stream yet
    output.has_seq = gst_shmx_src_stream_seq(frame, stream.index, output.seq);
    if (output.has_seq && output.seq == stream.last_seq) {
      state.repeats_skipped++;  // the writer repeats a buffer already output
      return;
    }
    outputs.push_back(output);
  };
  consider(state.primary);
  for (SrcStream& stream : state.secondaries) consider(stream);
  if (outputs.empty()) {
    GST_LOG_OBJECT(self, "frame %" G_GUINT64_FORMAT " has no new buffer for the selected streams",
                   frame.header.frame_id);
    return GST_FLOW_OK;
  }
  state.frames_received++;

  // Several buffers wrapping one slot share its hold; one buffer takes it alone.
  GstShmxSharedHold* shared = outputs.size() > 1 && hold.valid() && !state.settings.copy
                                  ? gst_shmx_shared_hold_new(hold.take())
                                  : nullptr;
  GstFlowReturn result = GST_FLOW_OK;
  bool pushed = false;
  for (const StreamOutput& output : outputs) {
    SrcStream& stream = *output.stream;
    GstBuffer* buffer = nullptr;
    result = gst_shmx_src_buffer_from_frame(self, frame, stream.index, output.data, hold, shared, &buffer);
    if (result != GST_FLOW_OK) break;
    // Buffers of this stream were lost: its sequence numbers jumped, or (without them) frames were skipped.
    const bool lost =
        output.has_seq && stream.last_seq ? output.seq != stream.last_seq + 1 : stream.frames_skipped;
    if (stream.discont || lost) GST_BUFFER_FLAG_SET(buffer, GST_BUFFER_FLAG_DISCONT);
    stream.discont = false;
    stream.frames_skipped = false;
    stream.last_seq = output.has_seq ? output.seq : 0;
    GST_LOG_OBJECT(self, "frame %" G_GUINT64_FORMAT ", stream '%s': %" GST_PTR_FORMAT, frame.header.frame_id,
                   stream.name.c_str(), buffer);
    if (&stream == &state.primary) {
      *primary = buffer;
      continue;
    }
    pushed = true;
    result = gst_shmx_src_push_secondary(self, stream, buffer);
    if (result != GST_FLOW_OK) break;
  }
  if (shared) gst_shmx_shared_hold_unref(shared);
  if (result != GST_FLOW_OK) {
    if (*primary) gst_buffer_unref(std::exchange(*primary, nullptr));
    return result;
  }

  // 'src' not linked: while a sometimes pad is, its buffers are dropped and the other streams flow; with
  // no pad linked at all the source fails as a single-pad source does.
  if (!state.secondaries.empty() && !gst_pad_is_linked(GST_BASE_SRC_PAD(self))) {
    bool any_linked = false;
    for (const SrcStream& stream : state.secondaries)
      any_linked = any_linked || gst_pad_is_linked(stream.pad);
    if (any_linked && *primary) {
      state.not_linked++;
      GST_DEBUG_OBJECT(self, "src is not linked: buffer of stream '%s' dropped", state.primary.name.c_str());
      gst_buffer_unref(std::exchange(*primary, nullptr));
    } else if (!any_linked && pushed && !*primary) {
      return GST_FLOW_NOT_LINKED;
    }
  }
  return GST_FLOW_OK;
}

static GstFlowReturn gst_shmx_src_create(GstPushSrc* push_src, GstBuffer** out) {
  GstShmxSrc* self = GST_SHMX_SRC(push_src);
  SrcState& state = *self->state;
  const SrcSettings& settings = state.settings;
  // copy=true holds too, but only while it copies: one copy straight out of the slot, which the writer
  // leaves alone meanwhile, instead of the library's copy (validated against the writer) plus ours.
  const shmx::ReadMode mode = shmx::ReadMode::Hold;

  for (;;) {
    if (state.flushing) return GST_FLOW_FLUSHING;

    if (!state.client.is_open()) {
      GstFlowReturn flow = gst_shmx_src_wait_for_writer(self, settings);
      if (flow != GST_FLOW_OK) return flow;
      if (state.lost_writer)
        GST_INFO_OBJECT(self, "a new writer is attached to segment '%s': resuming", settings.segment.c_str());
      state.lost_writer = false;
      gst_shmx_src_new_session(state);
      flow = gst_shmx_src_update_streams(self, settings);
      if (flow != GST_FLOW_OK) return flow;
    }
    gst_shmx_src_send_events(self);

    shmx::Result<shmx::FrameView> frame = state.client.wait_next(kFrameWaitSliceNs, mode);
    if (!frame) {
      switch (frame.code()) {
        case shmx::Errc::Timeout:
        case shmx::Errc::NoFrame:
          continue;
        case shmx::Errc::Interrupted:
          if (gst_shmx_src_interrupted_for_flush(self)) return GST_FLOW_FLUSHING;
          continue;
        case shmx::Errc::WriterGone:
          state.writer_losses++;
          state.lost_writer = true;
          GST_ELEMENT_WARNING(self, RESOURCE, READ,
                              ("The writer of segment '%s' is gone without EOS; waiting for a new writer.",
                               settings.segment.c_str()),
                              ("%s", frame.status().to_string().c_str()));
          state.client.close();
          continue;
        case shmx::Errc::Closed:
          // A writer that stopped without EOS, or one that grows its slots: wait for the next one.
          GST_INFO_OBJECT(self, "writer closed segment '%s' without EOS; waiting for a new writer",
                          settings.segment.c_str());
          state.client.close();
          continue;
        default:
          gst_shmx_src_post_error(self, settings.segment, frame.status());
          return GST_FLOW_ERROR;
      }
    }

    if (frame->session_mismatch) {
      // The name now belongs to another writer session (a restart, or slots grown): follow it.
      if (frame->writer_died) {
        state.writer_losses++;
        GST_ELEMENT_WARNING(self, RESOURCE, READ,
                            ("The writer of segment '%s' died without EOS; a new writer took over.",
                             settings.segment.c_str()),
                            ("following the new session"));
      }
      GST_INFO_OBJECT(self, "segment '%s' has a new session: reopening", settings.segment.c_str());
      if (frame->held) shmx::Client::release(frame->hold);
      shmx::Status reopened = state.client.reopen();
      if (!reopened) {
        GST_DEBUG_OBJECT(self, "reopen failed (%s): waiting for the writer", reopened.to_string().c_str());
        state.client.close();
        continue;
      }
      state.sessions++;
      gst_shmx_src_new_session(state);
      GstFlowReturn flow = gst_shmx_src_update_streams(self, settings);
      if (flow != GST_FLOW_OK) return flow;
      continue;
    }

    ScopedHold hold(frame.value());  // released on every path that does not hand it to a buffer

    if (frame->header.session_id != state.session_id ||
        frame->header.metadata_generation != state.metadata_generation) {
      GstFlowReturn flow = gst_shmx_src_update_streams(self, settings);
      if (flow != GST_FLOW_OK) return flow;
      if (frame->header.metadata_generation != state.metadata_generation) {
        // Written against older metadata than the streams just read: the next frame matches them.
        GST_DEBUG_OBJECT(self, "frame %" G_GUINT64_FORMAT " predates the current streams: skipped",
                         frame->header.frame_id);
        continue;
      }
    }

    if (frame->eos()) {
      GST_INFO_OBJECT(self, "EOS from the writer of segment '%s'", settings.segment.c_str());
      return GST_FLOW_EOS;  // basesrc pushes EOS on 'src'; the probe passes it to the other pads
    }

    GstBuffer* buffer = nullptr;
    GstFlowReturn flow = gst_shmx_src_output_frame(self, frame.value(), hold, &buffer);
    if (flow != GST_FLOW_OK) return flow;
    if (!buffer) continue;  // nothing new for 'src' in this frame: wait for the next one
    *out = buffer;
    return GST_FLOW_OK;
  }
}

// ---------------------------------------------------------------------------
// GstBaseSrc
// ---------------------------------------------------------------------------

static gboolean gst_shmx_src_start(GstBaseSrc* base_src) {
  GstShmxSrc* self = GST_SHMX_SRC(base_src);
  SrcState& state = *self->state;
  const SrcSettings settings = gst_shmx_src_settings(self);

  if (settings.segment.empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("No segment name given."),
                      ("set the 'segment' property, e.g. shmxsrc segment=cam0"));
    return FALSE;
  }
  if (shmx::Status valid = shmx::validate_segment_name(settings.segment); !valid) {
    gst_shmx_src_post_error(self, settings.segment, valid);
    return FALSE;
  }
  for (auto name = settings.streams.begin(); name != settings.streams.end(); ++name) {
    if (std::find(settings.streams.begin(), name, *name) != name) {
      GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("Stream '%s' is named twice in 'streams'.", name->c_str()),
                        ("each stream can be output once; name it once"));
      return FALSE;
    }
  }

  state.settings = settings;
  if (!state.pool) state.pool = gst_shmx_frame_pool_new();
  if (!gst_buffer_pool_set_active(state.pool, TRUE)) {
    GST_ELEMENT_ERROR(self, RESOURCE, FAILED, ("Could not activate the buffer pool."), (nullptr));
    return FALSE;
  }
  state.flushing = false;
  state.client.clear_interrupt();
  state.metadata_generation = 0;
  state.session_id = 0;
  state.lost_writer = false;
  state.timeline.reset();
  state.primary.index = 0;
  state.primary.name.clear();
  gst_shmx_src_new_session(state);
  {
    std::lock_guard<std::mutex> locker(state.pads_lock);
    state.src_segment_seen = false;
  }
  state.pads_announced = false;
  state.frames_received = 0;
  state.frames_zero_copy = 0;
  state.frames_copied = 0;
  state.frames_skipped = 0;
  state.sessions = 0;
  state.writer_losses = 0;
  state.caps_changes = 0;
  state.events_forwarded = 0;
  state.repeats_skipped = 0;
  state.not_linked = 0;
  return TRUE;
}

static gboolean gst_shmx_src_stop(GstBaseSrc* base_src) {
  GstShmxSrc* self = GST_SHMX_SRC(base_src);
  SrcState& state = *self->state;
  state.client.close();  // buffers still downstream keep their slots mapped until they are dropped
  if (state.pool) {
    // Buffers still downstream come back to the inactive pool and are freed, releasing their holds.
    gst_buffer_pool_set_active(state.pool, FALSE);
    gst_object_unref(state.pool);
    state.pool = nullptr;
  }
  state.clock.reset();
  {
    std::lock_guard<std::mutex> locker(state.events_lock);
    state.pending_events.clear();
    state.events_pending.store(false, std::memory_order_relaxed);  // relaxed: under events_lock
  }
  GST_OBJECT_LOCK(self);
  gst_caps_replace(&state.primary.caps, nullptr);
  GST_OBJECT_UNLOCK(self);
  return TRUE;
}

// The sometimes pads go when the element stops, as a demuxer's do: GstBaseSrc starts streaming with 'src'
// its only source pad, and the next start adds them again once the writer's streams are known.
static GstStateChangeReturn gst_shmx_src_change_state(GstElement* element, GstStateChange transition) {
  GstShmxSrc* self = GST_SHMX_SRC(element);
  const GstStateChangeReturn result = GST_ELEMENT_CLASS(parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    std::vector<SrcStream> streams;
    {
      std::lock_guard<std::mutex> locker(self->state->pads_lock);
      streams.swap(self->state->secondaries);
    }
    for (SrcStream& stream : streams) gst_shmx_src_remove_stream(self, stream, false);
  }
  return result;
}

static gboolean gst_shmx_src_unlock(GstBaseSrc* base_src) {
  GstShmxSrc* self = GST_SHMX_SRC(base_src);
  self->state->flushing = true;  // before interrupt(): see gst_shmx_src_interrupted_for_flush()
  self->state->client.interrupt();
  return TRUE;
}

static gboolean gst_shmx_src_unlock_stop(GstBaseSrc* base_src) {
  GstShmxSrc* self = GST_SHMX_SRC(base_src);
  self->state->flushing = false;
  self->state->client.clear_interrupt();
  return TRUE;
}

static GstCaps* gst_shmx_src_get_caps(GstBaseSrc* base_src, GstCaps* filter) {
  GstShmxSrc* self = GST_SHMX_SRC(base_src);
  GstCaps* caps = nullptr;
  GST_OBJECT_LOCK(self);
  if (self->state->primary.caps) caps = gst_caps_ref(self->state->primary.caps);
  GST_OBJECT_UNLOCK(self);
  if (!caps) caps = gst_pad_get_pad_template_caps(GST_BASE_SRC_PAD(base_src));
  if (filter) {
    GstCaps* intersection = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref(caps);
    caps = intersection;
  }
  return caps;
}

// Queues an upstream event for the writer (sent by the streaming thread, the only one allowed to
// Client::send) and wakes the streaming thread. Does not take `event`.
static void gst_shmx_src_queue_upstream_event(GstShmxSrc* self, GstEvent* event) {
  SrcState& state = *self->state;
  {
    std::lock_guard<std::mutex> locker(state.events_lock);
    if (state.pending_events.size() >= kMaxPendingEvents) state.pending_events.pop_front();
    state.pending_events.push_back(gst_shmx::serialize_upstream_event(event));
    state.events_pending.store(true, std::memory_order_release);  // release: the events are queued
  }
  // See gst_shmx_src_interrupted_for_flush().
  state.client.interrupt();
}

static gboolean gst_shmx_src_event(GstBaseSrc* base_src, GstEvent* event) {
  GstShmxSrc* self = GST_SHMX_SRC(base_src);
  if (gst_shmx::is_forwarded_upstream_event(event)) {
    GST_DEBUG_OBJECT(self, "forwarding %" GST_PTR_FORMAT " to the writer", event);
    gst_shmx_src_queue_upstream_event(self, event);
    return TRUE;
  }
  return GST_BASE_SRC_CLASS(parent_class)->event(base_src, event);
}

// A live source: its buffers reach downstream the writer's capture-to-publish delay after their
// running time (timestamp-mode=clock), so that is the latency it reports (0 until the first frame,
// then a LATENCY message each time it grows).
static gboolean gst_shmx_src_query(GstBaseSrc* base_src, GstQuery* query) {
  GstShmxSrc* self = GST_SHMX_SRC(base_src);
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) {
    const GstClockTime latency = self->state->timeline.latency();
    const GstClockTime min = GST_CLOCK_TIME_IS_VALID(latency) ? latency : 0;
    GST_DEBUG_OBJECT(self, "latency: live, min %" GST_TIME_FORMAT, GST_TIME_ARGS(min));
    gst_query_set_latency(query, TRUE, min, GST_CLOCK_TIME_NONE);
    return TRUE;
  }
  return GST_BASE_SRC_CLASS(parent_class)->query(base_src, query);
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

static GstStructure* gst_shmx_src_stats(GstShmxSrc* self) {
  SrcState& state = *self->state;
  const shmx::ClientStats client = state.client.stats();
  return gst_structure_new(
      "shmx-src-stats", "frames-received", G_TYPE_UINT64, state.frames_received.load(), "frames-zero-copy",
      G_TYPE_UINT64, state.frames_zero_copy.load(), "frames-copied", G_TYPE_UINT64,
      state.frames_copied.load(), "frames-skipped", G_TYPE_UINT64, state.frames_skipped.load(), "torn-reads",
      G_TYPE_UINT64, client.torn_reads, "copy-fallbacks", G_TYPE_UINT64, client.copy_fallbacks, "sessions",
      G_TYPE_UINT64, state.sessions.load(), "writer-losses", G_TYPE_UINT64, state.writer_losses.load(),
      "caps-changes", G_TYPE_UINT64, state.caps_changes.load(), "events-forwarded", G_TYPE_UINT64,
      state.events_forwarded.load(), "repeats-skipped", G_TYPE_UINT64, state.repeats_skipped.load(),
      "not-linked", G_TYPE_UINT64, state.not_linked.load(), nullptr);
}

static void gst_shmx_src_set_property(GObject* object, guint prop_id, const GValue* value,
                                      GParamSpec* pspec) {
  GstShmxSrc* self = GST_SHMX_SRC(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_SEGMENT:
      g_free(self->segment);
      self->segment = g_value_dup_string(value);
      break;
    case PROP_TIMEOUT:
      self->timeout = g_value_get_uint(value);
      break;
    case PROP_WAIT_WARNING_INTERVAL:
      self->wait_warning_interval = g_value_get_uint(value);
      break;
    case PROP_COPY:
      self->copy = g_value_get_boolean(value);
      break;
    case PROP_TIMESTAMP_MODE:
      self->timestamp_mode = static_cast<GstShmxSrcTimestampMode>(g_value_get_enum(value));
      break;
    case PROP_READER_NAME:
      g_free(self->reader_name);
      self->reader_name = g_value_dup_string(value);
      break;
    case PROP_MAX_HELD_SLOTS:
      self->max_held_slots = g_value_get_uint(value);
      break;
    case PROP_STREAMS:
      g_free(self->streams);
      self->streams = g_value_dup_string(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_shmx_src_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstShmxSrc* self = GST_SHMX_SRC(object);
  if (prop_id == PROP_STATS) {
    g_value_take_boxed(value, gst_shmx_src_stats(self));
    return;
  }
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_SEGMENT:
      g_value_set_string(value, self->segment);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint(value, self->timeout);
      break;
    case PROP_WAIT_WARNING_INTERVAL:
      g_value_set_uint(value, self->wait_warning_interval);
      break;
    case PROP_COPY:
      g_value_set_boolean(value, self->copy);
      break;
    case PROP_TIMESTAMP_MODE:
      g_value_set_enum(value, self->timestamp_mode);
      break;
    case PROP_READER_NAME:
      g_value_set_string(value, self->reader_name);
      break;
    case PROP_MAX_HELD_SLOTS:
      g_value_set_uint(value, self->max_held_slots);
      break;
    case PROP_STREAMS:
      g_value_set_string(value, self->streams);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK(self);
}

// ---------------------------------------------------------------------------
// GObject
// ---------------------------------------------------------------------------

static void gst_shmx_src_finalize(GObject* object) {
  GstShmxSrc* self = GST_SHMX_SRC(object);
  gst_caps_replace(&self->state->primary.caps, nullptr);
  for (SrcStream& stream : self->state->secondaries) {
    gst_object_unref(stream.pad);
    gst_caps_replace(&stream.caps, nullptr);
  }
  if (self->state->pool) gst_object_unref(self->state->pool);
  delete self->state;
  g_free(self->segment);
  g_free(self->reader_name);
  g_free(self->streams);
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

static void gst_shmx_src_init(GstShmxSrc* self) {
  self->segment = g_strdup(DEFAULT_SEGMENT);
  self->timeout = DEFAULT_TIMEOUT;
  self->wait_warning_interval = DEFAULT_WAIT_WARNING_INTERVAL;
  self->copy = DEFAULT_COPY;
  self->timestamp_mode = DEFAULT_TIMESTAMP_MODE;
  self->reader_name = g_strdup(DEFAULT_READER_NAME);
  self->max_held_slots = DEFAULT_MAX_HELD_SLOTS;
  self->streams = g_strdup(DEFAULT_STREAMS);
  self->state = new SrcState();
  self->state->primary.pad = GST_BASE_SRC_PAD(self);
  gst_pad_add_probe(GST_BASE_SRC_PAD(self), GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, gst_shmx_src_src_probe, self,
                    nullptr);

  gst_base_src_set_live(GST_BASE_SRC(self), TRUE);
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
}

static void gst_shmx_src_class_init(GstShmxSrcClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseSrcClass* basesrc_class = GST_BASE_SRC_CLASS(klass);
  GstPushSrcClass* pushsrc_class = GST_PUSH_SRC_CLASS(klass);

  gobject_class->set_property = gst_shmx_src_set_property;
  gobject_class->get_property = gst_shmx_src_get_property;
  gobject_class->finalize = gst_shmx_src_finalize;

  const GParamFlags rw_ready =
      static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const GParamFlags read_only = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_property(
      gobject_class, PROP_SEGMENT,
      g_param_spec_string(
          "segment", "Segment",
          "Name of the shared-memory segment to read (as given to shmxsink segment=...). Required",
          DEFAULT_SEGMENT, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_TIMEOUT,
      g_param_spec_uint("timeout", "Timeout",
                        "Longest wait for a writer to appear, at start and after a writer is gone, before an "
                        "error (milliseconds); 0 = wait forever",
                        0, G_MAXUINT, DEFAULT_TIMEOUT, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_WAIT_WARNING_INTERVAL,
      g_param_spec_uint("wait-warning-interval", "Wait warning interval",
                        "While waiting for a writer, post a warning naming the segment this often (seconds); "
                        "0 = never",
                        0, 3600, DEFAULT_WAIT_WARNING_INTERVAL, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_COPY,
      g_param_spec_boolean("copy", "Copy",
                           "Copy every frame out of shared memory (for consumers that keep buffers a long "
                           "time) instead of pushing buffers that wrap the shared-memory slot (read-only, "
                           "zero copy; the slot is held until downstream drops the buffer)",
                           DEFAULT_COPY, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_MAX_HELD_SLOTS,
      g_param_spec_uint("max-held-slots", "Maximum held slots",
                        "Zero-copy buffers this reader may have alive at once (slots); past that, frames "
                        "are copied (copy-fallbacks in stats) so that the writer keeps free slots. 0 = a "
                        "quarter of the writer's slots (at least 1)",
                        0, shmx::kMaxSlots, DEFAULT_MAX_HELD_SLOTS, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_TIMESTAMP_MODE,
      g_param_spec_enum(
          "timestamp-mode", "Timestamp mode",
          "How buffers are stamped: 'clock' maps the writer's capture time (system monotonic clock) "
          "to this pipeline's running time; 'original' keeps the writer's PTS and DTS",
          GST_TYPE_SHMX_SRC_TIMESTAMP_MODE, DEFAULT_TIMESTAMP_MODE, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_READER_NAME,
      g_param_spec_string("reader-name", "Reader name",
                          "Name shown to the writer in its reader-stats and messages (up to 63 bytes); "
                          "NULL = this element's name",
                          DEFAULT_READER_NAME, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_STREAMS,
      g_param_spec_string("streams", "Streams",
                          "Streams of the segment to output, by name, comma-separated: the first on the "
                          "'src' pad, each other one on a sometimes pad 'src_<name>'. NULL or empty = every "
                          "stream of the segment (the first on 'src'). A name the segment does not have is "
                          "an error once the writer's streams are known",
                          DEFAULT_STREAMS, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed(
          "stats", "Statistics",
          "GstStructure 'shmx-src-stats': frames-received (frames that gave at least one buffer), "
          "frames-zero-copy (buffers wrapping a held slot), frames-copied (buffers copied), "
          "frames-skipped (frames the writer published that this reader never output), torn-reads, "
          "copy-fallbacks (copies because max-held-slots were held), sessions (writers attached to), "
          "writer-losses, caps-changes, events-forwarded, repeats-skipped (buffers a frame repeated "
          "from an earlier frame, not output again), not-linked (buffers dropped on a pad that was not "
          "linked)",
          GST_TYPE_STRUCTURE, read_only));

  gst_element_class_set_static_metadata(
      element_class, "Shared-memory latest-frame source", "Source/Network",
      "Outputs the latest frames of a shmx shared-memory segment with the writer's caps and timestamps, "
      "each stream on its own pad (src, then src_<stream name>); waits for the writer and follows its "
      "restarts; upstream events (force-key-unit, navigation, custom) go back to the writer's pipeline",
      "shmx developers");
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_add_static_pad_template(element_class, &stream_src_template);

  element_class->change_state = GST_DEBUG_FUNCPTR(gst_shmx_src_change_state);
  basesrc_class->start = GST_DEBUG_FUNCPTR(gst_shmx_src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR(gst_shmx_src_stop);
  basesrc_class->unlock = GST_DEBUG_FUNCPTR(gst_shmx_src_unlock);
  basesrc_class->unlock_stop = GST_DEBUG_FUNCPTR(gst_shmx_src_unlock_stop);
  basesrc_class->get_caps = GST_DEBUG_FUNCPTR(gst_shmx_src_get_caps);
  basesrc_class->event = GST_DEBUG_FUNCPTR(gst_shmx_src_event);
  basesrc_class->query = GST_DEBUG_FUNCPTR(gst_shmx_src_query);
  pushsrc_class->create = GST_DEBUG_FUNCPTR(gst_shmx_src_create);

  gst_type_mark_as_plugin_api(GST_TYPE_SHMX_SRC_TIMESTAMP_MODE, static_cast<GstPluginAPIFlags>(0));
  GST_DEBUG_CATEGORY_INIT(gst_shmx_src_debug, "shmxsrc", 0, "shmx shared-memory source");
}
