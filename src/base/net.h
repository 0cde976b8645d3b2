/* Listener addresses: "HOST:PORT", "[IPV6]:PORT" or ":PORT". "[::]" binds dual-stack (IPv6
 * and IPv4-mapped), as every Plateau listener does in production. */
#ifndef PLATEAU_BASE_NET_H
#define PLATEAU_BASE_NET_H

#include "base/err.h"

#include <stddef.h>
#include <sys/socket.h>

/* Splits hostport into host (without brackets; "" for any) and port. PL_EINVAL when malformed. */
int pl_net_split(const char *hostport, char *host, size_t hostsz, int *port);
/* Creates a bound socket of type SOCK_STREAM (listening, backlog) or SOCK_DGRAM, non-blocking,
 * close-on-exec, SO_REUSEADDR; IPV6_V6ONLY off for the "::" wildcard. Returns the fd or a
 * negative code with a message. */
int pl_net_listen(const char *hostport, int socktype, int backlog, pl_err *err);
/* The local port a socket is bound to, or -1. */
int pl_net_local_port(int fd);
/* Formats a peer address as text ("192.0.2.1", "2001:db8::1"), IPv4-mapped IPv6 shown as IPv4. */
void pl_net_addr_str(const struct sockaddr *sa, char *out, size_t outsz);

#endif
