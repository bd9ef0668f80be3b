// librdkafka for SpateKafka, the only module that imports it. Resolved through pkg-config
// ("rdkafka"); cluster/setup guarantees version 2.2 or newer is found first.
#ifndef SPATE_CRDKAFKA_SHIM_H
#define SPATE_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#endif
