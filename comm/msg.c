// msg.c - see msg.h.
#include "comm/msg.h"
#include "comm/mpi_check.h"
#include "core/check.h"

#include <stdio.h>
#include <stdlib.h>

#define IVL_TAG_MSG_SIZE 200
#define IVL_TAG_MSG_BODY 201

uint8_t *ivl_msg_pack(const ProtobufCMessage *m, size_t *len) {
    size_t n = protobuf_c_message_get_packed_size(m);
    IVL_CHECK(n <= IVL_MSG_MAX_BYTES, "%s message of %zu bytes is over the %zu-byte limit",
              m->descriptor->name, n, IVL_MSG_MAX_BYTES);
    uint8_t *buf = ivl_malloc(n);
    size_t packed = protobuf_c_message_pack(m, buf);
    IVL_ASSERT(packed == n);
    *len = n;
    return buf;
}

ProtobufCMessage *ivl_msg_unpack(const ProtobufCMessageDescriptor *d, const void *data,
                                 size_t len, const char *what) {
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, data);
    if (!m)
        ivl_errorf("%s: %zu bytes are not a valid %s message (corrupt or mismatched sender)",
                   what, len, d->name);
    return m;
}

void ivl_msg_free(ProtobufCMessage *m) {
    if (m) protobuf_c_message_free_unpacked(m, NULL);
}

void ivl_msg_send_bytes(const ivl_comm_group *g, const void *bytes, size_t len, int dst) {
    IVL_CHECK(dst >= 0 && dst < g->size, "message send on group '%s': rank %d is not in the "
              "group (size %d)", g->name, dst, g->size);
    IVL_CHECK(len <= IVL_MSG_MAX_BYTES, "message of %zu bytes is over the limit", len);
    uint64_t n = len;
    MPI_CHECK(MPI_Send(&n, 1, MPI_UINT64_T, dst, IVL_TAG_MSG_SIZE, g->comm));
    MPI_CHECK(MPI_Send(bytes, (int)len, MPI_UINT8_T, dst, IVL_TAG_MSG_BODY, g->comm));
}

void ivl_msg_send(const ivl_comm_group *g, const ProtobufCMessage *m, int dst) {
    size_t len = 0;
    uint8_t *buf = ivl_msg_pack(m, &len);
    ivl_msg_send_bytes(g, buf, len, dst);
    free(buf);
}

ProtobufCMessage *ivl_msg_recv(const ivl_comm_group *g, const ProtobufCMessageDescriptor *d,
                               int src, int *from) {
    IVL_CHECK(src == IVL_MSG_ANY_SOURCE || (src >= 0 && src < g->size), "message recv on "
              "group '%s': rank %d is not in the group (size %d)", g->name, src, g->size);
    uint64_t n = 0;
    MPI_Status st;
    MPI_CHECK(MPI_Recv(&n, 1, MPI_UINT64_T, src == IVL_MSG_ANY_SOURCE ? MPI_ANY_SOURCE : src,
                       IVL_TAG_MSG_SIZE, g->comm, &st));
    int sender = st.MPI_SOURCE;
    if (from) *from = sender;
    // The body is always taken off the wire, even when it will be refused, so the next
    // message from this sender starts clean.
    int got = 0;
    MPI_CHECK(MPI_Probe(sender, IVL_TAG_MSG_BODY, g->comm, &st));
    MPI_CHECK(MPI_Get_count(&st, MPI_UINT8_T, &got));
    uint8_t *buf = ivl_malloc((size_t)got);
    MPI_CHECK(MPI_Recv(buf, got, MPI_UINT8_T, sender, IVL_TAG_MSG_BODY, g->comm, &st));
    char what[96];
    snprintf(what, sizeof what, "message from rank %d of group '%s'", sender, g->name);
    ProtobufCMessage *m = NULL;
    if (n != (uint64_t)got)
        ivl_errorf("%s: size prefix says %llu bytes but %d arrived", what,
                   (unsigned long long)n, got);
    else
        m = ivl_msg_unpack(d, buf, (size_t)got, what);
    free(buf);
    return m;
}

ProtobufCMessage *ivl_msg_bcast(const ivl_comm_group *g, const ProtobufCMessageDescriptor *d,
                                const ProtobufCMessage *m, int root) {
    IVL_CHECK(root >= 0 && root < g->size, "message bcast on group '%s': root %d is not in "
              "the group (size %d)", g->name, root, g->size);
    size_t len = 0;
    uint8_t *buf = NULL;
    if (g->rank == root) {
        IVL_CHECK(m && m->descriptor == d, "message bcast on group '%s': root passed %s, "
                  "expected %s", g->name, m ? m->descriptor->name : "NULL", d->name);
        buf = ivl_msg_pack(m, &len);
    }
    uint64_t n = len;
    MPI_CHECK(MPI_Bcast(&n, 1, MPI_UINT64_T, root, g->comm));
    // Every rank sees the same n, so every rank takes the same branch.
    IVL_CHECK(n <= IVL_MSG_MAX_BYTES, "message bcast on group '%s': size %llu over the limit",
              g->name, (unsigned long long)n);
    if (g->rank != root) buf = ivl_malloc((size_t)n);
    MPI_CHECK(MPI_Bcast(buf, (int)n, MPI_UINT8_T, root, g->comm));
    char what[96];
    snprintf(what, sizeof what, "message from rank %d of group '%s'", root, g->name);
    ProtobufCMessage *out = ivl_msg_unpack(d, buf, (size_t)n, what);
    free(buf);
    return out;
}
