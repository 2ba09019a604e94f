// SPDX-License-Identifier: MIT
// bench_receiver.cpp: the receiver role: takes frames from one transport, subtracts each frame's
// publish stamp from its arrival time, counts frames and CPU, and reports.
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <poll.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "bench_common.h"
#include "bench_roles.h"
#include "shmx_client.h"

namespace bench {
namespace {

// Turns arriving frames into the measurement. on_frame() runs on the thread that receives frames
// (a streaming thread); the rest on the main thread.
class Recorder {
 public:
  explicit Recorder(const RoleOptions& options) : options_(options) {
    // Allocated and written now, so that recording never allocates or faults in a page (which would
    // show as growth in the resident-memory check). Past its size, a uniform sample is kept.
    const double expected = options.rate > 0 ? options.rate * options.duration_s * 1.2 + 1000 : kMaxSamples;
    latencies_.assign(static_cast<size_t>(std::min<double>(expected, kMaxSamples)), 0);
    same_cpu_flags_.assign(latencies_.size(), 0);
  }

  // `arrival_cpu`: the CPU the receiving thread ran on at arrival (sched_getcpu()).
  void on_frame(const void* data, size_t size, uint64_t arrival_ns, int arrival_cpu) {
    FrameStamp stamp{};
    if (size < sizeof stamp) {
      ++foreign_;
      return;
    }
    std::memcpy(&stamp, data, sizeof stamp);
    if (stamp.magic != kStampMagic) {
      ++foreign_;
      return;
    }
    seen_any_ = true;
    if (stamp.phase == kPhaseWarmup) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (ended_) return;
    if (stamp.phase == kPhaseEnd) {
      end_seen_ = true;
      end_arrival_ns_ = arrival_ns;
      cpu_end_ns_ = process_cpu_ns();
      ended_ = true;
      if (options_.sample_rss) rss_.stop();
      return;
    }
    if (received_ == 0) {
      first_arrival_ns_ = arrival_ns;
      cpu_start_ns_ = process_cpu_ns();
      if (options_.sample_rss) rss_.start();
    }
    if (stamp.sequence <= last_sequence_) {
      ++out_of_order_;
      return;
    }
    if (last_sequence_ != 0) skipped_ += stamp.sequence - last_sequence_ - 1;
    last_sequence_ = stamp.sequence;
    ++received_;
    last_arrival_ns_ = arrival_ns;
    const bool same_cpu = stamp.cpu >= 0 && stamp.cpu == arrival_cpu;
    if (same_cpu) ++same_cpu_;
    record_latency(arrival_ns > stamp.publish_ns ? arrival_ns - stamp.publish_ns : 0, same_cpu);
  }

  bool seen_any() const { return seen_any_; }
  static constexpr size_t kMaxSamples = 1u << 20;  // 8 MiB of latencies per receiver at most
  bool ended() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return ended_;
  }

  Line result() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!ended_) {
      // Told to stop before the end marker came: the window closes at the last frame.
      end_arrival_ns_ = last_arrival_ns_;
      cpu_end_ns_ = process_cpu_ns();
      ended_ = true;
      rss_.stop();
    }
    Summary latency = summarize(
        std::vector<uint64_t>(latencies_.begin(), latencies_.begin() + static_cast<long>(stored())));
    // The same latencies split by where the frame arrived: on the CPU it was stamped on, or another.
    std::vector<uint64_t> on_same, on_other;
    for (size_t i = 0; i < stored(); ++i) (same_cpu_flags_[i] ? on_same : on_other).push_back(latencies_[i]);
    latency.max = static_cast<double>(latency_max_);  // exact, even when only a sample is stored
    latency.mean = received_ ? static_cast<double>(latency_sum_) / static_cast<double>(received_) : 0;
    const uint64_t window = received_ ? end_arrival_ns_ - first_arrival_ns_ : 0;
    Line line{"RESULT", {}};
    line.fields["received"] = std::to_string(received_);
    line.fields["skipped"] = std::to_string(skipped_);
    line.fields["out_of_order"] = std::to_string(out_of_order_);
    line.fields["foreign"] = std::to_string(foreign_.load());
    line.fields["end_seen"] = end_seen_ ? "1" : "0";
    line.fields["window_ns"] = std::to_string(window);
    line.fields["cpu_ns"] = std::to_string(received_ ? cpu_end_ns_ - cpu_start_ns_ : 0);
    line.fields["lat_p50_ns"] = format_number(latency.p50, 0);
    line.fields["lat_p90_ns"] = format_number(latency.p90, 0);
    line.fields["lat_p99_ns"] = format_number(latency.p99, 0);
    line.fields["lat_max_ns"] = format_number(latency.max, 0);
    line.fields["lat_mean_ns"] = format_number(latency.mean, 0);
    line.fields["same_cpu"] = std::to_string(same_cpu_);
    line.fields["lat_same_cpu_p50_ns"] = on_same.empty() ? "-1" : format_number(summarize(on_same).p50, 0);
    line.fields["lat_other_cpu_p50_ns"] = on_other.empty() ? "-1" : format_number(summarize(on_other).p50, 0);
    line.fields["rss_kib"] = options_.sample_rss ? rss_.samples_text() : "-";
    return line;
  }

 private:
  // Reservoir sampling (algorithm R) once the buffer is full: every latency has the same chance to be
  // kept, so the percentiles stay unbiased. Called with mutex_ held.
  void record_latency(uint64_t latency, bool same_cpu) {
    latency_max_ = std::max(latency_max_, latency);
    latency_sum_ += latency;
    const uint64_t seen = latencies_seen_++;
    if (seen < latencies_.size()) {
      latencies_[seen] = latency;
      same_cpu_flags_[seen] = same_cpu;
      return;
    }
    random_ ^= random_ << 13;  // xorshift64
    random_ ^= random_ >> 7;
    random_ ^= random_ << 17;
    const uint64_t slot = random_ % (seen + 1);
    if (slot < latencies_.size()) {
      latencies_[slot] = latency;
      same_cpu_flags_[slot] = same_cpu;
    }
  }
  size_t stored() const {
    return static_cast<size_t>(std::min<uint64_t>(latencies_seen_, latencies_.size()));
  }

  const RoleOptions& options_;
  std::atomic<bool> seen_any_{false};
  std::atomic<uint64_t> foreign_{0};  // frames without a stamp
  mutable std::mutex mutex_;          // protects everything below
  bool ended_ = false;                // the window is closed
  bool end_seen_ = false;             // ... by the end marker (not by STOP)
  uint64_t received_ = 0, skipped_ = 0, out_of_order_ = 0, last_sequence_ = 0;
  uint64_t same_cpu_ = 0;  // frames that arrived on the CPU the publisher stamped them on
  uint64_t first_arrival_ns_ = 0, last_arrival_ns_ = 0, end_arrival_ns_ = 0;
  uint64_t cpu_start_ns_ = 0, cpu_end_ns_ = 0;
  std::vector<uint64_t> latencies_;      // the first (or a uniform sample of) latencies_seen_ latencies
  std::vector<uint8_t> same_cpu_flags_;  // per stored latency: 1 when it arrived on the stamping CPU
  uint64_t latencies_seen_ = 0, latency_max_ = 0, latency_sum_ = 0;
  uint64_t random_ = 0x9E3779B97F4A7C15ull;
  RssSampler rss_;
};

// Delivers frames to a Recorder from one transport.
class Inlet {
 public:
  virtual ~Inlet() = default;
  virtual bool start(std::string& reason) = 0;
  // Called about every 10 ms from the main thread; false with `reason` on a transport error.
  virtual bool service(std::string& reason) = 0;
  virtual void stop() = 0;
};

// ---------------------------------------------------------------------------------------------
// GStreamer receiver: <source> ! appsink, frames read in appsink's new-sample callback (on the
// streaming thread, without a hand-over to another thread).
// ---------------------------------------------------------------------------------------------

class GstInlet : public Inlet {
 public:
  GstInlet(const Transport& transport, const RoleOptions& options, Recorder& recorder)
      : transport_(transport), options_(options), recorder_(recorder) {}
  ~GstInlet() override { stop(); }

  bool start(std::string& reason) override {
    const std::string description = receiver_source_description(transport_, options_.endpoint) +
                                    " ! appsink name=sink sync=false async=false enable-last-sample=false "
                                    "max-buffers=4 drop=false";
    GError* error = nullptr;
    pipeline_ = gst_parse_launch(description.c_str(), &error);
    if (pipeline_ == nullptr || error != nullptr) {
      reason = "cannot build '" + description + "': " + (error ? error->message : "unknown error");
      if (error) g_error_free(error);
      return false;
    }
    if (transport_.family == Family::Shmx) {
      GstElement* source = gst_bin_get_by_name(GST_BIN(pipeline_), "source");
      const bool copy = options_.receive.empty() ? transport_.receive_copy : options_.receive == "copy";
      if (g_object_class_find_property(G_OBJECT_GET_CLASS(source), "copy") != nullptr) {
        g_object_set(source, "copy", copy ? TRUE : FALSE, nullptr);
      } else {
        std::fprintf(stderr, "receiver: shmxsrc has no 'copy' property; using its default mode\n");
      }
      if (g_object_class_find_property(G_OBJECT_GET_CLASS(source), "reader-name") != nullptr) {
        g_object_set(source, "reader-name", options_.reader_name.c_str(), nullptr);
      }
      gst_object_unref(source);
    }
    GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline_), "sink");
    GstAppSinkCallbacks callbacks{};
    callbacks.new_sample = [](GstAppSink* appsink, gpointer data) {
      GstSample* sample = gst_app_sink_pull_sample(appsink);
      const uint64_t arrival = now_ns();
      const int arrival_cpu = sched_getcpu();
      if (sample == nullptr) return GST_FLOW_OK;
      GstBuffer* buffer = gst_sample_get_buffer(sample);
      FrameStamp stamp{};
      const gsize size = gst_buffer_extract(buffer, 0, &stamp, sizeof stamp);
      static_cast<Recorder*>(data)->on_frame(&stamp, size, arrival, arrival_cpu);
      gst_sample_unref(sample);
      return GST_FLOW_OK;
    };
    gst_app_sink_set_callbacks(GST_APP_SINK(sink), &callbacks, &recorder_, nullptr);
    gst_object_unref(sink);
    if (gst_element_set_state(pipeline_, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
      service(reason);
      if (reason.empty()) reason = "receiver pipeline did not start";
      return false;
    }
    return true;
  }

  bool service(std::string& reason) override {
    GstBus* bus = gst_element_get_bus(pipeline_);
    bool ok = true;
    while (GstMessage* message = gst_bus_pop_filtered(
               bus, static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_WARNING | GST_MESSAGE_EOS))) {
      GError* error = nullptr;
      gchar* debug = nullptr;
      if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
        gst_message_parse_error(message, &error, &debug);
        reason = std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(message))) + ": " + error->message;
        ok = false;
      } else if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_WARNING) {
        gst_message_parse_warning(message, &error, &debug);
        std::fprintf(stderr, "receiver warning: %s: %s\n", GST_OBJECT_NAME(GST_MESSAGE_SRC(message)),
                     error->message);
      }
      g_clear_error(&error);
      g_free(debug);
      gst_message_unref(message);
    }
    gst_object_unref(bus);
    return ok;
  }

  void stop() override {
    if (pipeline_ == nullptr) return;
    gst_element_set_state(pipeline_, GST_STATE_NULL);
    gst_object_unref(pipeline_);
    pipeline_ = nullptr;
  }

 private:
  const Transport& transport_;
  const RoleOptions& options_;
  Recorder& recorder_;
  GstElement* pipeline_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Library receiver: shmx::Client::wait_next(Hold) on a thread of its own.
// ---------------------------------------------------------------------------------------------

class LibInlet : public Inlet {
 public:
  LibInlet(const RoleOptions& options, Recorder& recorder) : options_(options), recorder_(recorder) {}
  ~LibInlet() override { stop(); }

  bool start(std::string& reason) override {
    shmx::ClientOptions client_options;
    client_options.reader_name = options_.reader_name;
    const shmx::Status opened = client_.open_wait(options_.endpoint, client_options, 5000000000ull);
    if (!opened) {
      reason = opened.to_string();
      return false;
    }
    thread_ = std::thread([this] { loop(); });
    return true;
  }

  bool service(std::string& reason) override {
    std::lock_guard<std::mutex> lock(mutex_);
    reason = error_;
    return error_.empty();
  }

  void stop() override {
    stopping_ = true;
    client_.interrupt();
    if (thread_.joinable()) thread_.join();
    client_.close();
  }

 private:
  void loop() {
    const bool copy = options_.receive == "copy";
    while (!stopping_) {
      auto frame = client_.wait_next(100000000, copy ? shmx::ReadMode::Copy : shmx::ReadMode::Hold);
      const uint64_t arrival = now_ns();
      const int arrival_cpu = sched_getcpu();
      if (!frame) {
        const shmx::Errc code = frame.code();
        if (code == shmx::Errc::Timeout || code == shmx::Errc::NoFrame || code == shmx::Errc::Interrupted)
          continue;
        std::lock_guard<std::mutex> lock(mutex_);
        error_ = frame.status().to_string();
        return;
      }
      shmx::TlvView data;
      if (frame->stream_data(0, data)) recorder_.on_frame(data.value, data.length, arrival, arrival_cpu);
      if (frame->held) shmx::Client::release(frame->hold);
    }
  }

  const RoleOptions& options_;
  Recorder& recorder_;
  shmx::Client client_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::string error_;  // protected by mutex_
};

// Reads "STOP" (or the end of stdin) without blocking the main loop.
bool stop_requested() {
  pollfd fd{STDIN_FILENO, POLLIN, 0};
  if (poll(&fd, 1, 0) <= 0) return false;
  char buffer[64];
  const ssize_t n = read(STDIN_FILENO, buffer, sizeof buffer);
  return n <= 0 || std::string(buffer, static_cast<size_t>(n)).find("STOP") != std::string::npos;
}

}  // namespace

int run_receiver(const RoleOptions& options) {
  const Transport& transport = *find_transport(options.transport);
  Recorder recorder(options);
  std::unique_ptr<Inlet> inlet;
  if (transport.family == Family::ShmxLib) {
    inlet = std::make_unique<LibInlet>(options, recorder);
  } else {
    inlet = std::make_unique<GstInlet>(transport, options, recorder);
  }
  std::string reason;
  if (!inlet->start(reason)) {
    emit("ERROR " + reason_field(reason));
    inlet->stop();
    return 1;
  }
  bool ready = false;
  while (!recorder.ended() && !stop_requested()) {
    if (!inlet->service(reason)) {
      emit("ERROR " + reason_field(reason));
      inlet->stop();
      return 1;
    }
    if (!ready && recorder.seen_any()) {
      ready = true;
      emit("READY");
    }
    usleep(10000);
  }
  Line result = recorder.result();
  emit(format_line(result));
  inlet->stop();
  return 0;
}

}  // namespace bench
