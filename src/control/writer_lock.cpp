#include "switchyard/control/writer_lock.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

namespace switchyard::control {

Result<bool> WriterLock::take(const std::string& stateFile) {
    if (held()) return true;
    const std::string path = pathFor(stateFile);
    std::error_code ec;
    if (const auto parent = std::filesystem::path(path).parent_path(); !parent.empty())
        std::filesystem::create_directories(parent, ec);
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640));
    if (!fd.valid())
        return Result<bool>::failure(fmt::format("cannot open the writer lock {}: {}", path, std::strerror(errno)));
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;   // the whole file; l_pid must be 0 for an OFD lock
    if (::fcntl(fd.get(), F_OFD_SETLK, &lock) != 0) {
        const int err = errno;
        if (err == EAGAIN || err == EACCES)
            return Result<bool>::failure(fmt::format(
                "{} is in use by another switchyard (it holds {}); two daemons must not share a state file: "
                "give each its own state_file",
                stateFile, path));
        return Result<bool>::failure(fmt::format("cannot lock {}: {}", path, std::strerror(err)));
    }
    fd_ = std::move(fd);
    return true;
}

} // namespace switchyard::control
