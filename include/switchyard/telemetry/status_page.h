#pragma once

// The status page served at / on the metrics listener: one self-contained
// HTML document (inline CSS and JavaScript, no external asset) that reads
// /status every few seconds and redraws only the parts that changed. It has
// no control that changes anything: it only ever issues GET /status.

#include <string_view>

namespace switchyard::telemetry {

std::string_view statusPageHtml();

} // namespace switchyard::telemetry
