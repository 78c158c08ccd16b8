// Marks memory a pool keeps for reuse as unusable to AddressSanitizer, so that a block touched
// after it was given back is still reported (a no-op without ASan).
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define APOLLO_OAUTH_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define APOLLO_OAUTH_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define APOLLO_OAUTH_POISON(p, n) ((void)(p), (void)(n))
#define APOLLO_OAUTH_UNPOISON(p, n) ((void)(p), (void)(n))
#endif
