// What the token-using commands share: the client, the chosen token store, a token cache and an
// API client for one account, all on one io_context. Processes coordinate through the store's
// lease (the cache holds it around re-read -> refresh -> commit), so no lock of the tool's own.
#pragma once

#include "output.hpp"
#include "settings.hpp"

#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>

#include <chrono>
#include <exception>
#include <initializer_list>
#include <memory>

namespace apollo_oauth::cli {

/// The cache configuration of the tool: the library's defaults (refresh-ahead included: every
/// command ends with finish(), which waits for a background refresh's pair to be stored).
cache_config cli_cache_config();

/// How long finish() waits for rotated pairs to be stored before giving up on them.
inline constexpr std::chrono::milliseconds shutdown_deadline{15'000};

struct session {
    explicit session(const settings& s, cache_config cache_settings = cli_cache_config());

    const settings& options;      // outlives the session (the command's own)
    boost::asio::io_context ioc;  // destroyed after the parts below
    client oauth;
    std::shared_ptr<token_store> store;
    token_cache cache;
    api_client api;

    /// co_awaited by every command before it exits: cache.async_shutdown(shutdown_deadline), so a
    /// pair the server rotated (the only key to the grant) is stored before the process ends.
    /// errc::store_failure / errc::shutting_down when a pair could not be stored in time.
    boost::asio::awaitable<error_code> finish();
};

namespace detail {

/// SIGINT, SIGTERM and SIGHUP while a session runs. The first one cancels the command (terminal
/// cancellation of its coroutine: a cache waiter leaves, an API request on the wire is closed) and
/// lets finish() run: a refresh already sent goes on inside the cache, its answer is awaited
/// (bounded by the client's timeouts and shutdown_deadline) and its pair stored. It says so on
/// stderr. The second one exits at once (exit 1), abandoning whatever was not stored yet. A signal
/// ignored when the process started (nohup's SIGHUP, a background job's SIGINT) stays ignored.
class interruption {
public:
    interruption(session& ses, const reporter& out);
    interruption(const interruption&) = delete;
    interruption& operator=(const interruption&) = delete;

    /// Bound to the command's coroutine.
    boost::asio::cancellation_slot command_slot() { return cancel_.slot(); }
    /// The command's coroutine has returned, `cancelled` when its cancellation state says a signal
    /// reached it (a step it shields, such as a code exchange, keeps it out). A signal from now on
    /// cancels nothing: none is emitted into a finished co_spawn, which Asio before 1.83 may not
    /// survive.
    void command_ended(bool cancelled) noexcept {
        command_running_ = false;
        cut_short_by_ = cancelled ? signal_while_running_ : 0;
    }
    /// The signal that cut the command short, 0 when none did.
    int cut_short_by() const noexcept { return cut_short_by_; }

private:
    void wait();
    void on_signal(int number);

    boost::asio::signal_set signals_;
    boost::asio::cancellation_signal cancel_;
    const reporter& out_;
    bool command_running_ = true;
    bool signalled_ = false;
    int signal_while_running_ = 0;
    int cut_short_by_ = 0;
};

template <class MakeOp>
boost::asio::awaitable<void> run_command(MakeOp& make_op, boost::asio::any_io_executor ex,
                                         interruption& guard) {
    std::exception_ptr failure;
    try {
        co_await make_op(std::move(ex));
    } catch (...) {
        failure = std::current_exception();
    }
    const auto state = co_await boost::asio::this_coro::cancellation_state;
    guard.command_ended(state.cancelled() != boost::asio::cancellation_type::none);
    if (failure) {
        std::rethrow_exception(failure);
    }
}

/// After a command a signal cut short: reports it (and a pair that could not be stored) through
/// `out`, then throws reported_exit.
[[noreturn]] void report_interruption(const session& ses, const reporter& out, int signal_number,
                                      error_code unstored);

}  // namespace detail

/// Runs the command's coroutine (made by `make_op(executor)`, returning awaitable<int>) on
/// ses.ioc, then ses.finish() (also after the coroutine threw); returns finish()'s error, and
/// rethrows the coroutine's exception. SIGINT, SIGTERM and SIGHUP are handled meanwhile (see
/// detail::interruption): when one cut the command short, the outcome is reported through `out`
/// and reported_exit thrown (exit 6, or 1 when a rotated pair could not be stored).
template <class MakeOp>
error_code run_session(session& ses, const reporter& out, MakeOp make_op) {
    namespace asio = boost::asio;
    detail::interruption guard(ses, out);
    std::exception_ptr failure;
    error_code finished;
    // finish() runs in a coroutine of its own: the command's one may be cancelled, and a cancelled
    // coroutine throws at its next co_await.
    auto on_finished = [&](std::exception_ptr e, error_code ec) {
        finished = ec;
        failure = failure ? failure : e;
        ses.ioc.stop();  // idle keep-alive connections and their timers are not waited for
    };
    auto on_command_done = [&](std::exception_ptr e) {
        failure = e;
        asio::co_spawn(ses.ioc, ses.finish(), on_finished);
    };
    asio::co_spawn(ses.ioc, detail::run_command(make_op, ses.ioc.get_executor(), guard),
                   asio::bind_cancellation_slot(guard.command_slot(), on_command_done));
    ses.ioc.run();
    if (const int number = guard.cut_short_by()) {
        detail::report_interruption(ses, out, number, finished);
    }
    if (failure) {
        std::rethrow_exception(failure);
    }
    return finished;
}

/// The failure finish() reported, in words (for out.fail).
std::string unstored_pair_message(const settings& s);

/// The account's stored record (loaded from the store), or nullopt.
boost::asio::awaitable<std::pair<error_code, std::optional<stored_tokens>>> load_record(token_store& store,
                                                                                        std::string account);

enum class endpoint_role { token, profile, api };

/// What a failed step was talking to (for explain_failure): these endpoints of s.config, and the
/// CA file it trusted.
failure_context talking_to(const settings& s, std::initializer_list<endpoint_role> roles);

}  // namespace apollo_oauth::cli
