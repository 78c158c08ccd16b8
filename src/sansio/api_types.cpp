// api_response helpers.
#include <apollo_oauth/api_types.hpp>

#include "sansio/encoding.hpp"

namespace apollo_oauth {

std::optional<std::string_view> api_response::header(std::string_view name) const noexcept {
    // Field names are ASCII tokens (RFC 9110 §5.1): an ASCII case fold is all it takes.
    for (const auto& [key, value] : headers) {
        if (sansio::ascii_iequals(key, name)) {
            return std::string_view(value);
        }
    }
    return std::nullopt;
}

}  // namespace apollo_oauth
