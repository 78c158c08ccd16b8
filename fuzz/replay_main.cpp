// Replays files through a fuzz target's LLVMFuzzerTestOneInput without libFuzzer, so the normal
// (g++) build and its sanitizer builds run every seed and every past crash as a test.
// Usage: fuzz_replay_<target> PATH...   (files, or directories whose files are all replayed)
// Exit 1 when no input was found: an empty run must not pass by accident.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
    namespace fs = std::filesystem;
    std::vector<fs::path> inputs;
    for (int i = 1; i < argc; ++i) {
        const fs::path path{argv[i]};
        if (fs::is_directory(path)) {
            for (const auto& entry : fs::directory_iterator(path)) {
                if (entry.is_regular_file()) {
                    inputs.push_back(entry.path());
                }
            }
        } else if (fs::is_regular_file(path)) {
            inputs.push_back(path);
        }
    }
    std::sort(inputs.begin(), inputs.end());
    for (const auto& path : inputs) {
        std::ifstream file{path, std::ios::binary};
        const std::string bytes{std::istreambuf_iterator<char>{file}, {}};
        // Printed first, so a crash names the input that caused it.
        std::cout << "replaying " << path.string() << " (" << bytes.size() << " bytes)" << std::endl;
        // A copy of exactly the input's size, so ASan sees a read past the end as libFuzzer would.
        const std::vector<std::uint8_t> exact(bytes.begin(), bytes.end());
        LLVMFuzzerTestOneInput(exact.data(), exact.size());
    }
    std::cout << inputs.size() << " inputs replayed\n";
    return inputs.empty() ? 1 : 0;
}
