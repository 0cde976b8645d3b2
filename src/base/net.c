/* Listener sockets from "HOST:PORT" strings (see net.h). */
#include "base/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int pl_net_split(const char *hostport, char *host, size_t hostsz, int *port) {
  const char *colon;
  size_t hlen;
  const char *h = hostport;
  if (*hostport == '[') {
    const char *close = strchr(hostport, ']');
    if (!close || close[1] != ':') return PL_EINVAL;
    h = hostport + 1;
    hlen = (size_t)(close - h);
    colon = close + 1;
  } else {
    colon = strrchr(hostport, ':');
    if (!colon) return PL_EINVAL;
    hlen = (size_t)(colon - hostport);
    if (memchr(hostport, ':', hlen)) return PL_EINVAL; /* bare IPv6 needs brackets */
  }
  if (hlen >= hostsz) return PL_EINVAL;
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || p < 0 || p > 65535) return PL_EINVAL;
  memcpy(host, h, hlen);
  host[hlen] = 0;
  *port = (int)p;
  return 0;
}

int pl_net_listen(const char *hostport, int socktype, int backlog, pl_err *err) {
  char host[256], portstr[16];
  int port;
  if (pl_net_split(hostport, host, sizeof host, &port) < 0)
    return pl_err_set(err, PL_EINVAL, "\"%s\" is not HOST:PORT (use [addr]:port for IPv6)", hostport);
  snprintf(portstr, sizeof portstr, "%d", port);
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int wildcard6 = strcmp(host, "::") == 0;
  int gai = getaddrinfo(*host ? host : NULL, portstr, &hints, &res);
  if (gai != 0) return pl_err_set(err, PL_EINVAL, "cannot resolve %s: %s", hostport, gai_strerror(gai));
  int fd = -1, last_errno = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_errno = errno;
      continue;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ai->ai_family == AF_INET6)
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, wildcard6 ? &zero : &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && (socktype != SOCK_STREAM || listen(fd, backlog) == 0))
      break;
    last_errno = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) return pl_err_set(err, PL_EIO, "cannot listen on %s: %s", hostport, strerror(last_errno));
  return fd;
}

int pl_net_local_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return -1;
}

void pl_net_addr_str(const struct sockaddr *sa, char *out, size_t outsz) {
  if (!sa) {
    snprintf(out, outsz, "-");
    return;
  }
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)outsz);
  } else if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a)) inet_ntop(AF_INET, &a->s6_addr[12], out, (socklen_t)outsz);
    else inet_ntop(AF_INET6, a, out, (socklen_t)outsz);
  } else {
    snprintf(out, outsz, "-");
  }
}
