// The unit test module: the sans-io layer and the value types, no sockets.
#define BOOST_TEST_MODULE apollo_oauth_unit
#include <boost/test/unit_test.hpp>
