// The umbrella header of maas: include it to get the whole public API.
#ifndef MAAS_MAAS_H_
#define MAAS_MAAS_H_

#include "maas/clock.h"
#include "maas/log.h"
#include "maas/model_status.h"
#include "maas/model_store.h"
#include "maas/scheduler.h"
#include "maas/server.h"
#include "maas/session.h"
#include "maas/stats.h"
#include "maas/types.h"
#include "maas/version.h"
#include "maas/version_policy.h"

#endif  // MAAS_MAAS_H_
