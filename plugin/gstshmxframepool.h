// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmxframepool.h: the buffers shmxsrc pushes, recycled without allocation: each wraps a ring slot the
// reader holds (zero copy, released when downstream drops the last reference) or a reused private copy.
#pragma once

#include <gst/gst.h>

#include <cstddef>
#include <cstdint>

#include "shmx_client.h"

G_BEGIN_DECLS

#define GST_TYPE_SHMX_FRAME_ALLOCATOR (gst_shmx_frame_allocator_get_type())
G_DECLARE_FINAL_TYPE(GstShmxFrameAllocator, gst_shmx_frame_allocator, GST, SHMX_FRAME_ALLOCATOR, GstAllocator)

#define GST_TYPE_SHMX_FRAME_POOL (gst_shmx_frame_pool_get_type())
G_DECLARE_FINAL_TYPE(GstShmxFramePool, gst_shmx_frame_pool, GST, SHMX_FRAME_POOL, GstBufferPool)

G_END_DECLS

// A configured, inactive pool of frame buffers. A buffer acquired from it carries one frame memory,
// empty until filled by one of the calls below; when the buffer returns to the pool its hold is
// released and the buffer and memory are kept for the next frame. A memory that is still shared
// (a sub-buffer or a copy of the buffer lives on) leaves the buffer and releases its hold when the
// last reference to it goes.
GstBufferPool* gst_shmx_frame_pool_new();

// Makes `buffer` (from a frame pool) show `size` bytes at `data` inside a slot held with `hold`,
// read-only; the buffer's memory owns the hold from now on.
void gst_shmx_frame_buffer_wrap(GstBuffer* buffer, const uint8_t* data, size_t size,
                                const shmx::HoldToken& hold);

// Makes `buffer` (from a frame pool) show a writable copy of `size` bytes at `data`, in storage the
// memory keeps for its next frames. False if the storage could not be allocated.
bool gst_shmx_frame_buffer_copy(GstBuffer* buffer, const uint8_t* data, size_t size);

// One slot hold shared by the buffers of several streams read from the same frame: the slot is
// released when the last memory wrapping it goes. Made with one reference, the caller's.
struct GstShmxSharedHold;
GstShmxSharedHold* gst_shmx_shared_hold_new(const shmx::HoldToken& hold);
void gst_shmx_shared_hold_unref(GstShmxSharedHold* shared);

// gst_shmx_frame_buffer_wrap() for a hold shared with other buffers: the memory takes a reference.
void gst_shmx_frame_buffer_wrap_shared(GstBuffer* buffer, const uint8_t* data, size_t size,
                                       GstShmxSharedHold* shared);

// True when `memory` is a frame memory wrapping a held slot (for tests and logs).
bool gst_shmx_frame_memory_is_held(GstMemory* memory);
