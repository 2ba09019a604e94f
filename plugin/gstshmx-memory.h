// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmx-memory.h: what the slot and frame memories share: a deep copy into ordinary memory.
#pragma once

#include <gst/gst.h>

// The GstMemoryCopyFunction of both shmx memories: a copy must never share shared-memory bytes (the
// slot is reused once released), so it is made in system memory. NULL if either side cannot map.
GstMemory* gst_shmx_memory_copy_to_system(GstMemory* memory, gssize offset, gssize size);
