// Only a header: SwiftPM wants a source file in every C target.
#include "CLibFuzzer.h"
