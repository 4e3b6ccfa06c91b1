#include "switchyard/daemon/process_spawn.h"

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

extern char** environ;

namespace switchyard::daemon {
namespace {

std::vector<char*> argvOf(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    return args;
}

Result<SpawnedProcess> spawnChild(const std::vector<std::string>& argv, int output, int channel, int channelAt) {
    auto args = argvOf(argv);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, output, 1);
    posix_spawn_file_actions_adddup2(&actions, output, 2);
    if (channel >= 0) posix_spawn_file_actions_adddup2(&actions, channel, channelAt);
    posix_spawn_file_actions_addclosefrom_np(&actions, channel >= 0 ? channelAt + 1 : 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return Result<SpawnedProcess>::failure(fmt::format("cannot start {}: {}", argv[0], std::strerror(rc)));
    return SpawnedProcess{pid, true, UniqueFd()};
}

struct CloneChild {
    char* const* args;
    char* const* env;
    int output;
    int channel;
    int channelAt;
};

// The child of spawnSibling's clone shares this process's memory (CLONE_VM)
// while the calling thread waits (CLONE_VFORK), as posix_spawn's child does:
// raw system calls on its own stack only, then execve. Any failure ends it
// with 127 before the new binary could run with a descriptor it must not have.
// Not instrumented: a sanitizer's per-thread state here is the waiting parent thread's.
__attribute__((no_sanitize("address", "thread", "undefined"))) int execCloneChild(void* raw) {
    const auto& c = *static_cast<const CloneChild*>(raw);
    // Every handler back to default (a zeroed kernel sigaction is SIG_DFL on
    // every layout): the parent's handlers must not run here, and an ignored
    // SIGPIPE must not reach the new binary. Then the mask the parent blocked.
    const uint64_t zeroed[4] = {};
    for (long sig = 1; sig < 65; ++sig)
        if (sig != SIGKILL && sig != SIGSTOP) ::syscall(SYS_rt_sigaction, sig, zeroed, nullptr, 8);
    // Above every target first, so no dup lands on a descriptor still needed.
    const long out = ::syscall(SYS_fcntl, c.output, F_DUPFD, 16);
    const long chan = c.channel >= 0 ? ::syscall(SYS_fcntl, c.channel, F_DUPFD, 16) : -1;
    if (out < 0 || (c.channel >= 0 && chan < 0)) ::syscall(SYS_exit_group, 127);
    if (::syscall(SYS_dup3, out, 1, 0) < 0 || ::syscall(SYS_dup3, out, 2, 0) < 0) ::syscall(SYS_exit_group, 127);
    if (chan >= 0 && ::syscall(SYS_dup3, chan, c.channelAt, 0) < 0) ::syscall(SYS_exit_group, 127);
    const long firstClosed = c.channel >= 0 ? c.channelAt + 1 : 3;
    if (::syscall(SYS_close_range, firstClosed, ~0U, 0U) < 0)   // no close_range (before 5.9, a filter)
        for (long fd = firstClosed; fd < (1L << 20); ++fd) ::syscall(SYS_close, fd);
    const uint64_t none = 0;
    ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, sizeof none);
    ::syscall(SYS_execve, c.args[0], c.args, c.env);
    ::syscall(SYS_exit_group, 127);
    return 127;
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SWITCHYARD_UNDER_TSAN 1
#endif
#endif

using CloneFunction = int (*)(int (*)(void*), void*, int, void*, ...);

// ThreadSanitizer intercepts clone() as a fork and fails its own check on a
// CLONE_VM child; glibc's clone, looked up in libc itself (past the
// interceptor, whether the runtime is linked in or a shared libtsan), runs
// without it. The child above is not instrumented anyway.
CloneFunction glibcClone() {
#ifdef SWITCHYARD_UNDER_TSAN
    static const CloneFunction real = [] {
        void* libc = ::dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
        return libc ? reinterpret_cast<CloneFunction>(::dlsym(libc, "clone")) : nullptr;
    }();
    if (real != nullptr) return real;
#endif
    return &::clone;
}

Result<SpawnedProcess> spawnSibling(const std::vector<std::string>& argv, int output, int channel, int channelAt) {
    auto args = argvOf(argv);
    CloneChild child{args.data(), environ, output, channel, channelAt};
    std::vector<char> stack(64 * 1024);
    // Blocked until the child has reset its handlers: a signal in between
    // would run one of ours in the child.
    sigset_t all;
    sigset_t before;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &before);
    int pidfd = -1;
    // glibc's clone uses the clone system call, not clone3, which systemd's
    // SystemCallFilter answers with ENOSYS. The pidfd lands in parent_tid.
    const int pid = glibcClone()(execCloneChild, stack.data() + stack.size(),
                                 CLONE_VM | CLONE_VFORK | CLONE_PARENT | CLONE_PIDFD, &child, &pidfd);
    const int cloneError = errno;
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    if (pid < 0)
        return Result<SpawnedProcess>::failure(fmt::format("cannot start {}: clone: {}", argv[0], std::strerror(cloneError)));
    if (pidfd < 0) {   // a kernel before 5.2 ignores CLONE_PIDFD: we could not tell when it ends
        ::kill(pid, SIGKILL);
        return Result<SpawnedProcess>::failure(fmt::format("cannot start {}: this kernel gives no pidfd", argv[0]));
    }
    // execve failing leaves exit status 127, which only our parent sees: the
    // caller learns of the exit from the pidfd and reports the child's output.
    return SpawnedProcess{static_cast<pid_t>(pid), false, UniqueFd(pidfd)};   // pidfds are close-on-exec
}

} // namespace

Result<SpawnedProcess> spawnProcess(const std::vector<std::string>& argv, int output, int channel, int channelAt,
                                    bool asSibling) {
    if (asSibling && ::getpid() != 1) return spawnSibling(argv, output, channel, channelAt);
    return spawnChild(argv, output, channel, channelAt);
}

void killSpawned(SpawnedProcess& process) {
    if (process.pid <= 0) return;
    if (process.ownChild) {
        ::kill(process.pid, SIGKILL);
        ::waitpid(process.pid, nullptr, 0);
    } else if (::syscall(SYS_pidfd_send_signal, process.exited.get(), SIGKILL, nullptr, 0) != 0 && errno != ESRCH) {
        ::kill(process.pid, SIGKILL);   // no pidfd_send_signal (a seccomp filter): by PID, as a last resort
    }
    process.pid = -1;
    process.exited.reset();
}

} // namespace switchyard::daemon
