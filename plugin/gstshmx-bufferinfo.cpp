// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmx-bufferinfo.cpp: encoding of BufferInfo into its fixed, versioned wire form and back onto a
// GstBuffer.
#include "gstshmx-bufferinfo.h"

#include <gst/video/video.h>

#include <cstring>
#include <type_traits>

namespace gst_shmx {

namespace {

inline constexpr uint16_t kWireVersion = 1;
inline constexpr uint32_t kMaxVideoDimension = 1u << 16;

// The bytes of the TLV value, version 1. Host byte order (shmx runs between processes of one
// machine). A newer writer may append fields: readers accept longer values of their version.
struct WireBufferInfo {
  uint16_t version;
  uint16_t size;  // sizeof(WireBufferInfo) of the writer
  uint32_t flags;
  uint64_t pts, dts, duration, offset, offset_end;
  uint64_t pts_monotonic_ns, dts_monotonic_ns;
  uint32_t has_video_meta;
  uint32_t video_format, video_flags, video_width, video_height, video_n_planes;
  uint64_t video_offset[4];
  int32_t video_stride[4];
  uint64_t reserved[3];
};
static_assert(std::is_trivially_copyable_v<WireBufferInfo>);
static_assert(sizeof(WireBufferInfo) == 160, "the wire form of BufferInfo is pinned");

// Buffer flags that describe the data (not the memory or the mini object) and so cross processes.
constexpr uint32_t kPreservedFlagsMask = ~static_cast<uint32_t>(GST_BUFFER_FLAG_TAG_MEMORY) &
                                         ~static_cast<uint32_t>(GST_MINI_OBJECT_FLAG_LAST - 1);

bool is_raw_video_format(uint32_t format) {
  guint count = 0;
  const GstVideoFormat* formats = gst_video_formats_raw(&count);
  for (guint i = 0; i < count; ++i)
    if (static_cast<uint32_t>(formats[i]) == format) return true;
  return false;
}

// True when every plane of `meta` (offset + stride * rows) lies inside `size` bytes.
bool video_meta_fits(const GstVideoMeta& meta, gsize size) {
  GstVideoInfo info;
  if (!gst_video_info_set_format(&info, meta.format, meta.width, meta.height)) return false;
  for (guint plane = 0; plane < meta.n_planes; ++plane) {
    if (meta.stride[plane] < 0 || meta.offset[plane] > size) return false;
    if (GST_VIDEO_FORMAT_INFO_IS_TILED(info.finfo)) continue;  // tiled strides encode tiles, not rows
    gint components[GST_VIDEO_MAX_COMPONENTS];
    gst_video_format_info_component(info.finfo, plane, components);
    const guint64 rows = GST_VIDEO_INFO_COMP_HEIGHT(&info, components[0] >= 0 ? components[0] : 0);
    if (static_cast<guint64>(meta.stride[plane]) * rows > size - meta.offset[plane]) return false;
  }
  return true;
}

}  // namespace

BufferInfo buffer_info_from_buffer(GstBuffer* buffer) {
  BufferInfo info;
  info.pts = GST_BUFFER_PTS(buffer);
  info.dts = GST_BUFFER_DTS(buffer);
  info.duration = GST_BUFFER_DURATION(buffer);
  info.offset = GST_BUFFER_OFFSET(buffer);
  info.offset_end = GST_BUFFER_OFFSET_END(buffer);
  info.flags = GST_BUFFER_FLAGS(buffer) & kPreservedFlagsMask;

  if (GstVideoMeta* meta = gst_buffer_get_video_meta(buffer)) {
    info.has_video_meta = true;
    info.video.format = meta->format;
    info.video.flags = meta->flags;
    info.video.width = meta->width;
    info.video.height = meta->height;
    info.video.n_planes = meta->n_planes;
    for (guint i = 0; i < meta->n_planes && i < 4; ++i) {
      info.video.offset[i] = meta->offset[i];
      info.video.stride[i] = meta->stride[i];
    }
  }
  return info;
}

uint32_t buffer_info_encoded_size() { return sizeof(WireBufferInfo); }

void encode_buffer_info(const BufferInfo& info, uint8_t* out) {
  WireBufferInfo wire{};
  wire.version = kWireVersion;
  wire.size = sizeof(WireBufferInfo);
  wire.flags = info.flags;
  wire.pts = info.pts;
  wire.dts = info.dts;
  wire.duration = info.duration;
  wire.offset = info.offset;
  wire.offset_end = info.offset_end;
  wire.pts_monotonic_ns = info.pts_monotonic_ns;
  wire.dts_monotonic_ns = info.dts_monotonic_ns;
  wire.has_video_meta = info.has_video_meta ? 1 : 0;
  wire.video_format = info.video.format;
  wire.video_flags = info.video.flags;
  wire.video_width = info.video.width;
  wire.video_height = info.video.height;
  wire.video_n_planes = info.video.n_planes;
  for (int i = 0; i < 4; ++i) {
    wire.video_offset[i] = info.video.offset[i];
    wire.video_stride[i] = info.video.stride[i];
  }
  std::memcpy(out, &wire, sizeof(wire));
}

bool decode_buffer_info(const uint8_t* data, size_t size, BufferInfo& out) {
  WireBufferInfo wire;
  if (!data || size < sizeof(wire)) return false;
  std::memcpy(&wire, data, sizeof(wire));
  if (wire.version != kWireVersion || wire.size < sizeof(wire)) return false;

  BufferInfo info;
  info.flags = wire.flags & kPreservedFlagsMask;
  info.pts = wire.pts;
  info.dts = wire.dts;
  info.duration = wire.duration;
  info.offset = wire.offset;
  info.offset_end = wire.offset_end;
  info.pts_monotonic_ns = wire.pts_monotonic_ns;
  info.dts_monotonic_ns = wire.dts_monotonic_ns;
  if (wire.has_video_meta) {
    if (wire.video_n_planes < 1 || wire.video_n_planes > GST_VIDEO_MAX_PLANES || wire.video_width == 0 ||
        wire.video_height == 0 || wire.video_width > kMaxVideoDimension ||
        wire.video_height > kMaxVideoDimension || !is_raw_video_format(wire.video_format))
      return false;
    info.has_video_meta = true;
    info.video.format = wire.video_format;
    info.video.flags = wire.video_flags;
    info.video.width = wire.video_width;
    info.video.height = wire.video_height;
    info.video.n_planes = wire.video_n_planes;
    for (int i = 0; i < 4; ++i) {
      info.video.offset[i] = wire.video_offset[i];
      info.video.stride[i] = wire.video_stride[i];
    }
  }
  out = info;
  return true;
}

bool apply_buffer_info(const BufferInfo& info, GstBuffer* buffer) {
  GST_BUFFER_PTS(buffer) = info.pts;
  GST_BUFFER_DTS(buffer) = info.dts;
  GST_BUFFER_DURATION(buffer) = info.duration;
  GST_BUFFER_OFFSET(buffer) = info.offset;
  GST_BUFFER_OFFSET_END(buffer) = info.offset_end;
  GST_BUFFER_FLAG_SET(buffer, info.flags & kPreservedFlagsMask);

  GstVideoMeta* meta = gst_buffer_get_video_meta(buffer);
  if (!info.has_video_meta) {
    if (meta) gst_buffer_remove_meta(buffer, &meta->meta);  // left by a previous frame (pooled)
    return true;
  }
  gsize offsets[GST_VIDEO_MAX_PLANES] = {};
  gint strides[GST_VIDEO_MAX_PLANES] = {};
  for (guint i = 0; i < info.video.n_planes; ++i) {
    offsets[i] = info.video.offset[i];
    strides[i] = info.video.stride[i];
  }
  if (meta) {
    // A recycled buffer keeps its meta (pooled): describe this frame in it instead of allocating.
    meta->flags = static_cast<GstVideoFrameFlags>(info.video.flags);
    meta->format = static_cast<GstVideoFormat>(info.video.format);
    meta->width = info.video.width;
    meta->height = info.video.height;
    meta->n_planes = info.video.n_planes;
    for (guint i = 0; i < GST_VIDEO_MAX_PLANES; ++i) {
      meta->offset[i] = offsets[i];
      meta->stride[i] = strides[i];
    }
    gst_video_alignment_reset(&meta->alignment);
  } else {
    meta = gst_buffer_add_video_meta_full(buffer, static_cast<GstVideoFrameFlags>(info.video.flags),
                                          static_cast<GstVideoFormat>(info.video.format), info.video.width,
                                          info.video.height, info.video.n_planes, offsets, strides);
    if (!meta) return false;
  }

  // A meta whose planes reach past the data would make downstream read out of bounds: drop it.
  if (!video_meta_fits(*meta, gst_buffer_get_size(buffer))) {
    gst_buffer_remove_meta(buffer, &meta->meta);
    return false;
  }
  return true;
}

}  // namespace gst_shmx
