# Issue 4: bulk get-or-compute, the rehydrating wrapper, and the bookshop demo run in a short mode.
larder_add_test(larder_bulk_tests LABEL bookshop SOURCES bulk_test.cpp TIMEOUT 120)
