// Server-supplied text on its way to a log: control bytes are escaped so that a value cannot
// forge log lines (CR, LF) or drive a terminal (ESC).
#pragma once

#include <iosfwd>
#include <string_view>

namespace apollo_oauth::sansio {

/// Writes `text` to `os` with every control byte (below 0x20, and 0x7f) as `\xNN`; other bytes,
/// UTF-8 included, as they are.
void print_escaped(std::ostream& os, std::string_view text);

}  // namespace apollo_oauth::sansio
