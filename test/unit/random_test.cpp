// State and PKCE generation; the jitter draw.
#include "sansio/random.hpp"

#include "sansio/encoding.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <latch>
#include <set>
#include <thread>
#include <unordered_set>
#include <vector>

using namespace apollo_oauth::sansio;

namespace {

bool is_base64url_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool all_base64url(std::string_view s) {
    return std::all_of(s.begin(), s.end(), is_base64url_char);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(random_material)

BOOST_AUTO_TEST_CASE(random_base64url_lengths) {
    BOOST_TEST(random_base64url(0).empty());
    BOOST_TEST(random_base64url(1).size() == 2u);
    BOOST_TEST(random_base64url(3).size() == 4u);
    BOOST_TEST(random_base64url(16).size() == 22u);
}

BOOST_AUTO_TEST_CASE(states_are_long_url_safe_and_distinct) {
    constexpr int count = 10'000;
    std::unordered_set<std::string> seen;
    std::set<char> alphabet;
    for (int i = 0; i < count; ++i) {
        const std::string s = make_state();
        BOOST_TEST_REQUIRE(s.size() == 43u);  // 256 bits
        BOOST_TEST_REQUIRE(all_base64url(s), s);
        seen.insert(s);
        alphabet.insert(s.begin(), s.end());
    }
    BOOST_TEST(seen.size() == static_cast<std::size_t>(count));
    // Random bytes use the whole base64url alphabet (a hex or constant source would not).
    BOOST_TEST(alphabet.size() == 64u);
}

BOOST_AUTO_TEST_CASE(code_verifier_is_within_rfc7636_bounds) {
    const std::string v = make_code_verifier();
    BOOST_TEST(v.size() >= 43u);
    BOOST_TEST(v.size() <= 128u);
    BOOST_TEST(all_base64url(v));
    BOOST_TEST(make_code_verifier() != v);
}

BOOST_AUTO_TEST_CASE(rfc7636_appendix_b_vector) {
    // The appendix's 32 octets, their verifier, and its S256 challenge.
    const std::uint8_t octets[] = {116, 24,  223, 180, 151, 153, 224, 37,  79,  250, 96,
                                   125, 216, 173, 187, 186, 22,  212, 37,  77,  105, 214,
                                   191, 240, 91,  88,  5,   88,  83,  132, 141, 121};
    BOOST_TEST(base64url_encode(octets) == "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    BOOST_TEST(code_challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") ==
               "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

BOOST_AUTO_TEST_CASE(jitter_draws_are_in_0_1_and_cover_it) {
    double lowest = 1.0, highest = 0.0;
    for (int i = 0; i < 10'000; ++i) {
        const double u = jitter_draw();
        BOOST_TEST_REQUIRE((u >= 0.0 && u < 1.0), u);
        lowest = std::min(lowest, u);
        highest = std::max(highest, u);
    }
    BOOST_TEST(lowest < 0.01);
    BOOST_TEST(highest > 0.99);
}

// Two threads drawing at once, as the threads of an io_context answering a herd's 429s do: each
// has its own generator (the TSan build reports a shared one), seeded apart from the other's (the
// same seed would give every thread the same waits, and a herd spread over N threads would come
// back in N-fold clumps).
BOOST_AUTO_TEST_CASE(two_threads_draw_at_once_and_apart) {
    constexpr std::size_t draws = 20'000;
    std::vector<double> first(draws), second(draws);
    std::latch start{2};
    const auto fill = [&](std::vector<double>& out) {
        start.arrive_and_wait();
        std::generate(out.begin(), out.end(), jitter_draw);
    };
    std::thread a{fill, std::ref(first)};
    std::thread b{fill, std::ref(second)};
    a.join();
    b.join();
    BOOST_TEST((first != second));
    const auto in_range = [](double u) { return u >= 0.0 && u < 1.0; };
    BOOST_TEST(std::all_of(first.begin(), first.end(), in_range));
    BOOST_TEST(std::all_of(second.begin(), second.end(), in_range));
}

BOOST_AUTO_TEST_SUITE_END()
