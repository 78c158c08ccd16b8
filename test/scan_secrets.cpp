// scan_secrets LOG SECRETS: fails (exit 1) when any line of SECRETS occurs in LOG.
// Exit 2 when SECRETS holds nothing, so an empty list cannot pass by accident. It prints how
// many secrets leaked and where, never the secrets themselves.
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: scan_secrets LOG SECRETS\n";
        return 2;
    }
    std::ifstream log_file{argv[1], std::ios::binary};
    std::ifstream secrets_file{argv[2]};
    if (!log_file || !secrets_file) {
        std::cerr << "scan_secrets: cannot open the log or the secrets file\n";
        return 2;
    }
    const std::string log{std::istreambuf_iterator<char>{log_file}, {}};
    std::size_t checked = 0, leaked = 0;
    for (std::string secret; std::getline(secrets_file, secret);) {
        if (secret.size() < 8) {
            continue;  // too short to be a real secret; would match by chance
        }
        ++checked;
        if (auto at = log.find(secret); at != std::string::npos) {
            ++leaked;
            std::cerr << "scan_secrets: a secret of " << secret.size() << " bytes appears at offset " << at
                      << '\n';
        }
    }
    std::cout << "scan_secrets: " << checked << " secrets checked against " << log.size()
              << " bytes of output, " << leaked << " leaked\n";
    if (checked == 0) {
        return 2;
    }
    return leaked == 0 ? 0 : 1;
}
