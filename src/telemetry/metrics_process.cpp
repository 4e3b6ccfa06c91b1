#include "switchyard/telemetry/metrics_process.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

namespace switchyard::telemetry {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

void add(std::vector<MetricFamily>& out, const char* name, const char* help, MetricType type, double value) {
    ClientMetric m;
    if (type == MetricType::Counter)
        m.counter.value = value;
    else
        m.gauge.value = value;
    out.push_back(MetricFamily{name, help, type, {std::move(m)}});
}

// Seconds since the epoch at which the system booted (/proc/stat btime).
bool bootTime(double& out) {
    std::ifstream in("/proc/stat");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("btime ", 0) == 0) {
            out = std::stod(line.substr(6));
            return true;
        }
    }
    return false;
}

int openFds() {
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir) return -1;
    int n = 0;
    while (const dirent* e = ::readdir(dir))
        if (e->d_name[0] != '.') ++n;
    ::closedir(dir);
    return n - 1;   // the directory stream's own fd
}

} // namespace

void appendProcessMetrics(std::vector<MetricFamily>& out) {
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));

    // /proc/self/stat: fields after the parenthesised command name, which may hold spaces.
    std::ifstream statFile("/proc/self/stat");
    std::string stat((std::istreambuf_iterator<char>(statFile)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close != std::string::npos && ticks > 0) {
        std::istringstream fields(stat.substr(close + 2));
        // Field 3 (state) is the first here; utime is 14, stime 15, starttime 22, vsize 23, rss 24.
        std::string f[22];
        for (auto& s : f) fields >> s;
        if (fields) {
            const double utime = std::stod(f[11]);
            const double stime = std::stod(f[12]);
            add(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                MetricType::Counter, (utime + stime) / ticks);
            add(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
                std::stod(f[20]));
            add(out, "process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
                std::stod(f[21]) * page);
            double boot = 0;
            if (bootTime(boot))
                add(out, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                    MetricType::Gauge, boot + std::stod(f[19]) / ticks);
        }
    }
    if (const int fds = openFds(); fds >= 0)
        add(out, "process_open_fds", "Number of open file descriptors.", MetricType::Gauge, fds);
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
        add(out, "process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
            static_cast<double>(limit.rlim_cur));
}

} // namespace switchyard::telemetry
