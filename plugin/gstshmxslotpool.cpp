// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmxslotpool.cpp: GstShmxSlotAllocator (GstMemory that maps a loaned ring slot) and GstShmxSlotPool
// (a GstVideoBufferPool whose buffers loan a slot each time they are acquired).
#include "gstshmxslotpool.h"

#include "gstshmx-memory.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

GST_DEBUG_CATEGORY_STATIC(gst_shmx_slot_pool_debug);
#define GST_CAT_DEFAULT gst_shmx_slot_pool_debug

static constexpr const char* kSlotMemoryType = "ShmxSlot";
// Memory data starts on this boundary: the slot's stream data TLV is aligned to it (and so is the
// fallback memory), whatever smaller alignment upstream asks for.
static constexpr gsize kMaxAlignment = shmx::kPayloadAlignment;

namespace {

// One memory of the slot allocator. Owned by one pool buffer for the buffer's whole life; its loan
// changes each time the buffer is acquired. Fields are used by whoever owns the buffer exclusively
// (upstream while it fills the buffer, then the sink), never concurrently.
struct SlotMemory {
  GstMemory mem;
  uint8_t* data = nullptr;      // what map() returns: the loan's stream data, the fallback, or nullptr
  shmx::Loan loan;              // valid from acquire until commit (zero copy) or release (abandoned)
  uint64_t session = 0;         // the session of the segment the loan belongs to
  uint8_t* fallback = nullptr;  // ordinary memory used when no slot was available; kept for reuse
};

static_assert(std::is_standard_layout_v<SlotMemory>, "a GstMemory* is a SlotMemory*");

SlotMemory* slot_memory(GstMemory* memory) { return reinterpret_cast<SlotMemory*>(memory); }

uint8_t* fallback_data(SlotMemory* m) {
  if (!m->fallback) {
    // Rounded up to the alignment, as aligned_alloc requires.
    const gsize size = (m->mem.maxsize + kMaxAlignment - 1) / kMaxAlignment * kMaxAlignment;
    m->fallback = static_cast<uint8_t*>(std::aligned_alloc(kMaxAlignment, size ? size : kMaxAlignment));
  }
  return m->fallback;
}

}  // namespace

// ---------------------------------------------------------------------------
// Allocator
// ---------------------------------------------------------------------------

struct _GstShmxSlotAllocator {
  GstAllocator parent;
};

G_DEFINE_TYPE(GstShmxSlotAllocator, gst_shmx_slot_allocator, GST_TYPE_ALLOCATOR);

// Memory of `size` bytes with no slot yet (the pool loans one at acquire). Prefix and padding are not
// supported: a slot holds exactly the stream's bytes.
static GstMemory* gst_shmx_slot_allocator_alloc(GstAllocator* allocator, gsize size,
                                                GstAllocationParams* params) {
  auto* m = new SlotMemory();
  const GstMemoryFlags flags =
      static_cast<GstMemoryFlags>((params ? params->flags : 0) | GST_MEMORY_FLAG_NO_SHARE);
  // NO_SHARE: a copy of a buffer gets its own bytes, never a view of a slot that is committed (and
  // later reused) under it.
  gst_memory_init(&m->mem, flags, allocator, nullptr, size, kMaxAlignment - 1, 0, size);
  return &m->mem;
}

static void gst_shmx_slot_allocator_free(GstAllocator* /*allocator*/, GstMemory* memory) {
  SlotMemory* m = slot_memory(memory);
  std::free(m->fallback);
  delete m;  // an uncommitted loan is abandoned by its destructor
}

static gpointer gst_shmx_slot_memory_map(GstMemory* memory, gsize /*maxsize*/, GstMapFlags /*flags*/) {
  SlotMemory* m = slot_memory(memory);
  // Memory used outside the pool (or after a zero-copy commit) maps ordinary memory.
  if (!m->data) m->data = fallback_data(m);
  return m->data;
}

static void gst_shmx_slot_memory_unmap(GstMemory* /*memory*/) {}


static void gst_shmx_slot_allocator_class_init(GstShmxSlotAllocatorClass* klass) {
  GstAllocatorClass* allocator_class = GST_ALLOCATOR_CLASS(klass);
  allocator_class->alloc = gst_shmx_slot_allocator_alloc;
  allocator_class->free = gst_shmx_slot_allocator_free;
  GST_DEBUG_CATEGORY_INIT(gst_shmx_slot_pool_debug, "shmxslotpool", 0, "shmx slot buffer pool");
}

static void gst_shmx_slot_allocator_init(GstShmxSlotAllocator* self) {
  GstAllocator* allocator = GST_ALLOCATOR(self);
  allocator->mem_type = kSlotMemoryType;
  allocator->mem_map = gst_shmx_slot_memory_map;
  allocator->mem_unmap = gst_shmx_slot_memory_unmap;
  allocator->mem_copy = gst_shmx_memory_copy_to_system;
  allocator->mem_share = nullptr;  // NO_SHARE memory
  allocator->mem_is_span = nullptr;
}

GstAllocator* gst_shmx_slot_allocator_get() {
  static GstAllocator* allocator = nullptr;
  if (g_once_init_enter(&allocator)) {
    auto* created = GST_ALLOCATOR(g_object_new(GST_TYPE_SHMX_SLOT_ALLOCATOR, nullptr));
    gst_object_ref_sink(created);
    GST_OBJECT_FLAG_SET(created, GST_OBJECT_FLAG_MAY_BE_LEAKED);
    g_once_init_leave(&allocator, created);
  }
  return allocator;
}

bool gst_shmx_is_slot_memory(GstMemory* memory) {
  return memory && GST_IS_SHMX_SLOT_ALLOCATOR(memory->allocator);
}

bool gst_shmx_slot_memory_take_loan(GstMemory* memory, uint64_t session, shmx::Loan& out) {
  if (!gst_shmx_is_slot_memory(memory)) return false;
  SlotMemory* m = slot_memory(memory);
  if (!m->loan.valid() || m->session != session || memory->offset != 0 || memory->size != memory->maxsize)
    return false;
  out = std::move(m->loan);
  return true;
}

const uint8_t* gst_shmx_slot_memory_data(GstMemory* memory) {
  return gst_shmx_is_slot_memory(memory) ? slot_memory(memory)->data : nullptr;
}

// ---------------------------------------------------------------------------
// Pool
// ---------------------------------------------------------------------------

struct _GstShmxSlotPool {
  GstVideoBufferPool parent;
  // C++ state, new'd by gst_shmx_slot_pool_new() and deleted in finalize.
  struct State {
    std::shared_ptr<gst_shmx::WriterSegment> segment;
    uint16_t stream = 0;
  } * state;
};

G_DEFINE_TYPE(GstShmxSlotPool, gst_shmx_slot_pool, GST_TYPE_VIDEO_BUFFER_POOL);

// Points `m` at a freshly loaned slot, or at ordinary memory when none is available. Never waits.
static void gst_shmx_slot_pool_attach_slot(GstShmxSlotPool* self, SlotMemory* m) {
  gst_shmx::WriterSegment& segment = *self->state->segment;
  {
    std::shared_lock<std::shared_mutex> locker(segment.lock);
    if (segment.server) {
      shmx::Result<shmx::Loan> loan = segment.server->loan();
      if (loan) {
        shmx::Result<uint8_t*> data =
            loan->tlvs().reserve(shmx::kTlvStreamData, self->state->stream,
                                 static_cast<uint32_t>(m->mem.maxsize), shmx::kPayloadAlignment);
        if (data) {
          m->loan = std::move(loan.value());
          m->data = data.value();
          m->session = segment.server->session_id();
          return;
        }
        GST_DEBUG_OBJECT(self, "buffer of %" G_GSIZE_FORMAT " bytes does not fit a slot: %s", m->mem.maxsize,
                         data.status().to_string().c_str());
      } else {
        GST_LOG_OBJECT(self, "no slot for a pool buffer: %s", loan.status().to_string().c_str());
      }
    }
  }
  // The loan (if any) was abandoned when it went out of scope.
  m->data = fallback_data(m);
  m->session = 0;
  segment.pool_fallbacks.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
}

static gboolean gst_shmx_slot_pool_set_config(GstBufferPool* pool, GstStructure* config) {
  // Whatever upstream made of the proposal, the buffers are slots.
  GstAllocationParams params;
  gst_allocation_params_init(&params);
  gst_buffer_pool_config_get_allocator(config, nullptr, &params);
  if (params.align > kMaxAlignment - 1) {
    GST_WARNING_OBJECT(pool, "alignment %" G_GSIZE_FORMAT " is more than slots give: %" G_GSIZE_FORMAT,
                       params.align + 1, kMaxAlignment);
    params.align = kMaxAlignment - 1;
  }
  params.prefix = 0;
  params.padding = 0;
  gst_buffer_pool_config_set_allocator(config, gst_shmx_slot_allocator_get(), &params);
  return GST_BUFFER_POOL_CLASS(gst_shmx_slot_pool_parent_class)->set_config(pool, config);
}

static GstFlowReturn gst_shmx_slot_pool_acquire_buffer(GstBufferPool* pool, GstBuffer** buffer,
                                                       GstBufferPoolAcquireParams* params) {
  GstFlowReturn flow =
      GST_BUFFER_POOL_CLASS(gst_shmx_slot_pool_parent_class)->acquire_buffer(pool, buffer, params);
  if (flow != GST_FLOW_OK) return flow;
  if (gst_buffer_n_memory(*buffer) == 1) {
    GstMemory* memory = gst_buffer_peek_memory(*buffer, 0);
    if (gst_shmx_is_slot_memory(memory))
      gst_shmx_slot_pool_attach_slot(GST_SHMX_SLOT_POOL(pool), slot_memory(memory));
  }
  return GST_FLOW_OK;
}

static void gst_shmx_slot_pool_reset_buffer(GstBufferPool* pool, GstBuffer* buffer) {
  // A loan still held was not committed (copied, dropped or flushed): the slot becomes free again.
  for (guint i = 0; i < gst_buffer_n_memory(buffer); ++i) {
    GstMemory* memory = gst_buffer_peek_memory(buffer, i);
    if (!gst_shmx_is_slot_memory(memory)) continue;
    SlotMemory* m = slot_memory(memory);
    m->loan = shmx::Loan();
    m->data = nullptr;
    m->session = 0;
  }
  GST_BUFFER_POOL_CLASS(gst_shmx_slot_pool_parent_class)->reset_buffer(pool, buffer);
}

static void gst_shmx_slot_pool_finalize(GObject* object) {
  delete GST_SHMX_SLOT_POOL(object)->state;
  G_OBJECT_CLASS(gst_shmx_slot_pool_parent_class)->finalize(object);
}

static void gst_shmx_slot_pool_class_init(GstShmxSlotPoolClass* klass) {
  G_OBJECT_CLASS(klass)->finalize = gst_shmx_slot_pool_finalize;
  GstBufferPoolClass* pool_class = GST_BUFFER_POOL_CLASS(klass);
  pool_class->set_config = gst_shmx_slot_pool_set_config;
  pool_class->acquire_buffer = gst_shmx_slot_pool_acquire_buffer;
  pool_class->reset_buffer = gst_shmx_slot_pool_reset_buffer;
}

static void gst_shmx_slot_pool_init(GstShmxSlotPool* self) { self->state = new _GstShmxSlotPool::State(); }

GstBufferPool* gst_shmx_slot_pool_new(std::shared_ptr<gst_shmx::WriterSegment> segment, uint16_t stream) {
  auto* pool = GST_SHMX_SLOT_POOL(g_object_new(GST_TYPE_SHMX_SLOT_POOL, nullptr));
  gst_object_ref_sink(pool);
  pool->state->segment = std::move(segment);
  pool->state->stream = stream;
  return GST_BUFFER_POOL(pool);
}
