// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmxsinkpad.cpp: GstShmxSinkPad, a sink pad of shmxsink with the name of the stream it carries.

#include "gstshmxsinkpad.h"

#include <cstdlib>
#include <cstring>

enum {
  PROP_0,
  PROP_STREAM_NAME,
};

struct _GstShmxSinkPad {
  GstPad parent;
  gchar* stream_name;  // protected by the object lock; nullptr = the default name
};

G_DEFINE_TYPE(GstShmxSinkPad, gst_shmx_sink_pad, GST_TYPE_PAD);

guint gst_shmx_sink_pad_number(GstShmxSinkPad* pad) {
  // The element names its pads "sink" and "sink_<N>" (and refuses any other name).
  const gchar* name = GST_OBJECT_NAME(pad);
  if (!name || !g_str_has_prefix(name, "sink_")) return 0;
  return static_cast<guint>(std::strtoul(name + std::strlen("sink_"), nullptr, 10));
}

std::string gst_shmx_sink_pad_stream_name(GstShmxSinkPad* pad) {
  GST_OBJECT_LOCK(pad);
  std::string name = pad->stream_name ? pad->stream_name : "";
  GST_OBJECT_UNLOCK(pad);
  if (name.empty()) name = "stream" + std::to_string(gst_shmx_sink_pad_number(pad));
  return name;
}

static void gst_shmx_sink_pad_set_property(GObject* object, guint prop_id, const GValue* value,
                                           GParamSpec* pspec) {
  GstShmxSinkPad* pad = GST_SHMX_SINK_PAD(object);
  switch (prop_id) {
    case PROP_STREAM_NAME:
      GST_OBJECT_LOCK(pad);
      g_free(pad->stream_name);
      pad->stream_name = g_value_dup_string(value);
      GST_OBJECT_UNLOCK(pad);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
}

static void gst_shmx_sink_pad_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstShmxSinkPad* pad = GST_SHMX_SINK_PAD(object);
  switch (prop_id) {
    case PROP_STREAM_NAME:
      g_value_set_string(value, gst_shmx_sink_pad_stream_name(pad).c_str());
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
}

static void gst_shmx_sink_pad_finalize(GObject* object) {
  g_free(GST_SHMX_SINK_PAD(object)->stream_name);
  G_OBJECT_CLASS(gst_shmx_sink_pad_parent_class)->finalize(object);
}

static void gst_shmx_sink_pad_init(GstShmxSinkPad* pad) { pad->stream_name = nullptr; }

static void gst_shmx_sink_pad_class_init(GstShmxSinkPadClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->set_property = gst_shmx_sink_pad_set_property;
  gobject_class->get_property = gst_shmx_sink_pad_get_property;
  gobject_class->finalize = gst_shmx_sink_pad_finalize;

  g_object_class_install_property(
      gobject_class, PROP_STREAM_NAME,
      g_param_spec_string(
          "stream-name", "Stream name",
          "Name of the stream this pad carries, listed in the segment's metadata (readers name their "
          "pads after it; unique within the element). Read when the pad's caps are set; unset or empty = "
          "stream<N> for sink_<N>, stream0 for the always pad 'sink'",
          nullptr,
          static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)));
}
