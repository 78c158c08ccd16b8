// The record format on its own: exact shape, and every damaged byte detected.
#include "store/record_codec.hpp"
#include "sansio/token_protocol.hpp"
#include "store/sha256.hpp"
#include "store/utf8.hpp"
#include "store_test_support.hpp"

#include <apollo_oauth/config.hpp>

#include <boost/test/unit_test.hpp>

#include <limits>

namespace apollo_oauth::store_test {
namespace {

std::string encode(std::string_view account, const stored_tokens& record) {
    store::wiped_string out;
    store::encode_record(account, record, out);
    return out.value;
}

// A 200 token response of exactly `size` bytes: `head`, then `unit` repeated, padded with 'x',
// then the closing quote and brace.
std::string token_response_of(std::size_t size, std::string_view head, std::string_view unit) {
    std::string body(head);
    while (body.size() + unit.size() + 2 <= size) {
        body += unit;
    }
    body.append(size - 2 - body.size(), 'x');
    body += "\"}";
    return body;
}

token_set parsed_pair(std::string_view body, const secret_string* previous_refresh_token) {
    sansio::token_request_context ctx;
    ctx.sent_at = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
    ctx.previous_refresh_token = previous_refresh_token;
    token_set out;
    diagnostics diag;
    BOOST_REQUIRE(!sansio::parse_token_response(200, body, ctx, out, diag));
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(record_codec)

BOOST_AUTO_TEST_CASE(layout_is_the_documented_one) {
    stored_tokens r;
    r.generation = 3;
    r.tokens.access_token = secret_string("at");
    r.tokens.token_type = "Bearer";
    r.tokens.refresh_token = secret_string("r\"t");
    r.tokens.scopes = {"a", "b"};
    r.tokens.expires_in = std::chrono::seconds(60);
    r.tokens.created_at = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
    r.tokens.expires_at = std::chrono::system_clock::time_point(std::chrono::seconds(1700000060));
    const std::string text = encode("user@example.com", r);
    const std::string body =
        R"({"format":1,"account":"user@example.com","generation":3,"access_token":"at","token_type":"Bearer",)"
        R"("refresh_token":"r\"t","scopes":["a","b"],"expires_in":60,"created_at":1700000000,)"
        R"("expires_at":1700000060)";
    BOOST_TEST(text.starts_with(body));
    BOOST_TEST(text.ends_with("\"}\n"));
    // The checksum covers the record without it, closed by "}".
    BOOST_TEST(text.substr(body.size()) == R"(,"checksum":")" + store::sha256_hex(body + "}") + "\"}\n");

    stored_tokens back;
    BOOST_TEST(!store::decode_record(text, "user@example.com", back));
    check_same(back, r);
}

// A generation past store::max_generation (a tampered record, its checksum made anew) is corrupt:
// the cache's next generation, one more, would wrap or stop counting exactly.
BOOST_AUTO_TEST_CASE(a_generation_beyond_the_limit_is_corrupt) {
    stored_tokens r = make_record(1, "x");
    stored_tokens back;
    r.generation = store::max_generation;
    BOOST_TEST(!store::decode_record(encode("acct", r), "acct", back));
    BOOST_TEST(back.generation == store::max_generation);
    for (const auto g : {store::max_generation + 1, std::numeric_limits<std::uint64_t>::max()}) {
        r.generation = g;
        BOOST_TEST(store::decode_record(encode("acct", r), "acct", back) == errc::corrupt_record);
    }
}

BOOST_AUTO_TEST_CASE(every_flipped_bit_is_detected) {
    const std::string account = "acct";
    const std::string text = encode(account, make_record(42, "flip", 64));
    stored_tokens out;
    BOOST_REQUIRE(!store::decode_record(text, account, out));
    std::size_t missed = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            std::string damaged = text;
            damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
            missed += !store::decode_record(damaged, account, out) ? 1 : 0;
        }
    }
    BOOST_TEST(missed == 0u);
}

BOOST_AUTO_TEST_CASE(every_truncation_is_detected) {
    const std::string text = encode("acct", make_record(1, "cut", 64));
    stored_tokens out;
    // Dropping only the final newline leaves the record whole.
    for (std::size_t n = 0; n + 1 < text.size(); ++n) {
        BOOST_TEST(store::decode_record(text.substr(0, n), "acct", out) == errc::corrupt_record);
    }
    BOOST_TEST(!store::decode_record(text.substr(0, text.size() - 1), "acct", out));
}

BOOST_AUTO_TEST_CASE(account_must_match) {
    const std::string text = encode("alice", make_record(1, "x"));
    stored_tokens out;
    BOOST_TEST(store::decode_record(text, "bob", out) == errc::corrupt_record);
    BOOST_TEST(store::decode_record(text, "alic", out) == errc::corrupt_record);
    const std::string binary = "\x80\x00"s;
    const std::string hex_text = encode(binary, make_record(1, "x"));
    BOOST_TEST(hex_text.find(R"("account_hex":"8000")") != std::string::npos);
    BOOST_TEST(!store::decode_record(hex_text, binary, out));
    BOOST_TEST(store::decode_record(hex_text, "\x80", out) == errc::corrupt_record);
}

// validate() caps limits::token_body_bytes at max_token_body_bytes so that no pair token responses
// bring makes a record the store refuses (over max_record_size): written out here, the worst
// case, three responses of the largest size. A code exchange that is all scopes ("a a a", which
// grows to ["a","a","a"]); a refresh that names no scope (the cache keeps the grant's, RFC 6749
// §6, as account_fsm does) with a refresh token of control characters (\u0001 in the body, six
// bytes, and six again in the record); a refresh with neither scope nor refresh token (both
// kept) and a long access token. For an account id that takes most of the room left (control
// characters again, six bytes each).
BOOST_AUTO_TEST_CASE(the_worst_pair_token_responses_within_the_body_limit_bring_fits_a_record) {
    const std::size_t limit = max_token_body_bytes;
    const token_set exchanged = parsed_pair(
        token_response_of(limit, R"({"access_token":"a","token_type":"Bearer","scope":")", "a "), nullptr);
    BOOST_REQUIRE(exchanged.scopes.size() > limit / 2 - 64);
    token_set rotated = parsed_pair(
        token_response_of(limit, R"({"access_token":"a","token_type":"Bearer","refresh_token":")", "\\u0001"),
        nullptr);
    rotated.scopes = exchanged.scopes;
    token_set refreshed = parsed_pair(
        token_response_of(limit, R"({"token_type":"Bearer","access_token":")", "A"), &rotated.refresh_token);
    refreshed.scopes = rotated.scopes;
    BOOST_REQUIRE(refreshed.refresh_token == rotated.refresh_token);
    BOOST_REQUIRE(refreshed.access_token.size() > limit - 64);

    const std::string account(40'000, '\x01');
    const stored_tokens record{refreshed, store::max_generation, record_state::reauthorization_required};
    const std::string text = encode(account, record);
    BOOST_TEST(text.size() <= store::max_record_size);
    BOOST_TEST(store::reads_back(text, account));
    // The worst case indeed: the responses' part is close to four bodies.
    BOOST_TEST(text.size() - 6 * account.size() > 4 * limit - 1024);

    // The bound assumes the body's parser takes a control character only escaped (else one body
    // byte would be six in the record).
    sansio::token_request_context ctx;
    token_set out;
    diagnostics diag;
    const std::string raw =
        R"({"access_token":"a","token_type":"Bearer","refresh_token":")" + std::string("\x01") + R"("})";
    BOOST_TEST(sansio::parse_token_response(200, raw, ctx, out, diag) == errc::malformed_response);
}

BOOST_AUTO_TEST_CASE(utf8_validation) {
    using store::is_valid_utf8;
    BOOST_TEST(is_valid_utf8(""));
    BOOST_TEST(is_valid_utf8("a\0b"s));
    BOOST_TEST(is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91 \xf4\x8f\xbf\xbf \xed\x9f\xbf"));
    BOOST_TEST(!is_valid_utf8("\x80"));              // lone continuation byte
    BOOST_TEST(!is_valid_utf8("\xc3"));              // truncated
    BOOST_TEST(!is_valid_utf8("\xe2\x82"));          // truncated
    BOOST_TEST(!is_valid_utf8("\xc0\xaf"));          // overlong
    BOOST_TEST(!is_valid_utf8("\xe0\x80\xaf"));      // overlong
    BOOST_TEST(!is_valid_utf8("\xf0\x80\x80\xaf"));  // overlong
    BOOST_TEST(!is_valid_utf8("\xed\xa0\x80"));      // surrogate
    BOOST_TEST(!is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
    BOOST_TEST(!is_valid_utf8("\xf5\x80\x80\x80"));  // never a lead byte
    BOOST_TEST(!is_valid_utf8("\xe2\x28\xa1"));      // bad continuation
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace apollo_oauth::store_test
