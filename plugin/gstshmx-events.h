// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmx-events.h: upstream events (force-key-unit, navigation, custom) serialized for the control ring.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <string>

#include "shmx_common.h"

namespace gst_shmx {

// Application TLV sent by a reader to the writer: value = uint32 GstEventType + structure text.
inline constexpr uint16_t kTlvUpstreamEvent = shmx::kTlvUserBase + 0x11;

// True for the upstream events a reader forwards to the writer: custom upstream / both events
// (force-key-unit is one) and navigation. Flushes, seeks, QoS and latency stay local: they
// describe the reader's own pipeline.
bool is_forwarded_upstream_event(GstEvent* event);

// Value bytes of a kTlvUpstreamEvent TLV for `event`.
std::string serialize_upstream_event(GstEvent* event);

// Rebuilds an event from untrusted TLV bytes; nullptr if malformed or not a forwarded type.
GstEvent* deserialize_upstream_event(const uint8_t* data, size_t size);

}  // namespace gst_shmx
