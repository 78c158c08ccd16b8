// scan_secrets [--secrets LIST]... LOG...: fails (exit 1) when any line of any LIST occurs in any
// LOG. Exit 2 when the lists hold nothing or a file cannot be read, so an empty or missing input
// cannot pass by accident. It prints how many secrets leaked and where, never the secrets.
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

namespace {

bool read_file(const char* path, std::string& out) {
    std::ifstream file{path, std::ios::binary};
    if (!file) {
        std::cerr << "scan_secrets: cannot open " << path << '\n';
        return false;
    }
    out.assign(std::istreambuf_iterator<char>{file}, {});
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<const char*> lists, logs;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--secrets") == 0 && i + 1 < argc) {
            lists.push_back(argv[++i]);
        } else {
            logs.push_back(argv[i]);
        }
    }
    if (lists.empty() || logs.empty()) {
        std::cerr << "usage: scan_secrets [--secrets LIST]... LOG...\n";
        return 2;
    }
    std::vector<std::string> secrets;
    for (const char* path : lists) {
        std::string text;
        if (!read_file(path, text)) {
            return 2;
        }
        std::size_t start = 0;
        while (start < text.size()) {
            auto end = text.find('\n', start);
            if (end == std::string::npos) {
                end = text.size();
            }
            if (end - start >= 8) {  // shorter would match by chance, and is no real secret
                secrets.push_back(text.substr(start, end - start));
            }
            start = end + 1;
        }
    }
    std::size_t leaked = 0, bytes = 0;
    for (const char* path : logs) {
        std::string log;
        if (!read_file(path, log)) {
            return 2;
        }
        bytes += log.size();
        for (const auto& secret : secrets) {
            if (auto at = log.find(secret); at != std::string::npos) {
                ++leaked;
                std::cerr << "scan_secrets: a secret of " << secret.size() << " bytes appears in " << path
                          << " at offset " << at << '\n';
            }
        }
    }
    std::cout << "scan_secrets: " << secrets.size() << " secrets checked against " << bytes << " bytes in "
              << logs.size() << " logs, " << leaked << " leaked\n";
    if (secrets.empty()) {
        return 2;
    }
    return leaked == 0 ? 0 : 1;
}
