// libFuzzer's entry points that a Swift executable calls or provides (compiler-rt's
// FuzzerInterface.h). Linked by -sanitize=fuzzer.
#ifndef SPATE_CLIBFUZZER_H
#define SPATE_CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer's driver (argument parsing, corpus, mutation loop) with `callback` as
/// LLVMFuzzerTestOneInput. What libFuzzer's own main() does.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#endif
