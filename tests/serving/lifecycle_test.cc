// The Server's lifecycle thread: tasks in order on one thread, the periodic watcher between
// them, what Stop answers, and loads at a lowered priority.
#include "serving/lifecycle.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace maas::internal {
namespace {

TEST(LifecycleTest, TasksRunInOrderOnItsOneThread) {
  Lifecycle lifecycle(absl::ZeroDuration(), [] {});
  std::vector<int> order;
  std::promise<void> done;
  for (int i = 0; i < 3; ++i) {
    lifecycle.Post([&, i](bool run) {
      EXPECT_TRUE(run);
      EXPECT_TRUE(lifecycle.OnThread());
      order.push_back(i);
      if (i == 2) done.set_value();
    });
  }
  done.get_future().wait();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_FALSE(lifecycle.OnThread());
}

TEST(LifecycleTest, StopAnswersQueuedTasksAndLaterPostsWithFalse) {
  Lifecycle lifecycle(absl::ZeroDuration(), [] {});
  std::promise<void> started, release;
  std::shared_future<void> released = release.get_future().share();
  lifecycle.Post([&](bool run) {
    started.set_value();
    released.wait();
  });
  started.get_future().wait();
  bool queued_ran = true;
  lifecycle.Post([&](bool run) { queued_ran = run; });
  std::thread stopper([&] { lifecycle.Stop(); });
  // Once Stop has begun, a Post is answered with false at once, inside the call.
  auto stopping = std::make_shared<std::atomic<bool>>(false);
  while (!*stopping) {
    auto in_post = std::make_shared<std::atomic<bool>>(true);
    lifecycle.Post([in_post, stopping](bool run) {
      if (*in_post && !run) *stopping = true;
    });
    *in_post = false;
    if (!*stopping) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  release.set_value();  // The running task finishes; the queued one is answered with false.
  stopper.join();
  EXPECT_FALSE(queued_ran);
  bool late_ran = true;
  lifecycle.Post([&](bool run) { late_ran = run; });
  EXPECT_FALSE(late_ran) << "called at once, with false";
}

TEST(LifecycleTest, ThePeriodicWorkRunsWhileNoTaskIsQueued) {
  std::promise<void> ticked;
  bool once = false;
  Lifecycle lifecycle(absl::Milliseconds(1), [&] {
    if (!once) ticked.set_value();
    once = true;
  });
  EXPECT_EQ(ticked.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
}

TEST(LifecycleTest, LoadsRunNicerThanTheirCaller) {
  // Linux keeps a nice value per thread.
  const auto nice_of_this_thread = [] {
    return ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
  };
  const int caller = nice_of_this_thread();
  int during = caller;
  RunNiced([&] { during = nice_of_this_thread(); });
  EXPECT_EQ(during, std::min(caller + kLoadNiceIncrement, 19));
  EXPECT_EQ(nice_of_this_thread(), caller) << "the caller keeps its priority";
}

}  // namespace
}  // namespace maas::internal
