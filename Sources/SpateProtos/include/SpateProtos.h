// The protobuf-c code generated from Protos/ (by cluster/gen-protos, never edited by hand),
// plus the arena allocator that lets the hot path unpack batches without per-record malloc.
#ifndef SPATE_PROTOS_H
#define SPATE_PROTOS_H
#include "spate/probe/v1/probe.pb-c.h"
#include "spate/query/v1/query.pb-c.h"
#include "spate_arena.h"
#endif
