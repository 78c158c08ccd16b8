// Runs one coroutine to completion on a fresh io_context: the commands are short programs.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <exception>
#include <optional>

namespace apollo_oauth::cli {

/// Runs `op` (made from the context's executor) until it finishes, then stops the context: idle
/// keep-alive connections and their timers are not waited for. Rethrows the coroutine's exception.
template <class Result, class MakeOp>
Result run_to_completion(boost::asio::io_context& ioc, MakeOp make_op) {
    std::optional<Result> result;
    std::exception_ptr failure;
    boost::asio::co_spawn(ioc, make_op(ioc.get_executor()), [&](std::exception_ptr e, Result r) {
        failure = e;
        if (!e) {
            result.emplace(std::move(r));
        }
        ioc.stop();
    });
    ioc.run();
    if (failure) {
        std::rethrow_exception(failure);
    }
    return std::move(*result);
}

}  // namespace apollo_oauth::cli
