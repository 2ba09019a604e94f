// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmxframepool.cpp: GstShmxFrameAllocator (GstMemory over a held slot or a reused copy) and
// GstShmxFramePool (buffers recycled with their memory, releasing the hold when they come back).
#include "gstshmxframepool.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

#include "gstshmx-memory.h"

GST_DEBUG_CATEGORY_STATIC(gst_shmx_frame_pool_debug);
#define GST_CAT_DEFAULT gst_shmx_frame_pool_debug

static constexpr const char* kFrameMemoryType = "ShmxFrame";
static constexpr size_t kStorageAlignment = 64;
// Buffers made up front: with two in the pool and one downstream at a time, the pool's own wake-up
// pipe is never written or read.
static constexpr guint kPoolMinBuffers = 2;

// A hold and the memories wrapping it. Allocated only for frames read into more than one buffer.
struct GstShmxSharedHold {
  std::atomic<uint32_t> refs;
  shmx::HoldToken hold;
};

GstShmxSharedHold* gst_shmx_shared_hold_new(const shmx::HoldToken& hold) {
  return new GstShmxSharedHold{{1}, hold};
}

void gst_shmx_shared_hold_unref(GstShmxSharedHold* shared) {
  // acq_rel: the last owner must see every other owner's use of the slot before releasing it.
  if (shared->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  shmx::Client::release(shared->hold);
  delete shared;
}

namespace {

// One memory. Its fields change only while one owner holds it exclusively (the source filling its
// buffer, or the pool taking the buffer back).
struct FrameMemory {
  GstMemory mem;
  const uint8_t* data;   // what map() returns: inside a held slot, the storage, or nullptr
  shmx::HoldToken hold;  // valid while the memory wraps a slot it holds alone
  GstShmxSharedHold* shared;  // set while the memory wraps a slot whose hold it shares
  uint8_t* storage;      // the private copy's bytes, kept for later frames (root memories only)
  size_t storage_capacity;
};
static_assert(std::is_standard_layout_v<FrameMemory>, "a GstMemory* is a FrameMemory*");

FrameMemory* frame_memory(GstMemory* memory) { return reinterpret_cast<FrameMemory*>(memory); }

void release_hold(FrameMemory* m) {
  if (m->hold.valid()) shmx::Client::release(std::exchange(m->hold, shmx::HoldToken{}));
  if (m->shared) gst_shmx_shared_hold_unref(std::exchange(m->shared, nullptr));
}

// Re-points a root memory at new bytes. The caller owns it exclusively.
void set_view(FrameMemory* m, const uint8_t* data, size_t size, bool read_only) {
  m->data = data;
  m->mem.maxsize = size;
  m->mem.offset = 0;
  m->mem.size = size;
  if (read_only)
    GST_MINI_OBJECT_FLAG_SET(&m->mem, GST_MEMORY_FLAG_READONLY);
  else
    GST_MINI_OBJECT_FLAG_UNSET(&m->mem, GST_MEMORY_FLAG_READONLY);
}

}  // namespace

// ---------------------------------------------------------------------------
// Allocator
// ---------------------------------------------------------------------------

struct _GstShmxFrameAllocator {
  GstAllocator parent;
};

G_DEFINE_TYPE(GstShmxFrameAllocator, gst_shmx_frame_allocator, GST_TYPE_ALLOCATOR);

static GstAllocator* gst_shmx_frame_allocator_get() {
  static GstAllocator* allocator = nullptr;
  if (g_once_init_enter(&allocator)) {
    auto* created = GST_ALLOCATOR(g_object_new(GST_TYPE_SHMX_FRAME_ALLOCATOR, nullptr));
    gst_object_ref_sink(created);
    GST_OBJECT_FLAG_SET(created, GST_OBJECT_FLAG_MAY_BE_LEAKED);
    g_once_init_leave(&allocator, created);
  }
  return allocator;
}

// An empty memory (size 0); frames are put into it by gst_shmx_frame_buffer_wrap/copy.
static GstMemory* gst_shmx_frame_allocator_alloc(GstAllocator* allocator, gsize /*size*/,
                                                 GstAllocationParams* /*params*/) {
  auto* m = static_cast<FrameMemory*>(g_malloc0(sizeof(FrameMemory)));
  gst_memory_init(&m->mem, static_cast<GstMemoryFlags>(0), allocator, nullptr, 0, kStorageAlignment - 1, 0,
                  0);
  return &m->mem;
}

static void gst_shmx_frame_allocator_free(GstAllocator* /*allocator*/, GstMemory* memory) {
  FrameMemory* m = frame_memory(memory);
  release_hold(m);  // the last view of a held slot is gone
  std::free(m->storage);
  g_free(m);
}

static gpointer gst_shmx_frame_memory_map(GstMemory* memory, gsize /*maxsize*/, GstMapFlags /*flags*/) {
  // gst_memory_map() has refused WRITE on read-only memory already.
  static uint8_t empty;
  FrameMemory* m = frame_memory(memory);
  return const_cast<uint8_t*>(m->data ? m->data : &empty);
}

static void gst_shmx_frame_memory_unmap(GstMemory* /*memory*/) {}


// A view of part of a memory: it references its root, which keeps the hold (or the storage) alive.
static GstMemory* gst_shmx_frame_memory_share(GstMemory* memory, gssize offset, gssize size) {
  GstMemory* root = memory->parent ? memory->parent : memory;
  if (size < 0) size = static_cast<gssize>(memory->size) - offset;
  auto* sub = static_cast<FrameMemory*>(g_malloc0(sizeof(FrameMemory)));
  const GstMemoryFlags flags =
      static_cast<GstMemoryFlags>(GST_MINI_OBJECT_FLAGS(root) | GST_MINI_OBJECT_FLAG_LOCK_READONLY);
  gst_memory_init(&sub->mem, flags, memory->allocator, root, memory->maxsize, memory->align,
                  memory->offset + offset, size);
  sub->data = frame_memory(root)->data;
  return &sub->mem;
}

static void gst_shmx_frame_allocator_class_init(GstShmxFrameAllocatorClass* klass) {
  GstAllocatorClass* allocator_class = GST_ALLOCATOR_CLASS(klass);
  allocator_class->alloc = gst_shmx_frame_allocator_alloc;
  allocator_class->free = gst_shmx_frame_allocator_free;
  GST_DEBUG_CATEGORY_INIT(gst_shmx_frame_pool_debug, "shmxframepool", 0, "shmx source buffer pool");
}

static void gst_shmx_frame_allocator_init(GstShmxFrameAllocator* self) {
  GstAllocator* allocator = GST_ALLOCATOR(self);
  allocator->mem_type = kFrameMemoryType;
  allocator->mem_map = gst_shmx_frame_memory_map;
  allocator->mem_unmap = gst_shmx_frame_memory_unmap;
  allocator->mem_copy = gst_shmx_memory_copy_to_system;
  allocator->mem_share = gst_shmx_frame_memory_share;
  allocator->mem_is_span = nullptr;
}

bool gst_shmx_frame_memory_is_held(GstMemory* memory) {
  if (!memory || !GST_IS_SHMX_FRAME_ALLOCATOR(memory->allocator)) return false;
  GstMemory* root = memory->parent ? memory->parent : memory;
  return frame_memory(root)->hold.valid() || frame_memory(root)->shared != nullptr;
}

// ---------------------------------------------------------------------------
// Pool
// ---------------------------------------------------------------------------

struct _GstShmxFramePool {
  GstBufferPool parent;
};

G_DEFINE_TYPE(GstShmxFramePool, gst_shmx_frame_pool, GST_TYPE_BUFFER_POOL);

static GstMemory* gst_shmx_frame_pool_new_memory() {
  return gst_allocator_alloc(gst_shmx_frame_allocator_get(), 0, nullptr);
}

static GstFlowReturn gst_shmx_frame_pool_alloc_buffer(GstBufferPool* /*pool*/, GstBuffer** buffer,
                                                      GstBufferPoolAcquireParams* /*params*/) {
  *buffer = gst_buffer_new();
  gst_buffer_append_memory(*buffer, gst_shmx_frame_pool_new_memory());
  return GST_FLOW_OK;
}

static void gst_shmx_frame_pool_reset_buffer(GstBufferPool* pool, GstBuffer* buffer) {
  GstMemory* memory = gst_buffer_n_memory(buffer) == 1 ? gst_buffer_peek_memory(buffer, 0) : nullptr;
  if (memory && GST_IS_SHMX_FRAME_ALLOCATOR(memory->allocator) && !memory->parent &&
      GST_MINI_OBJECT_REFCOUNT_VALUE(memory) == 1) {
    // Only this buffer sees the memory: give the slot back and keep both for the next frame.
    FrameMemory* m = frame_memory(memory);
    release_hold(m);
    set_view(m, nullptr, 0, false);
  } else {
    // Someone else still has the memory (or the buffer was changed): it goes its own way and
    // releases its hold when it is freed; the buffer gets a new memory at its next use.
    gst_buffer_remove_all_memory(buffer);
    GST_BUFFER_FLAG_UNSET(buffer, GST_BUFFER_FLAG_TAG_MEMORY);
  }
  GST_BUFFER_POOL_CLASS(gst_shmx_frame_pool_parent_class)->reset_buffer(pool, buffer);
}

static void gst_shmx_frame_pool_class_init(GstShmxFramePoolClass* klass) {
  GstBufferPoolClass* pool_class = GST_BUFFER_POOL_CLASS(klass);
  pool_class->alloc_buffer = gst_shmx_frame_pool_alloc_buffer;
  pool_class->reset_buffer = gst_shmx_frame_pool_reset_buffer;
}

static void gst_shmx_frame_pool_init(GstShmxFramePool* /*self*/) {}

GstBufferPool* gst_shmx_frame_pool_new() {
  GstBufferPool* pool = GST_BUFFER_POOL(g_object_new(GST_TYPE_SHMX_FRAME_POOL, nullptr));
  gst_object_ref_sink(pool);
  GstStructure* config = gst_buffer_pool_get_config(pool);
  // Size 0: a buffer in the pool shows nothing; its memory is re-pointed at every frame.
  gst_buffer_pool_config_set_params(config, nullptr, 0, kPoolMinBuffers, 0);
  gst_buffer_pool_set_config(pool, config);
  return pool;
}

// The root frame memory of a pool buffer, replaced if the buffer lost it (see reset_buffer).
static FrameMemory* gst_shmx_frame_buffer_memory(GstBuffer* buffer) {
  if (gst_buffer_n_memory(buffer) == 0) gst_buffer_append_memory(buffer, gst_shmx_frame_pool_new_memory());
  return frame_memory(gst_buffer_peek_memory(buffer, 0));
}

void gst_shmx_frame_buffer_wrap(GstBuffer* buffer, const uint8_t* data, size_t size,
                                const shmx::HoldToken& hold) {
  FrameMemory* m = gst_shmx_frame_buffer_memory(buffer);
  release_hold(m);
  m->hold = hold;
  set_view(m, data, size, true);
}

void gst_shmx_frame_buffer_wrap_shared(GstBuffer* buffer, const uint8_t* data, size_t size,
                                       GstShmxSharedHold* shared) {
  FrameMemory* m = gst_shmx_frame_buffer_memory(buffer);
  release_hold(m);
  shared->refs.fetch_add(1, std::memory_order_relaxed);  // relaxed: the caller holds a reference
  m->shared = shared;
  set_view(m, data, size, true);
}

bool gst_shmx_frame_buffer_copy(GstBuffer* buffer, const uint8_t* data, size_t size) {
  FrameMemory* m = gst_shmx_frame_buffer_memory(buffer);
  release_hold(m);
  if (size > m->storage_capacity) {
    // Grows only: frames of one stream have similar sizes, so this settles after the first frames.
    const size_t capacity = (size + kStorageAlignment - 1) / kStorageAlignment * kStorageAlignment;
    auto* storage = static_cast<uint8_t*>(std::aligned_alloc(kStorageAlignment, capacity));
    if (!storage) return false;
    std::free(m->storage);
    m->storage = storage;
    m->storage_capacity = capacity;
  }
  if (size) std::memcpy(m->storage, data, size);
  set_view(m, m->storage, size, false);
  return true;
}
