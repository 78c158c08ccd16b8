// api_client: Apollo API requests on behalf of an account, with the 401 and 429 policies.
#pragma once

#include <apollo_oauth/api_types.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/detail/async_support.hpp>
#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace apollo_oauth {

struct api_client_config {
    /// 429 answers retried per request before the 429 is returned. Default 2.
    unsigned max_rate_limit_retries = 2;
    /// A Retry-After longer than this is not waited for: the 429 is returned at once. Default 30 s.
    std::chrono::seconds max_retry_after{30};
    /// The wait when a 429 carries no (or an unparseable) Retry-After. Default 1 s.
    std::chrono::milliseconds default_retry_after{1'000};
};

/// One bucket of the API call latency histogram (Prometheus style: cumulative).
struct api_latency_bucket {
    double upper_bound_seconds = 0;
    std::uint64_t cumulative_count = 0;  ///< requests that took at most upper_bound_seconds
};
struct api_metrics {
    std::uint64_t requests = 0;               ///< async_request calls completed
    std::uint64_t retries_401 = 0;            ///< requests re-sent after a 401
    std::uint64_t rate_limited = 0;           ///< 429 answers received
    std::vector<api_latency_bucket> latency;  ///< ascending bounds; +Inf is latency_count
    double latency_sum_seconds = 0;
    std::uint64_t latency_count = 0;
};

namespace detail {
class api_client_impl;
api_metrics api_client_metrics(const std::shared_ptr<api_client_impl>& impl);
void api_client_request_erased(const std::shared_ptr<api_client_impl>& impl, std::string account,
                               api_request request, boost::asio::any_io_executor handler_ex,
                               api_handler handler);
boost::asio::any_io_executor api_client_executor(const std::shared_ptr<api_client_impl>& impl) noexcept;
}  // namespace detail

/// Thread safety: may be used from any number of threads at once. `oauth` and `cache` are shared
/// by reference to their state: destroying them while requests run is safe (the requests finish).
class api_client {
public:
    api_client(client& oauth, token_cache& cache, api_client_config config = {});
    ~api_client();

    /// Sends `request` for `account`: takes the token from the cache, sends it as Bearer; on 401
    /// invalidates that token (so concurrent 401s cause one refresh) and retries once with the
    /// next one; on 429 waits Retry-After (bounded by max_retry_after, cancellable) and retries at
    /// most max_rate_limit_retries times. Every other status is passed through.
    ///
    /// Handler: void(error_code, api_response); a final 401 or 429 is a response, not an error.
    /// Errors: the cache's (errc::reauthorization_required, unknown_account, a refresh's error),
    /// the transport's, errc::invalid_argument (see client::async_api_request: nothing is sent).
    /// Executor: the handler's, never inline.
    /// Cancellation: terminal (a request in flight may have had effects); a wait for Retry-After
    /// or for the token ends at once with operation_aborted.
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_request(std::string account, api_request request, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, api_response)>(
            initiate_request{impl_}, token, std::move(account), std::move(request));
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

    /// The counters and the latency histogram of every async_request (relaxed atomics; cheap to
    /// read at any time, from any thread). Latency is the whole operation, a 401 retry included.
    api_metrics metrics() const { return detail::api_client_metrics(impl_); }

private:
    struct initiate_request {
        std::shared_ptr<detail::api_client_impl> impl;
        template <class Handler>
        void operator()(Handler&& handler, std::string account, api_request request) const {
            auto ex = detail::handler_executor(handler, detail::api_client_executor(impl));
            detail::api_client_request_erased(impl, std::move(account), std::move(request), std::move(ex),
                                              detail::api_handler(std::forward<Handler>(handler)));
        }
    };

    std::shared_ptr<detail::api_client_impl> impl_;
};

}  // namespace apollo_oauth
