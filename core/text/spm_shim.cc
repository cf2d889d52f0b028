// spm_shim.cc - extern "C" wrapper over sentencepiece::SentencePieceProcessor (see spm.h).
// Kept to plain forwarding: all tokenizer policy lives in tokenizer.c.
#include "core/text/spm.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <sentencepiece_processor.h>

extern "C" int ivl_errorf(const char *fmt, ...);

struct ivl_spm {
    sentencepiece::SentencePieceProcessor proc;
};

extern "C" int ivl_spm_load(const void *data, size_t size, const char *what, ivl_spm **out) {
    *out = nullptr;
    try {
        ivl_spm *sp = new ivl_spm;
        auto st = sp->proc.LoadFromSerializedProto(
            absl::string_view(static_cast<const char *>(data), size));
        if (!st.ok()) {
            delete sp;
            return ivl_errorf("%s: not a SentencePiece model (%s); expected the tokenizer.model "
                              "of the Hugging Face checkpoint", what, st.ToString().c_str());
        }
        *out = sp;
        return 0;
    } catch (const std::exception &e) {
        return ivl_errorf("%s: SentencePiece load failed: %s", what, e.what());
    }
}

extern "C" void ivl_spm_free(ivl_spm *sp) { delete sp; }

extern "C" int ivl_spm_encode(const ivl_spm *sp, const char *text, size_t len, int32_t **ids,
                              int *n) {
    *ids = nullptr;
    *n = 0;
    try {
        std::vector<int> v;
        auto st = sp->proc.Encode(absl::string_view(text, len), &v);
        if (!st.ok()) return ivl_errorf("SentencePiece encode failed: %s", st.ToString().c_str());
        int32_t *out = static_cast<int32_t *>(std::malloc(sizeof(int32_t) * (v.size() + 1)));
        if (!out) return ivl_errorf("out of memory encoding %zu bytes", len);
        for (size_t i = 0; i < v.size(); i++) out[i] = v[i];
        *ids = out;
        *n = (int)v.size();
        return 0;
    } catch (const std::exception &e) {
        return ivl_errorf("SentencePiece encode failed: %s", e.what());
    }
}

extern "C" int ivl_spm_decode(const ivl_spm *sp, const int32_t *ids, int n, char **text,
                              size_t *len) {
    *text = nullptr;
    *len = 0;
    try {
        std::vector<int> v(ids, ids + n);
        std::string s;
        auto st = sp->proc.Decode(v, &s);
        if (!st.ok()) return ivl_errorf("SentencePiece decode failed: %s", st.ToString().c_str());
        char *out = static_cast<char *>(std::malloc(s.size() + 1));
        if (!out) return ivl_errorf("out of memory decoding %d ids", n);
        std::memcpy(out, s.data(), s.size());
        out[s.size()] = 0;
        *text = out;
        *len = s.size();
        return 0;
    } catch (const std::exception &e) {
        return ivl_errorf("SentencePiece decode failed: %s", e.what());
    }
}

extern "C" int ivl_spm_size(const ivl_spm *sp) { return sp->proc.GetPieceSize(); }

extern "C" const char *ivl_spm_id_to_piece(const ivl_spm *sp, int id) {
    if (id < 0 || id >= sp->proc.GetPieceSize()) return "";
    return sp->proc.IdToPiece(id).c_str();   // reference into the model: stable while loaded
}

extern "C" int ivl_spm_piece_to_id(const ivl_spm *sp, const char *piece, size_t len) {
    absl::string_view p(piece, len);
    int id = sp->proc.PieceToId(p);
    // PieceToId answers unk_id for unknown pieces; tell that apart from the unk piece itself.
    if (id == sp->proc.unk_id() && sp->proc.IdToPiece(id) != std::string(piece, len)) return -1;
    return id;
}

extern "C" int ivl_spm_is_byte(const ivl_spm *sp, int id) { return sp->proc.IsByte(id); }
extern "C" int ivl_spm_is_control(const ivl_spm *sp, int id) { return sp->proc.IsControl(id); }
extern "C" int ivl_spm_is_unknown(const ivl_spm *sp, int id) { return sp->proc.IsUnknown(id); }
extern "C" int ivl_spm_unk_id(const ivl_spm *sp) { return sp->proc.unk_id(); }
extern "C" int ivl_spm_bos_id(const ivl_spm *sp) { return sp->proc.bos_id(); }
extern "C" int ivl_spm_eos_id(const ivl_spm *sp) { return sp->proc.eos_id(); }
extern "C" int ivl_spm_pad_id(const ivl_spm *sp) { return sp->proc.pad_id(); }
