// The token store test module: memory and file stores, crash safety, cross-process races.
#define BOOST_TEST_MODULE apollo_oauth_store
#include <boost/test/unit_test.hpp>
