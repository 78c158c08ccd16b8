// What the token-using commands share.
#include "session.hpp"

#include "files.hpp"
#include "signals.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <cstdlib>
#include <iostream>

namespace apollo_oauth::cli {

cache_config cli_cache_config() {
    return {};
}

namespace {

std::shared_ptr<token_store> open_store(boost::asio::io_context& ioc, const settings& s) {
    if (!s.store.redis_url) {
        ensure_private_directory(s.token_dir);
    }
    // The cache waits (without a message of its own) while another process holds the account's
    // lease; saying so tells the user why this invocation pauses.
    return announce_lease_waits(make_chosen_store(ioc.get_executor(), s.store, s.token_dir),
                                [account = s.account] {
                                    std::cerr << "Waiting for another apollo-oauth process refreshing "
                                                 "account '"
                                              << account << "' ..." << std::endl;
                                });
}

}  // namespace

session::session(const settings& s, cache_config cache_settings)
    : options(s),
      oauth(ioc.get_executor(), s.config),
      store(open_store(ioc, s)),
      cache(oauth, store, std::move(cache_settings)),
      api(oauth, cache) {}

boost::asio::awaitable<error_code> session::finish() {
    namespace asio = boost::asio;
    auto [ec] = co_await cache.async_shutdown(shutdown_deadline, asio::as_tuple(asio::use_awaitable));
    co_return ec;
}

namespace detail {

namespace {

std::string signal_name(int number) {
    switch (number) {
        case SIGINT:
            return "SIGINT";
        case SIGTERM:
            return "SIGTERM";
        case SIGHUP:
            return "SIGHUP";
        default:
            return "signal " + std::to_string(number);
    }
}

std::string prefix(const reporter& out) {
    return "apollo-oauth" + std::string(out.command().empty() ? "" : " ") + out.command() + ": ";
}

}  // namespace

interruption::interruption(session& ses, const reporter& out) : signals_(ses.ioc), out_(out) {
    // A signal the parent set to be ignored stays ignored: nohup's SIGHUP, and the SIGINT of a
    // job a script started in the background (meant to outlive a Ctrl-C at the terminal).
    handle_signals_not_ignored(signals_, {SIGINT, SIGTERM, SIGHUP});
    wait();
}

void interruption::wait() {
    signals_.async_wait([this](boost::system::error_code ec, int number) {
        if (!ec) {
            on_signal(number);
        }
    });
}

void interruption::on_signal(int number) {
    if (signalled_) {
        // Asked twice: the person wants out now, whatever is still on the wire or unstored.
        out_.fail("interrupted again (" + signal_name(number) +
                      "): exiting at once; tokens the server rotated may not be stored (the old pair "
                      "is revoked: authorize again if the next command reports it)",
                  exit_failure);
        std::_Exit(exit_failure);
    }
    signalled_ = true;
    out_.note(prefix(out_) + "interrupted (" + signal_name(number) +
              "): storing the rotated tokens, if any, before exiting (at most " +
              std::to_string(shutdown_deadline.count() / 1000) + " s); signal again to abandon them");
    if (command_running_) {
        signal_while_running_ = number;
        // Terminal: the command's waits end; a refresh the cache sent goes on, for finish().
        cancel_.emit(boost::asio::cancellation_type::terminal);
    }
    wait();
}

void report_interruption(const session& ses, const reporter& out, int signal_number, error_code unstored) {
    if (unstored) {
        out.fail(
            "interrupted (" + signal_name(signal_number) + "), and " + unstored_pair_message(ses.options),
            exit_failure);
        throw reported_exit{exit_failure};
    }
    out.fail("interrupted (" + signal_name(signal_number) +
                 ") before it finished; every token pair the server issued meanwhile is stored",
             exit_timeout);
    throw reported_exit{exit_timeout};
}

}  // namespace detail

std::string unstored_pair_message(const settings& s) {
    return "the server issued new tokens for account '" + s.account + "' but they could not be stored in " +
           describe_store(s.store, s.token_dir) + " within " +
           std::to_string(shutdown_deadline.count() / 1000) +
           " s (the old pair is revoked: authorize again if the next command reports it)";
}

boost::asio::awaitable<std::pair<error_code, std::optional<stored_tokens>>> load_record(token_store& store,
                                                                                        std::string account) {
    namespace asio = boost::asio;
    // A named lambda: g++ 12 mishandles a capturing lambda inside a co_await full-expression.
    auto load = [&store](auto handler, std::string name) {
        store.async_load(std::move(name), std::move(handler));
    };
    auto as_tuple = asio::as_tuple(asio::use_awaitable);
    auto [ec, record] =
        co_await asio::async_initiate<decltype(as_tuple), void(error_code, std::optional<stored_tokens>)>(
            load, as_tuple, std::move(account));
    co_return std::pair{ec, std::move(record)};
}

failure_context talking_to(const settings& s, std::initializer_list<endpoint_role> roles) {
    failure_context out{{}, s.config.tls.ca_file};
    for (const auto role : roles) {
        switch (role) {
            case endpoint_role::token:
                out.peers.push_back({"the token endpoint", s.config.endpoints.token_url});
                break;
            case endpoint_role::profile:
                out.peers.push_back({"the profile endpoint", s.config.endpoints.profile_url});
                break;
            case endpoint_role::api:
                out.peers.push_back({"the API", s.config.endpoints.api_base});
                break;
        }
    }
    return out;
}

}  // namespace apollo_oauth::cli
