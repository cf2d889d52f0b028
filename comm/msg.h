// msg.h - sending protobuf-c messages (comm/proto/ivl.proto) over a group's MPI communicator.
//
// Wire format: one MPI message with the packed size (uint64), then one with the packed bytes,
// on tags of their own (never confused with tensor traffic). Receivers check that the size
// prefix matches the bytes that arrived and that protobuf-c can unpack them; both failures
// are status errors (NULL + ivl_last_error()), not crashes, so a caller can report which rank
// sent garbage. Messages returned by recv/bcast/unpack are freed with ivl_msg_free().
//
//     Ivl__Control c = IVL__CONTROL__INIT;
//     c.kind = IVL__CONTROL__KIND__STOP;
//     ivl_msg_send(&topo->world, &c.base, 0);
//     ...
//     Ivl__Control *got = (Ivl__Control *)ivl_msg_recv(&topo->world, &ivl__control__descriptor,
//                                                      IVL_MSG_ANY_SOURCE, &from);
#ifndef IVL_COMM_MSG_H
#define IVL_COMM_MSG_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "ivl.pb-c.h"

#define IVL_MSG_ANY_SOURCE (-1)
// Larger messages are refused: a plan or a batch of results is kilobytes; a huge size prefix
// means corrupt input, and allocating it would fail anyway.
#define IVL_MSG_MAX_BYTES ((size_t)256 << 20)

// Packs m and sends it to group rank dst. Blocking (returns when the bytes are on their way).
void ivl_msg_send(const ivl_comm_group *g, const ProtobufCMessage *m, int dst);
// Sends bytes that are already packed (forwarding, tests of corrupt input).
void ivl_msg_send_bytes(const ivl_comm_group *g, const void *bytes, size_t len, int dst);
// Receives one message of type d from group rank src (or IVL_MSG_ANY_SOURCE); *from (may be
// NULL) gets the sender. NULL + ivl_last_error() for bytes that do not unpack.
ProtobufCMessage *ivl_msg_recv(const ivl_comm_group *g, const ProtobufCMessageDescriptor *d,
                               int src, int *from);
// Collective: root packs m (ignored elsewhere); every rank, root included, gets its own
// unpacked copy. NULL + ivl_last_error() on every rank when the bytes do not unpack.
ProtobufCMessage *ivl_msg_bcast(const ivl_comm_group *g, const ProtobufCMessageDescriptor *d,
                                const ProtobufCMessage *m, int root);
// Checked unpack: NULL + ivl_last_error() naming the type, `what` (sender) and the size.
ProtobufCMessage *ivl_msg_unpack(const ProtobufCMessageDescriptor *d, const void *data,
                                 size_t len, const char *what);
// Packs into a new buffer (free()); *len gets the size.
uint8_t *ivl_msg_pack(const ProtobufCMessage *m, size_t *len);
void ivl_msg_free(ProtobufCMessage *m);

#endif
