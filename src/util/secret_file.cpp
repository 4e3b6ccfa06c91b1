#include "switchyard/util/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "switchyard/util/unique_fd.h"

namespace switchyard {
namespace {
bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
} // namespace

Result<std::string> readSecretFile(const std::string& path, std::string_view what, std::size_t maxLength) {
    using R = Result<std::string>;
    // O_NOFOLLOW: the checks below are about the file itself, not a link to it.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd.valid()) return R::failure(fmt::format("{} {}: cannot open: {}", what, path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return R::failure(fmt::format("{} {}: cannot stat: {}", what, path, std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) return R::failure(fmt::format("{} {}: not a regular file", what, path));
    if (st.st_mode & 0077)
        return R::failure(fmt::format("{} {}: mode {:04o} lets group or others read or change it; run chmod 600 {}",
                                      what, path, st.st_mode & 07777, path));
    if (st.st_size > static_cast<off_t>(maxLength + 64))
        return R::failure(fmt::format("{} {}: {} bytes is too long (limit {})", what, path, st.st_size, maxLength));
    std::string text(static_cast<std::size_t>(st.st_size) + 1, '\0');
    ssize_t n = 0;
    do n = ::read(fd.get(), text.data(), text.size());
    while (n < 0 && errno == EINTR);
    if (n < 0) return R::failure(fmt::format("{} {}: cannot read: {}", what, path, std::strerror(errno)));
    text.resize(static_cast<std::size_t>(n));
    auto first = std::find_if_not(text.begin(), text.end(), isSpace);
    auto last = std::find_if_not(text.rbegin(), text.rend(), isSpace).base();
    std::string secret = first < last ? std::string(first, last) : std::string();
    std::fill(text.begin(), text.end(), '\0');
    if (secret.empty()) return R::failure(fmt::format("{} {}: the file is empty", what, path));
    return secret;
}

} // namespace switchyard
