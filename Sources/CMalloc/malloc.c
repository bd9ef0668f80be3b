// CMalloc is header-only (an inline function); SwiftPM wants a source file in a C target.
#include "spate_malloc.h"
