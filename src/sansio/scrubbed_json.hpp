// Parsing JSON that carries secrets (token responses) without leaving copies in freed memory.
#pragma once

#include <apollo_oauth/error.hpp>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <string_view>

namespace apollo_oauth::sansio {

/// Owns the memory of one parsed document, and wipes all of it and the parser's scratch space when
/// destroyed. A value returned by parse() must be destroyed before this object.
class scrubbed_json {
public:
    scrubbed_json() noexcept;
    ~scrubbed_json();
    scrubbed_json(const scrubbed_json&) = delete;
    scrubbed_json& operator=(const scrubbed_json&) = delete;

    /// One complete JSON text (trailing bytes are an error). Null on error.
    boost::json::value parse(std::string_view text, error_code& ec);

private:
    // Sized for a token response; a larger document spills into wiped heap blocks.
    alignas(std::max_align_t) unsigned char scratch_[1024];
    alignas(std::max_align_t) unsigned char storage_[2048];
    boost::json::monotonic_resource resource_;
};

}  // namespace apollo_oauth::sansio
