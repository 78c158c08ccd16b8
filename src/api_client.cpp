#include <apollo_oauth/api_client.hpp>

#include "cache/cache_impl.hpp"
#include "client_impl.hpp"
#include "sansio/token_protocol.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>

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

    // The metrics: fixed buckets, each counted on its own and summed into cumulative counts when read.
    static constexpr std::array<double, 12> bounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                   0.1,   0.25,   0.5,   1,    2.5,   5};
    std::array<std::atomic<std::uint64_t>, bounds.size() + 1> buckets{};
    std::atomic<std::uint64_t> requests{0}, retries_401{0}, rate_limited{0}, latency_ns{0};

    void record(std::chrono::steady_clock::duration took) {
        const double seconds = std::chrono::duration<double>(took).count();
        const auto at = std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin();
        buckets[static_cast<std::size_t>(at)].fetch_add(1, std::memory_order_relaxed);
        requests.fetch_add(1, std::memory_order_relaxed);
        latency_ns.fetch_add(static_cast<std::uint64_t>(std::chrono::nanoseconds(took).count()),
                             std::memory_order_relaxed);
    }
};

api_metrics api_client_metrics(const std::shared_ptr<api_client_impl>& impl) {
    api_metrics m;
    m.requests = impl->requests.load(std::memory_order_relaxed);
    m.retries_401 = impl->retries_401.load(std::memory_order_relaxed);
    m.rate_limited = impl->rate_limited.load(std::memory_order_relaxed);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < api_client_impl::bounds.size(); ++i) {
        cumulative += impl->buckets[i].load(std::memory_order_relaxed);
        m.latency.push_back({api_client_impl::bounds[i], cumulative});
    }
    m.latency_count = cumulative + impl->buckets.back().load(std::memory_order_relaxed);
    m.latency_sum_seconds = static_cast<double>(impl->latency_ns.load(std::memory_order_relaxed)) / 1e9;
    return m;
}

namespace {

// One request through the 401 and 429 policies. Its steps run on a strand of their own, where
// the inner signal is emitted: each step's operation (token wait, exchange, Retry-After timer)
// takes the inner slot in turn, so one cancellation reaches whichever is pending.
class api_call : public std::enable_shared_from_this<api_call> {
public:
    api_call(std::shared_ptr<api_client_impl> impl, std::string account, api_request request)
        : impl_(std::move(impl)),
          strand_(asio::make_strand(impl_->oauth->executor())),
          timer_(strand_),
          account_(std::move(account)),
          request_(std::move(request)) {}

    struct canceller {
        std::weak_ptr<api_call> call;
        void cancel() const {
            if (auto self = call.lock()) {
                asio::post(self->strand_, [self] {
                    self->cancelled_ = true;
                    self->inner_.emit(asio::cancellation_type::terminal);
                });
            }
        }
    };

    void start(pending_op<api_response> op) {
        op.connect_cancellation(canceller{weak_from_this()});
        op_.emplace(std::move(op));
        started_ = std::chrono::steady_clock::now();
        asio::post(strand_, [self = shared_from_this()] { self->get_token(); });
    }

private:
    bool stop_if_cancelled() {
        if (cancelled_) {
            finish(asio::error::operation_aborted, {});
        }
        return cancelled_;
    }

    void get_token() {
        if (stop_if_cancelled()) {
            return;
        }
        cache_get_erased(impl_->cache, account_, strand_,
                         access_token_handler(asio::bind_cancellation_slot(
                             inner_.slot(), [self = shared_from_this()](error_code ec, access_token token) {
                                 if (ec) {
                                     return self->finish(ec, {});
                                 }
                                 self->token_ = std::move(token);
                                 self->send();
                             })));
    }

    void send() {
        if (stop_if_cancelled()) {
            return;
        }
        api_request_erased(impl_->oauth, token_.value, request_, strand_,
                           api_handler(asio::bind_cancellation_slot(
                               inner_.slot(), [self = shared_from_this()](error_code ec, api_response res) {
                                   self->on_response(ec, std::move(res));
                               })));
    }

    void on_response(error_code ec, api_response res) {
        // A cancel that arrived after the exchange finished must still stop a retry or a wait.
        if (stop_if_cancelled()) {
            return;
        }
        if (ec) {
            return finish(ec, {});
        }
        if (res.status == 429) {
            impl_->rate_limited.fetch_add(1, std::memory_order_relaxed);
        }
        if (res.status == 401 && !retried_unauthorized_) {
            impl_->retries_401.fetch_add(1, std::memory_order_relaxed);
            // Only the token this request used is invalidated: when a thousand requests get 401
            // for it, the first marks it and the rest find it already replaced or being replaced.
            retried_unauthorized_ = true;
            impl_->cache->invalidate(account_, token_);
            return get_token();
        }
        if (res.status == 429 && rate_limit_retries_ < impl_->config.max_rate_limit_retries) {
            std::chrono::milliseconds delay = impl_->config.default_retry_after;
            if (auto header = res.header("retry-after")) {
                if (auto seconds = sansio::parse_retry_after(*header, std::chrono::system_clock::now())) {
                    delay = *seconds;
                }
            }
            if (delay <= impl_->config.max_retry_after) {
                ++rate_limit_retries_;
                return wait_then_retry(delay);
            }
        }
        finish({}, std::move(res));
    }

    void wait_then_retry(std::chrono::milliseconds delay) {
        timer_.expires_after(delay);
        timer_.async_wait(
            asio::bind_cancellation_slot(inner_.slot(), [self = shared_from_this()](error_code ec) {
                if (ec) {
                    return self->finish(ec, {});
                }
                self->get_token();  // the token may have been replaced while waiting
            }));
    }

    void finish(error_code ec, api_response res) {
        if (auto op = std::exchange(op_, std::nullopt)) {
            impl_->record(std::chrono::steady_clock::now() - started_);
            std::move(*op).complete(ec, std::move(res));
        }
    }

    std::shared_ptr<api_client_impl> impl_;
    asio::strand<asio::any_io_executor> strand_;
    asio::steady_timer timer_;
    asio::cancellation_signal inner_;
    std::string account_;
    api_request request_;
    access_token token_;
    std::optional<pending_op<api_response>> op_;
    bool retried_unauthorized_ = false;
    std::chrono::steady_clock::time_point started_{};
    unsigned rate_limit_retries_ = 0;
    bool cancelled_ = false;
};

}  // namespace

void api_client_request_erased(const std::shared_ptr<api_client_impl>& impl, std::string account,
                               api_request request, asio::any_io_executor handler_ex, api_handler handler) {
    pending_op<api_response> op{std::move(handler_ex), std::move(handler), nullptr};
    auto call = std::make_shared<api_call>(impl, std::move(account), std::move(request));
    call->start(std::move(op));
}

asio::any_io_executor api_client_executor(const std::shared_ptr<api_client_impl>& impl) noexcept {
    return impl->oauth->executor();
}

}  // namespace detail

api_client::api_client(client& oauth, token_cache& cache, api_client_config config)
    : impl_(std::make_shared<detail::api_client_impl>(oauth.impl_, cache.impl_, config)) {}

api_client::~api_client() = default;

}  // namespace apollo_oauth
