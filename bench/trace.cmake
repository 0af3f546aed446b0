# Hit-ratio replayer (issue 6): larder's MemoryStore policy against exact LRU and Belady's OPT on
# the traces in ../shared/traces and on synthetic workloads. Run bench/run_trace_replay.sh.
add_executable(trace_replay trace_replay.cpp)
target_link_libraries(trace_replay PRIVATE larder::larder)
target_compile_definitions(trace_replay PRIVATE LARDER_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
larder_target_warnings(trace_replay)
