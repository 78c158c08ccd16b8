#include "options.hpp"

#include <boost/program_options.hpp>

#include <iostream>
#include <map>
#include <sstream>

namespace web_app {

namespace po = boost::program_options;
namespace emulator = apollo_oauth::emulator;

namespace {

// "ROUTE:KIND[:VALUE[:COUNT]]": token:latency:3000 (ms), api:status:520, api:body:12000000 (bytes),
// any:reset.
std::optional<emulator::fault> parse_fault(const std::string& spec) {
    std::vector<std::string> parts;
    std::istringstream in(spec);
    for (std::string part; std::getline(in, part, ':');) {
        parts.push_back(part);
    }
    if (parts.size() < 2 || parts.size() > 4) {
        return std::nullopt;
    }
    emulator::fault f;
    static const std::map<std::string, emulator::route> routes = {{"any", emulator::route::any},
                                                                  {"authorize", emulator::route::authorize},
                                                                  {"token", emulator::route::token},
                                                                  {"profile", emulator::route::profile},
                                                                  {"api", emulator::route::api}};
    const auto where = routes.find(parts[0]);
    if (where == routes.end()) {
        return std::nullopt;
    }
    f.where = where->second;
    unsigned long value = 0;
    try {
        value = parts.size() > 2 ? std::stoul(parts[2]) : 0;
        f.count = parts.size() > 3 ? std::stoul(parts[3]) : 1;
    } catch (const std::exception&) {
        return std::nullopt;
    }
    if (parts[1] == "latency") {
        f.what = emulator::fault::kind::latency;
        f.delay = std::chrono::milliseconds(value);
    } else if (parts[1] == "status" && value >= 100 && value <= 999) {
        f.what = emulator::fault::kind::http_status;
        f.status = static_cast<unsigned>(value);
    } else if (parts[1] == "body" && parts.size() > 2) {
        f.what = emulator::fault::kind::oversized_body;
        f.size = value;
    } else if (parts[1] == "reset" && parts.size() == 2) {
        f.what = emulator::fault::kind::reset;
    } else {
        return std::nullopt;
    }
    return f;
}

}  // namespace

std::optional<options> parse_options(int argc, char** argv, int& exit_code) {
    options o;
    unsigned port = o.port;
    long long lifetime = o.token_lifetime.count();
    long long margin = o.expiry_margin.count();
    long long idle = o.session_idle_timeout.count();
    long long authorization_lifetime = o.authorization_lifetime.count();
    std::vector<std::string> faults;
    double drain = std::chrono::duration<double>(o.drain_timeout).count();
    double shutdown = std::chrono::duration<double>(o.shutdown_timeout).count();
    po::options_description desc(
        "web_app: Apollo accounts connected through apollo_oauth, served over HTTPS");
    // clang-format off
    desc.add_options()
        ("help,h", "this text")
        ("listen", po::value(&o.listen_address)->default_value(o.listen_address), "address to listen on")
        ("port", po::value(&port)->default_value(port), "port (0: any free port)")
        ("public-origin", po::value(&o.public_origin), "origin browsers use (default https://localhost:PORT)")
        ("cert", po::value(&o.cert_file), "certificate chain, PEM (default: a fresh self-signed one)")
        ("key", po::value(&o.key_file), "private key of --cert, PEM")
        ("threads", po::value(&o.threads)->default_value(o.threads), "io_context threads")
        ("max-connections", po::value(&o.max_connections)->default_value(o.max_connections),
         "connections served at once (the next wait in the listen backlog); 0: what the descriptor "
         "limit leaves once 256 are kept for the rest, at most 10000")
        ("max-connections-per-address", po::value(&o.max_connections_per_address)->default_value(o.max_connections_per_address),
         "connections one client address (IPv4, or IPv6 /64) holds at once; one more is closed at once; "
         "0: no limit. Behind a reverse proxy (or a large NAT) every connection comes from one address, "
         "and this caps the whole site: give 0 there")
        ("store", po::value(&o.store)->default_value(o.store), "token store: file:DIR, redis://[user@]host[:port][/db][?key_prefix=P] or rediss://...")
        ("scope", po::value(&o.scopes)->multitoken(), "scopes to request (repeatable)")
        ("client-id", po::value(&o.client_id), "the app's client id (default $APOLLO_CLIENT_ID)")
        ("authorize-url", po::value(&o.authorize_url)->default_value(o.authorize_url), "authorize page")
        ("token-url", po::value(&o.token_url)->default_value(o.token_url), "token endpoint")
        ("profile-url", po::value(&o.profile_url)->default_value(o.profile_url), "profile endpoint")
        ("api-base", po::value(&o.api_base)->default_value(o.api_base), "API base URL")
        ("ca-file", po::value(&o.ca_file), "extra CA file to trust for those endpoints")
        ("emulator", po::bool_switch(&o.emulator), "run against an embedded Apollo emulator")
        ("auto-consent", po::bool_switch(&o.auto_consent), "emulator: consent without showing the page")
        ("token-lifetime", po::value(&lifetime)->default_value(lifetime), "emulator: token lifetime, seconds")
        ("demo-account", po::bool_switch(&o.demo_account), "emulator: connect its user at start-up")
        ("emulator-fault", po::value(&faults), "emulator: ROUTE:KIND[:VALUE[:COUNT]] injected after start-up "
                                                             "(ROUTE any|authorize|token|profile|api; KIND latency:MS, "
                                                             "status:CODE, body:BYTES or reset); repeatable")
        ("expiry-margin", po::value(&margin)->default_value(margin), "seconds before expiry a token counts as expired")
        ("write-ca", po::value(&o.write_ca), "write the CA certificates to trust to this file")
        ("max-sessions", po::value(&o.max_sessions)->default_value(o.max_sessions),
         "browser sessions held at most (beyond it, the least recently seen of the address holding the most goes)")
        ("session-idle-timeout", po::value(&idle)->default_value(idle), "seconds after which an unseen session is dropped")
        ("max-authorizations", po::value(&o.max_authorizations)->default_value(o.max_authorizations),
         "authorizations held at most, all sessions together (beyond it, the heaviest address loses its oldest)")
        ("authorization-lifetime", po::value(&authorization_lifetime)->default_value(authorization_lifetime),
         "seconds a started authorization may take to come back")
        ("drain-timeout", po::value(&drain)->default_value(drain), "on SIGTERM: seconds requests being answered get to finish")
        ("shutdown-timeout", po::value(&shutdown)->default_value(shutdown),
         "on SIGTERM, then: seconds the token cache may take to store rotated pairs");
    // clang-format on
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        std::cerr << "web_app: " << e.what() << "\n" << desc;
        exit_code = 2;
        return std::nullopt;
    }
    if (vm.count("help")) {
        std::cout << desc;
        exit_code = 0;
        return std::nullopt;
    }
    // At most a year: compared with a difference of steady_clock time points (nanoseconds), an idle
    // timeout of centuries (1e10 s for "never") would wrap negative and drop every session. (A year
    // is also the longest authorization lifetime client_config::validate() accepts.)
    constexpr long long longest_idle = 366LL * 24 * 3600;
    if (port > 65535 || o.threads == 0 || o.max_sessions == 0 || o.max_authorizations == 0 || idle <= 0 ||
        idle > longest_idle || authorization_lifetime <= 0 || authorization_lifetime > longest_idle ||
        lifetime <= 0 || margin < 0 || !(drain >= 0 && drain <= 3600) ||
        !(shutdown >= 0 && shutdown <= 3600) || o.cert_file.empty() != o.key_file.empty()) {
        std::cerr
            << "web_app: --port 0..65535, --threads >= 1, --max-sessions and --max-authorizations >= 1, "
               "--session-idle-timeout and --authorization-lifetime 1..31622400 (a year), --token-lifetime > "
               "0, --expiry-margin >= 0, "
               "--drain-timeout and --shutdown-timeout 0..3600, and --cert goes with --key\n";
        exit_code = 2;
        return std::nullopt;
    }
    if (!faults.empty() && !o.emulator) {
        std::cerr << "web_app: --emulator-fault needs --emulator\n";
        exit_code = 2;
        return std::nullopt;
    }
    for (const auto& spec : faults) {
        auto f = parse_fault(spec);
        if (!f) {
            std::cerr << "web_app: --emulator-fault " << spec << ": expected ROUTE:KIND[:VALUE[:COUNT]]\n";
            exit_code = 2;
            return std::nullopt;
        }
        o.emulator_faults.push_back(*f);
    }
    o.port = static_cast<std::uint16_t>(port);
    o.token_lifetime = std::chrono::seconds(lifetime);
    o.expiry_margin = std::chrono::seconds(margin);
    o.session_idle_timeout = std::chrono::seconds(idle);
    o.authorization_lifetime = std::chrono::seconds(authorization_lifetime);
    o.drain_timeout = std::chrono::round<std::chrono::milliseconds>(std::chrono::duration<double>(drain));
    o.shutdown_timeout =
        std::chrono::round<std::chrono::milliseconds>(std::chrono::duration<double>(shutdown));
    return o;
}

}  // namespace web_app
