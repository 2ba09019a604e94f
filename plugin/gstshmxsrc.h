// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmxsrc.h: the shmxsrc element type (a live source reading the latest frames of a shmx segment).
#pragma once

#include <gst/base/gstpushsrc.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_SHMX_SRC (gst_shmx_src_get_type())
G_DECLARE_FINAL_TYPE(GstShmxSrc, gst_shmx_src, GST, SHMX_SRC, GstPushSrc)

// How shmxsrc stamps its buffers.
typedef enum {
  GST_SHMX_SRC_TIMESTAMP_MODE_CLOCK,     // writer capture time mapped to this pipeline's running time
  GST_SHMX_SRC_TIMESTAMP_MODE_ORIGINAL,  // PTS/DTS exactly as the writer had them
} GstShmxSrcTimestampMode;

#define GST_TYPE_SHMX_SRC_TIMESTAMP_MODE (gst_shmx_src_timestamp_mode_get_type())
GType gst_shmx_src_timestamp_mode_get_type(void);

GST_ELEMENT_REGISTER_DECLARE(shmxsrc);

G_END_DECLS
