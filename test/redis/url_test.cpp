// parse_redis_url: pure, table-driven.
#include <apollo_oauth/redis_token_store.hpp>

#include <boost/test/unit_test.hpp>

#include <sstream>

using namespace apollo_oauth;

BOOST_AUTO_TEST_SUITE(redis_url)

BOOST_AUTO_TEST_CASE(accepted_forms) {
    struct expected {
        const char* url;
        bool tls;
        const char* host;
        std::uint16_t port;
        unsigned database;
        const char* user;
        const char* password;
        const char* prefix;
    };
    const expected cases[] = {
        {"redis://localhost", false, "localhost", 6379, 0, "", "", "apollo_oauth:"},
        {"rediss://cache.example.com:6380/2", true, "cache.example.com", 6380, 2, "", "", "apollo_oauth:"},
        {"redis://:s%40cret@10.0.0.5:7000", false, "10.0.0.5", 7000, 0, "", "s@cret", "apollo_oauth:"},
        {"redis://svc:pw@h/0?key_prefix=app1:", false, "h", 6379, 0, "svc", "pw", "app1:"},
        {"redis://[::1]:6390", false, "::1", 6390, 0, "", "", "apollo_oauth:"},
        {"rediss://u%20x:p@h/", true, "h", 6379, 0, "u x", "p", "apollo_oauth:"},
        {"redis://h?min_replicas=1&key_prefix=x:", false, "h", 6379, 0, "", "", "x:"},
    };
    for (const auto& c : cases) {
        BOOST_TEST_CONTEXT(c.url) {
            redis_options o;
            BOOST_TEST(!parse_redis_url(c.url, o));
            BOOST_TEST(o.use_tls == c.tls);
            BOOST_TEST(o.host == c.host);
            BOOST_TEST(o.port == c.port);
            BOOST_TEST(o.database == c.database);
            BOOST_TEST(o.user == c.user);
            BOOST_TEST(o.password.reveal() == c.password);
            BOOST_TEST(o.key_prefix == c.prefix);
            BOOST_TEST(o.min_replicas ==
                       (std::string_view(c.url).find("min_replicas=1") != std::string_view::npos ? 1u : 0u));
        }
    }
}

// A URL names a whole location: a port or database it leaves out is the default (6379, 0), not
// what the options held before (the database was kept while the port was reset). The fields a
// URL does not hold keep their values: a password set beforehand, the prefix, the timeouts.
BOOST_AUTO_TEST_CASE(the_url_sets_the_whole_location_and_leaves_the_rest_alone) {
    for (const char* url : {"redis://h", "redis://h/"}) {
        BOOST_TEST_CONTEXT(url) {
            redis_options o;
            o.use_tls = true;
            o.port = 7000;
            o.database = 5;
            o.user = "svc";
            o.password = secret_string("kept-pw");
            o.key_prefix = "kept:";
            o.min_replicas = 2;
            o.command_timeout = std::chrono::milliseconds(1234);
            BOOST_TEST(!parse_redis_url(url, o));
            BOOST_TEST(!o.use_tls);
            BOOST_TEST(o.host == "h");
            BOOST_TEST(o.port == 6379);
            BOOST_TEST(o.database == 0u);
            BOOST_TEST(o.user == "svc");
            BOOST_TEST(o.password.reveal() == "kept-pw");
            BOOST_TEST(o.key_prefix == "kept:");
            BOOST_TEST(o.min_replicas == 2u);
            BOOST_TEST(o.command_timeout.count() == 1234);
        }
    }
}

BOOST_AUTO_TEST_CASE(refused_forms_leave_the_options_alone) {
    const char* cases[] = {
        "http://localhost",               // another scheme
        "redis:/localhost",               // no authority
        "redis://",                       // no host
        "redis://h:0",                    // port 0
        "redis://h:70000",                // port out of range
        "redis://h/x",                    // database not a number
        "redis://h/1/2",                  // a path
        "redis://h?other=1",              // unknown parameter
        "redis://h?key_prefix={a}",       // would break the hash tag
        "redis://h#frag",                 // a fragment
        "not a url",                      //
        "redis://:secret-pw@h:bad-port",  // the error must not echo the password
        "redis://h?min_replicas=one",     // not a number
        "redis://h?min_replicas=-1",      //
    };
    for (const char* url : cases) {
        BOOST_TEST_CONTEXT(url) {
            redis_options o;
            o.host = "unchanged";
            const error_code ec = parse_redis_url(url, o);
            BOOST_TEST(ec == make_error_code(errc::invalid_url));
            BOOST_TEST(o.host == "unchanged");
            BOOST_TEST(ec.message().find("secret-pw") == std::string::npos);
        }
    }
}

BOOST_AUTO_TEST_CASE(printing_never_shows_the_password) {
    redis_options o;
    BOOST_TEST(!parse_redis_url("rediss://svc:printed-secret-77@h:6380/3", o));
    std::ostringstream os;
    os << o;
    BOOST_TEST(os.str().find("printed-secret-77") == std::string::npos);
    BOOST_TEST(os.str().find("rediss://svc@h:6380/3") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
