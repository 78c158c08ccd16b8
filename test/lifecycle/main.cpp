// The lifecycle test module: the account state machine driven directly, and the cache's
// lifecycle across caches and processes.
#define BOOST_TEST_MODULE apollo_oauth_lifecycle
#include <boost/test/unit_test.hpp>
