// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmx-memory.cpp: the deep copy shared by the slot and frame memories.
#include "gstshmx-memory.h"

#include <cstring>

GstMemory* gst_shmx_memory_copy_to_system(GstMemory* memory, gssize offset, gssize size) {
  if (size < 0) size = static_cast<gssize>(memory->size) - offset;
  GstMemory* copy = gst_allocator_alloc(nullptr, size, nullptr);
  if (!copy) return nullptr;
  GstMapInfo from, to;
  if (!gst_memory_map(memory, &from, GST_MAP_READ)) {
    gst_memory_unref(copy);
    return nullptr;
  }
  if (!gst_memory_map(copy, &to, GST_MAP_WRITE)) {
    gst_memory_unmap(memory, &from);
    gst_memory_unref(copy);
    return nullptr;
  }
  std::memcpy(to.data, from.data + offset, size);
  gst_memory_unmap(copy, &to);
  gst_memory_unmap(memory, &from);
  return copy;
}
