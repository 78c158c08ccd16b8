// token_store's default lease operations.
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>

namespace apollo_oauth {

// The handler must not run inline, and the base class has no executor to post it to: Boost 1.81
// cannot post to an any_completion_handler's own (any_completion_executor) executor. So it runs
// on the system executor's thread pool, which the interface allows ("on any thread").
void token_store::async_acquire_lease(std::string, std::string, std::chrono::milliseconds,
                                      lease_handler handler) {
    boost::asio::post(boost::asio::system_executor(),
                      [handler = std::move(handler)]() mutable { std::move(handler)(error_code{}, true); });
}

void token_store::release_lease(const std::string&, const std::string&) {}

}  // namespace apollo_oauth
