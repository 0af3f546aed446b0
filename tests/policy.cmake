# W-TinyLFU policy unit tests (issue 6): sketch, admission, adaptive window, bounds, determinism.
larder_add_test(larder_policy_tests LABEL memory SOURCES policy_test.cpp reference_policy_test.cpp
  TIMEOUT 300)
