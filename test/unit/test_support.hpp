// Helpers shared by the unit tests.
#pragma once

#include <apollo_oauth/error.hpp>

#include <ostream>

namespace apollo_oauth {

// Lets BOOST_TEST print an errc operand of a failed comparison.
inline std::ostream& boost_test_print_type(std::ostream& os, errc e) {
    return os << make_error_code(e);
}

}  // namespace apollo_oauth
