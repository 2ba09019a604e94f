// SPDX-License-Identifier: MIT
// client.cpp: the reader: registration, latest-frame copy and hold reads, futex waits, control messages.
#include <bitset>
#include <chrono>

#include "platform.h"
#include "segment.h"
#include "shmx_client.h"

namespace shmx {
namespace {

constexpr uint64_t kWaitSliceNs = 100'000'000;        // waits re-check writer liveness this often
constexpr uint64_t kLivenessIntervalNs = 50'000'000;  // at most one lock probe per 50 ms when idle
constexpr uint64_t kOpenRetryNs = 20'000'000;         // open_wait polls for the writer this often
constexpr int kReadAttempts = 64;                     // torn reads retried before giving up

ReaderSlot* own_slot(const detail::Segment& s) { return s.reader(static_cast<uint32_t>(s.reader_index)); }

bool still_registered(const detail::Segment& s) {
  return s.reader_index >= 0 && own_slot(s)->reader_id.load(std::memory_order_acquire) == s.reader_id;
}

bool is_transient(Errc code) {
  return code == Errc::NotFound || code == Errc::NotReady || code == Errc::WriterGone || code == Errc::Closed;
}

}  // namespace

Client::~Client() { close(); }

uint64_t Client::session_id() const { return session_id_; }
uint32_t Client::slot_count() const { return segment_ ? segment_->slot_count : 0; }

Status Client::open(const std::string& segment, const ClientOptions& options) {
  close();
  name_ = segment;
  options_ = options;
  session_id_ = 0;
  return open_once();
}

Status Client::open_once() {
  auto opened = detail::open_segment(name_);
  if (!opened) return opened.status();
  detail::Segment* seg = *opened;
  const std::string what = "segment '" + name_ + "'";
  // Readers never write frames or metadata: everything below the reader region is read-only.
  if (Status s = seg->map().restrict_writes_below(seg->reader_region_offset); !s) {
    seg->unref();
    return Status(s.code(), what + ": " + s.message());
  }
  if (Status s = register_reader(*seg); !s) {
    seg->unref();
    return s;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    segment_ = seg;
  }
  session_id_ = seg->session_id;
  last_frame_id_ = 0;  // a late joiner gets the latest frame at once
  next_liveness_check_ns_ = 0;
  if (options_.heartbeat_thread && !heartbeat_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(heartbeat_mutex_);
      heartbeat_stop_ = false;
    }
    heartbeat_thread_ = std::thread([this] { heartbeat_loop(); });
  }
  return Status::ok();
}

Status Client::register_reader(detail::Segment& s) {
  const uint64_t now = monotonic_ns();
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      // The table is full. Registrations of dead readers are freed by the writer's reaping; if it
      // has not run, free them here with the same CAS, so that dead readers never lock others out.
      for (uint32_t i = 0; i < s.reader_capacity; ++i) {
        const uint64_t id = s.reader(i)->reader_id.load(std::memory_order_acquire);
        if (s.reader(i)->state.load(std::memory_order_acquire) != static_cast<uint32_t>(ReaderState::Free) &&
            !s.map().reader_alive(i))
          detail::free_reader(s, i, id);
      }
    }
    for (uint32_t i = 0; i < s.reader_capacity; ++i) {
      ReaderSlot* r = s.reader(i);
      if (r->state.load(std::memory_order_relaxed) != static_cast<uint32_t>(ReaderState::Free)) continue;
      // The liveness lock first: a Claimed slot without a lock is a dead reader's, and the writer frees it.
      if (!s.map().lock_reader(i)) continue;
      uint32_t expected = static_cast<uint32_t>(ReaderState::Free);
      if (!r->state.compare_exchange_strong(expected, static_cast<uint32_t>(ReaderState::Claimed),
                                            std::memory_order_acq_rel)) {
        s.map().unlock_reader(i);
        continue;
      }
      r->pid = platform::process_id();
      std::memset(r->name, 0, kReaderNameLength);
      std::memcpy(r->name, options_.reader_name.data(),
                  std::min(options_.reader_name.size(), kReaderNameLength - 1));
      r->heartbeat_ns.store(now, std::memory_order_relaxed);
      r->last_frame_id.store(0, std::memory_order_relaxed);
      r->frames_received.store(0, std::memory_order_relaxed);
      r->frames_skipped.store(0, std::memory_order_relaxed);
      r->held_mask.store(0, std::memory_order_relaxed);
      r->registered_ns = now;
      // The writer consumes nothing while the slot is not Active: start the ring empty and aligned.
      r->ring_tail.store(0, std::memory_order_relaxed);
      r->ring_head.store(0, std::memory_order_relaxed);
      r->ring_dropped.store(0, std::memory_order_relaxed);
      const uint64_t id = platform::random64();
      r->reader_id.store(id, std::memory_order_relaxed);
      // release: the writer that sees Active sees every field above.
      r->state.store(static_cast<uint32_t>(ReaderState::Active), std::memory_order_release);
      s.reader_table()->registrations.fetch_add(1, std::memory_order_relaxed);
      s.reader_index = static_cast<int32_t>(i);
      s.reader_id = id;
      s.send_bye = options_.send_hello;
      if (options_.send_hello)
        detail::ring_push(r, s.ring_data(i), s.ring_capacity, kTlvHello, options_.reader_name.data(),
                          static_cast<uint32_t>(options_.reader_name.size()));
      return Status::ok();
    }
  }
  return Status(Errc::NoReaderSlot, "all " + std::to_string(s.reader_capacity) +
                                        " reader slots of segment '" + s.map().name() + "' are taken");
}

Status Client::open_wait(const std::string& segment, const ClientOptions& options, uint64_t timeout_ns) {
  const uint64_t deadline = timeout_ns ? monotonic_ns() + timeout_ns : 0;
  Status last;
  while (true) {
    if (interrupted_.load(std::memory_order_acquire))
      return Status(Errc::Interrupted, "interrupted while waiting for segment '" + segment + "'");
    last = open(segment, options);
    if (last.is_ok() || !is_transient(last.code())) return last;
    uint64_t sleep = kOpenRetryNs;
    if (deadline) {
      const uint64_t now = monotonic_ns();
      if (now >= deadline)
        return Status(Errc::Timeout, "no writer on segment '" + segment + "' after " +
                                         std::to_string(timeout_ns / 1000000) + " ms (" + last.message() +
                                         ")");
      sleep = std::min(sleep, deadline - now);
    }
    sleep_interruptible(sleep);
  }
}

void Client::sleep_interruptible(uint64_t ns) {
  // The word is read before the flag: an interrupt() after this load changes it and the wait returns.
  const uint32_t word = interrupt_word_.load(std::memory_order_acquire);
  if (interrupted_.load(std::memory_order_acquire)) return;
  futex_wait(&interrupt_word_, word, ns);
}

void Client::drop_segment() {
  detail::Segment* old;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    old = std::exchange(segment_, nullptr);
  }
  if (old) old->unref();  // holds keep it mapped and registered until released
}

Status Client::reopen() {
  drop_segment();
  Status s = open_once();
  if (s.is_ok()) stat_reopens_.fetch_add(1, std::memory_order_relaxed);
  return s;
}

void Client::close() {
  {
    std::lock_guard<std::mutex> lock(heartbeat_mutex_);
    heartbeat_stop_ = true;
  }
  heartbeat_cv_.notify_all();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  drop_segment();
}

void Client::heartbeat_loop() {
  std::unique_lock<std::mutex> lock(heartbeat_mutex_);
  while (!heartbeat_stop_) {
    uint64_t interval_ms = 200;
    {
      std::lock_guard<std::mutex> seg_lock(mutex_);
      if (segment_) {
        interval_ms = std::max<uint64_t>(10, std::min<uint64_t>(1000, segment_->reader_timeout_ms / 4));
        if (still_registered(*segment_))
          own_slot(*segment_)->heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);
      }
    }
    heartbeat_cv_.wait_for(lock, std::chrono::milliseconds(interval_ms), [this] { return heartbeat_stop_; });
  }
}

Result<Metadata> Client::metadata() const {
  if (!segment_) return Status(Errc::Closed, "client is not open");
  return detail::read_metadata(*segment_);
}

Result<FrameView> Client::read_latest(ReadMode mode) {
  if (!segment_) return Status(Errc::Closed, "client is not open");
  const GlobalHeader* h = segment_->header();
  // acquire: pairs with the commit's release; the slot's sequence and header are visible.
  const uint64_t latest = h->latest.load(std::memory_order_acquire);
  if (latest != 0 && (latest >> 8) > last_frame_id_) return read_slot(latest, mode);
  return check_liveness();
}

Result<FrameView> Client::check_liveness() {
  detail::Segment& s = *segment_;
  const uint64_t now = monotonic_ns();
  if (now < next_liveness_check_ns_) return Status(Errc::NoFrame, "no new frame");
  next_liveness_check_ns_ = now + kLivenessIntervalNs;
  if (still_registered(s)) own_slot(s)->heartbeat_ns.store(now, std::memory_order_relaxed);
  const bool closed =
      s.header()->state.load(std::memory_order_acquire) == static_cast<uint32_t>(SegmentState::Closed);
  // A live reader is never reaped, so a lost registration means someone else wrote our slot;
  // read_slot() then serves copies only (no holds), and the writer sees us no longer.
  if (!closed && s.map().writer_alive()) return Status(Errc::NoFrame, "no new frame");
  if (platform::identity_of(name_) != 0 && s.map().replaced()) {
    FrameView view;
    view.session_mismatch = true;
    view.writer_died = !closed;
    return view;
  }
  if (closed) return Status(Errc::Closed, "segment '" + name_ + "' was closed by its writer");
  return Status(Errc::WriterGone, "the writer of segment '" + name_ + "' (pid " +
                                      std::to_string(s.header()->writer_pid) + ") is gone");
}

Result<FrameView> Client::read_slot(uint64_t latest, ReadMode mode) {
  detail::Segment& s = *segment_;
  const GlobalHeader* h = s.header();
  ReaderSlot* self = still_registered(s) ? own_slot(s) : nullptr;
  for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
    if (attempt) latest = h->latest.load(std::memory_order_acquire);
    const uint64_t frame_id = latest >> 8;
    const uint32_t slot = static_cast<uint32_t>(latest & 0xff);
    if (slot >= s.slot_count || frame_id == 0)
      return Status(Errc::Corrupt, "segment '" + name_ + "': latest frame points at slot " +
                                       std::to_string(slot) + " of " + std::to_string(s.slot_count));
    const uint64_t bit = 1ull << slot;
    bool hold = false;
    if (mode == ReadMode::Hold && self) {
      const uint32_t limit =
          options_.max_held_slots ? options_.max_held_slots : std::max(1u, s.slot_count / 4);
      if (std::bitset<64>(self->held_mask.load(std::memory_order_relaxed)).count() < limit) {
        hold = true;
        // seq_cst: the reader half of the hold/loan handshake (docs/design.md).
        self->held_mask.fetch_or(bit, std::memory_order_seq_cst);
      } else {
        stat_fallbacks_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    const SlotControl* control = s.slot_control(slot);
    const uint64_t seq1 = control->seq.load(std::memory_order_seq_cst);
    FrameView view;
    bool ok = (seq1 & 1) == 0;
    if (ok) {
      std::memcpy(&view.header, s.frame(slot), sizeof(FrameHeader));
      ok = view.header.frame_id == frame_id && view.header.payload_size <= s.slot_payload_capacity;
    }
    if (ok && !hold) {
      if (copy_buffer_.size() < view.header.payload_size) copy_buffer_.resize(s.slot_payload_capacity);
      if (view.header.payload_size) std::memcpy(copy_buffer_.data(), s.payload(slot), view.header.payload_size);
    }
    // acquire fence: the copies above happen before the sequence is checked again.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (!ok || control->seq.load(std::memory_order_relaxed) != seq1) {
      if (hold) self->held_mask.fetch_and(~bit, std::memory_order_release);
      stat_torn_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (view.header.session_id != s.session_id) {
      if (hold) self->held_mask.fetch_and(~bit, std::memory_order_release);
      view = FrameView();
      view.session_mismatch = true;
      return view;
    }
    view.payload_size = view.header.payload_size;
    if (hold) {
      s.ref();
      view.held = true;
      view.hold = HoldToken{&s, slot, s.reader_id};
      view.payload = s.payload(slot);
    } else {
      view.payload = copy_buffer_.data();
    }
    view.skipped = last_frame_id_ && frame_id > last_frame_id_ + 1 ? frame_id - last_frame_id_ - 1 : 0;
    last_frame_id_ = frame_id;
    stat_received_.fetch_add(1, std::memory_order_relaxed);
    stat_skipped_.fetch_add(view.skipped, std::memory_order_relaxed);
    if (self) {
      // Only this reader writes its statistics; relaxed is enough for tools.
      self->last_frame_id.store(frame_id, std::memory_order_relaxed);
      self->frames_received.store(self->frames_received.load(std::memory_order_relaxed) + 1,
                                  std::memory_order_relaxed);
      self->frames_skipped.store(self->frames_skipped.load(std::memory_order_relaxed) + view.skipped,
                                 std::memory_order_relaxed);
    }
    return view;
  }
  return Status(Errc::NoFrame, "segment '" + name_ + "': every read of the latest frame raced the writer (" +
                                   std::to_string(kReadAttempts) + " attempts)");
}

Result<FrameView> Client::wait_next(uint64_t timeout_ns, ReadMode mode) {
  if (!segment_) return Status(Errc::Closed, "client is not open");
  const uint64_t deadline = timeout_ns ? monotonic_ns() + timeout_ns : 0;
  while (true) {
    if (interrupted_.load(std::memory_order_acquire))
      return Status(Errc::Interrupted, "interrupted while waiting for a frame on segment '" + name_ + "'");
    const GlobalHeader* h = segment_->header();
    // The word is read before looking for a frame: a commit after this load changes it, so the
    // futex_wait below cannot sleep through it.
    const uint32_t word = h->commit_futex.load(std::memory_order_acquire);
    auto result = read_latest(mode);
    if (result.is_ok() || result.code() != Errc::NoFrame) return result;
    uint64_t slice = kWaitSliceNs;
    if (deadline) {
      const uint64_t now = monotonic_ns();
      if (now >= deadline)
        return Status(Errc::Timeout, "no new frame on segment '" + name_ + "' within " +
                                         std::to_string(timeout_ns / 1000000) + " ms");
      slice = std::min(slice, deadline - now);
    }
    std::atomic<uint32_t>& waiters = segment_->reader_table()->waiters;
    // seq_cst increment, then the kernel re-reads the word: the reader half of the wake-up order.
    waiters.fetch_add(1, std::memory_order_seq_cst);
    in_wait_.store(true, std::memory_order_seq_cst);
    if (!interrupted_.load(std::memory_order_seq_cst)) futex_wait(&h->commit_futex, word, slice);
    in_wait_.store(false, std::memory_order_release);
    waiters.fetch_sub(1, std::memory_order_relaxed);
  }
}

void Client::release(const HoldToken& hold) {
  detail::Segment* s = hold.segment;
  if (!s) return;
  // Only the registration that took the hold may clear its bit.
  if (s->reader_index >= 0 && own_slot(*s)->reader_id.load(std::memory_order_acquire) == hold.reader_id) {
    // release: our reads of the slot happen before the writer, seeing the bit clear, reuses it.
    own_slot(*s)->held_mask.fetch_and(~(1ull << hold.slot), std::memory_order_release);
  }
  s->unref();
}

void Client::interrupt() {
  interrupted_.store(true, std::memory_order_seq_cst);
  interrupt_word_.fetch_add(1, std::memory_order_release);
  futex_wake_all(&interrupt_word_);
  std::lock_guard<std::mutex> lock(mutex_);
  if (!segment_) return;
  // A waiter that checked the flag just before we set it is entering futex_wait: wake until it is out.
  for (int i = 0; i < 1000; ++i) {
    futex_wake_all(&segment_->header()->commit_futex);
    if (!in_wait_.load(std::memory_order_seq_cst)) break;
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

void Client::clear_interrupt() { interrupted_.store(false, std::memory_order_release); }

Status Client::send(uint16_t type, const void* value, uint32_t length) {
  // The ring has one producer: the lock serialises senders and keeps segment_ from being swapped.
  std::lock_guard<std::mutex> lock(mutex_);
  if (!segment_) return Status(Errc::Closed, "client is not open");
  detail::Segment& s = *segment_;
  if (!still_registered(s))
    return Status(Errc::NoReaderSlot, "reader lost its registration (its slot was overwritten)");
  return detail::ring_push(own_slot(s), s.ring_data(static_cast<uint32_t>(s.reader_index)), s.ring_capacity,
                           type, value, length);
}

Status Client::send_heartbeat() {
  heartbeat();
  const uint64_t now = monotonic_ns();
  return send(kTlvHeartbeat, &now, sizeof now);
}

void Client::heartbeat() {
  if (segment_ && still_registered(*segment_))
    own_slot(*segment_)->heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);
}

bool Client::writer_alive() const {
  return segment_ &&
         segment_->header()->state.load(std::memory_order_acquire) !=
             static_cast<uint32_t>(SegmentState::Closed) &&
         segment_->map().writer_alive();
}

ClientStats Client::stats() const {
  ClientStats st;
  st.frames_received = stat_received_.load(std::memory_order_relaxed);
  st.frames_skipped = stat_skipped_.load(std::memory_order_relaxed);
  st.torn_reads = stat_torn_.load(std::memory_order_relaxed);
  st.copy_fallbacks = stat_fallbacks_.load(std::memory_order_relaxed);
  st.reopens = stat_reopens_.load(std::memory_order_relaxed);
  return st;
}

}  // namespace shmx
