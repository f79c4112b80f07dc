#ifndef GATEWAY_CARES_SHIM_H
#define GATEWAY_CARES_SHIM_H
// c-ares: the DNS resolver that re-resolves upstream host names. It takes the servers to ask
// (not only /etc/resolv.conf) and reports each record's TTL, which getaddrinfo does not.
#include <ares.h>
#endif
