// Links against an installed maas, opens a store and prints the library version.
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "maas/maas.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  auto store = maas::ModelStore::Open(argv[1]);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  auto models = (*store)->Models();
  if (!models.ok() || !models->empty()) return 1;
  if (std::strcmp(maas::Version(), MAAS_VERSION_STRING) != 0) return 1;
  std::printf("maas %s\n", maas::Version());
  return 0;
}
