// Must not compile: a parameter type that cannot be part of a key. The error must say what to do.
#include <larder/larder.hpp>

struct Opaque {
  int x;
};

int f(int id, Opaque o) { return id + o.x; }

int main() {
  larder::MemoryStore store;
  larder::Cached c{store, "N", "f", &f};
  return c(1, Opaque{2});
}
