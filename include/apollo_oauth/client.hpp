// client: the token endpoint, the profile call and raw API requests, as Asio async operations.
#pragma once

#include <apollo_oauth/api_types.hpp>
#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/config.hpp>
#include <apollo_oauth/detail/async_support.hpp>
#include <apollo_oauth/error.hpp>
#include <apollo_oauth/secret.hpp>
#include <apollo_oauth/token_set.hpp>
#include <apollo_oauth/user_profile.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <memory>
#include <string>
#include <vector>

namespace apollo_oauth {

class client;

namespace detail {
class client_impl;
/// The shared state behind `c`, for the library's higher layers (src/, never users).
std::shared_ptr<client_impl> impl_of(const client& c) noexcept;
using token_handler = boost::asio::any_completion_handler<void(error_code, token_set)>;
using profile_handler = boost::asio::any_completion_handler<void(error_code, user_profile)>;
using api_handler = boost::asio::any_completion_handler<void(error_code, api_response)>;

void exchange_code_erased(const std::shared_ptr<client_impl>& impl, authorization_grant grant,
                          diagnostics* diag, boost::asio::any_io_executor handler_ex, token_handler handler);
void refresh_erased(const std::shared_ptr<client_impl>& impl, secret_string refresh_token,
                    std::vector<std::string> scopes, diagnostics* diag,
                    boost::asio::any_io_executor handler_ex, token_handler handler);
void get_profile_erased(const std::shared_ptr<client_impl>& impl, secret_string access_token,
                        diagnostics* diag, boost::asio::any_io_executor handler_ex, profile_handler handler);
void api_request_erased(const std::shared_ptr<client_impl>& impl, secret_string access_token,
                        api_request request, diagnostics* diag, boost::asio::any_io_executor handler_ex,
                        api_handler handler);
}  // namespace detail

/// An OAuth 2.0 client of Apollo's token endpoint and API.
///
/// Every async operation below follows the same rules, stated once here:
/// - Completion token: any (default asio::deferred); use_awaitable, callbacks, use_future,
///   as_tuple and redirect_error all work. Arguments are taken by value.
/// - Executor: the handler runs on its associated executor (the client's when it has none),
///   always through a post: never inline from the initiating function.
/// - Lifetime: the operation keeps what it needs alive; the client may be destroyed while
///   operations run (they still complete). A `diagnostics&` must outlive the operation; it is
///   cleared at the start and written just before the handler runs, on the handler's executor.
/// - Cancellation: per-operation cancellation of type `terminal` is honoured: the connection is
///   closed and the handler gets asio::error::operation_aborted. Other types are ignored, because
///   a token request that may have reached the server has effects (a code is used up, a refresh
///   rotates), so "no side effects" cannot be promised.
/// - Retries: a token request is never re-sent once it may have reached the server. Idempotent
///   requests (GET profile, GET/HEAD/PUT/DELETE/OPTIONS API calls) are re-sent once when a reused
///   keep-alive connection turns out to be closed.
/// - Thread safety: the client may be used from any number of threads at once.
class client {
public:
    using executor_type = boost::asio::any_io_executor;

    /// Connections, timers and internal work run on `ex` (a multi-threaded io_context is fine: each
    /// connection has its own strand). Throws boost::system::system_error when `config` does not
    /// validate (see apollo_oauth::validate) or its CA file cannot be loaded.
    client(executor_type ex, client_config config);
    ~client();
    client(client&&) noexcept;
    client& operator=(client&&) noexcept;

    executor_type get_executor() const noexcept;
    const client_config& config() const noexcept;

    /// Exchanges an authorization code for tokens (RFC 6749 §4.1.3): a form POST of grant_type,
    /// code, redirect_uri, client_id, client_secret (and code_verifier with PKCE) to token_url.
    ///
    /// Handler: void(error_code, token_set).
    /// Errors: the RFC 6749 §5.2 code the server sent (errc::invalid_grant for a used or unknown
    /// code or a mismatched redirect_uri, errc::invalid_client for a wrong secret, ...),
    /// errc::unexpected_status, malformed_response, missing_field, wrong_field_type,
    /// unsupported_token_type, invalid_argument (empty code), redirect_uri_not_registered, or a
    /// transport error (asio::error::timed_out, beast::http::error::body_limit, an ssl error).
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_exchange_code(authorization_grant grant, diagnostics& diag, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, token_set)>(
            initiate_exchange{impl_}, token, std::move(grant), &diag);
    }
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_exchange_code(authorization_grant grant, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, token_set)>(
            initiate_exchange{impl_}, token, std::move(grant), nullptr);
    }

    /// Trades a refresh token for a new pair (RFC 6749 §6). Apollo revokes the old access and
    /// refresh tokens as soon as it answers, so the result must be kept (see token_cache).
    /// `narrower_scopes`, when not empty, is sent as `scope` and must be a subset of the grant.
    ///
    /// Handler: void(error_code, token_set). A response without refresh_token keeps
    /// `refresh_token`; without scope, the scopes are `narrower_scopes`.
    /// Errors: as async_exchange_code; errc::invalid_grant for a revoked or rotated refresh token,
    /// errc::invalid_scope for a scope wider than the grant.
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_refresh(secret_string refresh_token, std::vector<std::string> narrower_scopes,
                       diagnostics& diag, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, token_set)>(
            initiate_refresh{impl_}, token, std::move(refresh_token), std::move(narrower_scopes), &diag);
    }
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_refresh(secret_string refresh_token, std::vector<std::string> narrower_scopes = {},
                       CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, token_set)>(
            initiate_refresh{impl_}, token, std::move(refresh_token), std::move(narrower_scopes), nullptr);
    }

    /// GET profile_url with the Bearer token: who owns the token.
    ///
    /// Handler: void(error_code, user_profile).
    /// Errors: errc::invalid_argument (a token that is not an RFC 6750 b64token: nothing is
    /// sent), errc::unauthorized (401: expired or revoked token; diag holds the RFC 6750
    /// WWW-Authenticate error), errc::rate_limited (429), errc::unexpected_status,
    /// errc::malformed_response, or a transport error.
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_get_profile(secret_string access_token, diagnostics& diag, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, user_profile)>(
            initiate_profile{impl_}, token, std::move(access_token), &diag);
    }
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_get_profile(secret_string access_token, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, user_profile)>(
            initiate_profile{impl_}, token, std::move(access_token), nullptr);
    }

    /// Sends `request` to endpoints::api_base with `Authorization: Bearer <access_token>`.
    ///
    /// Handler: void(error_code, api_response). Every HTTP status, 401 and 429 included, is a
    /// successful completion: the status is in the response (token_cache's api_client applies the
    /// 401 and 429 policies). Errors are transport errors, beast::http::error::body_limit, and
    /// errc::invalid_argument (nothing is sent) for: a token that is not an RFC 6750 b64token; the
    /// method verb::unknown or verb::connect, or verb::trace with a body; a target that is not
    /// origin-form; a content_type holding CR, LF or NUL; an extra header whose name is not an RFC
    /// 9110 token, is reserved (Host, Authorization, Content-Length, Connection, Transfer-Encoding,
    /// Upgrade, TE, Keep-Alive, any case) or whose value holds CR, LF or NUL. Interim 1xx
    /// responses (100 Continue, 103 Early Hints) are skipped; a 101 is errc::malformed_response.
    /// Diagnostics: http_status, a 401's RFC 6750 WWW-Authenticate error, a 429's or 503's
    /// Retry-After.
    /// Inside `co_await`, pass a named api_request or use the overloads below (g++ 12).
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_api_request(secret_string access_token, api_request request, diagnostics& diag,
                           CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, api_response)>(
            initiate_api{impl_}, token, std::move(access_token), std::move(request), &diag);
    }
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_api_request(secret_string access_token, api_request request, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, api_response)>(
            initiate_api{impl_}, token, std::move(access_token), std::move(request), nullptr);
    }

    /// The same request, its parts as separate arguments: the form to use inside a `co_await`
    /// (g++ 12 miscompiles a braced or designated-initializer `api_request` temporary built in a
    /// `co_await` expression; see docs/api.md, "Call forms and g++ 12").
    template <class CompletionToken = boost::asio::deferred_t>
    requires boost::asio::completion_token_for<CompletionToken, void(error_code, api_response)>
    auto async_api_request(secret_string access_token, boost::beast::http::verb method, std::string target,
                           CompletionToken&& token = {}) {
        return async_api_request(std::move(access_token), method, std::move(target), std::string{},
                                 std::forward<CompletionToken>(token));
    }
    template <class CompletionToken = boost::asio::deferred_t>
    requires boost::asio::completion_token_for<CompletionToken, void(error_code, api_response)>
    auto async_api_request(secret_string access_token, boost::beast::http::verb method, std::string target,
                           std::string body, CompletionToken&& token = {}) {
        api_request request;
        request.method = method;
        request.target = std::move(target);
        request.body = std::move(body);
        return async_api_request(std::move(access_token), std::move(request),
                                 std::forward<CompletionToken>(token));
    }

private:
    friend std::shared_ptr<detail::client_impl> detail::impl_of(const client& c) noexcept;

    struct initiate_exchange {
        std::shared_ptr<detail::client_impl> impl;
        template <class Handler>
        void operator()(Handler&& handler, authorization_grant grant, diagnostics* diag) const {
            auto ex = detail::handler_executor(handler, detail::client_executor(impl));
            detail::exchange_code_erased(impl, std::move(grant), diag, std::move(ex),
                                         detail::token_handler(std::forward<Handler>(handler)));
        }
    };
    struct initiate_refresh {
        std::shared_ptr<detail::client_impl> impl;
        template <class Handler>
        void operator()(Handler&& handler, secret_string refresh_token, std::vector<std::string> scopes,
                        diagnostics* diag) const {
            auto ex = detail::handler_executor(handler, detail::client_executor(impl));
            detail::refresh_erased(impl, std::move(refresh_token), std::move(scopes), diag, std::move(ex),
                                   detail::token_handler(std::forward<Handler>(handler)));
        }
    };
    struct initiate_profile {
        std::shared_ptr<detail::client_impl> impl;
        template <class Handler>
        void operator()(Handler&& handler, secret_string access_token, diagnostics* diag) const {
            auto ex = detail::handler_executor(handler, detail::client_executor(impl));
            detail::get_profile_erased(impl, std::move(access_token), diag, std::move(ex),
                                       detail::profile_handler(std::forward<Handler>(handler)));
        }
    };
    struct initiate_api {
        std::shared_ptr<detail::client_impl> impl;
        template <class Handler>
        void operator()(Handler&& handler, secret_string access_token, api_request request,
                        diagnostics* diag) const {
            auto ex = detail::handler_executor(handler, detail::client_executor(impl));
            detail::api_request_erased(impl, std::move(access_token), std::move(request), diag, std::move(ex),
                                       detail::api_handler(std::forward<Handler>(handler)));
        }
    };

    std::shared_ptr<detail::client_impl> impl_;
};

}  // namespace apollo_oauth
