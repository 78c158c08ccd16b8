#include <apollo_oauth/api_client.hpp>

#include "api/api_metrics_recorder.hpp"
#include "cache/cache_impl.hpp"
#include "client_impl.hpp"
#include "sansio/token_protocol.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/steady_timer.hpp>

namespace apollo_oauth {

namespace asio = boost::asio;

namespace detail {

class api_client_impl {
public:
    api_client_impl(std::shared_ptr<client_impl> oauth, std::shared_ptr<cache_impl> cache,
                    api_client_config config)
        : oauth(std::move(oauth)), cache(std::move(cache)), config(config) {}

    std::shared_ptr<client_impl> oauth;
    std::shared_ptr<cache_impl> cache;
    api_client_config config;
    api_metrics_recorder metrics;
};

namespace {

// One request through the 401 and 429 policies, as one composed operation: get the token, send,
// and on a 401 (once) or a 429 (bounded) go round again. Every step runs on the handler's
// executor; each inner operation (the cache's wait, the client's exchange, the Retry-After timer)
// is started with this op as its handler, so the op's cancellation slot (terminal only, the
// async_compose default) reaches whichever one is pending, and nothing else needs a flag or a lock.
class api_call_op {
public:
    api_call_op(std::shared_ptr<api_client_impl> impl, std::string account, api_request request,
                diagnostics* diag, asio::any_io_executor ex)
        : state_(std::make_unique<state>(std::move(impl), std::move(account), std::move(request), diag, ex)) {
    }

    // Start, and after a 401 or a Retry-After wait: take the (possibly new) token.
    template <class Self>
    void operator()(Self& self) {
        auto& s = *state_;
        // The token may come from the cache's fast path, so the cancellation check is ours.
        if (self.cancelled() != asio::cancellation_type::none) {
            return finish(self, asio::error::operation_aborted, {});
        }
        cache_get_erased(s.impl->cache, s.account, s.ex, access_token_handler(std::move(self)));
    }

    // The token arrived: send.
    template <class Self>
    void operator()(Self& self, error_code ec, access_token token) {
        auto& s = *state_;
        if (!ec && self.cancelled() != asio::cancellation_type::none) {
            ec = asio::error::operation_aborted;
        }
        if (ec) {
            return finish(self, ec, {});
        }
        s.token = std::move(token);
        s.inner_diag.clear();
        api_request_erased(s.impl->oauth, s.token.value, s.request, &s.inner_diag, s.ex,
                           api_handler(std::move(self)));
    }

    // The answer arrived: apply the 401 and 429 policies.
    template <class Self>
    void operator()(Self& self, error_code ec, api_response res) {
        auto& s = *state_;
        const auto& config = s.impl->config;
        // A cancellation that arrived after the exchange finished still stops a retry or a wait.
        if (!ec && self.cancelled() != asio::cancellation_type::none) {
            ec = asio::error::operation_aborted;
        }
        if (ec) {
            return finish(self, ec, {});
        }
        if (res.status == 401 && !s.retried_unauthorized) {
            // Only the token this request used is invalidated: when a thousand requests get 401
            // for it, the first marks it and the rest find it already replaced or being replaced.
            s.retried_unauthorized = true;
            s.impl->metrics.count_retry_401();
            s.impl->cache->invalidate(s.account, s.token);
            return (*this)(self);
        }
        if (res.status == 429) {
            s.impl->metrics.count_rate_limited();
            if (s.rate_limit_retries < config.max_rate_limit_retries) {
                std::chrono::milliseconds delay = config.default_retry_after;
                if (auto header = res.header("retry-after")) {
                    if (auto seconds = sansio::parse_retry_after(*header, std::chrono::system_clock::now())) {
                        delay = *seconds;
                    }
                }
                if (delay <= config.max_retry_after) {
                    ++s.rate_limit_retries;
                    if (!s.timer) {
                        s.timer.emplace(s.ex);
                    }
                    s.timer->expires_after(delay);
                    return s.timer->async_wait(std::move(self));
                }
            }
        }
        finish(self, {}, std::move(res));
    }

    // The Retry-After wait is over (or was cancelled).
    template <class Self>
    void operator()(Self& self, error_code ec) {
        if (ec) {
            return finish(self, ec, {});
        }
        (*this)(self);  // the token may have been replaced while waiting
    }

private:
    struct state {
        state(std::shared_ptr<api_client_impl> impl, std::string account, api_request request,
              diagnostics* diag, asio::any_io_executor ex)
            : impl(std::move(impl)),
              account(std::move(account)),
              request(std::move(request)),
              diag(diag),
              ex(std::move(ex)),
              started(std::chrono::steady_clock::now()) {}

        std::shared_ptr<api_client_impl> impl;
        std::string account;
        api_request request;
        diagnostics* diag;
        asio::any_io_executor ex;
        std::chrono::steady_clock::time_point started;
        diagnostics inner_diag;  // the last answer's, copied out at the end
        access_token token;
        std::optional<asio::steady_timer> timer;  // only for a 429
        bool retried_unauthorized = false;
        unsigned rate_limit_retries = 0;
    };

    // Every step runs in a handler posted to the handler's executor (no inner operation completes
    // inline), so completing here is never inline from the initiation, and `diag` is written on
    // the handler's executor.
    template <class Self>
    void finish(Self& self, error_code ec, api_response res) {
        auto& s = *state_;
        s.impl->metrics.record_latency(std::chrono::steady_clock::now() - s.started);
        if (s.diag) {
            *s.diag = std::move(s.inner_diag);
        }
        state_.reset();  // before the handler runs: it may destroy what the state refers to
        self.complete(ec, std::move(res));
    }

    std::unique_ptr<state> state_;  // one allocation; moving the op between steps moves a pointer
};

}  // namespace

void api_client_request_erased(const std::shared_ptr<api_client_impl>& impl, std::string account,
                               api_request request, diagnostics* diag, asio::any_io_executor handler_ex,
                               api_handler handler) {
    if (diag) {
        diag->clear();
    }
    impl->metrics.count_request();
    auto bound = asio::bind_executor(handler_ex, std::move(handler));
    asio::async_compose<decltype(bound), void(error_code, api_response)>(
        api_call_op{impl, std::move(account), std::move(request), diag, handler_ex}, bound, handler_ex);
}

asio::any_io_executor api_client_executor(const std::shared_ptr<api_client_impl>& impl) noexcept {
    return impl->oauth->executor();
}

api_metrics api_client_metrics(const api_client_impl& impl) noexcept {
    return impl.metrics.snapshot();
}

}  // namespace detail

api_client::api_client(client& oauth, token_cache& cache, api_client_config config)
    : impl_(std::make_shared<detail::api_client_impl>(detail::impl_of(oauth), cache.impl_, config)) {}

api_client::~api_client() = default;

api_metrics api_client::metrics() const noexcept {
    return detail::api_client_metrics(*impl_);
}

}  // namespace apollo_oauth
