// Which signals the tool handles.
#include "signals.hpp"

#include <signal.h>

#include <bitset>

namespace apollo_oauth::cli {
namespace {

// Read once: the first call is main()'s, before any signal_set has installed a handler.
const std::bitset<NSIG>& inherited_ignored() {
    static const std::bitset<NSIG> ignored = [] {
        std::bitset<NSIG> out;
        for (int number = 1; number < NSIG; ++number) {
            struct sigaction current {};
            // Numbers reserved by the C library fail the call: not ignored.
            if (::sigaction(number, nullptr, &current) == 0 && current.sa_handler == SIG_IGN) {
                out.set(static_cast<std::size_t>(number));
            }
        }
        return out;
    }();
    return ignored;
}

}  // namespace

void record_inherited_signal_dispositions() {
    (void)inherited_ignored();
}

bool ignored_at_start(int number) {
    return number > 0 && number < NSIG && inherited_ignored().test(static_cast<std::size_t>(number));
}

void handle_signals_not_ignored(boost::asio::signal_set& signals, std::initializer_list<int> numbers) {
    for (const int number : numbers) {
        if (!ignored_at_start(number)) {
            signals.add(number);
        }
    }
}

}  // namespace apollo_oauth::cli
