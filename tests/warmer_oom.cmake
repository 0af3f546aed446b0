# ThreadPool and Warmer when an allocation fails. An executable of its own: it replaces the global
# operator new (tests/support/failing_new.hpp).
larder_add_test(larder_warmer_oom_tests LABEL json SOURCES warmer_oom_test.cpp TIMEOUT 60)
