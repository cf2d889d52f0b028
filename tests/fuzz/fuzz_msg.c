// fuzz_msg.c - bytes from another rank -> ivl_msg_unpack of each message type. An accepted
// message is packed again and must unpack to the same bytes (protobuf-c round trip).
#include <stdlib.h>
#include <string.h>

#include "comm/msg.h"
#include "core/check.h"
#include "fuzz_util.h"

static const ProtobufCMessageDescriptor *const k_types[] = {
    &ivl__batch_plan__descriptor, &ivl__results__descriptor, &ivl__control__descriptor,
    &ivl__result__descriptor,     &ivl__sequence__descriptor, &ivl__image_ref__descriptor,
    &ivl__envelope__descriptor,
};
#define NTYPES (sizeof k_types / sizeof k_types[0])

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_common();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const ProtobufCMessageDescriptor *d = k_types[data[0] % NTYPES];
    ProtobufCMessage *m = ivl_msg_unpack(d, data + 1, size - 1, "fuzz");
    if (!m) {
        if (!ivl_last_error()[0]) __builtin_trap();
        return 0;
    }
    size_t n1 = 0, n2 = 0;
    uint8_t *b1 = ivl_msg_pack(m, &n1);
    // protobuf-c keeps unknown fields, even with the invalid field number 0, and packs them
    // again; its own unpack then refuses them. So only a repack that unpacks is compared.
    ProtobufCMessage *m2 = ivl_msg_unpack(d, b1, n1, "fuzz repack");
    if (m2) {
        uint8_t *b2 = ivl_msg_pack(m2, &n2);
        if (n1 != n2 || memcmp(b1, b2, n1)) __builtin_trap();
        free(b2);
        ivl_msg_free(m2);
    }
    free(b1);
    ivl_msg_free(m);
    return 0;
}
