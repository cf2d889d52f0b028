// flash_mma.cu - prefill / ViT attention on sm_80+ with mma.sync (FlashAttention-2 layout).
//
// One block = BR query rows of one head (BR/16 warps, 16 rows per warp). Per key tile of 64:
//   S = Q K^T       mma.m16n8k16, Q fragments held in registers for the whole key loop,
//                   K fragments read from shared memory (32-bit loads, conflict-free rows);
//   online softmax  on the S accumulators in registers (f32, log2 domain); each row lives in
//                   the 4 lanes of a quad, so row max/sum need two shuffles;
//   O += P V        P re-packed from the S accumulators straight into A fragments (the C
//                   layout of two m16n8 tiles is the A layout of one m16n8k16), V fragments
//                   by ldmatrix.trans; O accumulators stay in registers.
// K/V tiles are double-buffered with cp.async so the next tile loads during this one's math.
// Unlike the WMMA kernel in attention.cu nothing round-trips through shared memory except K
// and V, which is what held that kernel at ~55 TFLOP/s on an H100.
//
// Numerics as the reference (spec 4.3): f32 scores and softmax, P rounded to T before P.V,
// f32 accumulation, one rounding of O / l to T. Fragment layouts: PTX ISA, "Matrix fragments
// for mma.m16n8k16" and "ldmatrix".
#include "core/cuda/cuda_common.cuh"

#include <math.h>
#include <type_traits>

namespace {

constexpr int BC = 64;   // keys per tile

template <int HD, int BR, typename T>
struct mma_layout {
    static constexpr int LDT = HD + 8;   // row stride (elements): 16-byte rows, skewed banks
    static constexpr int NW = BR / 16;   // warps
    static constexpr size_t bytes = ((size_t)BR * LDT + 4 * (size_t)BC * LDT) * sizeof(T);
};

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 16-byte global -> shared copy; src_bytes 0 fills zeros without reading.
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)),
                 "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2,
                                            uint32_t &r3, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t &r0, uint32_t &r1, uint32_t &r2,
                                                  uint32_t &r3, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(smem_addr(p)));
}

// d += a b (16x8x16, f32 accumulate).
template <typename T>
__device__ __forceinline__ void mma16816(float *d, const uint32_t *a, uint32_t b0, uint32_t b1) {
    if constexpr (std::is_same<T, bf16>::value)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats -> one register of two T (lo in the low half = the lower column).
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    if constexpr (std::is_same<T, bf16>::value) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *(uint32_t *)&v;
    } else {
        __half2 v = __floats2half2_rn(lo, hi);
        return *(uint32_t *)&v;
    }
}

template <typename T, int HD, int BR>
__device__ __forceinline__ void mma_body(T *__restrict__ out, const T *__restrict__ q,
                                         const T *__restrict__ k, const T *__restrict__ v, int H,
                                         int KH, int causal, const cuda_flash_seqs &sq,
                                         float sl2) {
    typedef mma_layout<HD, BR, T> LY;
    constexpr int LDT = LY::LDT, NT = LY::NW * 32, CH = HD / 8;   // 16-byte chunks per row
    constexpr int KS = HD / 16;                                    // k-steps of S = Q K^T
    constexpr int NS = BC / 8;                                     // n-tiles of S
    constexpr int ND = HD / 8;                                     // n-tiles of O
    extern __shared__ __align__(128) unsigned char smem[];
    T *sQ = (T *)smem;
    T *sK0 = sQ + BR * LDT;   // K buffers 0,1 then V buffers 0,1
    T *sV0 = sK0 + 2 * BC * LDT;

    // This block's sequence (blockIdx.z) and query block; blocks past the sequence's rows
    // leave at once (grid.x covers the longest sequence of the launch).
    const int seq = blockIdx.z;
    const int Tq = sq.n[seq], L = sq.len[seq];
    const long long q_pos0 = sq.pos0[seq];
    const int nqb = (Tq + BR - 1) / BR;
    if ((int)blockIdx.x >= nqb) return;
    const long long qld = (long long)H * HD, kvld = (long long)KH * HD;
    q += (long long)sq.q_row0[seq] * qld;
    out += (long long)sq.q_row0[seq] * qld;
    k += (long long)sq.kv_row0[seq] * kvld;
    v += (long long)sq.kv_row0[seq] * kvld;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int quad = lane >> 2, qi = lane & 3;
    const int h = blockIdx.y, kvh = h / (H / KH);
    const int qb = causal ? nqb - 1 - (int)blockIdx.x : (int)blockIdx.x;   // heaviest first
    const int q0 = qb * BR;
    const int last_q = min(Tq, q0 + BR) - 1;
    const long long nk = causal ? min((long long)L, q_pos0 + last_q + 1) : (long long)L;
    const int ntiles = (int)((nk + BC - 1) / BC);

    auto load_kv = [&](int tile, int buf) {
        const long long kb = (long long)tile * BC;
        T *dk = sK0 + buf * BC * LDT, *dv = sV0 + buf * BC * LDT;
        for (int i = threadIdx.x; i < BC * CH; i += NT) {
            const int r = i / CH, c = (i % CH) * 8;
            const bool in = kb + r < nk;
            const long long off = in ? (kb + r) * kvld + (long long)kvh * HD + c : 0;
            cp_async16(dk + r * LDT + c, k + off, in ? 16 : 0);
            cp_async16(dv + r * LDT + c, v + off, in ? 16 : 0);
        }
    };

    // Q tile (zero rows past Tq) and the first K/V tile, one group each.
    for (int i = threadIdx.x; i < BR * CH; i += NT) {
        const int r = i / CH, c = (i % CH) * 8;
        const bool in = q0 + r < Tq;
        const long long off = in ? (long long)(q0 + r) * qld + (long long)h * HD + c : 0;
        cp_async16(sQ + r * LDT + c, q + off, in ? 16 : 0);
    }
    cp_async_commit();
    load_kv(0, 0);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    // Q fragments of this warp's 16 rows: rows quad and quad + 8, columns 2*qi (+1) (+8).
    uint32_t qf[KS][4];
    {
        const T *r0 = sQ + (warp * 16 + quad) * LDT + 2 * qi, *r1 = r0 + 8 * LDT;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
            qf[kk][0] = *(const uint32_t *)(r0 + kk * 16);
            qf[kk][1] = *(const uint32_t *)(r1 + kk * 16);
            qf[kk][2] = *(const uint32_t *)(r0 + kk * 16 + 8);
            qf[kk][3] = *(const uint32_t *)(r1 + kk * 16 + 8);
        }
    }

    float o[ND][4];
#pragma unroll
    for (int d = 0; d < ND; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;   // rows quad, quad + 8
    const long long qpos0 = q_pos0 + q0 + warp * 16 + quad, qpos1 = qpos0 + 8;

    for (int t = 0; t < ntiles; t++) {
        const int buf = t & 1;
        if (t + 1 < ntiles) {   // prefetch the next tile into the other buffer
            load_kv(t + 1, buf ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const T *sK = sK0 + buf * BC * LDT, *sV = sV0 + buf * BC * LDT;
        const long long kb = (long long)t * BC;

        // S = Q K^T for 16 rows x 64 keys: B[k = d][n = key] = sK[key][d], pairs along d.
        // One ldmatrix.x4 gives the fragments of two k-steps: lane group g of 8 addresses
        // rows key j*8 + (lane & 7), columns 8g of the 32 d's of k-steps kk, kk + 1.
        float s[NS][4];
        const int mi = lane >> 3, mr = lane & 7;
#pragma unroll
        for (int j = 0; j < NS; j++) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
            const T *kr = sK + (j * 8 + mr) * LDT + 8 * mi;
#pragma unroll
            for (int kk = 0; kk < KS; kk += 2) {
                uint32_t b0, b1, b2, b3;
                ldmatrix_x4(b0, b1, b2, b3, kr + kk * 16);
                mma16816<T>(s[j], qf[kk], b0, b1);
                mma16816<T>(s[j], qf[kk + 1], b2, b3);
            }
        }

        // Scale to the log2 domain; mask keys past nk and (causal) past the row's position.
        // Only tiles that reach past nk or past the block's first query position need it.
        const bool need_mask =
            kb + BC > nk || (causal && kb + BC - 1 > q_pos0 + q0);
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int j = 0; j < NS; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = s[j][e] * sl2;
                if (need_mask) {
                    const long long key = kb + j * 8 + 2 * qi + (e & 1);
                    const long long qp = e < 2 ? qpos0 : qpos1;
                    if (key >= nk || (causal && key > qp)) x = -INFINITY;
                }
                s[j][e] = x;
                if (e < 2) mx0 = fmaxf(mx0, x);
                else mx1 = fmaxf(mx1, x);
            }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        // A row with no visible key so far keeps exp2(-inf - 0) = 0 everywhere (no NaN).
        const float mu0 = mn0 == -INFINITY ? 0.0f : mn0, mu1 = mn1 == -INFINITY ? 0.0f : mn1;
        const float a0 = exp2f(m0 - mu0), a1 = exp2f(m1 - mu1);
        m0 = mn0, m1 = mn1;

        // P = exp2(S - m), row sums in f32, P packed to T as the A operand of P V.
        uint32_t pf[BC / 16][4];
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int j = 0; j < NS; j++) {
            const float p0 = exp2f(s[j][0] - mu0), p1 = exp2f(s[j][1] - mu0);
            const float p2 = exp2f(s[j][2] - mu1), p3 = exp2f(s[j][3] - mu1);
            sum0 += p0 + p1;
            sum1 += p2 + p3;
            // n-tile j covers keys 8j..8j+7 = columns 0-7 (j even) or 8-15 (j odd) of k-step j/2
            pf[j / 2][(j & 1) * 2 + 0] = pack2<T>(p0, p1);   // row quad
            pf[j / 2][(j & 1) * 2 + 1] = pack2<T>(p2, p3);   // row quad + 8
        }
        sum0 += __shfl_xor_sync(0xffffffffu, sum0, 1);
        sum0 += __shfl_xor_sync(0xffffffffu, sum0, 2);
        sum1 += __shfl_xor_sync(0xffffffffu, sum1, 1);
        sum1 += __shfl_xor_sync(0xffffffffu, sum1, 2);
        l0 = l0 * a0 + sum0;
        l1 = l1 * a1 + sum1;
#pragma unroll
        for (int d = 0; d < ND; d++) {
            o[d][0] *= a0, o[d][1] *= a0;
            o[d][2] *= a1, o[d][3] *= a1;
        }

        // O += P V: V fragments by ldmatrix.trans, two n-tiles (16 columns of d) per load.
        // Lane groups of 8 address the four 8x8 matrices (keys +0/+8) x (d +0/+8).
#pragma unroll
        for (int kk = 0; kk < BC / 16; kk++) {
            const T *vr = sV + (kk * 16 + mr + 8 * (mi & 1)) * LDT + 8 * (mi >> 1);
#pragma unroll
            for (int d = 0; d < ND; d += 2) {
                uint32_t b0, b1, b2, b3;
                ldmatrix_x4_trans(b0, b1, b2, b3, vr + d * 8);
                mma16816<T>(o[d], pf[kk], b0, b1);
                mma16816<T>(o[d + 1], pf[kk], b2, b3);
            }
        }
        __syncthreads();   // every warp is done with this buffer before it is refilled
    }

    // O / l, rounded once to T; rows past Tq are not written.
    const float il0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, il1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    const int row0 = q0 + warp * 16 + quad, row1 = row0 + 8;
#pragma unroll
    for (int d = 0; d < ND; d++) {
        const int col = h * HD + d * 8 + 2 * qi;
        if (row0 < Tq)
            *(uint32_t *)(out + (long long)row0 * qld + col) = pack2<T>(o[d][0] * il0, o[d][1] * il0);
        if (row1 < Tq)
            *(uint32_t *)(out + (long long)row1 * qld + col) = pack2<T>(o[d][2] * il1, o[d][3] * il1);
    }
}
#endif

// The sequences travel as a kernel parameter (no upload, nothing to synchronise).
template <typename T, int HD, int BR>
__global__ void __launch_bounds__(BR / 16 * 32)
    flash_mma_kernel(T *out, const T *q, const T *k, const T *v, int H, int KH, int causal,
                     const cuda_flash_seqs sq, float sl2) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap();   // the host launches this only on sm_80+
#else
    mma_body<T, HD, BR>(out, q, k, v, H, KH, causal, sq, sl2);
#endif
}

template <typename T, int HD, int BR>
int launch(cuda_ctx *c, T *out, const T *q, const T *k, const T *v, int H, int KH, int causal,
           const cuda_flash_seqs *sq, float sl2) {
    const size_t sm = mma_layout<HD, BR, T>::bytes;
    if (sm > c->smem_optin) return 0;
    auto kern = flash_mma_kernel<T, HD, BR>;
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
    int maxn = 1;
    for (int i = 0; i < sq->nseq; i++) maxn = sq->n[i] > maxn ? sq->n[i] : maxn;
    dim3 grid((unsigned)((maxn + BR - 1) / BR), (unsigned)H, (unsigned)sq->nseq);
    kern<<<grid, mma_layout<HD, BR, T>::NW * 32, sm, c->stream>>>(out, q, k, v, H, KH, causal,
                                                                   *sq, sl2);
    CUDA_LAUNCHED(c, "flash_mma_kernel");
    return 1;
}

template <typename T, int HD>
int launch_hd(cuda_ctx *c, int br, T *out, const T *q, const T *k, const T *v, int H, int KH,
              int causal, const cuda_flash_seqs *sq, float sl2) {
    if (br == 128 && launch<T, HD, 128>(c, out, q, k, v, H, KH, causal, sq, sl2)) return 1;
    return launch<T, HD, 64>(c, out, q, k, v, H, KH, causal, sq, sl2);
}

}   // namespace

// See cuda_common.cuh. Pointers must be 16-byte aligned (checked by the caller).
int cuda_flash_mma(cuda_ctx *c, ivl_dtype dt, int br, void *out, const void *q, const void *k,
                   const void *v, int H, int KH, int hd, int causal, const cuda_flash_seqs *sq,
                   float sl2) {
    if (c->cc < 80 || (dt != IVL_BF16 && dt != IVL_F16)) return 0;
    if (sq->nseq < 1 || sq->nseq > IVL_FLASH_MAXSEQ) return 0;
#define IVL_MMA_HD(T)                                                                        \
    do {                                                                                     \
        T *o = (T *)out;                                                                     \
        const T *qq = (const T *)q, *kk = (const T *)k, *vv = (const T *)v;                  \
        if (hd == 64) return launch_hd<T, 64>(c, br, o, qq, kk, vv, H, KH, causal, sq, sl2);   \
        if (hd == 96) return launch_hd<T, 96>(c, br, o, qq, kk, vv, H, KH, causal, sq, sl2);   \
        if (hd == 128) return launch_hd<T, 128>(c, br, o, qq, kk, vv, H, KH, causal, sq, sl2); \
        return 0;                                                                            \
    } while (0)
    if (dt == IVL_BF16) IVL_MMA_HD(bf16);
    IVL_MMA_HD(f16);
#undef IVL_MMA_HD
}
