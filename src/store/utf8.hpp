// UTF-8 validation: JSON strings can only carry valid UTF-8, and a record that holds anything else
// would be written fine and then be unreadable forever.
#pragma once

#include <string_view>

namespace apollo_oauth::store {

/// RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF (what Boost.JSON's parser
/// accepts). Written by hand because Boost 1.81 exposes no validator.
bool is_valid_utf8(std::string_view s) noexcept;

}  // namespace apollo_oauth::store
