// gemv.cu - y[M,N] = x[M,K] . w[N,K]^T (+ bias[N]) for decode, M <= 8: a weight-streaming
// kernel. At batch 1..8 the matmul reads every weight once and does 2*M FLOPs per weight, so
// its speed is the rate at which w comes in from HBM; cuBLASLt's choice for such M is a GEMM
// tile that may leave part of the bandwidth unused (bench_cuda_ops --bench "decode matmuls").
//
// Layout of the work: one block of GEMV_WARPS warps owns GEMV_ROWS consecutive rows n of w
// (so each x vector loaded is used GEMV_ROWS times) and splits K between its warps; a lane
// reads 16-byte vectors (8 values) of each of its rows, GEMV_UNROLL vectors per row before
// using any, so GEMV_ROWS * GEMV_UNROLL independent 16-byte loads are in flight per lane.
// w is read with an L1 no-allocate hint (it streams through once, and must not evict x,
// which every block re-reads and which stays in L1/L2). Per output: lane partial sums ->
// warp shuffle tree -> the warps' sums in shared memory, in a fixed order (deterministic).
// Blocks: ceil(N / GEMV_ROWS), 1536..4096 for InternLM2-20B's matrices (10..30 per SM on an
// H100), so the SMs stay busy to the end.
//
// Rounding as the cuBLASLt path: products summed in f32, bias added in f32, one rounding to T.
// Eligible (else cuBLASLt): bf16/fp16, 1 <= M <= max M, K a multiple of 8, x and w 16-byte
// aligned (with K % 8 == 0 every row is then aligned too), N and K below 2^31.
//
// max M: IVL_CUDA_GEMV=n (0..8; 0 = always cuBLASLt), default 4. Measured on an H100
// (bench_cuda_ops --bench, "decode matmuls"): at M = 1 the kernel streams the 20B matrices
// at 90-99% of the copy bandwidth (cuBLASLt 81-92%); at M = 4 it is 0.94-1.85x cuBLASLt;
// at M = 8 its 8 CUDA-core FMAs per weight make it slower than cuBLASLt's
// tensor-core tiles on the large matrices (0.88-0.92x), hence the default. Read at every
// call, so a benchmark can A/B in one run.
//
// bf16 -> f32 is a 16-bit shift (no bf16 instruction needed: builds for every arch);
// fp16 uses __half22float2, available everywhere.
#include "core/cuda/cuda_common.cuh"

#include <stdlib.h>
#include <string.h>

#define GEMV_WARPS 4
#define GEMV_ROWS 4
#define GEMV_UNROLL 2
#define GEMV_MAX_M 8           // kernels exist for M = 1..8
#define GEMV_DEFAULT_MAX_M 4   // used up to this M unless IVL_CUDA_GEMV says otherwise

// 16 bytes of w that are read once: bypass L1 (sm_70+), else the read-only path.
__device__ __forceinline__ uint4 ld_stream16(const uint4 *p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
#else
    return __ldg(p);
#endif
}

// 8 values of T packed in 16 bytes -> 8 floats (element 2i is the low half of word i).
template <typename T> __device__ __forceinline__ void unpack8(const uint4 &v, float *f);
template <> __device__ __forceinline__ void unpack8<bf16>(const uint4 &v, float *f) {
    const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(u[i] << 16);
        f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
}
template <> __device__ __forceinline__ void unpack8<f16>(const uint4 &v, float *f) {
    const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        __half2 h;
        memcpy(&h, &u[i], sizeof h);
        float2 p = __half22float2(h);
        f[2 * i] = p.x;
        f[2 * i + 1] = p.y;
    }
}

// Up to three matrices sharing x in one launch (q/k/v, or gate/up): segment i owns blocks
// block0[i] .. block0[i+1]-1 and writes y[i] = x w[i]^T (+ bias[i]). With GLU the block reads
// GEMV_ROWS rows of w[0] (gate) and the same rows of w[1] (up) and writes
// y[0] = silu(gate) * up with the roundings of matmul, matmul, silu_mul (spec 11).
struct gemv_segs {
    const void *w[3];
    void *y[3];
    const void *bias[3];
    int N[3];
    int block0[4];
    int nseg;
};

// a[i] for a runtime i < 3 without indexing the kernel parameter (that would copy it to local
// memory in every thread).
template <typename X> __device__ __forceinline__ X pick3(const X (&a)[3], int i) {
    return i == 0 ? a[0] : i == 1 ? a[1] : a[2];
}

template <typename T, int M, int R, bool GLU>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_kernel(const T *__restrict__ x, const gemv_segs sg, int K) {
    __shared__ float red[GEMV_WARPS][M][R];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int bx = (int)blockIdx.x;
    const int seg = (sg.nseg > 1 && bx >= sg.block0[1]) + (sg.nseg > 2 && bx >= sg.block0[2]);
    const int N = pick3(sg.N, seg);
    const int64_t n0 = (int64_t)(bx - (seg == 0 ? 0 : seg == 1 ? sg.block0[1] : sg.block0[2])) *
                       GEMV_ROWS;
    const int KV = K / 8;                          // 16-byte vectors per row
    const int step = GEMV_WARPS * 32;              // vectors between one lane's loads
    // Rows past N (last block) read row N-1 again and are never stored: no branch in the loop.
    const uint4 *wr[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int64_t n = n0 + r % GEMV_ROWS < N ? n0 + r % GEMV_ROWS : N - 1;
        const T *w = (const T *)(GLU ? sg.w[r / GEMV_ROWS] : pick3(sg.w, seg));
        wr[r] = reinterpret_cast<const uint4 *>(w + n * K);
    }
    const uint4 *xv = reinterpret_cast<const uint4 *>(x);

    float acc[M][R];
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int r = 0; r < R; r++) acc[m][r] = 0.0f;

    for (int v0 = warp * 32 + lane; v0 < KV; v0 += GEMV_UNROLL * step) {
        uint4 wv[GEMV_UNROLL][R];
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {   // all loads first: they overlap in flight
            const int v = v0 + u * step;
#pragma unroll
            for (int r = 0; r < R; r++)
                wv[u][r] = v < KV ? ld_stream16(wr[r] + v) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            const int v = v0 + u * step;
            if (v >= KV) break;
            float wf[R][8];
#pragma unroll
            for (int r = 0; r < R; r++) unpack8<T>(wv[u][r], wf[r]);
#pragma unroll
            for (int m = 0; m < M; m++) {
                float xf[8];
                unpack8<T>(__ldg(xv + (int64_t)m * KV + v), xf);
#pragma unroll
                for (int r = 0; r < R; r++)
#pragma unroll
                    for (int j = 0; j < 8; j++) acc[m][r] = fmaf(xf[j], wf[r][j], acc[m][r]);
            }
        }
    }
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int r = 0; r < R; r++) {
            float s = acc[m][r];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
            if (lane == 0) red[warp][m][r] = s;
        }
    __syncthreads();
    for (int i = threadIdx.x; i < M * GEMV_ROWS; i += blockDim.x) {
        const int m = i / GEMV_ROWS, r = i % GEMV_ROWS;
        const int64_t n = n0 + r;
        if (n >= N) continue;
        float s = 0.0f;
#pragma unroll
        for (int wp = 0; wp < GEMV_WARPS; wp++) s += red[wp][m][r];
        if (GLU) {
            float u = 0.0f;
#pragma unroll
            for (int wp = 0; wp < GEMV_WARPS; wp++) u += red[wp][m][r + GEMV_ROWS];
            // As matmul (gate, up rounded to T) then silu_mul_kernel (elementwise.cu).
            const float g = round_t<T>(s), sg_ = round_t<T>(g / (1.0f + __expf(-g)));
            ((T *)sg.y[0])[(int64_t)m * N + n] = from_f32<T>(sg_ * round_t<T>(u));
        } else {
            const T *bias = (const T *)pick3(sg.bias, seg);
            if (bias) s += to_f32(bias[n]);
            ((T *)pick3(sg.y, seg))[(int64_t)m * N + n] = from_f32<T>(s);
        }
    }
}

template <typename T, bool GLU>
static void gemv_launch(cuda_ctx *c, const T *x, gemv_segs *sg, int M, int K) {
    sg->block0[0] = 0;
    for (int i = 0; i < sg->nseg; i++)
        sg->block0[i + 1] = sg->block0[i] + (sg->N[i] + GEMV_ROWS - 1) / GEMV_ROWS;
    const unsigned blocks = (unsigned)sg->block0[GLU ? 1 : sg->nseg];
    const dim3 grid(blocks), block(GEMV_WARPS * 32);
    constexpr int R = GLU ? 2 * GEMV_ROWS : GEMV_ROWS;
    switch (M) {
#define GEMV_CASE(MM)                                                                   \
    case MM:                                                                            \
        gemv_kernel<T, MM, R, GLU><<<grid, block, 0, c->stream>>>(x, *sg, K);           \
        break;
        GEMV_CASE(1) GEMV_CASE(2) GEMV_CASE(3) GEMV_CASE(4)
        GEMV_CASE(5) GEMV_CASE(6) GEMV_CASE(7) GEMV_CASE(8)
#undef GEMV_CASE
    default: IVL_CHECK(0, "cuda gemv: M=%d outside 1..%d", M, GEMV_MAX_M);
    }
    CUDA_LAUNCHED(c, GLU ? "gemv (gate/up + silu)" : "gemv");
}

// The largest M sent to the kernel: IVL_CUDA_GEMV=n (0..8), else the default.
static int gemv_max_m(void) {
    const char *v = getenv("IVL_CUDA_GEMV");
    if (!v || !*v) return GEMV_DEFAULT_MAX_M;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end == '\0' && n >= 0 && n <= GEMV_MAX_M) return (int)n;
    static int warned;
    if (!warned) {
        warned = 1;
        LOG_WARN("IVL_CUDA_GEMV=%s: expected 0 (always cuBLASLt) .. %d (largest M for the "
                 "gemv kernel); using the default %d", v, GEMV_MAX_M, GEMV_DEFAULT_MAX_M);
    }
    return GEMV_DEFAULT_MAX_M;
}

// Eligibility of one matrix for the kernel (else cuBLASLt).
static int gemv_ok(ivl_dtype dt, const void *y, const void *x, const void *w, const void *bias,
                   int64_t M, int64_t N, int64_t K) {
    if (M < 1 || M > GEMV_MAX_M || N < 1 || K < 8 || K % 8 != 0) return 0;
    if (N > INT32_MAX / 2 || K > INT32_MAX) return 0;
    if (dt != IVL_BF16 && dt != IVL_F16) return 0;
    if ((uintptr_t)x % 16 != 0 || (uintptr_t)w % 16 != 0) return 0;
    // y and bias are accessed one element at a time: T alignment (2 bytes) is enough.
    if ((uintptr_t)y % 2 != 0 || (bias && (uintptr_t)bias % 2 != 0)) return 0;
    return M <= gemv_max_m();
}

template <bool GLU>
static void gemv_dispatch(cuda_ctx *c, ivl_dtype dt, const void *x, gemv_segs *sg, int M, int K) {
    if (dt == IVL_BF16) gemv_launch<bf16, GLU>(c, (const bf16 *)x, sg, M, K);
    else gemv_launch<f16, GLU>(c, (const f16 *)x, sg, M, K);
}

int cuda_gemv_try(cuda_ctx *c, ivl_dtype dt, void *y, const void *x, const void *w,
                  const void *bias, int64_t M, int64_t N, int64_t K) {
    if (!gemv_ok(dt, y, x, w, bias, M, N, K)) return 0;
    gemv_segs sg = {};
    sg.nseg = 1, sg.w[0] = w, sg.y[0] = y, sg.bias[0] = bias, sg.N[0] = (int)N;
    gemv_dispatch<false>(c, dt, x, &sg, (int)M, (int)K);
    return 1;
}

// IVL_CUDA_GEMV_FUSE=0: the grouped and gate/up launches are not used (A/B, kill switch).
static int gemv_fuse_enabled(void) {
    const char *v = getenv("IVL_CUDA_GEMV_FUSE");
    return !(v && !strcmp(v, "0"));
}

int cuda_gemv_multi_try(cuda_ctx *c, ivl_dtype dt, int n, void *const *y, const void *x,
                        const void *const *w, const int64_t *N, int64_t M, int64_t K) {
    if (n < 1 || n > 3 || !gemv_fuse_enabled()) return 0;
    int64_t blocks = 0;
    for (int i = 0; i < n; i++) {
        if (!gemv_ok(dt, y[i], x, w[i], NULL, M, N[i], K)) return 0;
        blocks += (N[i] + GEMV_ROWS - 1) / GEMV_ROWS;
    }
    if (blocks > INT32_MAX) return 0;
    gemv_segs sg = {};
    sg.nseg = n;
    for (int i = 0; i < n; i++) sg.w[i] = w[i], sg.y[i] = y[i], sg.N[i] = (int)N[i];
    gemv_dispatch<false>(c, dt, x, &sg, (int)M, (int)K);
    return 1;
}

int cuda_gemv_glu_try(cuda_ctx *c, ivl_dtype dt, void *y, const void *x, const void *wg,
                      const void *wu, int64_t M, int64_t N, int64_t K) {
    if (!gemv_fuse_enabled() || !gemv_ok(dt, y, x, wg, NULL, M, N, K) ||
        !gemv_ok(dt, y, x, wu, NULL, M, N, K))
        return 0;
    gemv_segs sg = {};
    sg.nseg = 1, sg.w[0] = wg, sg.w[1] = wu, sg.y[0] = y, sg.N[0] = (int)N;
    gemv_dispatch<true>(c, dt, x, &sg, (int)M, (int)K);
    return 1;
}
