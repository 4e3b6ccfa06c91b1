#include "switchyard/daemon/process_spawn.h"

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>

#include <fcntl.h>
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

// The clone's child runs in a copy of this multi-threaded process until execve:
// raw system calls only (no libc wrapper a sanitizer intercepts, no lock).
[[noreturn]] void execInClone(char* const* args, int output, int channel, int channelAt) {
    // Above every target first, so no dup lands on a descriptor still needed.
    const long out = ::syscall(SYS_fcntl, output, F_DUPFD, 16);
    const long chan = channel >= 0 ? ::syscall(SYS_fcntl, channel, F_DUPFD, 16) : -1;
    if (out < 0 || (channel >= 0 && chan < 0)) ::syscall(SYS_exit_group, 127);
    ::syscall(SYS_dup3, out, 1, 0);
    ::syscall(SYS_dup3, out, 2, 0);
    if (chan >= 0) ::syscall(SYS_dup3, chan, channelAt, 0);
    ::syscall(SYS_close_range, static_cast<unsigned>(channel >= 0 ? channelAt + 1 : 3), ~0U, 0U);
    // Handlers reset to default at execve by themselves; a blocked signal would stay blocked.
    const uint64_t none = 0;
    ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, sizeof none);
    ::syscall(SYS_execve, args[0], args, environ);
    ::syscall(SYS_exit_group, 127);
    __builtin_unreachable();
}

Result<SpawnedProcess> spawnSibling(const std::vector<std::string>& argv, int output, int channel, int channelAt) {
    auto args = argvOf(argv);
    int pidfd = -1;
    // clone, not clone3: systemd's SystemCallFilter answers clone3 with ENOSYS.
    // The pidfd lands at the third argument (parent_tid) on x86-64 and arm64 alike;
    // the exit signal comes from ours under CLONE_PARENT (SIGCHLD to our parent).
    const long pid = ::syscall(SYS_clone, CLONE_PARENT | CLONE_PIDFD, nullptr, &pidfd, nullptr, nullptr);
    if (pid == 0) execInClone(args.data(), output, channel, channelAt);
    if (pid < 0)
        return Result<SpawnedProcess>::failure(fmt::format("cannot start {}: clone: {}", argv[0], std::strerror(errno)));
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
        ::kill(process.pid, SIGKILL);   // no pidfd_send_signal (a seccomp filter): by PID, not yet reaped
    }
    process.pid = -1;
    process.exited.reset();
}

} // namespace switchyard::daemon
