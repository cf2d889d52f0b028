// attention.cu - softmax(q k^T * scale) v for one sequence (see backend.h). On sm_80+ the
// prefill/ViT case (T > 16) goes to the mma.sync kernel of flash_mma.cu; here are the WMMA
// kernel for sm_70/75 (and the IVL_CUDA_FLASH variants) and the decode kernel:
//
// flash_attn_kernel (prefill, ViT; T > 16, sm_70+, head_dim 64/96/128): one block = BR query
// rows of one head, 16 rows per warp. Key/value tiles of BC rows go through shared memory;
// S = Q K^T and O += P V run on tensor cores (WMMA 16x16x16, bf16 on sm_80+, fp16 on sm_70/75)
// with f32 accumulation; the online softmax (running max and sum per row, in f32, log2
// domain) rescales the f32 output tile kept in shared memory. Q fragments stay in registers
// for the whole key loop. Causal blocks stop at their last visible key and the heaviest
// blocks are scheduled first.
//
// decode_attn_kernel (T <= 16, or any case the flash kernel does not take): one block =
// (kv head, group of <= 8 query heads sharing it, key split, query t). One warp per key: each
// lane holds head_dim/32 contiguous elements, so K and V rows are read once per kv group
// (GQA) and coalesced. Long contexts are split over L so that the grid fills the GPU;
// decode_combine_kernel merges the splits' (max, sum, output) triples.
#include "core/cuda/cuda_common.cuh"

#include <math.h>
#include <string.h>
#include <type_traits>
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 700
#include <mma.h>
#endif

#define LOG2E 1.4426950408889634f

// ================================================================ flash (tensor cores)

template <int HD, int BR, int BC, typename T, bool REGS>
struct flash_layout {
    static constexpr int LDT = HD + 8;   // Q/K/V rows (T); +8 keeps 16-byte rows, skews banks
    static constexpr int LDS = BC + 4;   // scores (f32)
    static constexpr int LDP = BC + 8;   // probabilities (T)
    static constexpr int LDO = HD + 4;   // output accumulator (f32), only when !REGS
    static constexpr size_t bytes = (size_t)BR * LDT * sizeof(T) + 2 * (size_t)BC * LDT * sizeof(T) +
                                    (size_t)BR * LDS * 4 + (size_t)BR * LDP * sizeof(T) +
                                    (REGS ? 0 : (size_t)BR * LDO * 4) + 3 * (size_t)BR * 4;
};

// Row and column of element i of a 16x16 f32 WMMA accumulator fragment held by `lane`, as
// laid out on sm_80+ (two m16n8 mma tiles). WMMA does not document this, so the backend
// verifies it on the device at start (cuda_flash_selftest) and uses the register-resident
// output path (REGS) only when it holds.
__device__ __forceinline__ int acc_row(int lane, int i) { return (lane >> 2) + 8 * ((i >> 1) & 1); }
__device__ __forceinline__ int acc_col(int lane, int i) { return 2 * (lane & 3) + (i & 1) + 8 * (i >> 2); }

__global__ void flash_layout_probe_kernel(int *ok) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 700
    __shared__ float m[256];
    for (int i = threadIdx.x; i < 256; i += 32) m[i] = (float)i;
    __syncwarp();
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> f;
    nvcuda::wmma::load_matrix_sync(f, m, 16, nvcuda::wmma::mem_row_major);
    int good = f.num_elements == 8;
    if (good)
        for (int i = 0; i < 8; i++)
            if (f.x[i] != (float)(acc_row(threadIdx.x, i) * 16 + acc_col(threadIdx.x, i))) good = 0;
    good = __all_sync(0xffffffffu, good);
    if (threadIdx.x == 0) *ok = good;
#else
    if (threadIdx.x == 0) *ok = 0;
#endif
}

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 700
using namespace nvcuda;

// REGS: the output tile lives in registers as WMMA accumulators (rescaled in place with the
// known fragment layout); else it lives in shared memory (any layout, more traffic).
template <typename T, int HD, int BR, int BC, bool REGS>
__device__ __forceinline__ void flash_body(T *__restrict__ out, const T *__restrict__ q,
                                           const T *__restrict__ k, const T *__restrict__ v,
                                           int Tq, int L, int H, int KH, int causal,
                                           long long q_pos0, float sl2) {
    typedef flash_layout<HD, BR, BC, T, REGS> LY;
    constexpr int NT = BR / 16 * 32, LDT = LY::LDT, LDS = LY::LDS, LDP = LY::LDP, LDO = LY::LDO;
    constexpr int VEC = 16 / sizeof(T);   // elements per 16-byte load
    extern __shared__ __align__(128) unsigned char smem[];
    T *sQ = (T *)smem;
    T *sK = sQ + BR * LDT;
    T *sV = sK + BC * LDT;
    float *sS = (float *)(sV + BC * LDT);
    T *sP = (T *)(sS + BR * LDS);
    float *sO = (float *)(sP + BR * LDP);
    float *sM = REGS ? sO : sO + BR * LDO, *sL = sM + BR, *sA = sL + BR;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int h = blockIdx.y, kvh = h / (H / KH);
    const int qb = causal ? (int)gridDim.x - 1 - (int)blockIdx.x : (int)blockIdx.x;
    const int q0 = qb * BR;
    const long long qld = (long long)H * HD, kvld = (long long)KH * HD;

    for (int i = threadIdx.x; i < BR * (HD / VEC); i += NT) {
        int r = i / (HD / VEC), c = (i % (HD / VEC)) * VEC;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (q0 + r < Tq) val = *(const uint4 *)(q + (q0 + r) * qld + (long long)h * HD + c);
        *(uint4 *)(sQ + r * LDT + c) = val;
    }
    if (!REGS)
        for (int i = threadIdx.x; i < BR * LDO; i += NT) sO[i] = 0.0f;
    for (int i = threadIdx.x; i < BR; i += NT) {
        sM[i] = -INFINITY;
        sL[i] = 0.0f;
    }
    __syncthreads();

    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> qf[HD / 16];
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
        wmma::load_matrix_sync(qf[kk], sQ + warp * 16 * LDT + kk * 16, LDT);
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> of[REGS ? HD / 16 : 1];
    if (REGS) {
#pragma unroll
        for (int d = 0; d < (REGS ? HD / 16 : 1); d++) wmma::fill_fragment(of[d], 0.0f);
    }

    const int last_q = min(Tq, q0 + BR) - 1;
    const long long nk = causal ? min((long long)L, q_pos0 + last_q + 1) : (long long)L;
    for (long long kb = 0; kb < nk; kb += BC) {
        for (int i = threadIdx.x; i < BC * (HD / VEC); i += NT) {
            int r = i / (HD / VEC), c = (i % (HD / VEC)) * VEC;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
            if (kb + r < nk) {
                long long off = (kb + r) * kvld + (long long)kvh * HD + c;
                kv = *(const uint4 *)(k + off);
                vv = *(const uint4 *)(v + off);
            }
            *(uint4 *)(sK + r * LDT + c) = kv;
            *(uint4 *)(sV + r * LDT + c) = vv;
        }
        __syncthreads();

        // S[warp rows, 0:BC] = Q K^T (K row-major [BC, HD] is K^T column-major)
#pragma unroll
        for (int n = 0; n < BC / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> sf;
            wmma::fill_fragment(sf, 0.0f);
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> kf;
                wmma::load_matrix_sync(kf, sK + n * 16 * LDT + kk * 16, LDT);
                wmma::mma_sync(sf, qf[kk], kf, sf);
            }
            wmma::store_matrix_sync(sS + warp * 16 * LDS + n * 16, sf, LDS, wmma::mem_row_major);
        }
        __syncwarp();

        // Online softmax of the warp's 16 rows, two lanes per row.
        {
            const int row = warp * 16 + (lane >> 1), hf = lane & 1;
            const long long qpos = q_pos0 + q0 + row;
            float *srow = sS + row * LDS;
            T *prow = sP + row * LDP;
            float mx = -INFINITY;
            for (int j = hf; j < BC; j += 2) {
                long long key = kb + j;
                bool ok = key < nk && (!causal || key <= qpos);
                float s = ok ? srow[j] * sl2 : -INFINITY;
                srow[j] = s;
                mx = fmaxf(mx, s);
            }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            const float m_old = sM[row], m_new = fmaxf(m_old, mx);
            float sum = 0.0f;
            for (int j = hf; j < BC; j += 2) {
                float p = m_new == -INFINITY ? 0.0f : exp2f(srow[j] - m_new);
                prow[j] = from_f32<T>(p);   // P is cast to bf16 before P.V (spec 4.3)
                sum += p;
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            const float alpha = m_old == -INFINITY ? 0.0f : exp2f(m_old - m_new);
            __syncwarp();
            if (hf == 0) {
                sM[row] = m_new;
                sL[row] = sL[row] * alpha + sum;
                sA[row] = alpha;
            }
        }
        __syncwarp();
        if (REGS) {
            const float a0 = sA[warp * 16 + (lane >> 2)], a1 = sA[warp * 16 + (lane >> 2) + 8];
#pragma unroll
            for (int d = 0; d < (REGS ? HD / 16 : 1); d++)
#pragma unroll
                for (int i = 0; i < 8; i++) of[d].x[i] *= ((i >> 1) & 1) ? a1 : a0;
        } else {
            for (int i = lane; i < 16 * HD; i += 32) {
                int r = warp * 16 + i / HD, c = i % HD;
                sO[r * LDO + c] *= sA[r];
            }
            __syncwarp();
        }

        // O[warp rows] += P V
#pragma unroll
        for (int d = 0; d < HD / 16; d++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> &acc = of[REGS ? d : 0];
            if (!REGS)
                wmma::load_matrix_sync(acc, sO + warp * 16 * LDO + d * 16, LDO, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < BC / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> pf;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> vf;
                wmma::load_matrix_sync(pf, sP + warp * 16 * LDP + kk * 16, LDP);
                wmma::load_matrix_sync(vf, sV + kk * 16 * LDT + d * 16, LDT);
                wmma::mma_sync(acc, pf, vf, acc);
            }
            if (!REGS)
                wmma::store_matrix_sync(sO + warp * 16 * LDO + d * 16, acc, LDO, wmma::mem_row_major);
        }
        __syncthreads();   // all warps are done with sK/sV before the next tile overwrites them
    }

    if (REGS) {
#pragma unroll
        for (int d = 0; d < (REGS ? HD / 16 : 1); d++)
#pragma unroll
            for (int i = 0; i < 8; i++) {
                int row = warp * 16 + acc_row(lane, i), c = d * 16 + acc_col(lane, i);
                if (q0 + row < Tq) {
                    float l = sL[row];
                    out[(q0 + row) * qld + (long long)h * HD + c] =
                        from_f32<T>(l > 0.0f ? of[d].x[i] / l : 0.0f);
                }
            }
    } else {
        for (int i = lane; i < 16 * HD; i += 32) {
            int row = warp * 16 + i / HD, c = i % HD;
            if (q0 + row < Tq) {
                float l = sL[row];
                float o = l > 0.0f ? sO[row * LDO + c] / l : 0.0f;
                out[(q0 + row) * qld + (long long)h * HD + c] = from_f32<T>(o);
            }
        }
    }
}
#endif

template <typename T, int HD, int BR, int BC, bool REGS>
__global__ void __launch_bounds__(BR / 16 * 32)
    flash_attn_kernel(T *out, const T *q, const T *k, const T *v, int Tq, int L, int H, int KH,
                      int causal, long long q_pos0, float sl2) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 700
    __trap();   // no tensor cores: the host never launches this (decode kernel instead)
#else
    if constexpr (std::is_same<T, bf16>::value) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
        __trap();   // bf16 WMMA needs sm_80; the backend computes in fp16 below sm_80
#else
        flash_body<T, HD, BR, BC, REGS>(out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2);
#endif
    } else {
        flash_body<T, HD, BR, BC, REGS>(out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2);
    }
#endif
}

// 1 if the register-resident output layout holds on this device (checked once per backend).
static int flash_regs_ok(cuda_ctx *c) {
    if (c->flash_regs_state == 0) {
        c->flash_regs_state = -1;
        if (c->cc >= 80) {
            int *d = (int *)cuda_scratch(c, IVL_SCR_IDS, sizeof(int)), h = 0;
            CUDA_CHECK(cudaMemsetAsync(d, 0, sizeof(int), c->stream));
            flash_layout_probe_kernel<<<1, 32, 0, c->stream>>>(d);
            CUDA_LAUNCHED(c, "flash_layout_probe_kernel");
            CUDA_CHECK(cudaMemcpyAsync(&h, d, sizeof(int), cudaMemcpyDeviceToHost, c->stream));
            CUDA_CHECK(cudaStreamSynchronize(c->stream));
            c->flash_regs_state = h ? 1 : -1;
            if (!h) LOG_WARN("CUDA attention: WMMA accumulator layout differs; using the "
                             "shared-memory output path");
        }
    }
    return c->flash_regs_state == 1;
}

// Returns 1 if launched.
template <typename T, int HD, int BR, int BC, bool REGS>
static int flash_try(cuda_ctx *c, T *out, const T *q, const T *k, const T *v, int Tq, int L,
                     int H, int KH, int causal, long long q_pos0, float sl2) {
    size_t sm = flash_layout<HD, BR, BC, T, REGS>::bytes;
    if (sm > c->smem_optin) return 0;
    auto kern = flash_attn_kernel<T, HD, BR, BC, REGS>;
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
    dim3 grid((unsigned)((Tq + BR - 1) / BR), (unsigned)H);
    kern<<<grid, BR / 16 * 32, sm, c->stream>>>(out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2);
    CUDA_LAUNCHED(c, "flash_attn_kernel");
    return 1;
}

// WMMA variants (IVL_CUDA_FLASH picks one for benchmarking; on sm_80+ the default is the
// mma.sync kernel of flash_mma.cu, "mma" / "mma128"): "regs64" (default where the layout
// check passes: output in registers, 64-key tiles), "regs32" (32-key tiles: half the shared
// memory, more blocks per SM), "smem" (output in shared memory, 64x64 tiles, any sm_70+).
// sm_75 has 64 KB of shared memory per block: 32x32 tiles with the shared-memory output.
template <typename T, int HD>
static int flash_launch_hd(cuda_ctx *c, T *out, const T *q, const T *k, const T *v, int Tq,
                           int L, int H, int KH, int causal, long long q_pos0, float sl2) {
    const char *want = getenv("IVL_CUDA_FLASH");
    int regs = flash_regs_ok(c) && !(want && !strcmp(want, "smem"));
    if (regs && want && !strcmp(want, "regs32") &&
        flash_try<T, HD, 64, 32, true>(c, out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2))
        return 1;
    if (regs && flash_try<T, HD, 64, 64, true>(c, out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2))
        return 1;
    if (flash_try<T, HD, 64, 64, false>(c, out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2)) return 1;
    return flash_try<T, HD, 32, 32, false>(c, out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2);
}

template <typename T>
static int flash_launch(cuda_ctx *c, T *out, const T *q, const T *k, const T *v, int Tq, int L,
                        int H, int KH, int hd, int causal, long long q_pos0, float sl2) {
    if constexpr (std::is_same<T, float>::value) {
        return 0;   // no f32 WMMA path; f32 backends are not built
    } else {
        if (std::is_same<T, bf16>::value && c->cc < 80) return 0;
        if (c->cc < 70) return 0;
        if (hd == 64) return flash_launch_hd<T, 64>(c, out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2);
        if (hd == 96) return flash_launch_hd<T, 96>(c, out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2);
        if (hd == 128) return flash_launch_hd<T, 128>(c, out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2);
        return 0;
    }
}

// ================================================================ decode (CUDA cores)

#define DEC_WARPS 4
#define DEC_MAXG 8

template <typename T, int EPL>
__global__ void __launch_bounds__(DEC_WARPS * 32)
    decode_attn_kernel(float *part, const T *__restrict__ q, const T *__restrict__ k,
                       const T *__restrict__ v, int t0, int H, int KH, int G, int L, int causal,
                       long long q_pos0, float sl2, int kps, int nsplit) {
    constexpr int HD = EPL * 32;
    __shared__ float s_m[DEC_WARPS][DEC_MAXG], s_l[DEC_WARPS][DEC_MAXG];
    __shared__ float s_o[DEC_WARPS][DEC_MAXG][HD];
    const int ngb = (G + DEC_MAXG - 1) / DEC_MAXG;
    const int kvh = blockIdx.x / ngb, gb = blockIdx.x % ngb;
    const int h0 = kvh * G + gb * DEC_MAXG, nh = min(DEC_MAXG, G - gb * DEC_MAXG);
    const int split = blockIdx.y, t = t0 + blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long nvis = causal ? min((long long)L, q_pos0 + t + 1) : (long long)L;
    const long long k0 = (long long)split * kps, k1 = min(nvis, k0 + kps);
    const long long kvld = (long long)KH * HD;

    float qr[DEC_MAXG][EPL], acc[DEC_MAXG][EPL], m[DEC_MAXG], l[DEC_MAXG];
#pragma unroll
    for (int g = 0; g < DEC_MAXG; g++) {
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            qr[g][e] = g < nh ? to_f32(q[((long long)t * H + h0 + g) * HD + lane * EPL + e]) * sl2
                              : 0.0f;
            acc[g][e] = 0.0f;
        }
        m[g] = -INFINITY;
        l[g] = 0.0f;
    }
    for (long long j = k0 + warp; j < k1; j += DEC_WARPS) {
        const T *kr = k + j * kvld + (long long)kvh * HD + lane * EPL;
        const T *vr = v + j * kvld + (long long)kvh * HD + lane * EPL;
        float kk[EPL], vv[EPL];
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            kk[e] = to_f32(kr[e]);
            vv[e] = to_f32(vr[e]);
        }
#pragma unroll
        for (int g = 0; g < DEC_MAXG; g++) {
            if (g < nh) {
                float d = 0.0f;
#pragma unroll
                for (int e = 0; e < EPL; e++) d += qr[g][e] * kk[e];
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
                float mn = fmaxf(m[g], d);
                float corr = exp2f(m[g] - mn), p = exp2f(d - mn);
                l[g] = l[g] * corr + p;
#pragma unroll
                for (int e = 0; e < EPL; e++) acc[g][e] = acc[g][e] * corr + p * vv[e];
                m[g] = mn;
            }
        }
    }
#pragma unroll
    for (int g = 0; g < DEC_MAXG; g++) {
        if (lane == 0) {
            s_m[warp][g] = m[g];
            s_l[warp][g] = l[g];
        }
#pragma unroll
        for (int e = 0; e < EPL; e++) s_o[warp][g][lane * EPL + e] = acc[g][e];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < nh * HD; i += blockDim.x) {
        int g = i / HD, d = i % HD;
        float M = -INFINITY;
        for (int w = 0; w < DEC_WARPS; w++) M = fmaxf(M, s_m[w][g]);
        float ls = 0.0f, o = 0.0f;
        if (M != -INFINITY)
            for (int w = 0; w < DEC_WARPS; w++) {
                float f = exp2f(s_m[w][g] - M);
                ls += s_l[w][g] * f;
                o += s_o[w][g][d] * f;
            }
        float *pp = part + (((long long)t * H + h0 + g) * nsplit + split) * (HD + 2);
        pp[d] = o;
        if (d == 0) {
            pp[HD] = M;
            pp[HD + 1] = ls;
        }
    }
}

template <typename T>
__global__ void decode_combine_kernel(T *out, const float *part, int H, int HD, int nsplit) {
    const int h = blockIdx.x, t = blockIdx.y;
    const float *pp = part + ((long long)t * H + h) * nsplit * (HD + 2);
    float M = -INFINITY;
    for (int s = 0; s < nsplit; s++) M = fmaxf(M, pp[s * (HD + 2) + HD]);
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float ls = 0.0f, o = 0.0f;
        if (M != -INFINITY)
            for (int s = 0; s < nsplit; s++) {
                float f = exp2f(pp[s * (HD + 2) + HD] - M);
                ls += pp[s * (HD + 2) + HD + 1] * f;
                o += pp[s * (HD + 2) + d] * f;
            }
        out[((long long)t * H + h) * HD + d] = from_f32<T>(ls > 0.0f ? o / ls : 0.0f);
    }
}

template <typename T, int EPL>
static void decode_launch_epl(cuda_ctx *c, T *out, const T *q, const T *k, const T *v, int Tq,
                              int L, int H, int KH, int causal, long long q_pos0, float sl2) {
    const int hd = EPL * 32, G = H / KH, ngb = (G + DEC_MAXG - 1) / DEC_MAXG;
    long long base = (long long)KH * ngb * Tq;
    int nsplit = (int)((2LL * c->sm_count + base - 1) / base);
    int max_split = (L + 127) / 128;   // at least ~128 keys (32 per warp) per split
    if (nsplit > max_split) nsplit = max_split;
    if (nsplit < 1) nsplit = 1;
    int kps = (L + nsplit - 1) / nsplit;
    float *part = (float *)cuda_scratch(c, IVL_SCR_ATTN,
                                        (size_t)Tq * H * nsplit * (hd + 2) * sizeof(float));
    for (int t0 = 0; t0 < Tq; t0 += 65535) {   // grid.z limit
        int nt = Tq - t0 < 65535 ? Tq - t0 : 65535;
        dim3 grid((unsigned)(KH * ngb), (unsigned)nsplit, (unsigned)nt);
        decode_attn_kernel<T, EPL><<<grid, DEC_WARPS * 32, 0, c->stream>>>(
            part, q, k, v, t0, H, KH, G, L, causal, q_pos0, sl2, kps, nsplit);
        CUDA_LAUNCHED(c, "decode_attn_kernel");
    }
    dim3 g2((unsigned)H, (unsigned)Tq);
    decode_combine_kernel<T><<<g2, hd, 0, c->stream>>>(out, part, H, hd, nsplit);
    CUDA_LAUNCHED(c, "decode_combine_kernel");
}

template <typename T>
static int decode_launch(cuda_ctx *c, T *out, const T *q, const T *k, const T *v, int Tq, int L,
                         int H, int KH, int hd, int causal, long long q_pos0, float sl2) {
    switch (hd) {
    case 64: decode_launch_epl<T, 2>(c, out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2); return 1;
    case 96: decode_launch_epl<T, 3>(c, out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2); return 1;
    case 128: decode_launch_epl<T, 4>(c, out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2); return 1;
    case 256: decode_launch_epl<T, 8>(c, out, q, k, v, Tq, L, H, KH, causal, q_pos0, sl2); return 1;
    default: return 0;
    }
}

// ================================================================ table entry

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

void cuda_op_attention(ivl_backend *be, ivl_tensor *out, const ivl_tensor *q,
                       const ivl_tensor *k, const ivl_tensor *v, int n_heads, int n_kv_heads,
                       int head_dim, int causal, int64_t q_pos0, float scale) {
    cuda_ctx *c = cuda_ctx_of(be);
    cuda_check_tensor(be, out, "attention", "out");
    cuda_check_tensor(be, q, "attention", "q");
    cuda_check_tensor(be, k, "attention", "k");
    cuda_check_tensor(be, v, "attention", "v");
    const int H = n_heads, KH = n_kv_heads, hd = head_dim;
    IVL_CHECK(H > 0 && KH > 0 && H % KH == 0, "cuda attention: %d query heads are not a "
              "multiple of %d kv heads", H, KH);
    int64_t Tq = ivl_tensor_rows(q), L = ivl_tensor_rows(k);
    IVL_CHECK(ivl_tensor_cols(q) == (int64_t)H * hd && ivl_tensor_cols(out) == (int64_t)H * hd &&
                  ivl_tensor_rows(out) == Tq,
              "cuda attention: q and out must be [T, %d x %d]", H, hd);
    IVL_CHECK(ivl_tensor_cols(k) == (int64_t)KH * hd && ivl_tensor_cols(v) == (int64_t)KH * hd &&
                  ivl_tensor_rows(v) == L,
              "cuda attention: k and v must be [L, %d x %d]", KH, hd);
    IVL_CHECK(L >= 1, "cuda attention: no keys (L = 0)");
    IVL_CHECK(!causal || (q_pos0 >= 0 && q_pos0 + Tq <= L),
              "cuda attention: causal queries at positions %lld..%lld need %lld keys, got %lld",
              (long long)q_pos0, (long long)(q_pos0 + Tq - 1), (long long)(q_pos0 + Tq),
              (long long)L);
    IVL_CHECK(Tq < 2147483647LL && L < 2147483647LL, "cuda attention: sequence too long");
    IVL_CHECK(out->data != q->data, "cuda attention: out must not alias q");
    if (Tq == 0) return;
    const float sl2 = scale * LOG2E;
    int done = 0;
    DISPATCH_T(be->dtype, {
        T *o = (T *)out->data;
        const T *qq = (const T *)q->data, *kk = (const T *)k->data, *vv = (const T *)v->data;
        const int flash_ok = Tq > 16 && aligned16(o) && aligned16(qq) && aligned16(kk) &&
                             aligned16(vv) && !getenv("IVL_CUDA_NO_FLASH");
        const char *variant = getenv("IVL_CUDA_FLASH");   // see flash_launch_hd and README
        const int wmma = variant && strncmp(variant, "mma", 3) != 0;
        if (flash_ok && !wmma) {
            cuda_flash_seqs one;
            one.nseq = 1, one.q_row0[0] = 0, one.n[0] = (int)Tq, one.kv_row0[0] = 0;
            one.len[0] = (int)L, one.pos0[0] = (int)q_pos0;
            done = cuda_flash_mma(c, be->dtype, variant && !strcmp(variant, "mma128") ? 128 : 64,
                                  o, qq, kk, vv, H, KH, hd, causal, &one, sl2);
        }
        if (flash_ok && !done)
            done = flash_launch<T>(c, o, qq, kk, vv, (int)Tq, (int)L, H, KH, hd, causal,
                                   (long long)q_pos0, sl2);
        if (!done)
            done = decode_launch<T>(c, o, qq, kk, vv, (int)Tq, (int)L, H, KH, hd, causal,
                                    (long long)q_pos0, sl2);
    });
    IVL_CHECK(done, "cuda attention: head_dim %d is not supported (64, 96, 128, 256)", hd);
}
