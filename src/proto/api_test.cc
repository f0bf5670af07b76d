#include "proto/api.h"

#include <gtest/gtest.h>

namespace halo::proto {
namespace {

TEST(ApiTest, RequestRoundTrip) {
  Request r{"wait", "web", "checker", {{"state", "UP"}, {"timeout_ms", 500}}};
  auto back = decodeRequest(encodeRequest(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->cmd, "wait");
  EXPECT_EQ(back->module, "web");
  EXPECT_EQ(back->identity, "checker");
  EXPECT_EQ(back->params["timeout_ms"], 500);
}

TEST(ApiTest, BraceInitializedParamsEncodeAsAnObject) {
  auto back = decodeRequest(encodeRequest(Request{"start", "web", "", {}}));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->params.is_object());
}

TEST(ApiTest, MalformedRequestsAreErrorsNotCrashes) {
  for (const char* bad : {"", "{", "[]", "42", "{\"cmd\":3}", "{\"module\":\"x\"}",
                          "{\"cmd\":\"x\",\"params\":[1]}", "\xff\xfe"}) {
    EXPECT_FALSE(decodeRequest(bad).ok()) << bad;
  }
}

TEST(ApiTest, ReplyRoundTrip) {
  auto back = decodeReply(encodeReply(errorReply("module web is not installed", 1)));
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->ok());
  EXPECT_EQ(back->message, "module web is not installed");
  EXPECT_FALSE(decodeReply("{\"message\":\"x\"}").ok());
}

}  // namespace
}  // namespace halo::proto
