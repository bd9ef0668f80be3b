// libcurl for SpateElastic, the only module that imports it. curl_easy_setopt and
// curl_easy_getinfo are variadic, which Swift cannot call: these typed shims can.
#ifndef SPATE_CCURL_SHIM_H
#define SPATE_CCURL_SHIM_H
#include <curl/curl.h>

typedef size_t (*spate_curl_data_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);

static inline CURLcode spate_curl_setopt_long(CURL *h, CURLoption option, long value) {
    return curl_easy_setopt(h, option, value);
}
static inline CURLcode spate_curl_setopt_string(CURL *h, CURLoption option, const char *value) {
    return curl_easy_setopt(h, option, value);
}
static inline CURLcode spate_curl_setopt_pointer(CURL *h, CURLoption option, void *value) {
    return curl_easy_setopt(h, option, value);
}
static inline CURLcode spate_curl_setopt_slist(CURL *h, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(h, option, value);
}
static inline CURLcode spate_curl_setopt_callback(CURL *h, CURLoption option, spate_curl_data_cb value) {
    return curl_easy_setopt(h, option, value);
}
static inline CURLcode spate_curl_setopt_off(CURL *h, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(h, option, value);
}
typedef int (*spate_curl_progress_cb)(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);

static inline CURLcode spate_curl_setopt_progress(CURL *h, spate_curl_progress_cb value) {
    return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, value);
}
static inline CURLcode spate_curl_getinfo_long(CURL *h, CURLINFO info, long *value) {
    return curl_easy_getinfo(h, info, value);
}
static inline CURLcode spate_curl_getinfo_double(CURL *h, CURLINFO info, double *value) {
    return curl_easy_getinfo(h, info, value);
}
#endif
