// Boost.JSON and Boost.URL compiled into the fuzz build from their headers (instead of linking
// Debian's g++-built libraries), so the fuzzer's coverage feedback reaches into their parsers.
#include <boost/json/src.hpp>
#include <boost/url/src.hpp>
