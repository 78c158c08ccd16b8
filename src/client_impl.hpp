// The state behind apollo_oauth::client, and the completion rules every operation shares.
#pragma once

#include <apollo_oauth/client.hpp>

#include "http/transport.hpp"
#include "sansio/url.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/post.hpp>

namespace apollo_oauth::detail {

class client_impl {
public:
    client_impl(boost::asio::any_io_executor ex, client_config config);

    const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
    const client_config& config() const noexcept { return config_; }
    http::transport& transport() noexcept { return transport_; }

    const sansio::https_target& token_endpoint() const noexcept { return token_; }
    const sansio::https_target& profile_endpoint() const noexcept { return profile_; }
    const sansio::https_target& api_base() const noexcept { return api_; }

private:
    boost::asio::any_io_executor executor_;
    client_config config_;
    sansio::https_target token_;
    sansio::https_target profile_;
    sansio::https_target api_;
    http::transport transport_;
};

/// The caller's side of one operation: its handler, the executor it must run on, where its
/// diagnostics go and its cancellation slot. complete() is the only way out, and it always posts.
template <class Result>
class pending_op {
public:
    using handler_type = boost::asio::any_completion_handler<void(error_code, Result)>;

    pending_op(boost::asio::any_io_executor handler_ex, handler_type handler, diagnostics* diag)
        : handler_ex_(std::move(handler_ex)),
          slot_(boost::asio::get_associated_cancellation_slot(handler)),
          handler_(std::move(handler)),
          diag_(diag) {
        if (diag_) {
            diag_->clear();
        }
    }

    /// Routes terminal cancellation of the caller's slot to `canceller.cancel()`, which must be
    /// thread-safe. Call before the work starts, on the initiating thread.
    template <class Canceller>
    void connect_cancellation(Canceller canceller) {
        if (slot_.is_connected()) {
            slot_.template emplace<cancel_handler<Canceller>>(std::move(canceller));
        }
    }

    /// Runs the handler on its executor, never inline. Clearing the slot happens there too, on
    /// the executor that emits cancellation signals, so the two never race.
    void complete(error_code ec, Result result, diagnostics diag = {}) && {
        auto ex = handler_ex_;
        boost::asio::post(
            ex, [self = std::move(*this), ec, result = std::move(result), diag = std::move(diag)]() mutable {
                if (self.slot_.is_connected()) {
                    self.slot_.clear();
                }
                if (self.diag_) {
                    *self.diag_ = std::move(diag);
                }
                auto handler = std::move(self.handler_);
                std::move(handler)(ec, std::move(result));
            });
    }

private:
    template <class Canceller>
    struct cancel_handler {
        // A constructor, not an aggregate: Asio constructs it with parentheses, which clang 14
        // does not accept for aggregates.
        explicit cancel_handler(Canceller c) : canceller(std::move(c)) {}
        Canceller canceller;
        void operator()(boost::asio::cancellation_type type) const {
            if ((type & boost::asio::cancellation_type::terminal) != boost::asio::cancellation_type::none) {
                canceller.cancel();
            }
        }
    };

    boost::asio::any_io_executor handler_ex_;
    boost::asio::cancellation_slot slot_;
    handler_type handler_;
    diagnostics* diag_;
};

}  // namespace apollo_oauth::detail
