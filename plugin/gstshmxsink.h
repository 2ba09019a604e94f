// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmxsink.h: the shmxsink element type (publishes buffers into a shmx segment).
#pragma once

#include <gst/base/gstbasesink.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_SHMX_SINK (gst_shmx_sink_get_type())
G_DECLARE_FINAL_TYPE(GstShmxSink, gst_shmx_sink, GST, SHMX_SINK, GstBaseSink)

GST_ELEMENT_REGISTER_DECLARE(shmxsink);

G_END_DECLS
