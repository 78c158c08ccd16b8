// api_client: Apollo API requests on behalf of an account, with the 401 and 429 policies.
#pragma once

#include <apollo_oauth/api_types.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/detail/async_support.hpp>
#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace apollo_oauth {

/// The 429 policy of api_client::async_request. Every wait is random within its bounds, so that
/// the requests an account had in flight when it hit its rate limit do not all come back at once.
struct api_client_config {
    /// 429 answers retried per request before the 429 is returned. Default 2.
    unsigned max_rate_limit_retries = 2;
    /// A Retry-After longer than this is not waited for: the 429 is returned at once, for the
    /// caller to reschedule; so is a 429 without one when default_retry_after is longer (0: a
    /// 429 is never waited for, but for a Retry-After of 0). Also the cap of the doubling
    /// backoff. Default 30 s.
    std::chrono::seconds max_retry_after{30};
    /// The backoff when a 429 carries no (or an unparseable) Retry-After: this at the request's
    /// first 429, doubled at each further one, at most max_retry_after. The request waits between
    /// half of it and all of it, uniformly at random ("equal jitter": never less than half, so a
    /// retry is not spent inside the window that refused it). Default 1 s: the first retry after
    /// 0.5 to 1 s, the second after 1 to 2 s. 0: retried at once.
    std::chrono::milliseconds default_retry_after{1'000};
    /// Added to a Retry-After, uniformly at random between 0 and this, so that the requests told
    /// the same Retry-After (0, or an HTTP-date already past, included) do not come back in the same
    /// instant. A request is never retried before the time the server named; it may be retried up
    /// to this much after it (after max_retry_after + this, at most). Default 1 s, the precision
    /// Retry-After has anyway (whole seconds). 0 turns it off: exactly Retry-After.
    std::chrono::milliseconds retry_after_spread{1'000};
    /// A 503 that carries a Retry-After is retried as a 429 is (the same retries, bounds and
    /// spread: the server said when to come back, RFC 9110 §15.6.4); a 503 without one is returned
    /// at once, as a sign of an outage rather than of load. Default true. Apollo's guide does not
    /// say what its 503s mean; set false where a 503 may come after a request took effect (a
    /// proxy that timed out waiting for the server) and a repeated POST would do it twice.
    bool retry_unavailable_with_retry_after = true;
};

/// Latency of api_client::async_request, from initiation to completion (retries and waits
/// included), as a Prometheus histogram: `cumulative[i]` requests took at most `bounds[i]`
/// seconds; `count` is the +Inf bucket.
struct api_latency_histogram {
    /// Upper bounds in seconds: Prometheus' default buckets, and 30 s (max_retry_after's default).
    static constexpr std::array<double, 12> bounds = {0.005, 0.01, 0.025, 0.05, 0.1,  0.25,
                                                      0.5,   1.0,  2.5,   5.0,  10.0, 30.0};
    std::array<std::uint64_t, bounds.size()> cumulative{};
    std::uint64_t count = 0;
    double sum_seconds = 0;
};

/// Counters since the api_client was made. Each is read with a relaxed load: a snapshot taken
/// while requests run may be a few requests behind, and its fields are not mutually consistent.
struct api_metrics {
    std::uint64_t requests = 0;      ///< async_request operations started
    std::uint64_t retries_401 = 0;   ///< requests re-sent with a new token after a 401
    std::uint64_t rate_limited = 0;  ///< 429 answers received (retried or returned)
    api_latency_histogram latency;   ///< completed operations
};

class api_client;

namespace detail {
class api_client_impl;
/// The shared state behind `a`, for the library's tests (src/, never users).
std::shared_ptr<api_client_impl> impl_of(const api_client& a) noexcept;
void api_client_request_erased(const std::shared_ptr<api_client_impl>& impl, std::string account,
                               api_request request, diagnostics* diag,
                               boost::asio::any_io_executor handler_ex, api_handler handler);
api_metrics api_client_metrics(const api_client_impl& impl) noexcept;
boost::asio::any_io_executor api_client_executor(const std::shared_ptr<api_client_impl>& impl) noexcept;
}  // namespace detail

/// Thread safety: may be used from any number of threads at once. `oauth` and `cache` are shared
/// by reference to their state: destroying them while requests run is safe (the requests finish).
class api_client {
public:
    api_client(client& oauth, token_cache& cache, api_client_config config = {});
    ~api_client();

    /// Sends `request` for `account`: takes the token from the cache, sends it as Bearer; on a 401
    /// that blames the token (a WWW-Authenticate challenge without an error, or invalid_token)
    /// invalidates that token (so concurrent 401s cause one refresh) and retries once with the
    /// next one (a 401 with another error, such as insufficient_scope, is returned as it is); on 429 waits
    /// (cancellable) and retries, at most max_rate_limit_retries times: Retry-After plus a random
    /// part of retry_after_spread, or without one a jittered exponential backoff from
    /// default_retry_after (see api_client_config); a Retry-After longer than max_retry_after is
    /// not waited for (the 429 is returned at once). A 503 with a Retry-After is retried the same
    /// way, from the same budget (api_client_config::retry_unavailable_with_retry_after). Every
    /// other status is passed through.
    ///
    /// Handler: void(error_code, api_response); a final 401, 429 or 503 is a response, not an error.
    /// Executor: the handler's associated executor (the client's when it has none), never inline;
    /// the steps in between run there too.
    /// Cancellation: terminal only (a request in flight may have had effects); a wait after a
    /// 429 or for the token ends at once, a request on the wire is closed; either way
    /// operation_aborted. A cancellation after the response stops any retry.
    /// Errors: the cache's (errc::reauthorization_required, unknown_account, a refresh's error),
    /// the transport's, errc::invalid_argument (see client::async_api_request: nothing is sent).
    /// Diagnostics (the `diag` overload): what the server said in its last answer: http_status,
    /// the RFC 6750 error of a 401's WWW-Authenticate, a 429's or 503's Retry-After; cleared at
    /// initiation, written on the handler's executor just before the handler runs.
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_request(std::string account, api_request request, diagnostics& diag,
                       CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, api_response)>(
            initiate_request{impl_}, token, std::move(account), std::move(request), &diag);
    }
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_request(std::string account, api_request request, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, api_response)>(
            initiate_request{impl_}, token, std::move(account), std::move(request), nullptr);
    }

    /// The same request, its parts as separate arguments: the form to use inside a `co_await`.
    /// g++ 12 miscompiles a braced or designated-initializer `api_request` temporary built in a
    /// `co_await` expression (it destroys it twice: SIGSEGV or `free(): invalid pointer`); these
    /// overloads take only std::string and enum arguments, which it handles correctly. See
    /// docs/api.md, "Call forms and g++ 12".
    template <class CompletionToken = boost::asio::deferred_t>
    requires boost::asio::completion_token_for<CompletionToken, void(error_code, api_response)>
    auto async_request(std::string account, boost::beast::http::verb method, std::string target,
                       CompletionToken&& token = {}) {
        return async_request(std::move(account), method, std::move(target), std::string{}, header_list{},
                             std::forward<CompletionToken>(token));
    }
    template <class CompletionToken = boost::asio::deferred_t>
    requires boost::asio::completion_token_for<CompletionToken, void(error_code, api_response)>
    auto async_request(std::string account, boost::beast::http::verb method, std::string target,
                       std::string body, CompletionToken&& token = {}) {
        return async_request(std::move(account), method, std::move(target), std::move(body), header_list{},
                             std::forward<CompletionToken>(token));
    }
    template <class CompletionToken = boost::asio::deferred_t>
    requires boost::asio::completion_token_for<CompletionToken, void(error_code, api_response)>
    auto async_request(std::string account, boost::beast::http::verb method, std::string target,
                       std::string body, header_list headers, CompletionToken&& token = {}) {
        api_request request;
        request.method = method;
        request.target = std::move(target);
        request.body = std::move(body);
        request.headers = std::move(headers);
        return async_request(std::move(account), std::move(request), std::forward<CompletionToken>(token));
    }

    /// Counters and the latency histogram (relaxed atomic loads: cheap, never on a request's path).
    api_metrics metrics() const noexcept;

private:
    friend std::shared_ptr<detail::api_client_impl> detail::impl_of(const api_client& a) noexcept;

    struct initiate_request {
        std::shared_ptr<detail::api_client_impl> impl;
        template <class Handler>
        void operator()(Handler&& handler, std::string account, api_request request,
                        diagnostics* diag) const {
            auto ex = detail::handler_executor(handler, detail::api_client_executor(impl));
            detail::api_client_request_erased(impl, std::move(account), std::move(request), diag,
                                              std::move(ex),
                                              detail::api_handler(std::forward<Handler>(handler)));
        }
    };

    std::shared_ptr<detail::api_client_impl> impl_;
};

}  // namespace apollo_oauth
