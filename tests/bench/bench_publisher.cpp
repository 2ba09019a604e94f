// SPDX-License-Identifier: MIT
// bench_publisher.cpp: the publisher role: stamps frames with CLOCK_MONOTONIC and hands them to one
// transport, paced or as fast as possible, and reports what it sent and the CPU it spent.
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <unordered_set>

#include "bench_common.h"
#include "bench_roles.h"
#include "shmx_server.h"

namespace bench {
namespace {

enum class PushResult {
  Sent,     // the transport took the frame
  Dropped,  // no buffer or slot was free; the frame was not sent (counted, not fatal)
  Failed,   // the transport failed; the run stops
};

// Hands stamped frames to one transport. Methods are called from the publisher's main thread.
class Outlet {
 public:
  virtual ~Outlet() = default;
  // Sets up the transport. On failure `reason` says why and `not_applicable` tells "this transport
  // cannot run this case" (e.g. no pool proposed) from an error. May rewrite `endpoint` (TCP port).
  virtual bool start(std::string& endpoint, std::string& reason, bool& not_applicable) = 0;
  virtual PushResult push(const FrameStamp& stamp) = 0;
  // Housekeeping between frames, about every 10 ms (bus errors, control rings). False on an error.
  virtual bool service() { return true; }
  virtual void stop() = 0;
  const std::string& error() const { return error_; }

 protected:
  std::string error_;
};

// ---------------------------------------------------------------------------------------------
// GStreamer publisher: appsrc (or a bare pad) feeding the transport's sink.
// ---------------------------------------------------------------------------------------------

class GstOutlet : public Outlet {
 public:
  GstOutlet(const Transport& transport, const RoleOptions& options)
      : transport_(transport), options_(options) {}
  ~GstOutlet() override { stop(); }

  bool start(std::string& endpoint, std::string& reason, bool& not_applicable) override;
  PushResult push(const FrameStamp& stamp) override;
  bool service() override;
  void stop() override;

 private:
  bool wait_rendered(unsigned count, uint64_t timeout_ns);
  void wait_for_backlog();
  bool set_up_sink_pool(std::string& reason);
  GstBuffer* own_buffer();
  GstFlowReturn push_buffer(GstBuffer* buffer);

  const Transport& transport_;
  const RoleOptions& options_;
  GstElement* pipeline_ = nullptr;
  GstElement* appsrc_ = nullptr;  // when options_.publisher == "appsrc"
  GstPad* src_pad_ = nullptr;     // appsrc's src pad, or our own pad ("pad" publisher)
  bool own_pad_ = false;
  GstCaps* caps_ = nullptr;
  GstBufferPool* own_pool_ = nullptr;       // buffers in the publisher's own memory (copy path)
  GstBufferPool* sink_pool_ = nullptr;      // the pool the sink proposed (zero copy)
  std::unordered_set<const void*> filled_;  // own-pool memory already written once
  std::atomic<unsigned> rendered_{0};       // buffers that reached the sink (start-up only)
  gulong probe_id_ = 0;
  GstElement* backlog_sink_ = nullptr;  // tcpserversink, whose queue bounds a full-speed publisher
  static constexpr guint kMaxBacklog = 4;
};

bool GstOutlet::start(std::string& endpoint, std::string& reason, bool& not_applicable) {
  not_applicable = false;
  caps_ = gst_caps_from_string(options_.format.caps().c_str());
  const std::string sink = publisher_sink_description(transport_, endpoint, options_.format);
  const bool use_appsrc = options_.publisher != "pad";
  const std::string description = use_appsrc ? "appsrc name=src ! " + sink : sink;

  GError* error = nullptr;
  GstElement* bin = gst_parse_bin_from_description(description.c_str(), FALSE, &error);
  if (bin == nullptr || error != nullptr) {
    reason = "cannot build '" + description + "': " + (error ? error->message : "unknown error");
    if (error) g_error_free(error);
    if (bin) gst_object_unref(bin);
    return false;
  }
  pipeline_ = gst_pipeline_new("publisher");
  gst_bin_add(GST_BIN(pipeline_), bin);

  if (use_appsrc) {
    appsrc_ = gst_bin_get_by_name(GST_BIN(bin), "src");
    // Live, time format, no timestamps from appsrc; block (rather than queue without bound) when the
    // transport is slower than the publisher.
    g_object_set(appsrc_, "caps", caps_, "is-live", TRUE, "format", GST_FORMAT_TIME, "do-timestamp", FALSE,
                 "block", TRUE, "max-buffers", static_cast<guint64>(2), "max-bytes", static_cast<guint64>(0),
                 nullptr);
    src_pad_ = gst_element_get_static_pad(appsrc_, "src");
  } else {
    GstPad* sink_pad = gst_bin_find_unlinked_pad(GST_BIN(bin), GST_PAD_SINK);
    if (sink_pad == nullptr) {
      reason = "no free sink pad in '" + description + "'";
      return false;
    }
    src_pad_ = gst_pad_new("bench-src", GST_PAD_SRC);
    own_pad_ = true;
    gst_pad_set_active(src_pad_, TRUE);
    const GstPadLinkReturn link = gst_pad_link(src_pad_, sink_pad);
    gst_object_unref(sink_pad);
    if (link != GST_PAD_LINK_OK) {
      reason = "cannot link the publisher pad to the sink";
      return false;
    }
  }

  if (gst_element_set_state(pipeline_, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE ||
      gst_element_get_state(pipeline_, nullptr, nullptr, 5 * GST_SECOND) == GST_STATE_CHANGE_FAILURE) {
    service();
    reason = "publisher pipeline did not start: " + (error_.empty() ? description : error_);
    return false;
  }
  if (own_pad_) {
    gst_pad_push_event(src_pad_, gst_event_new_stream_start("shmx-bench"));
    gst_pad_push_event(src_pad_, gst_event_new_caps(caps_));
    GstSegment segment;
    gst_segment_init(&segment, GST_FORMAT_TIME);
    gst_pad_push_event(src_pad_, gst_event_new_segment(&segment));
  }

  own_pool_ = gst_buffer_pool_new();
  GstStructure* config = gst_buffer_pool_get_config(own_pool_);
  gst_buffer_pool_config_set_params(config, caps_, static_cast<guint>(options_.format.bytes()), 4, 0);
  if (!gst_buffer_pool_set_config(own_pool_, config) || !gst_buffer_pool_set_active(own_pool_, TRUE)) {
    reason = "cannot activate the publisher's own buffer pool";
    return false;
  }

  // One frame first, so that caps reach the sink (which creates its segment or socket then) before
  // anything else is asked of it.
  GstPad* peer = gst_pad_get_peer(src_pad_);
  probe_id_ = gst_pad_add_probe(
      peer, GST_PAD_PROBE_TYPE_BUFFER,
      [](GstPad*, GstPadProbeInfo*, gpointer data) {
        static_cast<std::atomic<unsigned>*>(data)->fetch_add(1);
        return GST_PAD_PROBE_OK;
      },
      &rendered_, nullptr);
  FrameStamp first{now_ns(), 0, kPhaseWarmup, kStampMagic};
  GstBuffer* buffer = own_buffer();
  gst_buffer_fill(buffer, 0, &first, sizeof first);
  const GstFlowReturn flow = push_buffer(buffer);
  const bool arrived = flow == GST_FLOW_OK && wait_rendered(1, 5000000000ull);
  gst_pad_remove_probe(peer, probe_id_);
  gst_object_unref(peer);
  if (!arrived) {
    service();
    reason =
        "the first frame did not reach the sink (" + std::string(gst_flow_get_name(flow)) + ") " + error_;
    return false;
  }

  if (transport_.pool_publisher && !set_up_sink_pool(reason)) {
    not_applicable = error_.empty();
    return false;
  }
  if (transport_.family == Family::Tcp) {
    GstElement* tcp = gst_bin_get_by_name(GST_BIN(pipeline_), "sink");
    gint port = 0;
    g_object_get(tcp, "current-port", &port, nullptr);
    backlog_sink_ = tcp;
    endpoint = std::to_string(port);
  }
  return service();
}

bool GstOutlet::wait_rendered(unsigned count, uint64_t timeout_ns) {
  const uint64_t deadline = now_ns() + timeout_ns;
  while (rendered_.load() < count) {
    if (now_ns() > deadline || !service()) return false;
    usleep(1000);
  }
  return true;
}

// The zero-copy publisher: asks the sink for its pool with an ALLOCATION query, as a producing
// element's decide_allocation would, and allocates every frame from it.
bool GstOutlet::set_up_sink_pool(std::string& reason) {
  GstQuery* query = gst_query_new_allocation(caps_, TRUE);
  const bool answered = gst_pad_peer_query(src_pad_, query);
  guint size = 0, min_buffers = 0, max_buffers = 0;
  if (answered && gst_query_get_n_allocation_pools(query) > 0) {
    gst_query_parse_nth_allocation_pool(query, 0, &sink_pool_, &size, &min_buffers, &max_buffers);
  }
  gst_query_unref(query);
  if (!answered) {
    reason = "no pool proposed (the sink did not answer the ALLOCATION query)";
    return false;
  }
  if (sink_pool_ == nullptr) {
    reason = "no pool proposed (the ALLOCATION query came back without a pool)";
    return false;
  }
  if (!gst_buffer_pool_is_active(sink_pool_)) {
    const guint frame = static_cast<guint>(options_.format.bytes());
    GstStructure* config = gst_buffer_pool_get_config(sink_pool_);
    gst_buffer_pool_config_set_params(config, caps_, std::max(size, frame), min_buffers, max_buffers);
    if (!gst_buffer_pool_set_config(sink_pool_, config)) {
      // A pool may amend a configuration it cannot take as is; accept its amendment if it still fits.
      config = gst_buffer_pool_get_config(sink_pool_);
      if (!gst_buffer_pool_config_validate_params(config, caps_, frame, min_buffers, max_buffers) ||
          !gst_buffer_pool_set_config(sink_pool_, config)) {
        error_ = "the sink's pool refused the configuration";
        reason = error_;
        return false;
      }
    }
    if (!gst_buffer_pool_set_active(sink_pool_, TRUE)) {
      error_ = "the sink's pool cannot be activated";
      reason = error_;
      return false;
    }
  }
  return true;
}

// A buffer in the publisher's own memory. Each one is written in full the first time it is used, so
// that the transport copies real, resident pages (never the zero page); afterwards only the stamp
// is rewritten per frame.
GstBuffer* GstOutlet::own_buffer() {
  GstBuffer* buffer = nullptr;
  if (gst_buffer_pool_acquire_buffer(own_pool_, &buffer, nullptr) != GST_FLOW_OK) return nullptr;
  GstMapInfo map;
  if (gst_buffer_map(buffer, &map, GST_MAP_WRITE)) {
    if (filled_.insert(map.data).second) std::memset(map.data, 0x5a, map.size);
    gst_buffer_unmap(buffer, &map);
  }
  return buffer;
}

GstFlowReturn GstOutlet::push_buffer(GstBuffer* buffer) {
  if (appsrc_ != nullptr) return gst_app_src_push_buffer(GST_APP_SRC(appsrc_), buffer);
  return gst_pad_push(src_pad_, buffer);
}

PushResult GstOutlet::push(const FrameStamp& stamp) {
  if (backlog_sink_ != nullptr && options_.rate <= 0) wait_for_backlog();
  GstBuffer* buffer = nullptr;
  if (sink_pool_ != nullptr) {
    // Zero copy: only the stamp is written; the rest of the slot keeps what an earlier frame left.
    if (gst_buffer_pool_acquire_buffer(sink_pool_, &buffer, nullptr) != GST_FLOW_OK)
      return PushResult::Dropped;
  } else {
    buffer = own_buffer();
    if (buffer == nullptr) return PushResult::Dropped;
  }
  // Stamped last, so that the latency covers exactly what the transport does with the frame.
  FrameStamp now = stamp;
  now.cpu = sched_getcpu();  // before the publish stamp: not part of the measured latency
  now.publish_ns = now_ns();
  gst_buffer_fill(buffer, 0, &now, sizeof now);
  const GstFlowReturn flow = push_buffer(buffer);
  if (flow != GST_FLOW_OK) {
    error_ = std::string("push returned ") + gst_flow_get_name(flow);
    service();
    return PushResult::Failed;
  }
  return PushResult::Sent;
}

// tcpserversink never blocks its writer: at full speed the publisher would spin pushing frames that
// the sink then drops (resync to latest), and starve the receiver of CPU. So a full-speed publisher
// pauses 0.5 ms whenever the sink holds kMaxBacklog buffers or more. (The sink trims its queue only
// when a buffer arrives, so the count cannot be polled until it falls; a pause then a push is the
// closest to the back-pressure that shmsink and a blocking socket give by themselves.)
void GstOutlet::wait_for_backlog() {
  guint queued = 0;
  g_object_get(backlog_sink_, "buffers-queued", &queued, nullptr);
  if (queued >= kMaxBacklog) usleep(500);
}

bool GstOutlet::service() {
  if (pipeline_ == nullptr) return false;
  GstBus* bus = gst_element_get_bus(pipeline_);
  bool ok = true;
  while (GstMessage* message = gst_bus_pop_filtered(
             bus, static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_WARNING))) {
    GError* error = nullptr;
    gchar* debug = nullptr;
    if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
      gst_message_parse_error(message, &error, &debug);
      error_ = std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(message))) + ": " + error->message;
      ok = false;
    } else {
      gst_message_parse_warning(message, &error, &debug);
      std::fprintf(stderr, "publisher warning: %s: %s\n", GST_OBJECT_NAME(GST_MESSAGE_SRC(message)),
                   error->message);
    }
    g_clear_error(&error);
    g_free(debug);
    gst_message_unref(message);
  }
  gst_object_unref(bus);
  return ok;
}

void GstOutlet::stop() {
  if (pipeline_ != nullptr) {
    gst_element_set_state(pipeline_, GST_STATE_NULL);
    gst_object_unref(pipeline_);
    pipeline_ = nullptr;
  }
  if (own_pad_ && src_pad_ != nullptr) gst_pad_set_active(src_pad_, FALSE);
  if (src_pad_ != nullptr) gst_object_unref(src_pad_);
  src_pad_ = nullptr;
  if (appsrc_ != nullptr) gst_object_unref(appsrc_);
  appsrc_ = nullptr;
  if (backlog_sink_ != nullptr) gst_object_unref(backlog_sink_);
  backlog_sink_ = nullptr;
  for (GstBufferPool** pool : {&sink_pool_, &own_pool_}) {
    if (*pool == nullptr) continue;
    gst_buffer_pool_set_active(*pool, FALSE);
    gst_object_unref(*pool);
    *pool = nullptr;
  }
  if (caps_ != nullptr) gst_caps_unref(caps_);
  caps_ = nullptr;
}

// ---------------------------------------------------------------------------------------------
// Library publisher: shmx::Server, loan + stamp + commit (zero copy, the floor of the transport).
// ---------------------------------------------------------------------------------------------

class LibOutlet : public Outlet {
 public:
  explicit LibOutlet(const RoleOptions& options) : options_(options) {}
  ~LibOutlet() override { stop(); }

  bool start(std::string& endpoint, std::string& reason, bool& not_applicable) override {
    not_applicable = false;
    shmx::ServerOptions server_options;
    server_options.slot_count = 8;
    server_options.slot_payload_capacity = shmx::align_up(options_.format.bytes() + 256, shmx::kPageSize);
    server_options.reader_capacity = 16;
    shmx::StreamInfo stream;
    stream.name = "bench";
    stream.type = options_.format.caps();
    auto server = shmx::Server::create(endpoint, server_options, {stream});
    if (!server) {
      reason = server.status().to_string();
      return false;
    }
    server_ = std::move(server.value());
    return true;
  }

  PushResult push(const FrameStamp& stamp) override {
    auto loan = server_.loan();
    if (!loan) return loan.code() == shmx::Errc::NoFreeSlot ? PushResult::Dropped : fail(loan.status());
    auto data = loan->tlvs().reserve(shmx::kTlvStreamData, 0, static_cast<uint32_t>(options_.format.bytes()),
                                     shmx::kPayloadAlignment);
    if (!data) return fail(data.status());
    FrameStamp now = stamp;
    now.cpu = sched_getcpu();  // before the publish stamp: not part of the measured latency
    now.publish_ns = now_ns();
    std::memcpy(data.value(), &now, sizeof now);
    shmx::FrameInfo info;
    info.timestamp_ns = now.publish_ns;
    auto committed = server_.commit(std::move(loan.value()), info);
    return committed ? PushResult::Sent : fail(committed.status());
  }

  bool service() override {
    server_.poll_control([](const shmx::ControlMessage&) {});
    server_.reap_stale_readers();
    return true;
  }

  void stop() override { server_.close(); }

 private:
  PushResult fail(const shmx::Status& status) {
    error_ = status.to_string();
    return PushResult::Failed;
  }

  const RoleOptions& options_;
  shmx::Server server_;
};

// ---------------------------------------------------------------------------------------------
// The publisher's run: warm-up until GO, warm-up at full mode, measurement, end markers.
// ---------------------------------------------------------------------------------------------

// Commands from the controller, read from stdin by a thread of their own.
struct ControlInput {
  std::atomic<bool> go{false};
  std::atomic<bool> quit{false};

  void start() {
    std::thread([this] {
      std::string line;
      char c;
      while (read(STDIN_FILENO, &c, 1) == 1) {
        if (c != '\n') {
          line += c;
          continue;
        }
        if (line == "GO") go = true;
        if (line == "QUIT") break;
        line.clear();
      }
      quit = true;
    }).detach();
  }
};

struct PhaseCounts {
  uint64_t sent = 0, dropped = 0, late_ticks = 0;
  bool failed = false;
};

class Publisher {
 public:
  Publisher(Outlet& outlet, const ControlInput& input) : outlet_(outlet), input_(input) {}

  // Publishes `phase` frames for `seconds` (or until `until` turns true) at `rate` (0 = as fast as
  // possible). A tick that is more than one period late is skipped rather than caught up in a burst.
  PhaseCounts run(Phase phase, double seconds, double rate, const std::atomic<bool>* until = nullptr) {
    PhaseCounts counts;
    const uint64_t start = now_ns();
    const uint64_t end = seconds > 0 ? start + static_cast<uint64_t>(seconds * 1e9) : UINT64_MAX;
    const uint64_t period = rate > 0 ? static_cast<uint64_t>(1e9 / rate) : 0;
    uint64_t next = start;
    uint64_t next_service = start;
    for (uint64_t now = start; now < end; now = now_ns()) {
      if (input_.quit || (until != nullptr && until->load())) break;
      if (period != 0) {
        if (now < next) {
          sleep_until_ns(std::min(next, end));
          if (now_ns() >= end) break;
        } else if (now > next + period) {
          ++counts.late_ticks;
          next = now;
        }
        next += period;
      }
      const PushResult result = outlet_.push(FrameStamp{0, ++sequence_, phase, kStampMagic});
      if (result == PushResult::Failed) {
        counts.failed = true;
        break;
      }
      ++(result == PushResult::Sent ? counts.sent : counts.dropped);
      if (now >= next_service) {
        next_service = now + 10000000;
        if (!outlet_.service()) {
          counts.failed = true;
          break;
        }
      }
    }
    return counts;
  }

 private:
  Outlet& outlet_;
  const ControlInput& input_;
  uint64_t sequence_ = 0;
};

}  // namespace

int run_publisher(const RoleOptions& options) {
  const Transport& transport = *find_transport(options.transport);
  std::unique_ptr<Outlet> outlet;
  if (transport.family == Family::ShmxLib) {
    outlet = std::make_unique<LibOutlet>(options);
  } else {
    outlet = std::make_unique<GstOutlet>(transport, options);
  }

  std::string endpoint = options.endpoint, reason;
  bool not_applicable = false;
  if (!outlet->start(endpoint, reason, not_applicable)) {
    emit((not_applicable ? "NA " : "ERROR ") + reason_field(reason));
    outlet->stop();
    return not_applicable ? 0 : 1;
  }
  emit("READY endpoint=" + endpoint);

  ControlInput input;
  input.start();
  Publisher publisher(*outlet, input);
  // Until every receiver is in, a gentle pace leaves the CPU to the receivers starting up.
  const double idle_rate = options.rate > 0 ? std::min(options.rate, 200.0) : 200.0;
  PhaseCounts counts = publisher.run(kPhaseWarmup, 0, idle_rate, &input.go);
  if (!counts.failed && !input.quit) counts = publisher.run(kPhaseWarmup, options.warmup_s, options.rate);
  if (counts.failed || input.quit) {
    if (counts.failed) emit("ERROR " + reason_field(outlet->error()));
    outlet->stop();
    return counts.failed ? 1 : 0;
  }

  RssSampler rss;
  if (options.sample_rss) rss.start();
  const uint64_t cpu_start = process_cpu_ns(), start = now_ns();
  counts = publisher.run(kPhaseMeasure, options.duration_s, options.rate);
  const uint64_t cpu_end = process_cpu_ns(), end = now_ns();
  rss.stop();
  if (counts.failed) {
    emit("ERROR " + reason_field(outlet->error()));
    outlet->stop();
    return 1;
  }

  // The end marker, a few times (a receiver keeps only the first) and then slowly until QUIT, so that
  // a receiver still draining a queue sees it too.
  publisher.run(kPhaseEnd, 0.1, 50);
  Line result{"RESULT", {}};
  result.fields["sent"] = std::to_string(counts.sent);
  result.fields["dropped"] = std::to_string(counts.dropped);
  result.fields["late_ticks"] = std::to_string(counts.late_ticks);
  result.fields["elapsed_ns"] = std::to_string(end - start);
  result.fields["cpu_ns"] = std::to_string(cpu_end - cpu_start);
  result.fields["rss_kib"] = options.sample_rss ? rss.samples_text() : "-";
  emit(format_line(result));
  publisher.run(kPhaseEnd, 0, 10);

  outlet->stop();
  return 0;
}

}  // namespace bench
