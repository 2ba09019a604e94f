// SPDX-License-Identifier: MIT
// shmx_client.h: the reader side of a segment: registration, latest-frame reads, waits, control messages.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "shmx_common.h"

namespace shmx {

namespace detail {
class Segment;
}

struct ClientOptions {
  std::string reader_name = "reader";  // shown to the writer (truncated to kReaderNameLength-1)
  bool heartbeat_thread = true;        // stamp the heartbeat from a background thread (covers paused readers)
  bool send_hello = true;              // send HELLO on registration and BYE on close
  uint32_t max_held_slots = 0;         // holds allowed at once; 0 = a quarter of the slots (at least 1)
};

enum class ReadMode {
  Copy,  // copy the frame into a buffer owned by the Client (valid until the next read)
  Hold,  // hold the slot and point into shared memory; release the hold when done
};

// Identifies a held slot. Release it with Client::release() from any thread, even after the Client
// is gone or reopened: the mapping stays alive until its last hold is released.
struct HoldToken {
  detail::Segment* segment = nullptr;
  uint32_t slot = 0;
  uint64_t reader_id = 0;  // the registration that took the hold
  bool valid() const { return segment != nullptr; }
};

// One frame as returned to the reader. Its header is a private copy (safe against later writes).
struct FrameView {
  FrameHeader header{};           // frame_id, session_id, publish_ns, timestamp_ns, flags, sizes
  const uint8_t* payload = nullptr;  // TLV area: a Client-owned copy, or the held slot
  size_t payload_size = 0;
  uint64_t skipped = 0;           // frames committed since the previous frame this client returned, not returned
  bool session_mismatch = false;  // the writer restarted (new session): reopen() and re-read metadata
  bool writer_died = false;       // with session_mismatch: the previous writer died without closing
  bool held = false;              // payload points into shared memory; release(hold) when done
  HoldToken hold;

  bool eos() const { return (header.flags & kFrameFlagEos) != 0; }
  // Finds the data TLV of `stream` in the payload (bounds-checked).
  bool stream_data(uint16_t stream, TlvView& out) const {
    return find_tlv(payload, payload_size, kTlvStreamData, stream, out);
  }
};

struct ClientStats {
  uint64_t frames_received = 0;
  uint64_t frames_skipped = 0;
  uint64_t torn_reads = 0;      // reads that raced a writer and were retried
  uint64_t copy_fallbacks = 0;  // Hold reads served as copies because max_held_slots was reached
  uint64_t reopens = 0;
};

// Thread safety: open/read/wait/reopen/close from one thread at a time; interrupt(), release(),
// send() and stats() from any thread.
class Client {
 public:
  Client() = default;
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Opens a segment whose writer is alive and registers as a reader. NotFound / NotReady /
  // WriterGone / Closed mean "no writer yet": retry, or use open_wait().
  Status open(const std::string& segment, const ClientOptions& options = {});
  // open() retried until it succeeds, a non-transient error occurs, the timeout expires (Timeout;
  // timeout_ns = 0 waits forever) or interrupt() is called (Interrupted).
  Status open_wait(const std::string& segment, const ClientOptions& options, uint64_t timeout_ns);
  // Drops the current mapping (holds stay valid) and opens the segment again (e.g. after
  // session_mismatch, WriterGone or Closed).
  Status reopen();
  // Sends BYE, unregisters and unmaps (once the last hold is released).
  void close();
  bool is_open() const { return segment_ != nullptr; }

  const std::string& segment_name() const { return name_; }
  uint64_t session_id() const;
  uint32_t slot_count() const;

  // Consistent copy of the static metadata (retried under the writer's seqlock).
  Result<Metadata> metadata() const;

  // The latest completed frame if it is newer than the last one returned: NoFrame otherwise,
  // WriterGone/Closed if the writer went away, a view with session_mismatch if it restarted.
  Result<FrameView> read_latest(ReadMode mode = ReadMode::Copy);
  // Blocks until a frame newer than the last one returned is committed (woken by the commit
  // itself), then reads it as read_latest(). Timeout after timeout_ns (0 = forever, still checking
  // writer liveness every 100 ms); Interrupted after interrupt().
  Result<FrameView> wait_next(uint64_t timeout_ns, ReadMode mode = ReadMode::Copy);

  // Releases a held slot. Safe from any thread, after close() and after the Client is destroyed.
  static void release(const HoldToken& hold);

  // Wakes any wait_next/open_wait at once and makes them return Interrupted until clear_interrupt().
  void interrupt();
  void clear_interrupt();

  // Control plane: a TLV to the writer. RingFull if the writer has not drained the ring.
  // send() and send_heartbeat() are safe from any thread.
  Status send(uint16_t type, const void* value, uint32_t length);
  Status send_heartbeat();
  void heartbeat();  // stamps the heartbeat in the reader slot without a message

  // Is the writer of the current mapping alive?
  bool writer_alive() const;
  ClientStats stats() const;

 private:
  Status open_once();
  Status register_reader(detail::Segment& segment);
  void drop_segment();
  Result<FrameView> read_slot(uint64_t latest, ReadMode mode);
  // Rate-limited checks when no frame is new: a closed or dead writer, or a new session under the name.
  Result<FrameView> check_liveness();
  void heartbeat_loop();
  void sleep_interruptible(uint64_t ns);

  std::string name_;
  ClientOptions options_;
  detail::Segment* segment_ = nullptr;  // counted reference; swapped under mutex_
  mutable std::mutex mutex_;            // protects segment_ against interrupt(), send() and the heartbeat thread
  uint64_t last_frame_id_ = 0;
  uint64_t session_id_ = 0;
  uint64_t next_liveness_check_ns_ = 0;
  std::vector<uint8_t> copy_buffer_;
  std::atomic<bool> interrupted_{false};
  std::atomic<bool> in_wait_{false};          // inside futex_wait on the segment's commit word
  std::atomic<uint32_t> interrupt_word_{0};  // private futex for open_wait sleeps
  std::atomic<uint64_t> stat_received_{0}, stat_skipped_{0}, stat_torn_{0}, stat_fallbacks_{0}, stat_reopens_{0};
  std::thread heartbeat_thread_;
  std::mutex heartbeat_mutex_;
  std::condition_variable heartbeat_cv_;
  bool heartbeat_stop_ = false;  // protected by heartbeat_mutex_
};

}  // namespace shmx
