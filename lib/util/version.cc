#include "maas/version.h"

namespace maas {

const char* Version() { return MAAS_VERSION_STRING; }

}  // namespace maas
