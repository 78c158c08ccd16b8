// Fuzz target: percent-decoding (callback queries) and the encoders whose output must decode back
// to the input (request bodies, authorize URLs, scope lists).
#include "sansio/encoding.hpp"
#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using namespace apollo_oauth;
using namespace apollo_oauth::sansio;

namespace {

void check_scopes(std::string_view text) {
    const auto scopes = split_scopes(text);
    for (const auto& scope : scopes) {
        fuzz::check(!scope.empty() && scope.find(' ') == std::string::npos,
                    "split_scopes: empty or spaced part");
    }
    fuzz::check(split_scopes(join_scopes(scopes)) == scopes, "split(join(split(s))) != split(s)");
    if (is_valid_scope_token(text)) {
        fuzz::check(scopes.size() == 1 && scopes.front() == text,
                    "a valid scope token does not split to itself");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input{reinterpret_cast<const char*>(data), size};

    for (bool plus_as_space : {false, true}) {
        if (auto decoded = percent_decode(input, plus_as_space)) {
            fuzz::check(decoded->size() <= input.size(), "decoding grew the text");
            fuzz::check(percent_decode(percent_encode(*decoded), false) == decoded,
                        "percent_encode does not round-trip a decoded value");
        }
    }
    const auto encoded = percent_encode(input);
    fuzz::check(
        encoded.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%") ==
            std::string::npos,
        "percent_encode left a reserved character");
    fuzz::check(percent_decode(encoded, false) == input, "percent_encode does not round-trip");
    fuzz::check(percent_decode(form_encode(input), true) == input, "form_encode does not round-trip");

    const auto b64 = base64url_encode({data, size});
    fuzz::check(b64.size() == (size * 4 + 2) / 3, "base64url length");
    fuzz::check(b64.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
                    std::string::npos,
                "base64url alphabet");

    check_scopes(input);
    return 0;
}
