// The Redis store's test module: RESP over Asio, the store's scripts, crashes and restarts of a
// real redis-server started by the tests.
#define BOOST_TEST_MODULE apollo_oauth_redis
#include <boost/test/unit_test.hpp>
