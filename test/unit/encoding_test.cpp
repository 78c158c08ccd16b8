// Percent and form encoding, decoding, base64url and scope lists.
#include "sansio/encoding.hpp"

#include <boost/test/unit_test.hpp>

#include <array>
#include <cstdio>
#include <string_view>
#include <vector>

using namespace apollo_oauth::sansio;

namespace {

bool is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

std::string hex_escape(unsigned char c) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%%%02X", c);
    return buf;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(percent_encoding)

BOOST_AUTO_TEST_CASE(unreserved_characters_stay) {
    const std::string unreserved = "ABCXYZabcxyz0189-._~";
    BOOST_TEST(percent_encode(unreserved) == unreserved);
    BOOST_TEST(form_encode(unreserved) == unreserved);
}

BOOST_AUTO_TEST_CASE(every_reserved_character_is_encoded) {
    // RFC 3986 gen-delims then sub-delims.
    BOOST_TEST(percent_encode(":/?#[]@") == "%3A%2F%3F%23%5B%5D%40");
    BOOST_TEST(percent_encode("!$&'()*+,;=") == "%21%24%26%27%28%29%2A%2B%2C%3B%3D");
    BOOST_TEST(form_encode(":/?#[]@!$&'()*+,;=") == "%3A%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D");
}

BOOST_AUTO_TEST_CASE(space_percent_and_plus) {
    BOOST_TEST(percent_encode("a b") == "a%20b");
    BOOST_TEST(percent_encode("100%") == "100%25");
    BOOST_TEST(percent_encode("a+b") == "a%2Bb");
    BOOST_TEST(form_encode("a b") == "a+b");
    BOOST_TEST(form_encode("a+b c") == "a%2Bb+c");
    BOOST_TEST(form_encode("100%") == "100%25");
}

BOOST_AUTO_TEST_CASE(utf8_bytes_are_encoded_one_by_one) {
    BOOST_TEST(percent_encode("\xC3\xA9") == "%C3%A9");         // é
    BOOST_TEST(percent_encode("\xE2\x82\xAC") == "%E2%82%AC");  // €
    BOOST_TEST(form_encode("caf\xC3\xA9 au lait") == "caf%C3%A9+au+lait");
}

BOOST_AUTO_TEST_CASE(every_byte_value) {
    for (int i = 0; i < 256; ++i) {
        const auto c = static_cast<unsigned char>(i);
        const std::string in(1, static_cast<char>(c));
        const std::string expected = is_unreserved(c) ? in : hex_escape(c);
        BOOST_TEST(percent_encode(in) == expected, "byte " << i);
        BOOST_TEST(form_encode(in) == (c == ' ' ? std::string("+") : expected), "byte " << i);
        BOOST_TEST(percent_decode(percent_encode(in), false).value() == in, "byte " << i);
        BOOST_TEST(percent_decode(form_encode(in), true).value() == in, "byte " << i);
    }
}

BOOST_AUTO_TEST_CASE(empty_input) {
    BOOST_TEST(percent_encode("").empty());
    BOOST_TEST(form_encode("").empty());
    BOOST_TEST(percent_decode("", true).value().empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(percent_decoding)

BOOST_AUTO_TEST_CASE(decodes_either_case) {
    BOOST_TEST(percent_decode("a%20b", false).value() == "a b");
    BOOST_TEST(percent_decode("%2b%2B", false).value() == "++");
    BOOST_TEST(percent_decode("%C3%a9", false).value() == "\xC3\xA9");
    BOOST_TEST(percent_decode("%00", false).value() == std::string(1, '\0'));
}

BOOST_AUTO_TEST_CASE(plus_is_a_space_only_when_asked) {
    BOOST_TEST(percent_decode("a+b", true).value() == "a b");
    BOOST_TEST(percent_decode("a+b", false).value() == "a+b");
    BOOST_TEST(percent_decode("a%2Bb", true).value() == "a+b");
}

BOOST_AUTO_TEST_CASE(malformed_escapes_are_refused) {
    for (const char* bad : {"%", "%2", "a%", "ab%4", "%zz", "%G1", "%1G", "%%41", "x%2"}) {
        BOOST_TEST(!percent_decode(bad, false).has_value(), bad);
        BOOST_TEST(!percent_decode(bad, true).has_value(), bad);
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(form_body_building)

BOOST_AUTO_TEST_CASE(keys_and_values_are_form_encoded) {
    const std::pair<std::string_view, std::string_view> fields[] = {
        {"a", "1 2"}, {"b c", "x&y=z"}, {"empty", ""}, {"plus", "+"}};
    BOOST_TEST(form_body(fields) == "a=1+2&b+c=x%26y%3Dz&empty=&plus=%2B");
}

BOOST_AUTO_TEST_CASE(no_fields_give_an_empty_body) {
    BOOST_TEST(form_body({}).empty());
}

BOOST_AUTO_TEST_CASE(empty_first_field_still_gets_a_separator) {
    const std::pair<std::string_view, std::string_view> fields[] = {{"", ""}, {"k", "v"}};
    BOOST_TEST(form_body(fields) == "=&k=v");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(base64url)

std::string encode(std::string_view s) {
    return base64url_encode(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
}

BOOST_AUTO_TEST_CASE(rfc4648_vectors_unpadded) {
    BOOST_TEST(encode("") == "");
    BOOST_TEST(encode("f") == "Zg");
    BOOST_TEST(encode("fo") == "Zm8");
    BOOST_TEST(encode("foo") == "Zm9v");
    BOOST_TEST(encode("foob") == "Zm9vYg");
    BOOST_TEST(encode("fooba") == "Zm9vYmE");
    BOOST_TEST(encode("foobar") == "Zm9vYmFy");
}

BOOST_AUTO_TEST_CASE(url_alphabet) {
    // Standard base64 of these bytes is "+/8=" and "//79".
    const std::array<std::uint8_t, 2> a{0xfb, 0xff};
    BOOST_TEST(base64url_encode(a) == "-_8");
    const std::array<std::uint8_t, 3> b{0xff, 0xfe, 0xfd};
    BOOST_TEST(base64url_encode(b) == "__79");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(scopes)

BOOST_AUTO_TEST_CASE(scope_token_syntax) {
    for (const char* ok : {"contacts_search", "read_user_profile", "!", "~", "a#b[c]d", "x:y/z"}) {
        BOOST_TEST(is_valid_scope_token(ok), ok);
    }
    for (const char* bad : {"", "a b", "a\"b", "a\\b", "tab\t", "del\x7f", "caf\xC3\xA9", "nl\n"}) {
        BOOST_TEST(!is_valid_scope_token(bad), bad);
    }
}

BOOST_AUTO_TEST_CASE(join_and_split) {
    BOOST_TEST(join_scopes({}) == "");
    BOOST_TEST(join_scopes({"a"}) == "a");
    BOOST_TEST(join_scopes({"contacts_search", "person_read"}) == "contacts_search person_read");

    BOOST_TEST(split_scopes("").empty());
    BOOST_TEST(split_scopes("   ").empty());
    const std::vector<std::string> expected{"read_user_profile", "app_scopes", "opportunity_write"};
    BOOST_TEST(split_scopes("read_user_profile app_scopes opportunity_write") == expected,
               boost::test_tools::per_element());
    BOOST_TEST(split_scopes("  read_user_profile   app_scopes opportunity_write ") == expected,
               boost::test_tools::per_element());
}

// Found by fuzzing: Boost.URL 1.81's ci_is_equal read past both ends when the strings differed
// in case only. The views here end exactly where their storage does.
BOOST_AUTO_TEST_CASE(ascii_case_insensitive_equality) {
    const auto exact = [](std::string_view text) { return std::vector<char>(text.begin(), text.end()); };
    const auto a = exact("BeArer"), b = exact("bearer");
    BOOST_TEST(ascii_iequals({a.data(), a.size()}, {b.data(), b.size()}));
    BOOST_TEST(ascii_iequals("Retry-After", "retry-after"));
    BOOST_TEST(!ascii_iequals("bearer", "bearex"));
    BOOST_TEST(!ascii_iequals("bearer", "bearers"));
    BOOST_TEST(!ascii_iequals("\xc3\x89", "\xc3\xa9"));  // only ASCII letters fold
    BOOST_TEST(ascii_iequals("", ""));
}

BOOST_AUTO_TEST_SUITE_END()
