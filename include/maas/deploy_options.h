// DeployOptions: how a Server deploys one model.
#ifndef MAAS_DEPLOY_OPTIONS_H_
#define MAAS_DEPLOY_OPTIONS_H_

#include <c10/core/Device.h>

#include <vector>

#include "maas/batching_options.h"
#include "maas/session.h"
#include "maas/version_policy.h"

namespace maas {

// How a model is deployed: which versions, where, and how its requests are batched.
struct DeployOptions {
  // Which versions to serve and where unnamed requests go. Default: the latest version.
  VersionPolicy policy;

  // The devices to load each version on (one session per device), and how many instances per
  // device: each instance is another set of workers (BatchingOptions::workers_per_session) on
  // the device's session, sharing its weights. Worker counts are chosen from the machine by
  // default, so that 1 instance already keeps every core busy. Defaults: the CPU, 1 instance.
  std::vector<c10::Device> devices = {c10::Device(c10::DeviceType::CPU)};
  int instances_per_device = 1;

  // How requests are batched; see BatchingOptions. Default: BatchingOptions{}.
  BatchingOptions batching;

  // How each instance is loaded (intra-op threads, warm-up, graph preparation, outputs kept on
  // the device); see SessionOptions. Its `version` and `device` are not used: `policy` and
  // `devices` choose them. Default: SessionOptions{}.
  SessionOptions session;

  friend bool operator==(const DeployOptions& a, const DeployOptions& b) {
    return a.policy == b.policy && a.devices == b.devices &&
           a.instances_per_device == b.instances_per_device && a.batching == b.batching &&
           a.session == b.session;
  }
  friend bool operator!=(const DeployOptions& a, const DeployOptions& b) { return !(a == b); }
};

}  // namespace maas

#endif  // MAAS_DEPLOY_OPTIONS_H_
