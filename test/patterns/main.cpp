#define BOOST_TEST_MODULE apollo_oauth_patterns
#include <boost/test/unit_test.hpp>
