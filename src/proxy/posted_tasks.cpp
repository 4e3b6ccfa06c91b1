#include "switchyard/proxy/posted_tasks.h"

#include <cerrno>
#include <cstdint>

#include <sys/eventfd.h>
#include <unistd.h>

namespace switchyard::proxy {

PostedTasks::PostedTasks(bool nonBlocking) {
    wakeFd_.reset(::eventfd(0, EFD_CLOEXEC | (nonBlocking ? EFD_NONBLOCK : 0)));
    if (!wakeFd_.valid()) error_ = errno;
}

void PostedTasks::post(std::function<void()> task) {
    {
        std::lock_guard lock(mutex_);
        tasks_.push_back(std::move(task));
    }
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wakeFd_.get(), &one, sizeof one);
}

void PostedTasks::acknowledge() {
    uint64_t count = 0;
    [[maybe_unused]] const ssize_t n = ::read(wakeFd_.get(), &count, sizeof count);
}

void PostedTasks::runAll() {
    std::vector<std::function<void()>> tasks;
    {
        std::lock_guard lock(mutex_);
        tasks.swap(tasks_);
    }
    for (auto& task : tasks) task();
}

} // namespace switchyard::proxy
