// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmx.cpp: the shmx plugin: registers shmxsink and shmxsrc.
#include <gst/gst.h>

#include "gstshmxsink.h"
#include "gstshmxsrc.h"
#include "shmx_common.h"

#ifndef PACKAGE
#define PACKAGE "shmx"
#endif

GST_DEBUG_CATEGORY_STATIC(shmx_library_debug);

// The library logs through a hook, never to stderr: route it into the 'shmx' debug category.
static void log_to_gst(shmx::LogLevel level, const char* message, void* /*user_data*/) {
  GstDebugLevel gst_level = GST_LEVEL_DEBUG;
  switch (level) {
    case shmx::LogLevel::Debug:
      gst_level = GST_LEVEL_DEBUG;
      break;
    case shmx::LogLevel::Info:
      gst_level = GST_LEVEL_INFO;
      break;
    case shmx::LogLevel::Warning:
      gst_level = GST_LEVEL_WARNING;
      break;
    case shmx::LogLevel::Error:
      gst_level = GST_LEVEL_ERROR;
      break;
  }
  GST_CAT_LEVEL_LOG(shmx_library_debug, gst_level, nullptr, "%s", message);
}

static gboolean plugin_init(GstPlugin* plugin) {
  GST_DEBUG_CATEGORY_INIT(shmx_library_debug, "shmx", 0, "shmx shared-memory library");
  shmx::set_log_handler(log_to_gst, nullptr);

  gboolean ok = FALSE;
  ok |= GST_ELEMENT_REGISTER(shmxsink, plugin);
  ok |= GST_ELEMENT_REGISTER(shmxsrc, plugin);
  return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, shmx,
                  "Latest-frame shared-memory transport between processes, with caps, timestamps and "
                  "reader tracking",
                  plugin_init, SHMX_VERSION, "LGPL", "shmx", "Unknown package origin")
