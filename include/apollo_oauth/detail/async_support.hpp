// Helpers shared by the initiation objects of the public async operations.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>

#include <memory>

namespace apollo_oauth::detail {

class client_impl;
boost::asio::any_io_executor client_executor(const std::shared_ptr<client_impl>& impl) noexcept;

/// A work-tracked copy of `ex`: its io_context does not run out of work while this lives.
inline boost::asio::any_io_executor track_work(const boost::asio::any_io_executor& ex) {
    return boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked);
}

/// The executor the final handler must run on, taken while its concrete type is still known
/// (Boost 1.81 cannot post to the any_completion_executor of an any_completion_handler). It tracks
/// outstanding work, so the handler's io_context does not run out of work while the op is pending.
template <class Handler>
boost::asio::any_io_executor handler_executor(const Handler& handler,
                                              const boost::asio::any_io_executor& fallback) {
    return track_work(boost::asio::get_associated_executor(handler, fallback));
}

}  // namespace apollo_oauth::detail
