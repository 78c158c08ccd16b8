// api_response helpers.
#include <apollo_oauth/api_types.hpp>

// <ostream> first: Boost 1.81's core::string_view uses std::ostream without including it.
#include <ostream>

#include <boost/url/grammar/ci_string.hpp>

namespace apollo_oauth {

std::optional<std::string_view> api_response::header(std::string_view name) const noexcept {
    // Field names are ASCII tokens (RFC 9110 §5.1): an ASCII case fold is all it takes.
    for (const auto& [key, value] : headers) {
        if (boost::urls::grammar::ci_is_equal(key, name)) {
            return std::string_view(value);
        }
    }
    return std::nullopt;
}

}  // namespace apollo_oauth
