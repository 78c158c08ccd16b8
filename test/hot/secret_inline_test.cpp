// secret_string's inline buffer: tokens of Apollo's size are copied without allocating, and every
// copy is still wiped.
#include <apollo_oauth/secret.hpp>
#include <apollo_oauth/token_cache.hpp>

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <memory>
#include <new>

#include "allocation_counter.hpp"

using namespace apollo_oauth;
using apollo_oauth::test::allocations_during;

namespace {

/// 43 characters, like Apollo's access tokens (32 random bytes, base64url).
const std::string apollo_sized = "tok_0123456789abcdefghijklmnopqrstuvwxyzABC";

bool all_zero(const unsigned char* p, std::size_t n) {
    return std::all_of(p, p + n, [](unsigned char c) { return c == 0; });
}

bool inside(const void* p, const void* object, std::size_t size) {
    const auto* b = static_cast<const unsigned char*>(object);
    const auto* q = static_cast<const unsigned char*>(p);
    return q >= b && q < b + size;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(secret_inline_buffer)

// Under a sanitizer the runtime's operator new may take precedence: then nothing can be counted.
boost::test_tools::assertion_result counting(boost::unit_test::test_unit_id) {
    return apollo_oauth::test::allocation_counter_active();
}

BOOST_AUTO_TEST_CASE(the_counter_counts, *boost::unit_test::precondition(counting)) {
    // Without this, "no allocation" below could be a counter that never moves.
    BOOST_TEST(allocations_during([] { ::operator delete(::operator new(sizeof(int))); }) == 1u);
    const std::string long_value(secret_string::inline_capacity + 1, 'x');
    const secret_string long_secret(long_value);
    BOOST_TEST(allocations_during([&] { secret_string copy(long_secret); }) == 1u);
}

BOOST_AUTO_TEST_CASE(copies_of_an_apollo_sized_token_do_not_allocate,
                     *boost::unit_test::precondition(counting)) {
    BOOST_TEST_REQUIRE(apollo_sized.size() == 43u);
    const secret_string original(apollo_sized);
    secret_string target("an older value");
    const auto n = allocations_during([&] {
        secret_string copy(original);          // copy construction
        target = copy;                         // copy assignment
        secret_string moved(std::move(copy));  // move construction
        target = std::move(moved);             // move assignment
        access_token out{original, 7};         // what try_get hands out
        std::optional<access_token> returned{std::move(out)};
        target.assign(original.reveal());  // what the snapshot table does
    });
    BOOST_TEST(n == 0u);
    BOOST_TEST(target.reveal() == apollo_sized);
}

BOOST_AUTO_TEST_CASE(values_up_to_the_inline_capacity_live_in_the_object) {
    const std::string longest(secret_string::inline_capacity, 'y');
    const secret_string s(longest);
    BOOST_TEST(inside(s.reveal().data(), &s, sizeof s));
    const secret_string longer(longest + "y");
    BOOST_TEST(!inside(longer.reveal().data(), &longer, sizeof longer));
    BOOST_TEST(longer.reveal() == longest + "y");
}

BOOST_AUTO_TEST_CASE(destroying_an_inline_copy_wipes_it) {
    const secret_string original(apollo_sized);
    alignas(secret_string) unsigned char storage[sizeof(secret_string)];
    auto* copy = new (storage) secret_string(original);
    BOOST_TEST_REQUIRE(static_cast<const void*>(copy->reveal().data()) == static_cast<const void*>(storage));
    std::destroy_at(copy);
    // The inline buffer is the object's first member; its length and padding are not secret.
    BOOST_TEST(all_zero(storage, secret_string::inline_capacity));
}

BOOST_AUTO_TEST_CASE(moving_an_inline_value_wipes_the_source) {
    alignas(secret_string) unsigned char storage[sizeof(secret_string)];
    auto* source = new (storage) secret_string(apollo_sized);
    secret_string target(std::move(*source));
    BOOST_TEST(target.reveal() == apollo_sized);
    BOOST_TEST(all_zero(storage, secret_string::inline_capacity));  // before its destructor has even run
    BOOST_TEST(source->empty());
    std::destroy_at(source);
}

BOOST_AUTO_TEST_CASE(a_shorter_value_overwrites_the_whole_old_one) {
    alignas(secret_string) unsigned char storage[sizeof(secret_string)];
    auto* s = new (storage) secret_string(apollo_sized);
    s->assign("ab");
    BOOST_TEST(s->reveal() == "ab");
    const auto* bytes = reinterpret_cast<const unsigned char*>(s->reveal().data());
    BOOST_TEST(all_zero(bytes + 2, secret_string::inline_capacity - 2));
    std::destroy_at(s);
}

BOOST_AUTO_TEST_CASE(going_from_heap_to_inline_and_back) {
    const std::string long_value(100, 'L');
    secret_string s(long_value);
    s = secret_string(apollo_sized);
    BOOST_TEST(s.reveal() == apollo_sized);
    BOOST_TEST(inside(s.reveal().data(), &s, sizeof s));
    s.assign(long_value);
    BOOST_TEST(s.reveal() == long_value);
    secret_string moved(std::move(s));
    BOOST_TEST(moved.reveal() == long_value);
    BOOST_TEST(s.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is the point
    s = moved;
    BOOST_TEST((s == moved));
    s.clear();
    BOOST_TEST(s.empty());
    BOOST_TEST(s.reveal().empty());
}

BOOST_AUTO_TEST_SUITE_END()
