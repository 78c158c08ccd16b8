// A parked caller's handler: held inline without allocating when small, boxed otherwise, called
// once, destroyed exactly once whether called or not, and movable (assignment included).
#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>

#include <boost/test/unit_test.hpp>

#include <array>
#include <memory>
#include <optional>
#include <stdexcept>

#include "allocation_counter.hpp"

using namespace apollo_oauth;
using namespace apollo_oauth::detail;
namespace asio = boost::asio;

namespace {

/// Counts its live copies through `alive`, and its calls through `calls`.
template <std::size_t Ballast>
struct counted {
    counted(int& alive, int& calls) : alive(&alive), calls(&calls) { ++alive; }
    counted(counted&& other) noexcept : alive(other.alive), calls(other.calls), ballast(other.ballast) {
        ++*alive;
    }
    ~counted() { --*alive; }
    void operator()(error_code, access_token t) { *calls += t.value.reveal() == "tok" ? 1 : 100; }

    int* alive;
    int* calls;
    std::array<char, Ballast> ballast{};
};

using small_handler = counted<8>;   // a coroutine's handler is 8 to 32 bytes
using large_handler = counted<64>;  // over the inline bytes

/// Small, but its move may throw: boxed, so that relocating it never throws.
struct throwing_move {
    explicit throwing_move(int& calls) : calls(&calls) {}
    throwing_move(throwing_move&& other) noexcept(false) : calls(other.calls) {}
    void operator()(error_code, access_token) && { ++*calls; }
    int* calls;
};

/// Counts the blocks it has out.
template <class T>
struct counting_allocator {
    using value_type = T;
    explicit counting_allocator(int& out) : out(&out) {}
    template <class U>
    counting_allocator(const counting_allocator<U>& other) : out(other.out) {}
    T* allocate(std::size_t n) {
        ++*out;
        return std::allocator<T>().allocate(n);
    }
    void deallocate(T* p, std::size_t n) {
        --*out;
        std::allocator<T>().deallocate(p, n);
    }
    bool operator==(const counting_allocator&) const = default;
    int* out;
};

access_token tok() {
    return access_token{secret_string("tok"), 1};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(parked_handler_erasure)

BOOST_AUTO_TEST_CASE(a_small_handler_is_held_and_called_without_allocating) {
    static_assert(access_token_handler::holds_inline<small_handler>());
    static_assert(!access_token_handler::holds_inline<large_handler>());
    static_assert(!access_token_handler::holds_inline<throwing_move>());
    int alive = 0;
    int calls = 0;
    std::optional<access_token_handler> h;
    const auto made = test::allocations_during([&] { h.emplace(small_handler(alive, calls)); });
    BOOST_TEST(alive == 1);
    BOOST_TEST(static_cast<bool>(*h));
    auto token = tok();
    const auto called = test::allocations_during([&] { std::move (*h)(error_code{}, std::move(token)); });
    BOOST_TEST(calls == 1);
    BOOST_TEST(alive == 0);  // destroyed by the call
    BOOST_TEST(!static_cast<bool>(*h));
    if (test::allocation_counter_active()) {
        BOOST_TEST(made == 0u);
        BOOST_TEST(called == 0u);
    }
}

BOOST_AUTO_TEST_CASE(large_and_throwing_move_handlers_are_boxed_and_freed_before_the_call) {
    int alive = 0;
    int calls = 0;
    std::optional<access_token_handler> h;
    int boxes = 0;
    h.emplace(large_handler(alive, calls), counting_allocator<void>(boxes));
    BOOST_TEST(boxes == 1);                     // the fallback allocator made the box
    access_token_handler moved(std::move(*h));  // the box changes hands, the handler stays put
    BOOST_TEST(alive == 1);
    std::move(moved)(error_code{}, tok());
    BOOST_TEST(calls == 1);
    BOOST_TEST(alive == 0);
    BOOST_TEST(boxes == 0);  // and freed it

    access_token_handler small(small_handler(alive, calls), counting_allocator<void>(boxes));
    BOOST_TEST(boxes == 0);  // held inline: the fallback is not used

    // What the handler sees while it runs: its box already given back (Asio's rule).
    int boxes_during_call = -1;
    std::array<char, 64> ballast{};
    access_token_handler boxed(
        [&, ballast](error_code, access_token) { boxes_during_call = boxes + ballast[0]; },
        counting_allocator<void>(boxes));
    BOOST_TEST(boxes == 1);
    std::move(boxed)(error_code{}, tok());
    BOOST_TEST(boxes_during_call == 0);

    int thrower_calls = 0;
    access_token_handler t{throwing_move(thrower_calls)};
    access_token_handler t2(std::move(t));
    BOOST_TEST(!static_cast<bool>(t));
    std::move(t2)(error_code{}, tok());
    BOOST_TEST(thrower_calls == 1);
}

BOOST_AUTO_TEST_CASE(an_uncalled_handler_is_destroyed_once_wherever_it_moved) {
    int alive = 0;
    int calls = 0;
    {
        access_token_handler a{small_handler(alive, calls)};
        access_token_handler b{large_handler(alive, calls)};
        BOOST_TEST(alive == 2);
        access_token_handler c(std::move(a));
        BOOST_TEST(alive == 2);
        c = std::move(b);  // c's small handler is destroyed, b's large one taken
        BOOST_TEST(alive == 1);
        BOOST_TEST(!static_cast<bool>(a));
        BOOST_TEST(!static_cast<bool>(b));
        a = std::move(c);
        c = access_token_handler{small_handler(alive, calls)};
        BOOST_TEST(alive == 2);
        auto& self = c;
        c = std::move(self);  // self-assignment keeps it
        BOOST_TEST(static_cast<bool>(c));
        BOOST_TEST(alive == 2);
    }
    BOOST_TEST(alive == 0);
    BOOST_TEST(calls == 0);
}

BOOST_AUTO_TEST_CASE(the_handlers_cancellation_slot_is_forwarded) {
    asio::cancellation_signal signal;
    int alive = 0;
    int calls = 0;
    access_token_handler h(asio::bind_cancellation_slot(signal.slot(), small_handler(alive, calls)));
    BOOST_TEST((asio::get_associated_cancellation_slot(h) == signal.slot()));
    access_token_handler moved(std::move(h));
    BOOST_TEST((asio::get_associated_cancellation_slot(moved) == signal.slot()));
    BOOST_TEST(!asio::get_associated_cancellation_slot(access_token_handler{}).is_connected());
}

BOOST_AUTO_TEST_SUITE_END()
