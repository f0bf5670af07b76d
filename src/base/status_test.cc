#include "base/status.h"

#include <gtest/gtest.h>

namespace halo {
namespace {

Result<int> half(int x) {
  if (x % 2 != 0) {
    return invalidArgument("odd value " + std::to_string(x));
  }
  return x / 2;
}

Result<int> quarter(int x) {
  HALO_ASSIGN_OR_RETURN(int h, half(x));
  return half(h);
}

TEST(StatusTest, OkAndError) {
  EXPECT_TRUE(okStatus().ok());
  Status s = notFound("module web");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.toString(), "NotFound: module web");
  EXPECT_EQ(s.withPrefix("start").message(), "start: module web");
}

TEST(StatusTest, ResultPropagates) {
  EXPECT_EQ(*quarter(8), 2);
  auto r = quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "odd value 3");
}

TEST(StatusTest, ErrnoMapsCodes) {
  EXPECT_EQ(errnoStatus("open /x", ENOENT).code(), StatusCode::NotFound);
  EXPECT_EQ(errnoStatus("open /x", EACCES).code(), StatusCode::PermissionDenied);
  EXPECT_EQ(errnoStatus("open /x", EIO).code(), StatusCode::Internal);
}

}  // namespace
}  // namespace halo
