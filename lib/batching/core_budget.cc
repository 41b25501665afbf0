#include "batching/core_budget.h"

#include <algorithm>

namespace maas::internal {

void CoreBudget::Acquire(int n) {
  n = std::min(n, total_);
  MutexLock lock(&mu_);
  while (available_ < n) released_.Wait(&mu_);
  available_ -= n;
}

bool CoreBudget::TryAcquire(int n) {
  n = std::min(n, total_);
  MutexLock lock(&mu_);
  if (available_ < n) return false;
  available_ -= n;
  return true;
}

void CoreBudget::Release(int n) {
  n = std::min(n, total_);
  MutexLock lock(&mu_);
  available_ += n;
  released_.SignalAll();
}

bool CoreBudget::AllFree() {
  MutexLock lock(&mu_);
  return available_ == total_;
}

int CoreBudget::Available() {
  MutexLock lock(&mu_);
  return available_;
}

}  // namespace maas::internal
