// SPDX-License-Identifier: MIT
// inspect.cpp: a passive, read-only snapshot of a segment for tools.
#include "shmx_inspect.h"

#include <bitset>

#include "segment.h"

namespace shmx {

Result<SegmentSnapshot> inspect_segment(const std::string& name) {
  auto opened = detail::open_segment(name);
  // A dead writer's segment is still worth showing; everything else is an error.
  detail::Segment* seg = nullptr;
  if (opened) {
    seg = *opened;
  } else if (opened.code() == Errc::WriterGone) {
    auto map = Map::open(name);
    if (!map) return map.status();
    seg = new detail::Segment(std::move(map).value());
    if (Status s = seg->load_geometry(); !s) {
      seg->unref();
      return opened.status();
    }
  } else {
    return opened.status();
  }
  // Nothing is written: the whole mapping becomes read-only.
  if (Status s = seg->map().restrict_writes_below(seg->map().size()); !s) {
    seg->unref();
    return s;
  }
  SegmentSnapshot snap;
  const GlobalHeader* h = seg->header();
  const uint64_t now = monotonic_ns();
  snap.name = name;
  snap.layout_version = h->layout_version;
  snap.session_id = seg->session_id;
  snap.writer_pid = h->writer_pid;
  snap.writer_alive = seg->map().writer_alive() &&
                      h->state.load(std::memory_order_acquire) == static_cast<uint32_t>(SegmentState::Ready);
  snap.created_realtime_ns = h->created_realtime_ns;
  const uint64_t whb = h->writer_heartbeat_ns.load(std::memory_order_relaxed);
  snap.writer_heartbeat_age_ns = now > whb ? now - whb : 0;
  snap.slot_count = seg->slot_count;
  snap.slot_payload_capacity = seg->slot_payload_capacity;
  snap.total_size = seg->map().size();
  snap.reader_capacity = seg->reader_capacity;
  snap.reader_timeout_ms = h->reader_timeout_ms;
  const uint64_t latest = h->latest.load(std::memory_order_acquire);
  snap.latest_frame_id = latest >> 8;
  const uint32_t slot = static_cast<uint32_t>(latest & 0xff);
  if (latest != 0 && slot < seg->slot_count) {
    const uint64_t published = seg->frame(slot)->publish_ns;
    snap.latest_frame_age_ns = now > published ? now - published : 0;
    snap.latest_publish_ns = published;
  }
  snap.frames_committed = h->frames_committed.load(std::memory_order_relaxed);
  snap.loans_refused = h->loans_refused.load(std::memory_order_relaxed);
  snap.slots_loaned = static_cast<uint32_t>(std::bitset<64>(h->loaned_mask.load(std::memory_order_relaxed)).count());
  snap.slots_held = static_cast<uint32_t>(std::bitset<64>(detail::held_by_readers(*seg)).count());
  auto md = detail::read_metadata(*seg);
  if (md) snap.metadata = std::move(md).value();
  for (uint32_t i = 0; i < seg->reader_capacity; ++i) {
    if (seg->reader(i)->state.load(std::memory_order_acquire) != static_cast<uint32_t>(ReaderState::Active)) continue;
    ReaderInfo info = detail::describe_reader(*seg, i, now);
    info.alive = seg->map().reader_alive(i);
    info.stale = info.alive && snap.reader_timeout_ms != 0 &&
                 info.heartbeat_age_ns > static_cast<uint64_t>(snap.reader_timeout_ms) * 1000000u;
    snap.readers.push_back(std::move(info));
  }
  Status md_status = md ? Status::ok() : md.status();
  seg->unref();
  if (!md_status) return md_status;
  return snap;
}

}  // namespace shmx
