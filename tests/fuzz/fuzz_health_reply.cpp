// The health checker's reply parser: the status line of an http check
// (health::parseHttpStatus), i.e. whatever a backend, or anything that took
// its port, sends back. send_expect replies are only searched for a substring,
// so the status line is the one parser there is.

#include "fuzz_target.h"

#include <string>

#include "switchyard/health/health_check.h"

using namespace switchyard;

SWITCHYARD_FUZZ_TARGET(health_reply)(const uint8_t* data, std::size_t size) {
    fuzz::quietLogs();
    const std::string reply(reinterpret_cast<const char*>(data), size);
    // The checker hands over the text before the first CRLF (at most 8 KiB);
    // feed both that and the raw bytes.
    const auto eol = reply.find("\r\n");
    for (const std::string& line : {reply, reply.substr(0, eol == std::string::npos ? 8 * 1024 : eol)}) {
        const int status = health::parseHttpStatus(line);
        FUZZ_CHECK(status == -1 || (status >= 0 && status <= 999));
        if (status >= 0) FUZZ_CHECK(line.rfind("HTTP/", 0) == 0);
    }
    return 0;
}
