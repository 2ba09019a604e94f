// SPDX-License-Identifier: LGPL-2.1-or-later
// gstshmx-caps.cpp: GstCaps <-> shmx::StreamInfo (type, layout text and components) and slot sizing.
#include "gstshmx-caps.h"

#include <gst/audio/audio.h>
#include <gst/video/video.h>

#include <cstring>

namespace gst_shmx {

namespace {

shmx::DType video_component_dtype(const GstVideoFormatInfo* finfo) {
  // Formats deeper than 8 bits store each component in 16-bit words.
  return GST_VIDEO_FORMAT_INFO_DEPTH(finfo, 0) > 8 ? shmx::DType::U16 : shmx::DType::U8;
}

void describe_raw_video(const GstVideoInfo& info, shmx::StreamInfo& out) {
  const GstVideoFormatInfo* finfo = info.finfo;
  const shmx::DType dtype = video_component_dtype(finfo);
  const unsigned element_size = dtype == shmx::DType::U16 ? 2 : 1;

  std::string layout = std::string("video ") + gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info)) +
                       " " + std::to_string(GST_VIDEO_INFO_WIDTH(&info)) + "x" +
                       std::to_string(GST_VIDEO_INFO_HEIGHT(&info)) + ", " +
                       std::to_string(GST_VIDEO_INFO_N_PLANES(&info)) + " plane(s):";
  for (unsigned plane = 0; plane < GST_VIDEO_INFO_N_PLANES(&info); ++plane) {
    const gsize offset = GST_VIDEO_INFO_PLANE_OFFSET(&info, plane);
    const gint stride = GST_VIDEO_INFO_PLANE_STRIDE(&info, plane);
    const gsize next = plane + 1 < GST_VIDEO_INFO_N_PLANES(&info)
                           ? GST_VIDEO_INFO_PLANE_OFFSET(&info, plane + 1)
                           : GST_VIDEO_INFO_SIZE(&info);
    const uint64_t plane_bytes = next > offset ? next - offset : 0;
    layout += " plane" + std::to_string(plane) + " offset " + std::to_string(offset) + " stride " +
              std::to_string(stride) + ";";
    out.components.push_back(shmx::Component{"plane" + std::to_string(plane), dtype,
                                             static_cast<uint32_t>(plane_bytes / element_size)});
  }
  layout += " frame " + std::to_string(GST_VIDEO_INFO_SIZE(&info)) +
            " bytes (per-frame strides and offsets travel in the buffer info)";
  out.layout = std::move(layout);
}

shmx::DType audio_sample_dtype(const GstAudioFormatInfo* finfo) {
  const bool is_signed = GST_AUDIO_FORMAT_INFO_IS_SIGNED(finfo);
  if (GST_AUDIO_FORMAT_INFO_IS_FLOAT(finfo))
    return GST_AUDIO_FORMAT_INFO_WIDTH(finfo) == 64 ? shmx::DType::F64 : shmx::DType::F32;
  switch (GST_AUDIO_FORMAT_INFO_WIDTH(finfo)) {
    case 8:
      return is_signed ? shmx::DType::I8 : shmx::DType::U8;
    case 16:
      return is_signed ? shmx::DType::I16 : shmx::DType::U16;
    case 32:
      return is_signed ? shmx::DType::I32 : shmx::DType::U32;
    default:
      return shmx::DType::Bytes;  // 24-bit and other packed widths
  }
}

void describe_raw_audio(const GstAudioInfo& info, shmx::StreamInfo& out) {
  const char* layout =
      GST_AUDIO_INFO_LAYOUT(&info) == GST_AUDIO_LAYOUT_INTERLEAVED ? "interleaved" : "planar";
  out.layout = std::string("audio ") + GST_AUDIO_INFO_NAME(&info) + " " + layout + ", " +
               std::to_string(GST_AUDIO_INFO_CHANNELS(&info)) + " channel(s) at " +
               std::to_string(GST_AUDIO_INFO_RATE(&info)) + " Hz, " +
               std::to_string(GST_AUDIO_INFO_BPF(&info)) + " bytes per sample frame";
  out.components.push_back(shmx::Component{"sample", audio_sample_dtype(info.finfo),
                                           static_cast<uint32_t>(GST_AUDIO_INFO_CHANNELS(&info))});
}

}  // namespace

bool stream_info_from_caps(const GstCaps* caps, const std::string& stream_name, shmx::StreamInfo& out) {
  if (!caps || !gst_caps_is_fixed(caps)) return false;

  shmx::StreamInfo info;
  info.name = stream_name;
  gchar* text = gst_caps_to_string(caps);
  info.type = text;
  g_free(text);

  const GstStructure* s = gst_caps_get_structure(caps, 0);
  GstVideoInfo vinfo;
  GstAudioInfo ainfo;
  if (gst_structure_has_name(s, "video/x-raw") && gst_video_info_from_caps(&vinfo, caps)) {
    describe_raw_video(vinfo, info);
  } else if (gst_structure_has_name(s, "audio/x-raw") && gst_audio_info_from_caps(&ainfo, caps)) {
    describe_raw_audio(ainfo, info);
  } else {
    info.layout = std::string("opaque ") + gst_structure_get_name(s) + " bytes, one buffer per frame";
    info.components.push_back(shmx::Component{"data", shmx::DType::Bytes, 1});
  }
  out = std::move(info);
  return true;
}

GstCaps* caps_from_stream_info(const shmx::StreamInfo& info) {
  if (info.type.empty()) return nullptr;
  GstCaps* caps = gst_caps_from_string(info.type.c_str());
  if (!caps) return nullptr;
  // A media type is "type/subtype": a bare word such as "u64" parses as caps but names no media type.
  if (gst_caps_is_empty(caps) || !gst_caps_is_fixed(caps) ||
      !std::strchr(gst_structure_get_name(gst_caps_get_structure(caps, 0)), '/')) {
    gst_caps_unref(caps);
    return nullptr;
  }
  return caps;
}

uint64_t slot_payload_for_buffer(uint64_t buffer_size) {
  return shmx::align_up(buffer_size + kSlotHeadroom, shmx::kPageSize);
}

uint64_t slot_payload_for_caps(const GstCaps* caps) {
  GstVideoInfo vinfo;
  if (caps && gst_caps_is_fixed(caps) &&
      gst_structure_has_name(gst_caps_get_structure(caps, 0), "video/x-raw") &&
      gst_video_info_from_caps(&vinfo, caps))
    return slot_payload_for_buffer(GST_VIDEO_INFO_SIZE(&vinfo));
  return kDefaultSlotPayload;
}

}  // namespace gst_shmx
