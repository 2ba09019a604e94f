// SPDX-License-Identifier: MIT
// Entry point of the multi-process tests: runs a child role when asked to, GoogleTest otherwise.
#include <gtest/gtest.h>

#include "roles.h"

int main(int argc, char** argv) {
  if (int rc = shmx_test::run_role(argc, argv); rc >= 0) return rc;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
