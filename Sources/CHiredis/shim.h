#ifndef GATEWAY_CHIREDIS_SHIM_H
#define GATEWAY_CHIREDIS_SHIM_H
// hiredis's RESP reader and command formatter; the Cache module does its own I/O on SwiftNIO.
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#endif
