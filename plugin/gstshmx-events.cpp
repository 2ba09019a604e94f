// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmx-events.cpp: upstream event <-> control-ring TLV value.
#include "gstshmx-events.h"

#include <cstring>

namespace gst_shmx {

namespace {

bool is_forwarded_type(GstEventType type) {
  switch (type) {
    case GST_EVENT_CUSTOM_UPSTREAM:
    case GST_EVENT_CUSTOM_BOTH:
    case GST_EVENT_CUSTOM_BOTH_OOB:
    case GST_EVENT_NAVIGATION:
      return true;
    default:
      return false;
  }
}

}  // namespace

bool is_forwarded_upstream_event(GstEvent* event) { return is_forwarded_type(GST_EVENT_TYPE(event)); }

std::string serialize_upstream_event(GstEvent* event) {
  const uint32_t type = GST_EVENT_TYPE(event);
  std::string value(sizeof(type), '\0');
  std::memcpy(value.data(), &type, sizeof(type));
  if (const GstStructure* s = gst_event_get_structure(event)) {
    gchar* text = gst_structure_to_string(s);
    value += text;
    g_free(text);
  }
  return value;
}

GstEvent* deserialize_upstream_event(const uint8_t* data, size_t size) {
  uint32_t type = 0;
  if (!data || size < sizeof(type)) return nullptr;
  std::memcpy(&type, data, sizeof(type));
  if (!is_forwarded_type(static_cast<GstEventType>(type))) return nullptr;

  GstStructure* structure = nullptr;
  if (size > sizeof(type)) {
    const std::string text(reinterpret_cast<const char*>(data) + sizeof(type), size - sizeof(type));
    if (text.find('\0') != std::string::npos) return nullptr;
    structure = gst_structure_from_string(text.c_str(), nullptr);
    if (!structure) return nullptr;
  }
  // Custom events need a structure; navigation events always have one.
  if (!structure) structure = gst_structure_new_empty("shmx-upstream-event");
  return gst_event_new_custom(static_cast<GstEventType>(type), structure);
}

}  // namespace gst_shmx
