// VersionPolicy: which versions of a model a Server serves, and where requests that name no
// version go.
#ifndef MAAS_VERSION_POLICY_H_
#define MAAS_VERSION_POLICY_H_

#include <string>
#include <vector>

namespace maas {

// Which versions of a model a Server keeps loaded, and which of them answers a request that
// names no version (ServerRequestOptions::version empty). A request may always name any served
// version by number, by an alias that points at it, or as "latest" (the highest served).
//
// Aliases and "latest" are followed: when the store's alias moves or a version is published,
// the Server (on Refresh, or its watcher) loads the version they now mean, warms it up and
// switches traffic to it; moving an alias back rolls back the same way.
//
// Build one with the factories:
//   VersionPolicy::Latest()                          // the highest version (the default)
//   VersionPolicy::Latest(3)                         // the 3 highest; unnamed requests: highest
//   VersionPolicy::Specific({"stable"})              // whatever "stable" points at
//   VersionPolicy::Specific({"4", "7"})              // versions 4 and 7; unnamed requests: 4
//   VersionPolicy::Canary("stable", "canary", 10)    // 10% of unnamed requests to "canary"
struct VersionPolicy {
  enum class Kind {
    kLatest,    // the `latest_count` highest versions
    kSpecific,  // the versions listed in `versions`; unnamed requests go to the first
    kCanary,    // `versions` = {stable, canary}; unnamed requests split by `canary_percent`
  };

  Kind kind = Kind::kLatest;

  // kLatest: how many of the highest versions to serve, 1 or more. Default: 1.
  int latest_count = 1;

  // kSpecific: the versions to serve, each a number ("4"), an alias ("stable") or "latest".
  // kCanary: exactly two such strings, the stable version and the canary. Default: empty.
  std::vector<std::string> versions;

  // kCanary: the share of unnamed requests sent to the canary, in percent (0 to 100). Each
  // request is drawn at random, so the share holds on average. Default: 0.
  double canary_percent = 0;

  static VersionPolicy Latest(int count = 1);
  static VersionPolicy Specific(std::vector<std::string> versions);
  static VersionPolicy Canary(std::string stable, std::string canary, double canary_percent);

  friend bool operator==(const VersionPolicy& a, const VersionPolicy& b) {
    return a.kind == b.kind && a.latest_count == b.latest_count && a.versions == b.versions &&
           a.canary_percent == b.canary_percent;
  }
  friend bool operator!=(const VersionPolicy& a, const VersionPolicy& b) { return !(a == b); }
};

}  // namespace maas

#endif  // MAAS_VERSION_POLICY_H_
