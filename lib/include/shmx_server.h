// SPDX-License-Identifier: MIT
// shmx_server.h: the writer side of a segment: metadata, slot loans and commits, control plane, readers.
#pragma once

#include <functional>
#include <memory>

#include "shmx_common.h"

namespace shmx {

namespace detail {
class Segment;
}

struct ServerOptions {
  uint32_t slot_count = 8;                  // 3..kMaxSlots
  uint64_t slot_payload_capacity = 1 << 20; // bytes of TLVs per frame
  uint32_t reader_capacity = 16;            // 1..kMaxReaders
  uint32_t control_ring_capacity = 4096;    // bytes per reader, power of two >= 256
  uint64_t metadata_capacity = 64 * 1024;   // bytes of encoded metadata
  uint32_t permissions = 0600;              // chmod bits of the segment; owner-only by default
  uint32_t reader_timeout_ms = 5000;        // a live reader silent this long is reported stale
};

// Per-frame facts supplied by the writer at commit.
struct FrameInfo {
  uint64_t timestamp_ns = 0;  // application timestamp, copied into FrameHeader::timestamp_ns
  uint32_t flags = 0;         // FrameFlags
};

// A slot loaned to the writer: fill its payload in place with TLVs, then commit() or abandon().
// Movable, not copyable; a loan not committed is abandoned by its destructor. A loan keeps the
// mapping alive, so it may outlive the Server (its commit then fails with Closed).
class Loan {
 public:
  Loan() = default;
  ~Loan();
  Loan(Loan&& other) noexcept;
  Loan& operator=(Loan&& other) noexcept;
  Loan(const Loan&) = delete;
  Loan& operator=(const Loan&) = delete;

  bool valid() const { return segment_ != nullptr; }
  uint32_t slot() const { return slot_; }
  uint8_t* payload() const { return payload_; }   // start of the TLV area
  uint64_t capacity() const { return capacity_; }  // bytes of TLV area
  TlvWriter& tlvs() { return writer_; }            // appends TLVs at the end of what is used

 private:
  friend class Server;
  detail::Segment* segment_ = nullptr;
  uint32_t slot_ = 0;
  uint8_t* payload_ = nullptr;
  uint64_t capacity_ = 0;
  TlvWriter writer_{nullptr, 0};
  void reset();
};

// A snapshot of one registered reader.
struct ReaderInfo {
  uint32_t index = 0;  // slot in the reader table
  uint64_t reader_id = 0;
  uint32_t pid = 0;
  std::string name;
  uint64_t heartbeat_age_ns = 0;
  uint64_t last_frame_id = 0;
  uint64_t frames_received = 0;
  uint64_t frames_skipped = 0;
  uint32_t held_slots = 0;
  uint32_t control_ring_used = 0;      // bytes of messages not yet consumed by the writer
  uint32_t control_ring_capacity = 0;  // bytes
  uint64_t control_dropped = 0;        // messages refused because the ring was full
  bool alive = true;   // its process still holds its liveness lock
  bool stale = false;  // alive, but no heartbeat for reader_timeout_ms (stopped, hung or debugged)
};

// One message read from a reader's control ring.
struct ControlMessage {
  uint32_t reader_index = 0;
  uint64_t reader_id = 0;
  uint32_t pid = 0;
  std::string reader_name;
  uint16_t type = 0;  // kTlvHello, kTlvHeartbeat, kTlvBye or an application type
  std::vector<uint8_t> value;
};

struct ServerStats {
  uint64_t frames_committed = 0;
  uint64_t loans_refused = 0;  // loans refused for lack of a free slot (the caller dropped or copied the frame)
  uint32_t slots_held_by_readers = 0;
  uint32_t slots_loaned = 0;
};

// Thread safety: loan/commit/abandon/publish may be called from several threads at once (a buffer
// pool allocating upstream while the sink commits); the other calls from one thread at a time.
class Server {
 public:
  Server() = default;
  ~Server();
  Server(Server&& other) noexcept;
  Server& operator=(Server&& other) noexcept;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Creates the segment `name` with a new session. A segment left by a dead writer is reclaimed;
  // one whose writer is alive is refused with LiveWriter.
  static Result<Server> create(const std::string& name, const ServerOptions& options = {},
                               const std::vector<StreamInfo>& streams = {});

  bool valid() const { return segment_ != nullptr; }
  const std::string& name() const;
  uint64_t session_id() const;
  uint32_t slot_count() const;
  uint64_t slot_payload_capacity() const;

  // Replaces the static metadata (bumps the generation). Readers see the old or the new copy, never a mix.
  Status set_metadata(const std::vector<StreamInfo>& streams);
  uint64_t metadata_generation() const;

  // Loans a free slot (not the latest, not loaned, not held by a reader; the oldest such).
  // Never waits: NoFreeSlot when there is none.
  Result<Loan> loan();
  // Publishes a loaned slot as the latest frame and wakes waiting readers. Returns its frame id.
  Result<uint64_t> commit(Loan&& loan, const FrameInfo& info = {});
  void abandon(Loan&& loan);
  // Copy path: loans, appends one kTlvStreamData TLV per (stream, bytes) and commits.
  struct StreamBytes {
    uint16_t stream;
    const void* data;
    uint32_t size;
  };
  Result<uint64_t> publish(const std::vector<StreamBytes>& streams, const FrameInfo& info = {});
  // Commits an empty frame flagged kFrameFlagEos.
  Result<uint64_t> publish_eos();

  // Drains every reader's control ring, calling `handler` per message (HELLO/HEARTBEAT/BYE are
  // handled internally too: BYE frees the reader slot). Returns the number of messages.
  size_t poll_control(const std::function<void(const ControlMessage&)>& handler);
  std::vector<ReaderInfo> readers() const;
  // Frees the registrations (and held slots) of readers whose process died: the kernel released
  // their liveness lock, on exit or kill -9. Returns the readers reaped. A live reader is never
  // reaped, however long its silence (it is reported stale): its holds may be in use. loan() calls
  // this itself when it runs out of slots.
  std::vector<ReaderInfo> reap_stale_readers();

  ServerStats stats() const;
  // Stamps the writer heartbeat (tools show its age). Called by commit too.
  void heartbeat();

  // Marks the segment closed, wakes readers, removes the name and unmaps. Idempotent; the
  // destructor calls it.
  void close();

 private:
  detail::Segment* segment_ = nullptr;
  explicit Server(detail::Segment* segment) : segment_(segment) {}
};

}  // namespace shmx
