// SPDX-License-Identifier: MIT
// Static metadata: codec round trip, hostile input, hashing, and the writer-to-reader update path.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <thread>

#include "shmx_client.h"
#include "shmx_server.h"
#include "test_support.h"

using namespace shmx;
using shmx_test::SegmentCleanup;
using shmx_test::unique_segment_name;

namespace {

std::vector<StreamInfo> sample_streams() {
  StreamInfo video;
  video.name = "video0";
  video.type =
      "video/x-raw, format=(string)RGBA, width=(int)1920, height=(int)1080, framerate=(fraction)30/1";
  video.layout = "row-major RGBA 1920x1080 stride 7680";
  video.components = {{"pixels", DType::U8, 1920 * 1080 * 4}};
  video.extras = {{1, {0x00, 0x01, 0x00, 0xFF}}, {0xFFFFFFFFu, {}}};

  StreamInfo tick;
  tick.name = "tick";
  tick.type = "application/x-shmx-tick";
  tick.layout = "";
  tick.components = {{"counter", DType::U64, 1},
                     {"sim_time", DType::F64, 1},
                     {"pose", DType::F32, 7},
                     {"", DType::Bytes, 0}};

  StreamInfo empty;  // every field empty is still a stream
  return {video, tick, empty};
}

Metadata read_metadata(const Client& client) {
  auto md = client.metadata();
  EXPECT_TRUE(md) << md.status().to_string();
  return md ? std::move(md.value()) : Metadata{};
}

struct TlvSpec {
  uint16_t type;
  std::vector<uint8_t> value;
};

std::vector<uint8_t> encode_raw(const std::vector<TlvSpec>& tlvs) {
  std::vector<uint8_t> out(4096);
  TlvWriter writer(out.data(), out.size());
  for (const auto& t : tlvs) {
    EXPECT_TRUE(writer.append(t.type, 0, t.value.data(), static_cast<uint32_t>(t.value.size())));
  }
  out.resize(writer.size());
  return out;
}

std::vector<uint8_t> text(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

TEST(MetadataCodec, RoundTrip) {
  const auto streams = sample_streams();
  auto encoded = encode_metadata(streams);
  ASSERT_TRUE(encoded) << encoded.status().to_string();
  EXPECT_EQ(encoded->size() % kTlvAlignment, 0u);
  auto decoded = decode_metadata(encoded->data(), encoded->size());
  ASSERT_TRUE(decoded) << decoded.status().to_string();
  EXPECT_EQ(decoded.value(), streams);
  // Deterministic: the hash readers compare depends only on the streams.
  auto again = encode_metadata(streams);
  ASSERT_TRUE(again);
  EXPECT_EQ(again.value(), encoded.value());
}

TEST(MetadataCodec, EmptyList) {
  auto encoded = encode_metadata({});
  ASSERT_TRUE(encoded);
  auto decoded = decode_metadata(encoded->data(), encoded->size());
  ASSERT_TRUE(decoded) << decoded.status().to_string();
  EXPECT_TRUE(decoded->empty());
  auto from_nothing = decode_metadata(nullptr, 0);
  ASSERT_TRUE(from_nothing) << from_nothing.status().to_string();
  EXPECT_TRUE(from_nothing->empty());
}

TEST(MetadataCodec, Fnv1a64KnownValues) {
  EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar", 6), 0x85944171f73967e8ull);
}

TEST(MetadataCodec, EveryTruncationIsCorruptOrAShorterList) {
  const auto streams = sample_streams();
  auto encoded = encode_metadata(streams);
  ASSERT_TRUE(encoded);
  for (size_t size = 0; size < encoded->size(); ++size) {
    std::unique_ptr<uint8_t[]> exact(new uint8_t[size + 1]);  // +1: a zero-size new[] is still fine for ASan
    std::memcpy(exact.get(), encoded->data(), size);
    auto decoded = decode_metadata(exact.get(), size);
    if (decoded) {
      // Only a cut right after a StreamEnd may decode, and then as a prefix of the list.
      ASSERT_LT(decoded->size(), streams.size()) << "size " << size;
      for (size_t i = 0; i < decoded->size(); ++i) EXPECT_EQ((*decoded)[i], streams[i]) << "size " << size;
    } else {
      EXPECT_EQ(decoded.code(), Errc::Corrupt) << "size " << size << ": " << decoded.status().to_string();
    }
  }
}

TEST(MetadataCodec, MalformedRecordsAreCorrupt) {
  const TlvSpec begin{kTlvMetaStreamBegin, {}};
  const TlvSpec end{kTlvMetaStreamEnd, {}};
  const TlvSpec name{kTlvMetaName, text("s")};
  struct Case {
    const char* what;
    std::vector<TlvSpec> tlvs;
  };
  const std::vector<Case> cases = {
      {"missing StreamEnd", {begin, name}},
      {"nested StreamBegin", {begin, name, begin, name, end, end}},
      {"StreamEnd without begin", {end}},
      {"field outside a stream", {name}},
      {"field after the end", {begin, name, end, name}},
      {"component value too short", {begin, {kTlvMetaComponent, {1, 0}}, end}},
      {"extra value too short", {begin, {kTlvMetaExtra, {1, 2, 3}}, end}},
  };
  for (const Case& c : cases) {
    auto bytes = encode_raw(c.tlvs);
    auto decoded = decode_metadata(bytes.data(), bytes.size());
    EXPECT_FALSE(decoded) << c.what;
    if (!decoded) {
      EXPECT_EQ(decoded.code(), Errc::Corrupt) << c.what;
      EXPECT_FALSE(decoded.status().message().empty()) << c.what;
    }
  }
}

TEST(MetadataCodec, GarbageIsRefused) {
  std::mt19937 rng(777);
  int refused = 0;
  const int rounds = 500;
  for (int round = 0; round < rounds; ++round) {
    const size_t size = 8 + rng() % 120;
    std::unique_ptr<uint8_t[]> bytes(new uint8_t[size]);
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(rng());
    bytes[0] = 0x77;  // never a pad as the first TLV
    auto decoded = decode_metadata(bytes.get(), size);
    if (!decoded) {
      EXPECT_EQ(decoded.code(), Errc::Corrupt) << "round " << round;
      ++refused;
    }
  }
  EXPECT_GE(refused, rounds * 9 / 10);
}

// --- Through a segment ---

TEST(Metadata, ClientSeesUpdatesWithNewGeneration) {
  SegmentCleanup seg(unique_segment_name("meta"));
  auto streams = sample_streams();
  auto server = Server::create(seg.name(), {}, streams);
  ASSERT_TRUE(server) << server.status().to_string();
  const uint64_t g1 = server->metadata_generation();
  EXPECT_GT(g1, 0u);

  Client client;
  ClientOptions options;
  options.heartbeat_thread = false;
  ASSERT_TRUE(client.open(seg.name(), options));
  Metadata first = read_metadata(client);
  EXPECT_EQ(first.generation, g1);
  EXPECT_EQ(first.streams, streams);
  auto encoded = encode_metadata(streams);
  ASSERT_TRUE(encoded);
  EXPECT_EQ(first.hash, fnv1a64(encoded->data(), encoded->size()));

  // Frames carry the generation they were written against.
  const uint8_t byte = 1;
  ASSERT_TRUE(server->publish({{0, &byte, 1}}));
  auto f1 = client.read_latest();
  ASSERT_TRUE(f1) << f1.status().to_string();
  EXPECT_EQ(f1->header.metadata_generation, g1);

  streams[0].type = "video/x-raw, format=(string)NV12, width=(int)640, height=(int)480";
  streams.pop_back();
  ASSERT_TRUE(server->set_metadata(streams));
  const uint64_t g2 = server->metadata_generation();
  EXPECT_GT(g2, g1);
  Metadata second = read_metadata(client);
  EXPECT_EQ(second.generation, g2);
  EXPECT_EQ(second.streams, streams);
  EXPECT_NE(second.hash, first.hash);

  ASSERT_TRUE(server->publish({{0, &byte, 1}}));
  auto f2 = client.read_latest();
  ASSERT_TRUE(f2) << f2.status().to_string();
  EXPECT_EQ(f2->header.metadata_generation, g2);
}

TEST(Metadata, TooLargeIsRefusedAndKeepsTheOldCopy) {
  SegmentCleanup seg(unique_segment_name("metabig"));
  ServerOptions options;
  options.metadata_capacity = 4096;
  StreamInfo big;
  big.name = "big";
  big.type = std::string(5000, 'x');
  auto refused = Server::create(seg.name(), options, {big});
  EXPECT_EQ(refused.code(), Errc::TooLarge) << refused.status().to_string();
  EXPECT_FALSE(shmx_test::segment_exists(seg.name())) << "a refused create leaves nothing behind";

  const auto streams = sample_streams();
  auto server = Server::create(seg.name(), options, streams);
  ASSERT_TRUE(server) << server.status().to_string();
  const uint64_t generation = server->metadata_generation();
  Status st = server->set_metadata({big});
  EXPECT_EQ(st.code(), Errc::TooLarge) << st.to_string();
  EXPECT_EQ(server->metadata_generation(), generation);

  Client client;
  ClientOptions copts;
  copts.heartbeat_thread = false;
  ASSERT_TRUE(client.open(seg.name(), copts));
  Metadata md = read_metadata(client);
  EXPECT_EQ(md.generation, generation);
  EXPECT_EQ(md.streams, streams);
}

TEST(Metadata, ReadersNeverSeeATornCopy) {
  SegmentCleanup seg(unique_segment_name("metatorn"));
  auto a = sample_streams();
  auto b = a;
  b[0].type = std::string(3000, 'b');
  b[1].components.push_back({"extra", DType::I16, 3});
  auto server = Server::create(seg.name(), {}, a);
  ASSERT_TRUE(server) << server.status().to_string();
  Client client;
  ClientOptions copts;
  copts.heartbeat_thread = false;
  ASSERT_TRUE(client.open(seg.name(), copts));

  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      ASSERT_TRUE(server->set_metadata(i % 2 ? a : b));
    }
  });
  shmx_test::ScopeExit join([&] {
    stop = true;
    if (writer.joinable()) writer.join();
  });
  uint64_t last_generation = 0;
  int reads = 0, not_ready = 0;
  const auto deadline = shmx_test::Clock::now() + std::chrono::milliseconds(300);
  while (shmx_test::Clock::now() < deadline) {
    auto md = client.metadata();
    if (!md) {
      // Bounded retries may give up under a fast writer; that must say NotReady, never garbage.
      EXPECT_EQ(md.code(), Errc::NotReady) << md.status().to_string();
      ++not_ready;
      continue;
    }
    ++reads;
    EXPECT_TRUE(md->streams == a || md->streams == b) << "torn metadata copy";
    EXPECT_GE(md->generation, last_generation);
    last_generation = md->generation;
  }
  stop = true;
  writer.join();
  EXPECT_GT(reads, 0) << "not_ready " << not_ready;
}

}  // namespace
