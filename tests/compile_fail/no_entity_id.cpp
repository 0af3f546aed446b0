// Must not compile: the entity type has no id. The error must say how to give it one.
#include <larder/larder.hpp>

struct Nameless {
  int x;
};

int f(const Nameless& n) { return n.x; }

int main() {
  larder::MemoryStore store;
  larder::Cached c{store, "N", "f", &f};
  return c(Nameless{1});
}
