#include "options.hpp"

#include <boost/program_options.hpp>

#include <iostream>

namespace apollo_oauth::soak {

namespace po = boost::program_options;

std::optional<options> parse_options(int argc, char** argv, int& exit_code) {
    options o;
    long seconds = o.duration.count();
    long expires_in = o.expires_in.count();
    long chaos_ms = o.chaos_period.count();
    long warmup = -1;
    po::options_description desc("soak: API calls over many accounts with rotations, 401s and 5xx");
    desc.add_options()                                                                        //
        ("help,h", "this text")                                                               //
        ("accounts", po::value(&o.accounts)->default_value(o.accounts), "accounts seeded")    //
        ("seconds", po::value(&seconds)->default_value(seconds), "length of the load phase")  //
        ("concurrency", po::value(&o.concurrency)->default_value(o.concurrency),
         "API calls in flight at once")  //
        ("seed-concurrency", po::value(&o.seed_concurrency)->default_value(o.seed_concurrency),
         "authorizations in flight while seeding")  //
        ("expires-in", po::value(&expires_in)->default_value(expires_in),
         "token lifetime the emulator grants, seconds")  //
        ("hot-share", po::value(&o.hot_share)->default_value(o.hot_share, "0.5"),
         "share of calls to hot accounts")  //
        ("hot-fraction", po::value(&o.hot_fraction)->default_value(o.hot_fraction, "0.01"),
         "share of accounts that are hot")  //
        ("chaos-ms", po::value(&chaos_ms)->default_value(chaos_ms),
         "period of the driver that expires/revokes a token and maybe injects a 5xx")  //
        ("fault-probability", po::value(&o.fault_probability)->default_value(o.fault_probability, "0.2"),
         "chance per driver tick of one injected 5xx")  //
        ("warmup", po::value(&warmup),
         "seconds excluded from the RSS fit (default: a quarter of --seconds)")  //
        ("max-rss-slope", po::value(&o.max_rss_slope)->default_value(o.max_rss_slope),
         "fail when resident memory grows faster than this after warm-up, bytes/s")                      //
        ("store", po::value(&o.store)->default_value(o.store), "token store: memory or file")            //
        ("store-dir", po::value(&o.store_dir), "directory of the file store (default: a new temp dir)")  //
        ("client-threads", po::value(&o.client_threads)->default_value(o.client_threads),
         "threads running the client's io_context")  //
        ("emulator-threads", po::value(&o.emulator_threads)->default_value(o.emulator_threads),
         "threads serving the emulator")  //
        ("connections", po::value(&o.connections)->default_value(o.connections),
         "pool connections per host")  //
        ("retain-revoked", po::bool_switch(&o.retain_revoked),
         "let the emulator keep rotated tokens (its memory then grows: shows the RSS check works)")  //
        ("random-seed", po::value(&o.seed)->default_value(o.seed), "random seed");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        std::cerr << "soak: " << e.what() << "\n" << desc << "\n";
        exit_code = 2;
        return std::nullopt;
    }
    if (vm.count("help")) {
        std::cout << desc << "\n";
        exit_code = 0;
        return std::nullopt;
    }
    o.duration = std::chrono::seconds(seconds);
    o.expires_in = std::chrono::seconds(expires_in);
    o.chaos_period = std::chrono::milliseconds(chaos_ms);
    if (warmup >= 0) {
        o.warmup = std::chrono::seconds(warmup);
    }
    if (o.accounts == 0 || o.concurrency == 0 || o.seed_concurrency == 0 || seconds <= 0 || expires_in <= 0 ||
        chaos_ms <= 0 || o.client_threads == 0 || o.emulator_threads == 0 ||
        (o.store != "memory" && o.store != "file")) {
        std::cerr << "soak: invalid option value\n" << desc << "\n";
        exit_code = 2;
        return std::nullopt;
    }
    return o;
}

}  // namespace apollo_oauth::soak
