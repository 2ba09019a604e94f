// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmxsinkpad.h: the sink pads of shmxsink; each carries one named stream of the segment.
#pragma once

#include <gst/gst.h>

#include <string>

G_BEGIN_DECLS

#define GST_TYPE_SHMX_SINK_PAD (gst_shmx_sink_pad_get_type())
G_DECLARE_FINAL_TYPE(GstShmxSinkPad, gst_shmx_sink_pad, GST, SHMX_SINK_PAD, GstPad)

G_END_DECLS

// The pad's number: 0 for the always pad `sink`, N for the request pad `sink_N`.
guint gst_shmx_sink_pad_number(GstShmxSinkPad* pad);

// The stream name: the `stream-name` property, or "stream<number>" when it is unset or empty.
std::string gst_shmx_sink_pad_stream_name(GstShmxSinkPad* pad);
