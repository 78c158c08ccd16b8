// A byte buffer for record text, which carries tokens: zeroed when destroyed.
#pragma once

#include <apollo_oauth/detail/secure_wipe.hpp>

#include <string>

namespace apollo_oauth::store {

/// Reserve the final size up front: a reallocation frees the old block unwiped.
class wiped_string {
public:
    wiped_string() = default;
    wiped_string(const wiped_string&) = delete;
    wiped_string& operator=(const wiped_string&) = delete;
    ~wiped_string() { wipe(); }

    /// Zeroes every byte the string owns (capacity, not only size) and empties it.
    void wipe() noexcept { detail::wipe(value); }

    std::string value;
};

}  // namespace apollo_oauth::store
