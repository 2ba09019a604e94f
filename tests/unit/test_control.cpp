// SPDX-License-Identifier: MIT
// Control plane: reader-to-writer TLV rings (order, RingFull without overwrite, wrap-around, BYE).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "shmx_client.h"
#include "shmx_server.h"
#include "test_support.h"

using namespace shmx;
using shmx_test::SegmentCleanup;
using shmx_test::unique_segment_name;

namespace {

ClientOptions quiet_client(const std::string& name) {
  ClientOptions options;
  options.reader_name = name;
  options.heartbeat_thread = false;  // keeps the ring contents deterministic
  return options;
}

std::vector<ControlMessage> drain(Server& server) {
  std::vector<ControlMessage> out;
  server.poll_control([&](const ControlMessage& m) { out.push_back(m); });
  return out;
}

std::string as_string(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

class ControlRing : public ::testing::Test {
 protected:
  void create(uint32_t ring_capacity = 4096, uint32_t readers = 4) {
    ServerOptions options;
    options.slot_count = 3;
    options.slot_payload_capacity = 4096;
    options.reader_capacity = readers;
    options.control_ring_capacity = ring_capacity;
    auto server = Server::create(seg_.name(), options);
    ASSERT_TRUE(server) << server.status().to_string();
    server_ = std::move(server.value());
  }
  SegmentCleanup seg_{unique_segment_name("ctl")};
  Server server_;
};

TEST_F(ControlRing, HelloHeartbeatUserTlvsAndByeInOrder) {
  create();
  Client client;
  ASSERT_TRUE(client.open(seg_.name(), quiet_client("cam-viewer")));
  ASSERT_TRUE(client.send_heartbeat());
  ASSERT_TRUE(client.send(kTlvUserBase + 1, "abc", 3));
  ASSERT_TRUE(client.send(kTlvUserBase + 2, nullptr, 0));
  const uint8_t blob[13] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3};
  ASSERT_TRUE(client.send(kTlvUserBase + 3, blob, sizeof(blob)));

  auto messages = drain(server_);
  ASSERT_EQ(messages.size(), 5u);
  EXPECT_EQ(messages[0].type, kTlvHello);
  EXPECT_EQ(as_string(messages[0].value), "cam-viewer");
  EXPECT_EQ(messages[1].type, kTlvHeartbeat);
  EXPECT_EQ(messages[1].value.size(), sizeof(uint64_t));
  EXPECT_EQ(messages[2].type, kTlvUserBase + 1);
  EXPECT_EQ(as_string(messages[2].value), "abc");
  EXPECT_EQ(messages[3].type, kTlvUserBase + 2);
  EXPECT_TRUE(messages[3].value.empty());
  EXPECT_EQ(messages[4].type, kTlvUserBase + 3);
  EXPECT_EQ(messages[4].value, std::vector<uint8_t>(blob, blob + sizeof(blob)));
  auto readers = server_.readers();
  ASSERT_EQ(readers.size(), 1u);
  for (const auto& m : messages) {
    EXPECT_EQ(m.reader_name, "cam-viewer");
    EXPECT_EQ(m.pid, shmx_test::current_pid());
    EXPECT_EQ(m.reader_index, readers[0].index);
    EXPECT_EQ(m.reader_id, readers[0].reader_id);
  }
  EXPECT_NE(readers[0].reader_id, 0u);
  EXPECT_EQ(readers[0].name, "cam-viewer");
  EXPECT_EQ(readers[0].pid, shmx_test::current_pid());
  EXPECT_TRUE(readers[0].alive);
  EXPECT_TRUE(drain(server_).empty()) << "a drained ring yields nothing more";

  client.close();
  messages = drain(server_);
  ASSERT_EQ(messages.size(), 1u) << "close() sends BYE";
  EXPECT_EQ(messages[0].type, kTlvBye);
  EXPECT_EQ(messages[0].reader_name, "cam-viewer");
  EXPECT_TRUE(server_.readers().empty()) << "BYE frees the reader slot";
}

TEST_F(ControlRing, LongReaderNameIsTruncated) {
  create();
  Client client;
  const std::string long_name(200, 'n');
  ASSERT_TRUE(client.open(seg_.name(), quiet_client(long_name)));
  auto readers = server_.readers();
  ASSERT_EQ(readers.size(), 1u);
  EXPECT_EQ(readers[0].name, long_name.substr(0, kReaderNameLength - 1));
}

TEST_F(ControlRing, MessagesAreTaggedWithTheirReader) {
  create();
  Client a, b;
  ASSERT_TRUE(a.open(seg_.name(), quiet_client("reader-a")));
  ASSERT_TRUE(b.open(seg_.name(), quiet_client("reader-b")));
  ASSERT_TRUE(a.send(kTlvUserBase, "A", 1));
  ASSERT_TRUE(b.send(kTlvUserBase, "B", 1));
  auto messages = drain(server_);
  ASSERT_EQ(messages.size(), 4u);
  int seen_a = 0, seen_b = 0;
  for (const auto& m : messages) {
    if (m.type != kTlvUserBase) continue;
    if (m.reader_name == "reader-a") {
      EXPECT_EQ(as_string(m.value), "A");
      ++seen_a;
    } else {
      EXPECT_EQ(m.reader_name, "reader-b");
      EXPECT_EQ(as_string(m.value), "B");
      ++seen_b;
    }
  }
  EXPECT_EQ(seen_a, 1);
  EXPECT_EQ(seen_b, 1);
}

TEST_F(ControlRing, FullRingRefusesAndOverwritesNothing) {
  create(256);
  Client client;
  ASSERT_TRUE(client.open(seg_.name(), quiet_client("r")));
  uint32_t sent = 0;
  Status st;
  for (uint32_t i = 0; i < 100; ++i) {
    uint8_t value[20];
    std::memset(value, static_cast<int>(i), sizeof(value));
    std::memcpy(value, &i, sizeof(i));
    st = client.send(kTlvUserBase, value, sizeof(value));
    if (!st) break;
    ++sent;
  }
  EXPECT_EQ(st.code(), Errc::RingFull) << st.to_string();
  EXPECT_GT(sent, 3u);
  EXPECT_LE(sent, 256u / tlv_padded_size(20));
  // Still full for a message of that size: nothing sneaks in by overwriting.
  uint8_t again[20] = {};
  EXPECT_EQ(client.send(kTlvUserBase, again, sizeof(again)).code(), Errc::RingFull);

  auto messages = drain(server_);
  ASSERT_EQ(messages.size(), sent + 1);
  EXPECT_EQ(messages[0].type, kTlvHello);
  for (uint32_t i = 0; i < sent; ++i) {
    const auto& m = messages[i + 1];
    ASSERT_EQ(m.value.size(), 20u);
    uint32_t stored = 0;
    std::memcpy(&stored, m.value.data(), sizeof(stored));
    EXPECT_EQ(stored, i) << "messages are the first ones, in order";
  }
  // Drained: sending works again.
  EXPECT_TRUE(client.send(kTlvUserBase, "y", 1));
  messages = drain(server_);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(as_string(messages[0].value), "y");
}

TEST_F(ControlRing, MessageLargerThanTheRingIsRefused) {
  create(256);
  Client client;
  ASSERT_TRUE(client.open(seg_.name(), quiet_client("r")));
  drain(server_);
  std::vector<uint8_t> big(1000, 0xAB);
  Status st = client.send(kTlvUserBase, big.data(), static_cast<uint32_t>(big.size()));
  EXPECT_FALSE(st);
  EXPECT_TRUE(st.code() == Errc::TooLarge || st.code() == Errc::RingFull) << st.to_string();
  EXPECT_TRUE(client.send(kTlvUserBase, "ok", 2));
  auto messages = drain(server_);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(as_string(messages[0].value), "ok");
}

TEST_F(ControlRing, WrapsAroundOverManyMessages) {
  create(256);
  Client client;
  ASSERT_TRUE(client.open(seg_.name(), quiet_client("w")));
  drain(server_);
  uint32_t next_expected = 0;
  uint32_t sent = 0;
  for (int round = 0; round < 400; ++round) {
    // 1..3 messages of odd sizes per round, so the ring wraps at every possible position.
    for (int k = 0; k < 1 + round % 3; ++k) {
      std::vector<uint8_t> value(4 + (sent * 7) % 37);
      for (size_t j = 0; j < value.size(); ++j) value[j] = static_cast<uint8_t>(sent + j);
      std::memcpy(value.data(), &sent, sizeof(sent));
      ASSERT_TRUE(client.send(kTlvUserBase, value.data(), static_cast<uint32_t>(value.size())))
          << "message " << sent;
      ++sent;
    }
    for (const auto& m : drain(server_)) {
      ASSERT_EQ(m.type, kTlvUserBase);
      ASSERT_EQ(m.value.size(), 4 + (next_expected * 7) % 37);
      uint32_t stored = 0;
      std::memcpy(&stored, m.value.data(), sizeof(stored));
      ASSERT_EQ(stored, next_expected);
      for (size_t j = 4; j < m.value.size(); ++j) ASSERT_EQ(m.value[j], static_cast<uint8_t>(stored + j));
      ++next_expected;
    }
  }
  EXPECT_EQ(next_expected, sent);
}

TEST_F(ControlRing, ConcurrentSenderAndPollerLoseNothing) {
  create(512);
  Client client;
  ASSERT_TRUE(client.open(seg_.name(), quiet_client("c")));
  drain(server_);
  constexpr uint32_t kMessages = 20000;
  std::atomic<bool> sender_failed{false};
  std::thread sender([&] {
    const auto deadline = shmx_test::Clock::now() + std::chrono::seconds(10);
    for (uint32_t i = 0; i < kMessages;) {
      Status st = client.send(kTlvUserBase, &i, sizeof(i));
      if (st) {
        ++i;
      } else if (st.code() != Errc::RingFull || shmx_test::Clock::now() > deadline) {
        sender_failed = true;
        return;
      }
    }
  });
  uint32_t expected = 0;
  bool order_ok = true;
  const auto deadline = shmx_test::Clock::now() + std::chrono::seconds(15);
  while (expected < kMessages && !sender_failed && shmx_test::Clock::now() < deadline) {
    server_.poll_control([&](const ControlMessage& m) {
      uint32_t v = ~0u;
      if (m.value.size() == sizeof(v)) std::memcpy(&v, m.value.data(), sizeof(v));
      if (v != expected) order_ok = false;
      ++expected;
    });
  }
  sender.join();
  EXPECT_FALSE(sender_failed);
  EXPECT_TRUE(order_ok);
  EXPECT_EQ(expected, kMessages);
}

TEST_F(ControlRing, ByeFreesTheSlotForANewReader) {
  create(4096, 1);
  Client first;
  ASSERT_TRUE(first.open(seg_.name(), quiet_client("first")));
  Client second;
  Status st = second.open(seg_.name(), quiet_client("second"));
  EXPECT_EQ(st.code(), Errc::NoReaderSlot) << st.to_string();
  first.close();
  drain(server_);
  ASSERT_TRUE(second.open(seg_.name(), quiet_client("second")));
  auto readers = server_.readers();
  ASSERT_EQ(readers.size(), 1u);
  EXPECT_EQ(readers[0].name, "second");
  auto messages = drain(server_);
  ASSERT_FALSE(messages.empty());
  EXPECT_EQ(messages[0].type, kTlvHello);
  EXPECT_EQ(messages[0].reader_name, "second") << "the new reader's ring starts empty";
}

TEST_F(ControlRing, NoHelloWhenDisabled) {
  create();
  Client client;
  ClientOptions options = quiet_client("silent");
  options.send_hello = false;
  ASSERT_TRUE(client.open(seg_.name(), options));
  EXPECT_TRUE(drain(server_).empty());
  EXPECT_EQ(server_.readers().size(), 1u) << "registered even without HELLO";
  client.close();
  EXPECT_TRUE(drain(server_).empty()) << "no BYE either";
  // Only the writer frees reader slots: without a BYE, the reader's released lock gets it reaped.
  const auto reaped = server_.reap_stale_readers();
  ASSERT_EQ(reaped.size(), 1u);
  EXPECT_EQ(reaped[0].name, "silent");
  EXPECT_FALSE(reaped[0].alive);
  EXPECT_TRUE(server_.readers().empty());
}

}  // namespace
