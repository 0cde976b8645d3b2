/* Unit tests for the HTTP router: literal and captured segments, methods and 405, HEAD,
 * percent-decoding and its rejections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http/router.h"

#include <string.h>

static const http_route routes[] = {
    {"GET", "/healthz", (void *)1, -1, "health"},
    {"GET", "/api/v1/devices", (void *)2, 0, "device.list"},
    {"POST", "/api/v1/devices", (void *)3, 0, "device.create"},
    {"GET", "/api/v1/devices/{id}", (void *)4, 0, "device.read"},
    {"DELETE", "/api/v1/devices/{id}", (void *)5, 0, "device.delete"},
    {"POST", "/api/v1/devices/{id}/token", (void *)6, 0, "device.token"},
    {"GET", "/api/handles/{prefix}/{suffix}", (void *)7, 0, "handle"},
};
#define N (sizeof routes / sizeof routes[0])

static void test_literal_and_capture(void **state) {
  (void)state;
  http_match m;
  assert_int_equal(http_route_match(routes, N, "GET", "/healthz", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.route->handler, (void *)1);
  assert_int_equal(m.nparams, 0);
  assert_int_equal(http_route_match(routes, N, "POST", "/api/v1/devices/42/token", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.route->handler, (void *)6);
  assert_int_equal(m.nparams, 1);
  assert_string_equal(m.params[0], "42");
  assert_int_equal(http_route_match(routes, N, "GET", "/api/handles/88.118.1/lot%2F7", &m), HTTP_ROUTE_FOUND);
  assert_string_equal(m.params[0], "88.118.1");
  assert_string_equal(m.params[1], "lot/7");
}

static void test_methods(void **state) {
  (void)state;
  http_match m;
  assert_int_equal(http_route_match(routes, N, "PUT", "/api/v1/devices/7", &m), HTTP_ROUTE_METHOD);
  assert_string_equal(m.allow, "GET, DELETE");
  assert_int_equal(http_route_match(routes, N, "HEAD", "/healthz", &m), HTTP_ROUTE_FOUND);
  assert_int_equal(http_route_match(routes, N, "GET", "/api/v1/devices/7/token", &m), HTTP_ROUTE_METHOD);
  assert_string_equal(m.allow, "POST");
}

static void test_no_match(void **state) {
  (void)state;
  http_match m;
  const char *paths[] = {"/", "", "/healthz/", "/api/v1/devices/", "/api/v1/devices//token", "/api/v1/devicesX",
                         "/api/v1/devices/7/token/more", "/api/v1/devices/%zz", "/api/v1/devices/%00",
                         "/api/v1/devices/%4"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    assert_int_equal(http_route_match(routes, N, "GET", paths[i], &m), HTTP_ROUTE_NONE);
  char longseg[HTTP_PARAM_BYTES_MAX + 20] = "/api/v1/devices/";
  memset(longseg + 16, 'a', HTTP_PARAM_BYTES_MAX + 2);
  longseg[16 + HTTP_PARAM_BYTES_MAX + 2] = 0;
  assert_int_equal(http_route_match(routes, N, "GET", longseg, &m), HTTP_ROUTE_NONE);
}

static void test_percent_decode(void **state) {
  (void)state;
  char out[16];
  assert_int_equal(http_percent_decode("a%20b", 5, out, sizeof out), 3);
  assert_string_equal(out, "a b");
  assert_int_equal(http_percent_decode("%E6%B0%B4", 9, out, sizeof out), 3);
  assert_int_equal(http_percent_decode("%", 1, out, sizeof out), -1);
  assert_int_equal(http_percent_decode("%g0", 3, out, sizeof out), -1);
  assert_int_equal(http_percent_decode("0123456789abcdef", 16, out, sizeof out), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_literal_and_capture),
      cmocka_unit_test(test_methods),
      cmocka_unit_test(test_no_match),
      cmocka_unit_test(test_percent_decode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
