// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmxslotpool.h: the buffer pool shmxsink offers upstream, whose memory is a loaned ring slot, so that
// upstream writes frames straight into shared memory and the sink only commits them.
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

#include <atomic>
#include <memory>
#include <optional>
#include <shared_mutex>

#include "shmx_server.h"

namespace gst_shmx {

// The writer's segment, shared by shmxsink and the pools it proposed (a pool may outlive the sink:
// upstream keeps it until it renegotiates).
struct WriterSegment {
  // Exclusive while the server is created, replaced or closed; shared while another thread loans from
  // it (a pool in upstream's thread) or runs the control plane. The streaming thread, the only one that
  // replaces the server while streaming, reads it without the lock.
  std::shared_mutex lock;
  std::optional<shmx::Server> server;

  // Pool buffers handed out in ordinary memory because no slot was free or the slot was too small.
  std::atomic<uint64_t> pool_fallbacks{0};
};

}  // namespace gst_shmx

G_BEGIN_DECLS

#define GST_TYPE_SHMX_SLOT_ALLOCATOR (gst_shmx_slot_allocator_get_type())
G_DECLARE_FINAL_TYPE(GstShmxSlotAllocator, gst_shmx_slot_allocator, GST, SHMX_SLOT_ALLOCATOR, GstAllocator)

#define GST_TYPE_SHMX_SLOT_POOL (gst_shmx_slot_pool_get_type())
G_DECLARE_FINAL_TYPE(GstShmxSlotPool, gst_shmx_slot_pool, GST, SHMX_SLOT_POOL, GstVideoBufferPool)

G_END_DECLS

// A pool for stream `stream` of `segment`. Each buffer acquired from it holds a fresh loan of a slot
// whose stream data TLV is reserved at the buffer's size; its memory maps that data in place. When no
// slot is free (or it is too small) the buffer is backed by ordinary memory instead, and the sink
// copies it. Raw video caps only (the pool is a GstVideoBufferPool: video meta and alignment).
GstBufferPool* gst_shmx_slot_pool_new(std::shared_ptr<gst_shmx::WriterSegment> segment, uint16_t stream);

// The slot allocator (one per process); transfer none.
GstAllocator* gst_shmx_slot_allocator_get();

// True when `memory` comes from the slot allocator.
bool gst_shmx_is_slot_memory(GstMemory* memory);

// Zero-copy check at render: moves the loan out of `memory` when it is a slot memory holding a live loan
// of session `session` whose whole reserved data is the memory's visible data (offset 0, full size).
// The caller must own `memory` exclusively (it is about to commit what the memory shows).
bool gst_shmx_slot_memory_take_loan(GstMemory* memory, uint64_t session, shmx::Loan& out);

// Where `memory`'s bytes are now (for tests and logs): the loaned slot data, ordinary memory, or nullptr.
const uint8_t* gst_shmx_slot_memory_data(GstMemory* memory);
