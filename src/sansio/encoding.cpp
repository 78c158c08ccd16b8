// Percent, form and base64url encoding and scope lists, on Boost.URL and OpenSSL primitives.
#include "sansio/encoding.hpp"

#include <boost/url/encode.hpp>
#include <boost/url/pct_string_view.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <openssl/evp.h>

#include <algorithm>

namespace apollo_oauth::sansio {

std::string percent_encode(std::string_view value) {
    // Boost.URL's default options give upper-case hex and keep a space as %20.
    return boost::urls::encode(value, boost::urls::unreserved_chars);
}

std::string form_encode(std::string_view value) {
    boost::urls::encoding_opts opts;
    opts.space_as_plus = true;  // '+' itself is not unreserved, so it becomes %2B
    return boost::urls::encode(value, boost::urls::unreserved_chars, opts);
}

std::optional<std::string> percent_decode(std::string_view value, bool plus_as_space) {
    // make_pct_string_view rejects a '%' that is not followed by two hex digits.
    auto checked = boost::urls::make_pct_string_view(value);
    if (!checked) {
        return std::nullopt;
    }
    boost::urls::encoding_opts opts;
    opts.space_as_plus = plus_as_space;
    return checked->decode(opts);
}

std::string form_body(std::span<const std::pair<std::string_view, std::string_view>> fields) {
    // Encoded straight into one exactly-sized buffer: the values are often secrets, and neither
    // per-field temporaries nor a reallocation should leave copies of them in freed memory.
    boost::urls::encoding_opts opts;
    opts.space_as_plus = true;
    const auto& keep = boost::urls::unreserved_chars;
    std::size_t total = 0;
    for (const auto& [key, value] : fields) {
        total +=
            boost::urls::encoded_size(key, keep, opts) + boost::urls::encoded_size(value, keep, opts) + 2;
    }
    std::string body(total, '\0');
    char* out = body.data();
    char* const end = out + total;
    for (const auto& [key, value] : fields) {
        if (out != body.data()) {
            *out++ = '&';
        }
        out += boost::urls::encode(out, static_cast<std::size_t>(end - out), key, keep, opts);
        *out++ = '=';
        out += boost::urls::encode(out, static_cast<std::size_t>(end - out), value, keep, opts);
    }
    body.resize(static_cast<std::size_t>(out - body.data()));
    return body;
}

std::string base64url_encode(std::span<const std::uint8_t> bytes) {
    if (bytes.empty()) {
        return {};
    }
    // EVP_EncodeBlock writes standard padded base64 plus a NUL; map it to the URL alphabet.
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    while (!out.empty() && out.back() == '=') {
        out.pop_back();
    }
    std::replace(out.begin(), out.end(), '+', '-');
    std::replace(out.begin(), out.end(), '/', '_');
    return out;
}

bool is_valid_scope_token(std::string_view scope) noexcept {
    if (scope.empty()) {
        return false;
    }
    return std::all_of(scope.begin(), scope.end(), [](char c) {
        const auto b = static_cast<unsigned char>(c);
        return b == 0x21 || (b >= 0x23 && b <= 0x5b) || (b >= 0x5d && b <= 0x7e);
    });
}

std::string join_scopes(const std::vector<std::string>& scopes) {
    std::string out;
    for (const auto& s : scopes) {
        if (!out.empty()) {
            out += ' ';
        }
        out += s;
    }
    return out;
}

std::vector<std::string> split_scopes(std::string_view scopes) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos < scopes.size()) {
        const auto start = scopes.find_first_not_of(' ', pos);
        if (start == std::string_view::npos) {
            break;
        }
        auto end = scopes.find(' ', start);
        if (end == std::string_view::npos) {
            end = scopes.size();
        }
        out.emplace_back(scopes.substr(start, end - start));
        pos = end;
    }
    return out;
}

bool ascii_iequals(std::string_view a, std::string_view b) noexcept {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) { return lower(x) == lower(y); });
}

}  // namespace apollo_oauth::sansio
