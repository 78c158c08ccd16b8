// secret_string and constant_time_equal.
#include <apollo_oauth/secret.hpp>

#include <boost/test/unit_test.hpp>

#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/token_set.hpp>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <sstream>
#include <type_traits>

using namespace apollo_oauth;

namespace {

std::string printed(const secret_string& s) {
    std::ostringstream os;
    os << s;
    return os.str();
}

// The library wipes the bytes it owned; these checks read them back through a pointer taken
// before, which relies on libstdc++ keeping the buffer in place (it does for clear() and for the
// small-string buffer of a moved-from string).
bool all_zero(const char* p, std::size_t n) {
    return std::all_of(p, p + n, [](char c) { return c == '\0'; });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(secret_strings)

BOOST_AUTO_TEST_CASE(prints_redacted) {
    BOOST_TEST(printed(secret_string("hunter2")) == "[redacted]");
    BOOST_TEST(printed(secret_string()) == "[empty]");
}

BOOST_AUTO_TEST_CASE(reveal_size_empty) {
    const secret_string s(std::string("value"));
    BOOST_TEST(s.reveal() == "value");
    BOOST_TEST(s.size() == 5u);
    BOOST_TEST(!s.empty());
    BOOST_TEST(secret_string(std::string_view("")).empty());
}

// What README's set-up writes, secret_string{std::getenv(...)}, with the variable unset: a clear
// error, not undefined behaviour.
BOOST_AUTO_TEST_CASE(a_null_pointer_is_a_clear_error) {
    const char* unset = std::getenv("APOLLO_OAUTH_TEST_SURELY_UNSET_VARIABLE");
    BOOST_REQUIRE(unset == nullptr);
    BOOST_CHECK_EXCEPTION(secret_string{unset}, std::invalid_argument, [](const std::invalid_argument& e) {
        return std::string_view(e.what()).find("environment variable") != std::string_view::npos;
    });
    BOOST_TEST(secret_string{"x"}.reveal() == "x");
}

BOOST_AUTO_TEST_CASE(equality) {
    BOOST_TEST((secret_string("abc") == secret_string("abc")));
    BOOST_TEST(!(secret_string("abc") == secret_string("abd")));
    BOOST_TEST(!(secret_string("abc") == secret_string("abcd")));
    BOOST_TEST((secret_string() == secret_string()));
}

BOOST_AUTO_TEST_CASE(copy_and_move) {
    for (const std::string value :
         {"short", "a value longer than std::string's small buffer",
          "a value longer than secret_string's 64-byte inline buffer, which lives on the heap"}) {
        secret_string a(value);
        secret_string copy(a);
        BOOST_TEST(copy.reveal() == value);
        BOOST_TEST(a.reveal() == value);

        secret_string moved(std::move(a));
        BOOST_TEST(moved.reveal() == value);
        BOOST_TEST(a.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is the point

        secret_string target("previous value that is overwritten");
        target = std::move(moved);
        BOOST_TEST(target.reveal() == value);
        BOOST_TEST(moved.empty());  // NOLINT(bugprone-use-after-move)

        secret_string assigned;
        assigned = target;
        BOOST_TEST(assigned.reveal() == value);
        assigned = assigned;  // self-assignment keeps the value
        BOOST_TEST(assigned.reveal() == value);
    }
}

BOOST_AUTO_TEST_CASE(clear_wipes_the_whole_buffer) {
    const std::string value = "0123456789abcdefghijklmnopqrstuvwxyz";
    secret_string s(value);
    const char* buffer = s.reveal().data();
    s.clear();
    BOOST_TEST(s.empty());
    BOOST_TEST(all_zero(buffer, value.size()));
}

BOOST_AUTO_TEST_CASE(overwrite_wipes_the_old_value) {
    const std::string value = "0123456789abcdefghijklmnopqrstuvwxyz";
    secret_string s(value);
    const char* buffer = s.reveal().data();
    s = secret_string("x");  // fits the existing buffer
    BOOST_TEST(s.reveal() == "x");
    BOOST_TEST_REQUIRE(s.reveal().data() == buffer);
    BOOST_TEST(all_zero(buffer + 1, value.size() - 1));
}

BOOST_AUTO_TEST_CASE(moving_a_short_value_wipes_the_source) {
    secret_string a("short-secret");  // lives in a's small-string buffer, so it is copied out
    const char* buffer = a.reveal().data();
    secret_string b(std::move(a));
    BOOST_TEST(b.reveal() == "short-secret");
    BOOST_TEST(all_zero(buffer, 12));
}

BOOST_AUTO_TEST_CASE(destruction_wipes_the_value) {
    // Built in storage that outlives it, so the bytes can be read after the destructor has run.
    alignas(secret_string) unsigned char storage[sizeof(secret_string)];
    auto* s = new (storage) secret_string("short-secret");  // in the small-string buffer, in storage
    const char* buffer = s->reveal().data();
    BOOST_TEST_REQUIRE((buffer >= reinterpret_cast<const char*>(storage) &&
                        buffer < reinterpret_cast<const char*>(storage + sizeof storage)));
    std::destroy_at(s);
    BOOST_TEST(all_zero(buffer, 12));
}

BOOST_AUTO_TEST_CASE(move_assigning_a_short_value_wipes_the_source) {
    secret_string a("short-secret");
    const char* buffer = a.reveal().data();
    secret_string b("the previous value");
    b = std::move(a);
    BOOST_TEST(b.reveal() == "short-secret");
    BOOST_TEST(all_zero(buffer, 12));
}

BOOST_AUTO_TEST_CASE(adopting_a_short_std_string_wipes_the_callers_buffer) {
    std::string plain = "short-secret";  // in the small-string buffer: copied, not stolen
    const char* buffer = plain.data();
    secret_string s(std::move(plain));
    BOOST_TEST(s.reveal() == "short-secret");
    BOOST_TEST(all_zero(buffer, 12));
}

BOOST_AUTO_TEST_CASE(adopting_a_std_string_zeroes_its_spare_capacity) {
    // Longer than the inline buffer, so the caller's heap block is adopted rather than copied.
    std::string plain(100, 'k');
    plain.resize(70);  // the tail is still in the block, past size()
    const char* block = plain.data();
    const auto capacity = plain.capacity();
    secret_string s(std::move(plain));
    BOOST_TEST_REQUIRE(s.reveal().data() == block);  // the block was adopted, not copied
    BOOST_TEST(s.reveal() == std::string(70, 'k'));
    BOOST_TEST(all_zero(block + 71, capacity - 71));
}

BOOST_AUTO_TEST_CASE(adopting_a_heap_std_string_that_fits_inline_wipes_its_whole_block) {
    std::string plain = "0123456789abcdefghijklmnopqrstuvwxyz-an-older-longer-value";
    plain.resize(20);  // a heap block, whose tail past size() still holds the older value
    const char* block = plain.data();
    const auto capacity = plain.capacity();
    secret_string s(std::move(plain));
    BOOST_TEST(s.reveal() == "0123456789abcdefghij");
    BOOST_TEST(s.reveal().data() != block);  // copied into the inline buffer
    BOOST_TEST(all_zero(block, capacity));   // and the caller's block left clean
}

BOOST_AUTO_TEST_CASE(boost_test_prints_it_redacted) {
    // What a failing BOOST_TEST(a == b) would show of a secret operand.
    std::ostringstream os;
    boost::test_tools::tt_detail::print_log_value<secret_string>()(os, secret_string("hunter2-secret"));
    BOOST_TEST(os.str() == "[redacted]");
}

BOOST_AUTO_TEST_CASE(holders_of_secrets_print_none) {
    token_set t;
    t.access_token = secret_string("access-secret-value");
    t.refresh_token = secret_string("refresh-secret-value");
    std::ostringstream os;
    os << t;
    BOOST_TEST(os.str().find("secret-value") == std::string::npos);
    BOOST_TEST(os.str().find("[redacted]") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(grant_secrets_are_secret_strings) {
    // The code and the PKCE verifier of a verified callback are held as secrets, never as text.
    static_assert(std::is_same_v<decltype(authorization_grant::code), secret_string>);
    static_assert(std::is_same_v<decltype(authorization_grant::code_verifier), secret_string>);
    static_assert(std::is_same_v<decltype(token_set::access_token), secret_string>);
    static_assert(std::is_same_v<decltype(token_set::refresh_token), secret_string>);
    BOOST_TEST((authorization_grant{}.code.empty()));
}

BOOST_AUTO_TEST_CASE(constant_time_equal_cases) {
    BOOST_TEST(constant_time_equal("abc", "abc"));
    BOOST_TEST(!constant_time_equal("abc", "abd"));
    BOOST_TEST(!constant_time_equal("xbc", "abc"));
    BOOST_TEST(!constant_time_equal("abc", "abcd"));
    BOOST_TEST(!constant_time_equal("abcd", "abc"));
    BOOST_TEST(!constant_time_equal("", "a"));
    BOOST_TEST(constant_time_equal("", ""));
    BOOST_TEST(constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
    BOOST_TEST(!constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

BOOST_AUTO_TEST_SUITE_END()
