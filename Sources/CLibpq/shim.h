#ifndef GATEWAY_CLIBPQ_SHIM_H
#define GATEWAY_CLIBPQ_SHIM_H
// libpq for the database probes (role, WAL positions, lag); used through its non-blocking API.
#include <libpq-fe.h>
#endif
