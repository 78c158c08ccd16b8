// The hot path's components, unit-tested without sockets.
#define BOOST_TEST_MODULE apollo_oauth_hot
#include <boost/test/unit_test.hpp>
