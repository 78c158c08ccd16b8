#define BOOST_TEST_MODULE apollo_oauth_integration
#include <boost/test/unit_test.hpp>
