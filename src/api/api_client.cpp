#include <apollo_oauth/api_client.hpp>

#include "api/api_client_impl.hpp"
#include "cache/cache_impl.hpp"
#include "client_impl.hpp"
#include "sansio/random.hpp"
#include "sansio/rate_limit_policy.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

namespace apollo_oauth {

namespace asio = boost::asio;

namespace detail {

namespace {

using op_strand = asio::strand<asio::any_io_executor>;

// Cancellation may be emitted on any thread (the `||` of awaitable operators on a multi-threaded
// io_context emits it from the other operation's completion), while the op's steps run on its
// strand, and a cancellation slot is not thread-safe. The caller's slot therefore holds a
// forwarder that posts the emission to the strand, where it reaches whichever step is pending
// through the op's own signal. `terminal_seen` stays set: a later partial emission, which the
// op's terminal-only filter turns into "none", must not revive a cancelled retry.
struct cancellation_relay {
    explicit cancellation_relay(op_strand strand) : strand(std::move(strand)) {}
    op_strand strand;
    asio::cancellation_signal signal;  // touched on the strand only
    bool terminal_seen = false;        // likewise
};

struct relay_forwarder {
    explicit relay_forwarder(std::shared_ptr<cancellation_relay> relay) : relay(std::move(relay)) {}
    std::shared_ptr<cancellation_relay> relay;
    void operator()(asio::cancellation_type type) const {
        asio::post(relay->strand, [relay = relay, type] {
            if ((type & asio::cancellation_type::terminal) != asio::cancellation_type::none) {
                relay->terminal_seen = true;
            }
            relay->signal.emit(type);
        });
    }
};

// One request through the 401 and 429 policies, as one composed operation: get the token, send,
// and on a 401 (once) or a 429 (bounded) go round again. Every step after the first runs on the
// op's strand (of the handler's executor); each inner operation (the cache's wait, the client's exchange, the
// Retry-After timer) is started with this op as its handler, so the op's cancellation slot
// (terminal only, the async_compose default) reaches whichever one is pending.
class api_call_op {
public:
    api_call_op(std::shared_ptr<api_client_impl> impl, std::string account, api_request request,
                diagnostics* diag, std::shared_ptr<cancellation_relay> relay)
        : state_(std::make_unique<state>(std::move(impl), std::move(account), std::move(request), diag,
                                         std::move(relay))) {}

    // Start, and after a 401 or a Retry-After wait: take the (possibly new) token.
    template <class Self>
    void operator()(Self& self) {
        auto& s = *state_;
        // async_compose runs the first step inline, on the initiating thread. That is safe: the
        // caller's slot gets its forwarder only after the initiation, so no relayed cancellation
        // can run beside it, and nothing below completes inline. Later steps run on the strand.
        if (s.relay->terminal_seen) {
            return finish(self, asio::error::operation_aborted, {});
        }
        // A valid token is read without a hop (the cache's lock-free fast path, which also starts
        // a due refresh-ahead): a request costs no more thread hand-offs than a fixed token's.
        if (auto token = s.impl->cache->try_get(s.account)) {
            return (*this)(self, error_code{}, std::move(*token));
        }
        cache_get_erased(s.impl->cache, s.account, s.ex(), access_token_handler(std::move(self)));
    }

    // The token arrived: send.
    template <class Self>
    void operator()(Self& self, error_code ec, access_token token) {
        auto& s = *state_;
        if (!ec && s.relay->terminal_seen) {
            ec = asio::error::operation_aborted;
        }
        if (ec) {
            return finish(self, ec, {});
        }
        s.token = std::move(token);
        s.inner_diag.clear();
        api_request_erased(s.impl->oauth, s.token.value, s.request, &s.inner_diag, s.ex(),
                           api_handler(std::move(self)));
    }

    // The answer arrived: apply the 401 and 429 policies (a 503 with Retry-After goes as a 429).
    template <class Self>
    void operator()(Self& self, error_code ec, api_response res) {
        auto& s = *state_;
        // A cancellation that arrived after the exchange finished still stops a retry or a wait.
        if (!ec && s.relay->terminal_seen) {
            ec = asio::error::operation_aborted;
        }
        if (ec) {
            return finish(self, ec, {});
        }
        if (res.status == 401 && !s.retried_unauthorized && s.inner_diag.blames_the_token()) {
            // Only the token this request used is invalidated: when a thousand requests get 401
            // for it, the first marks it and the rest find it already replaced or being replaced.
            s.retried_unauthorized = true;
            s.impl->metrics.count_retry_401();
            s.impl->cache->invalidate(s.account, s.token);
            return (*this)(self);
        }
        // A 503 that says when to come back is load, as a 429 is (api_client_config).
        const bool unavailable_for_now =
            res.status == 503 && s.inner_diag.retry_after && s.impl->retry_unavailable_with_retry_after;
        if (res.status == 429 || unavailable_for_now) {
            if (res.status == 429) {
                s.impl->metrics.count_rate_limited();
            }
            // inner_diag.retry_after: the answer's Retry-After, parsed when it arrived.
            if (auto wait = sansio::rate_limit_wait(s.rate_limit_retries, s.inner_diag.retry_after,
                                                    s.impl->rate_limits, sansio::jitter_draw())) {
                if (s.impl->on_rate_limit_wait) {
                    s.impl->on_rate_limit_wait(s.rate_limit_retries, *wait);
                }
                ++s.rate_limit_retries;
                if (!s.timer) {
                    // On the client's executor, whose context runs an event loop (the
                    // handler's need not); the wait completes on the op's strand.
                    s.timer.emplace(s.impl->oauth->executor());
                }
                s.timer->expires_after(*wait);
                return s.timer->async_wait(asio::bind_executor(s.relay->strand, std::move(self)));
            }
        }
        finish(self, {}, std::move(res));
    }

    // The Retry-After wait is over (or was cancelled).
    template <class Self>
    void operator()(Self& self, error_code ec) {
        if (!ec && state_->relay->terminal_seen) {
            ec = asio::error::operation_aborted;
        }
        if (ec) {
            return finish(self, ec, {});
        }
        (*this)(self);  // the token may have been replaced while waiting
    }

private:
    struct state {
        state(std::shared_ptr<api_client_impl> impl, std::string account, api_request request,
              diagnostics* diag, std::shared_ptr<cancellation_relay> relay)
            : impl(std::move(impl)),
              account(std::move(account)),
              request(std::move(request)),
              diag(diag),
              relay(std::move(relay)),
              started(std::chrono::steady_clock::now()) {}

        /// Where inner operations complete: the op's strand.
        asio::any_io_executor ex() const { return relay->strand; }

        std::shared_ptr<api_client_impl> impl;
        std::string account;
        api_request request;
        diagnostics* diag;
        std::shared_ptr<cancellation_relay> relay;
        std::chrono::steady_clock::time_point started;
        diagnostics inner_diag;  // the last answer's, copied out at the end
        access_token token;
        std::optional<asio::steady_timer> timer;  // only for a 429
        bool retried_unauthorized = false;
        unsigned rate_limit_retries = 0;
    };

    // Only a step after the first calls this (the first step completes nothing itself, and no inner
    // operation completes inline), so completing here is never inline from the initiation; it runs
    // on the strand, inside the handler's executor, where `diag` is written.
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
    // The relay outlives the op in the caller's slot (until the slot is reused): its strand must
    // not count as work, or an io_context would never run out of it. The op's own work on the
    // handler's executor is tracked by async_compose while it is pending.
    auto relay = std::make_shared<cancellation_relay>(asio::make_strand(
        asio::any_io_executor(asio::prefer(handler_ex, asio::execution::outstanding_work.untracked))));
    auto caller_slot = asio::get_associated_cancellation_slot(handler);
    auto bound = asio::bind_cancellation_slot(relay->signal.slot(),
                                              asio::bind_executor(handler_ex, std::move(handler)));
    asio::async_compose<decltype(bound), void(error_code, api_response)>(
        api_call_op{impl, std::move(account), std::move(request), diag, relay}, bound, relay->strand);
    // Only now: the op's first step is queued on the strand, and async_compose has connected the
    // relay's signal, so a forwarded emission cannot meet the initiation half-done.
    if (caller_slot.is_connected()) {
        caller_slot.emplace<relay_forwarder>(relay);
    }
}

std::shared_ptr<api_client_impl> impl_of(const api_client& a) noexcept {
    return a.impl_;
}

asio::any_io_executor api_client_executor(const std::shared_ptr<api_client_impl>& impl) noexcept {
    return impl->oauth->executor();
}

api_metrics api_client_metrics(const api_client_impl& impl) noexcept {
    return impl.metrics.snapshot();
}

}  // namespace detail

api_client::api_client(client& oauth, token_cache& cache, api_client_config config)
    : impl_(std::make_shared<detail::api_client_impl>(detail::impl_of(oauth), detail::impl_of(cache),
                                                      config)) {}

api_client::~api_client() = default;

api_metrics api_client::metrics() const noexcept {
    return detail::api_client_metrics(*impl_);
}

}  // namespace apollo_oauth
