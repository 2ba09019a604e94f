// SPDX-License-Identifier: MIT
// server.cpp: the writer: segment creation, metadata updates, slot loans and commits, readers.
#include <bitset>

#include "platform.h"
#include "segment.h"
#include "shmx_server.h"

namespace shmx {
namespace {

uint64_t all_slots(uint32_t count) { return count >= 64 ? ~0ull : (1ull << count) - 1; }

constexpr size_t kMaxMessagesPerReader =
    256;  // per poll_control call: a chatty reader cannot hold the writer

void wake_readers(detail::Segment& s) {
  GlobalHeader* h = s.header();
  // seq_cst increment, then seq_cst read of waiters: the writer half of the no-lost-wake-up order.
  h->commit_futex.fetch_add(1, std::memory_order_seq_cst);
  if (s.reader_table()->waiters.load(std::memory_order_seq_cst) != 0) futex_wake_all(&h->commit_futex);
}

}  // namespace

// ---------------------------------------------------------------------------- Loan

Loan::~Loan() {
  if (segment_) {
    // An uncommitted loan is abandoned: the slot becomes free again.
    detail::Segment* s = segment_;
    s->slot_control(slot_)->seq.fetch_add(1, std::memory_order_release);
    s->header()->loaned_mask.fetch_and(~(1ull << slot_), std::memory_order_release);
    s->unref();
  }
}

Loan::Loan(Loan&& o) noexcept { *this = std::move(o); }

Loan& Loan::operator=(Loan&& o) noexcept {
  if (this != &o) {
    this->~Loan();
    segment_ = std::exchange(o.segment_, nullptr);
    slot_ = o.slot_;
    payload_ = std::exchange(o.payload_, nullptr);
    capacity_ = std::exchange(o.capacity_, 0);
    writer_ = o.writer_;
    o.writer_ = TlvWriter(nullptr, 0);
  }
  return *this;
}

void Loan::reset() {
  segment_ = nullptr;
  payload_ = nullptr;
  capacity_ = 0;
  writer_ = TlvWriter(nullptr, 0);
}

// ---------------------------------------------------------------------------- Server

Server::~Server() { close(); }

Server::Server(Server&& o) noexcept : segment_(std::exchange(o.segment_, nullptr)) {}

Server& Server::operator=(Server&& o) noexcept {
  if (this != &o) {
    close();
    segment_ = std::exchange(o.segment_, nullptr);
  }
  return *this;
}

Result<Server> Server::create(const std::string& name, const ServerOptions& options,
                              const std::vector<StreamInfo>& streams) {
  if (Status s = validate_segment_name(name); !s) return s;
  auto plan = plan_layout(options.slot_count, options.slot_payload_capacity, options.reader_capacity,
                          options.control_ring_capacity, options.metadata_capacity);
  if (!plan) return Status(plan.code(), "segment '" + name + "': " + plan.status().message());
  if (options.reader_timeout_ms == 0)
    return Status(Errc::InvalidArgument, "reader timeout must be at least 1 ms");
  auto map = Map::create(name, plan->total_size, options.permissions);
  if (!map) return map.status();
  auto* seg = new detail::Segment(std::move(map).value());
  const LayoutPlan& p = *plan;

  // The object is new and zero-filled; only non-zero fields are written. Readers look at nothing
  // before `state` is Ready.
  GlobalHeader* h = seg->header();
  h->magic = kMagic;
  h->layout_version = kLayoutVersion;
  h->header_size = sizeof(GlobalHeader);
  h->total_size = p.total_size;
  h->session_id = platform::random64();
  h->created_realtime_ns = platform::realtime_ns();
  h->writer_pid = platform::process_id();
  h->metadata_offset = p.metadata_offset;
  h->metadata_capacity = p.metadata_capacity;
  h->slot_control_offset = p.slot_control_offset;
  h->slot_count = p.slot_count;
  h->slot_stride = p.slot_stride;
  h->slots_offset = p.slots_offset;
  h->slot_payload_capacity = p.slot_stride - sizeof(FrameHeader);
  h->reader_region_offset = p.reader_region_offset;
  h->reader_capacity = p.reader_capacity;
  h->reader_stride = p.reader_stride;
  h->control_ring_capacity = p.control_ring_capacity;
  h->reader_timeout_ms = options.reader_timeout_ms;
  h->writer_heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);

  // The writer takes its geometry from the header it just wrote, as readers do (and so checks it).
  Server server(seg);  // from here on, an error closes and removes the segment
  if (Status s = seg->load_geometry(); !s) return s;
  // TooLarge here (metadata beyond the region) fails the creation.
  if (Status s = server.set_metadata(streams); !s) return s;
  // release: a reader that sees Ready sees every field above.
  h->state.store(static_cast<uint32_t>(SegmentState::Ready), std::memory_order_release);
  return server;
}

const std::string& Server::name() const {
  static const std::string empty;
  return segment_ ? segment_->map().name() : empty;
}
uint64_t Server::session_id() const { return segment_ ? segment_->session_id : 0; }
uint32_t Server::slot_count() const { return segment_ ? segment_->slot_count : 0; }
uint64_t Server::slot_payload_capacity() const { return segment_ ? segment_->slot_payload_capacity : 0; }

Status Server::set_metadata(const std::vector<StreamInfo>& streams) {
  if (!segment_) return Status(Errc::Closed, "server is closed");
  auto encoded = encode_metadata(streams);
  if (!encoded) return encoded.status();
  if (encoded->size() > segment_->metadata_capacity)
    return Status(Errc::TooLarge, "metadata of " + std::to_string(encoded->size()) + " bytes exceeds the " +
                                      std::to_string(segment_->metadata_capacity) + "-byte metadata region");
  MetadataHeader* m = segment_->metadata_header();
  const uint64_t seq = m->seq.load(std::memory_order_relaxed);
  m->seq.store(seq + 1, std::memory_order_relaxed);
  // release fence: readers that see the data below also see the odd sequence (seqlock writer).
  std::atomic_thread_fence(std::memory_order_release);
  if (!encoded->empty()) std::memcpy(segment_->metadata_data(), encoded->data(), encoded->size());
  m->size = static_cast<uint32_t>(encoded->size());
  m->hash = fnv1a64(encoded->data(), encoded->size());
  const uint64_t generation = segment_->metadata_generation.load(std::memory_order_relaxed) + 1;
  m->generation = generation;
  // release: a reader that sees the even sequence sees the whole new copy.
  m->seq.store(seq + 2, std::memory_order_release);
  // release: a commit that reads the new generation is ordered after the new metadata.
  segment_->metadata_generation.store(generation, std::memory_order_release);
  return Status::ok();
}

uint64_t Server::metadata_generation() const {
  return segment_ ? segment_->metadata_generation.load(std::memory_order_acquire) : 0;
}

Result<Loan> Server::loan() {
  if (!segment_) return Status(Errc::Closed, "server is closed");
  detail::Segment& s = *segment_;
  GlobalHeader* h = s.header();
  uint64_t excluded = 0;  // slots that lost a race with a reader's hold during this call
  bool reaped = false;
  for (uint32_t attempt = 0; attempt < 1000; ++attempt) {
    // acquire: a slot whose loan bit is clear has its commit (and the latest update) visible.
    const uint64_t loaned = h->loaned_mask.load(std::memory_order_acquire);
    const uint64_t latest = h->latest.load(std::memory_order_acquire);
    const uint64_t held = detail::held_by_readers(s);
    uint64_t candidates = all_slots(s.slot_count) & ~loaned & ~held & ~excluded;
    // (A latest naming a slot that does not exist is corruption by another process; ignore it.)
    if (latest != 0 && (latest & 0xff) < s.slot_count) candidates &= ~(1ull << (latest & 0xff));
    if (candidates == 0) {
      // Out of slots: the holds of readers that died are the only ones we may take back, once.
      if (reaped || held == 0) break;
      reaped = true;
      reap_stale_readers();
      continue;
    }
    // The most recently used candidate that is not the frame just before the latest: a copy reader
    // that started on that one is the likeliest to be still reading it, and reusing recent slots
    // keeps the writer's working set (and its cache and TLB footprint) small (docs/design.md).
    const uint64_t latest_id = latest >> 8;
    uint32_t slot = 0;
    uint64_t best = 0;
    bool found = false;
    for (uint32_t i = 0; i < s.slot_count; ++i) {
      if (!(candidates & (1ull << i))) continue;
      const uint64_t fid = s.slot_frame_id[i].load(std::memory_order_relaxed);
      const bool grace = latest_id > 1 && fid + 1 == latest_id;
      // Rank: the newest first, then slots never used or abandoned (id 0), the grace slot last.
      const uint64_t rank = grace ? 0 : fid + 1;
      if (!found || rank > best) best = rank, slot = i, found = true;
    }
    const uint64_t bit = 1ull << slot;
    // Another thread loaning the same slot first is progress, not a failure: look again.
    if (h->loaned_mask.fetch_or(bit, std::memory_order_acq_rel) & bit) continue;
    SlotControl* c = s.slot_control(slot);
    // seq_cst odd sequence, then seq_cst re-read of the holds: a reader that took a hold meanwhile
    // is seen here, or sees the odd sequence itself and drops the hold.
    c->seq.fetch_add(1, std::memory_order_seq_cst);
    if (detail::held_by_readers(s) & bit) {
      c->seq.fetch_add(1, std::memory_order_seq_cst);
      h->loaned_mask.fetch_and(~bit, std::memory_order_release);
      excluded |= bit;
      continue;
    }
    // release fence: the stores below (and the loan holder's payload writes) are ordered after the
    // odd sequence, so a reader's second sequence load sees the change (seqlock writer).
    std::atomic_thread_fence(std::memory_order_release);
    // A slot that is abandoned later must never again match the frame id `latest` named: frame ids
    // start at 1, so 0 marks it empty.
    FrameHeader* f = s.frame(slot);
    f->frame_id = 0;
    f->payload_size = 0;
    s.slot_frame_id[slot].store(0, std::memory_order_relaxed);
    Loan loan;
    s.ref();
    loan.segment_ = &s;
    loan.slot_ = slot;
    loan.payload_ = s.payload(slot);
    loan.capacity_ = s.slot_payload_capacity;
    loan.writer_ = TlvWriter(loan.payload_, loan.capacity_);
    return loan;
  }
  h->loans_refused.fetch_add(1, std::memory_order_relaxed);
  const uint64_t held = detail::held_by_readers(s);
  return Status(Errc::NoFreeSlot,
                "no free slot in segment '" + s.map().name() + "': " + std::to_string(s.slot_count) +
                    " slots, " + std::to_string(std::bitset<64>(held).count()) + " held by readers, " +
                    std::to_string(std::bitset<64>(h->loaned_mask.load(std::memory_order_relaxed)).count()) +
                    " loaned, 1 latest");
}

Result<uint64_t> Server::commit(Loan&& loan, const FrameInfo& info) {
  if (!loan.valid()) return Status(Errc::InvalidArgument, "commit of an empty loan");
  // The loan holds its own reference: the segment is alive even if the server is closing.
  detail::Segment& s = *loan.segment_;
  if (s.closed.load(std::memory_order_acquire)) {
    Loan dropped = std::move(loan);  // abandoned by its destructor
    return Status(Errc::Closed, "segment '" + s.map().name() + "' was closed; the frame is dropped");
  }
  GlobalHeader* h = s.header();
  const uint32_t slot = loan.slot_;
  const uint64_t frame_id = s.next_frame_id.fetch_add(1, std::memory_order_relaxed);
  FrameHeader* f = s.frame(slot);
  f->frame_id = frame_id;
  f->session_id = s.session_id;
  const uint64_t publish_ns = monotonic_ns();
  f->publish_ns = publish_ns;
  f->timestamp_ns = info.timestamp_ns;
  f->flags = info.flags;
  f->payload_size = static_cast<uint32_t>(loan.writer_.size());
  f->metadata_generation = s.metadata_generation.load(std::memory_order_acquire);
  s.slot_frame_id[slot].store(frame_id, std::memory_order_relaxed);
  // release: a reader that sees the even sequence sees the header and payload.
  s.slot_control(slot)->seq.fetch_add(1, std::memory_order_release);
  const uint64_t packed = (frame_id << 8) | slot;
  uint64_t current = h->latest.load(std::memory_order_relaxed);
  // Only forward: a concurrent committer with a newer frame may already have published it.
  while ((current >> 8) < frame_id &&
         !h->latest.compare_exchange_weak(current, packed, std::memory_order_release,
                                          std::memory_order_relaxed)) {
  }
  h->loaned_mask.fetch_and(~(1ull << slot), std::memory_order_release);
  h->frames_committed.fetch_add(1, std::memory_order_relaxed);
  h->writer_heartbeat_ns.store(publish_ns, std::memory_order_relaxed);
  loan.segment_->unref();
  loan.reset();
  wake_readers(s);
  return frame_id;
}

void Server::abandon(Loan&& loan) { Loan dropped = std::move(loan); }

Result<uint64_t> Server::publish(const std::vector<StreamBytes>& streams, const FrameInfo& info) {
  auto loan = this->loan();
  if (!loan) return loan.status();
  for (const StreamBytes& sb : streams) {
    auto dst = loan->tlvs().reserve(kTlvStreamData, sb.stream, sb.size, kPayloadAlignment);
    if (!dst)
      return Status(dst.code(), "stream " + std::to_string(sb.stream) + ": " + dst.status().message());
    if (sb.size) std::memcpy(*dst, sb.data, sb.size);
  }
  return commit(std::move(loan).value(), info);
}

Result<uint64_t> Server::publish_eos() {
  FrameInfo info;
  info.flags = kFrameFlagEos;
  return publish({}, info);
}

size_t Server::poll_control(const std::function<void(const ControlMessage&)>& handler) {
  if (!segment_) return 0;
  detail::Segment& s = *segment_;
  size_t count = 0;
  uint16_t type = 0;
  std::vector<uint8_t> value;
  for (uint32_t i = 0; i < s.reader_capacity; ++i) {
    ReaderSlot* r = s.reader(i);
    // acquire: pairs with the reader's release of Active; its name, pid and id are visible.
    if (r->state.load(std::memory_order_acquire) != static_cast<uint32_t>(ReaderState::Active)) continue;
    Status error;
    // acquire: pairs with the reader's release of ring_head; the message bytes are visible.
    const uint64_t head = r->ring_head.load(std::memory_order_acquire);
    const uint64_t reader_id = r->reader_id.load(std::memory_order_relaxed);
    for (size_t n = 0; n < kMaxMessagesPerReader &&
                       detail::ring_pop(r, s.ring_data(i), s.ring_capacity, head, type, value, error);
         ++n) {
      ++count;
      ControlMessage msg;
      msg.reader_index = i;
      msg.reader_id = reader_id;
      msg.pid = r->pid;
      msg.reader_name = detail::reader_name(r);
      msg.type = type;
      msg.value = value;
      if (handler) handler(msg);
      if (type == kTlvBye) {
        detail::free_reader(s, i, reader_id);
        break;
      }
    }
    if (!error.is_ok()) log(LogLevel::Warning, "segment '" + s.map().name() + "': " + error.message());
  }
  return count;
}

std::vector<ReaderInfo> Server::readers() const {
  std::vector<ReaderInfo> out;
  if (!segment_) return out;
  const uint64_t now = monotonic_ns();
  const uint64_t timeout_ns = uint64_t{segment_->reader_timeout_ms} * 1000000ull;
  for (uint32_t i = 0; i < segment_->reader_capacity; ++i) {
    if (segment_->reader(i)->state.load(std::memory_order_acquire) !=
        static_cast<uint32_t>(ReaderState::Active))
      continue;
    ReaderInfo info = detail::describe_reader(*segment_, i, now);
    info.alive = segment_->map().reader_alive(i);
    info.stale = info.heartbeat_age_ns > timeout_ns;
    out.push_back(std::move(info));
  }
  return out;
}

std::vector<ReaderInfo> Server::reap_stale_readers() {
  std::vector<ReaderInfo> reaped;
  if (!segment_) return reaped;
  detail::Segment& s = *segment_;
  const uint64_t now = monotonic_ns();
  for (uint32_t i = 0; i < s.reader_capacity; ++i) {
    ReaderSlot* r = s.reader(i);
    if (r->state.load(std::memory_order_acquire) == static_cast<uint32_t>(ReaderState::Free)) continue;
    // Read the registration before probing the lock: if the reader frees its slot itself and a new
    // reader claims it in between, free_reader's CAS on this id fails and the newcomer is untouched.
    const uint64_t reader_id = r->reader_id.load(std::memory_order_acquire);
    if (s.map().reader_alive(i)) continue;
    ReaderInfo info = detail::describe_reader(s, i, now);
    info.reader_id = reader_id;
    info.alive = false;
    if (!detail::free_reader(s, i, reader_id)) continue;
    log(LogLevel::Info, "segment '" + s.map().name() + "': reaped reader '" + info.name + "' (pid " +
                            std::to_string(info.pid) + "): its process is gone");
    reaped.push_back(std::move(info));
  }
  return reaped;
}

ServerStats Server::stats() const {
  ServerStats st;
  if (!segment_) return st;
  const GlobalHeader* h = segment_->header();
  st.frames_committed = h->frames_committed.load(std::memory_order_relaxed);
  st.loans_refused = h->loans_refused.load(std::memory_order_relaxed);
  st.slots_held_by_readers =
      static_cast<uint32_t>(std::bitset<64>(detail::held_by_readers(*segment_)).count());
  st.slots_loaned =
      static_cast<uint32_t>(std::bitset<64>(h->loaned_mask.load(std::memory_order_relaxed)).count());
  return st;
}

void Server::heartbeat() {
  if (segment_) segment_->header()->writer_heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);
}

void Server::close() {
  if (!segment_) return;
  detail::Segment* s = std::exchange(segment_, nullptr);
  s->closed.store(true, std::memory_order_relaxed);
  // release: readers that see Closed see every frame committed before.
  s->header()->state.store(static_cast<uint32_t>(SegmentState::Closed), std::memory_order_release);
  wake_readers(*s);
  s->map().unlink();
  s->unref();  // outstanding loans keep the mapping until they are dropped
}

}  // namespace shmx
