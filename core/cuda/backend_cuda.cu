// backend_cuda.cu - the CUDA backend: device probe, context (stream, cuBLASLt handle,
// allocator, scratch), memory ops (alloc/upload/download/copy) and the op table.
// Exported from libivl_cuda.so (see core/backend.c): ivl_cuda_probe, ivl_cuda_backend_create.
#include "core/cuda/cuda_common.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IVL_EXPORT extern "C" __attribute__((visibility("default")))

// Upload/download conversions go through device staging in chunks of this many elements,
// so a 1 GB f32 weight does not need 1 GB of scratch.
#define STAGE_CHUNK (16LL << 20)

// ---------------------------------------------------------------- probe

IVL_EXPORT int ivl_cuda_probe(char *msg, size_t n) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        // 35 (cudaErrorInsufficientDriver) on a machine without the NVIDIA driver,
        // 100 (cudaErrorNoDevice) with a driver but no GPU.
        int drv = 0;
        cudaDriverGetVersion(&drv);
        // core/backend.c prefixes "no CUDA device (...)".
        snprintf(msg, n, "driver: %s; cudaGetDeviceCount: error %d, %s",
                 drv ? "installed" : "none found", (int)e, cudaGetErrorString(e));
        cudaGetLastError();
        return -1;
    }
    if (count == 0) {
        snprintf(msg, n, "driver: installed; it reports 0 GPUs");
        return -1;
    }
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
        snprintf(msg, n, "driver: installed; device 0 cannot be queried");
        cudaGetLastError();
        return -1;
    }
    snprintf(msg, n, "%d CUDA device(s), device 0: %s (sm_%d%d)", count, p.name, p.major,
             p.minor);
    return count;
}

// ---------------------------------------------------------------- helpers

void cuda_after_launch(cuda_ctx *c, const char *what, const char *file, int line) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && c->debug_sync) e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess)
        ivl_fatal_call("CUDA", what, cudaGetErrorString(e), file, line,
                       c->debug_sync ? "kernel (debug sync)" : "kernel launch");
}

void *cuda_dev_alloc(cuda_ctx *c, size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 256;
    cudaError_t e = c->use_pool ? cudaMallocAsync(&p, bytes, c->stream) : cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        size_t fr = 0, tot = 0;
        cudaGetLastError();
        cudaMemGetInfo(&fr, &tot);
        ivl_fatal(__FILE__, __LINE__, __func__,
                  "out of GPU memory: allocating %.1f MiB on device %d (%.1f of %.1f GiB free): %s",
                  bytes / 1048576.0, c->device, fr / 1073741824.0, tot / 1073741824.0,
                  cudaGetErrorString(e));
    }
    return p;
}

void cuda_dev_free(cuda_ctx *c, void *p) {
    if (!p) return;
    if (c->use_pool) CUDA_CHECK(cudaFreeAsync(p, c->stream));
    else {
        CUDA_CHECK(cudaStreamSynchronize(c->stream));
        CUDA_CHECK(cudaFree(p));
    }
}

void *cuda_scratch(cuda_ctx *c, int which, size_t bytes) {
    if (c->scr_size[which] < bytes) {
        cuda_dev_free(c, c->scr[which]);   // stream-ordered: pending users finish first
        size_t sz = bytes + bytes / 4;
        c->scr[which] = cuda_dev_alloc(c, sz);
        c->scr_size[which] = sz;
    }
    return c->scr[which];
}

void *cuda_upload_scratch(cuda_ctx *c, int which, const void *host, size_t bytes) {
    void *before = c->scr[which];
    void *d = cuda_scratch(c, which, bytes);
    if (c->upload_cache && d == before && c->up_host[which] && c->up_n[which] == bytes &&
        memcmp(c->up_host[which], host, bytes) == 0)
        return d;   // the stream already copied these bytes there; later kernels read them
    if (bytes > c->up_n[which] || !c->up_host[which]) {
        free(c->up_host[which]);
        c->up_host[which] = ivl_malloc(bytes ? bytes : 1);
    }
    memcpy(c->up_host[which], host, bytes);
    c->up_n[which] = bytes;
    CUDA_CHECK(cudaMemcpyAsync(d, host, bytes, cudaMemcpyHostToDevice, c->stream));
    return d;
}

void cuda_check_tensor(ivl_backend *be, const ivl_tensor *t, const char *op, const char *arg) {
    IVL_CHECK(t && t->data, "cuda %s: %s is NULL or has no memory", op, arg);
    IVL_CHECK(t->loc == IVL_DEVICE, "cuda %s: %s is a host tensor (upload it first)", op, arg);
    IVL_CHECK(t->dtype == be->dtype, "cuda %s: %s is %s, the backend computes in %s", op, arg,
              ivl_dtype_name(t->dtype), ivl_dtype_name(be->dtype));
}

void cuda_check_same(const ivl_tensor *a, const ivl_tensor *b, const char *op) {
    char s1[96], s2[96];
    IVL_CHECK(ivl_tensor_numel(a) == ivl_tensor_numel(b) &&
                  ivl_tensor_cols(a) == ivl_tensor_cols(b),
              "cuda %s: shapes differ: %s vs %s", op, ivl_tensor_shape_str(a, s1, sizeof s1),
              ivl_tensor_shape_str(b, s2, sizeof s2));
}

// ---------------------------------------------------------------- memory ops

static ivl_tensor cu_alloc(ivl_backend *be, ivl_dtype dt, int ndim, const int64_t *shape) {
    cuda_ctx *c = cuda_ctx_of(be);
    ivl_tensor t = ivl_tensor_desc(dt, ndim, shape);
    size_t nb = ivl_tensor_nbytes(&t);
    t.data = cuda_dev_alloc(c, nb);
    t.loc = IVL_DEVICE;
    if (nb) CUDA_CHECK(cudaMemsetAsync(t.data, 0, nb, c->stream));
    return t;
}

static void cu_free(ivl_backend *be, ivl_tensor *t) {
    if (!t || !t->data) return;
    cuda_dev_free(cuda_ctx_of(be), t->data);
    t->data = NULL;
}

static int is_float_dt(ivl_dtype dt) { return dt == IVL_F32 || dt == IVL_BF16 || dt == IVL_F16; }

static void cu_upload(ivl_backend *be, ivl_tensor *dst, const ivl_tensor *src) {
    cuda_ctx *c = cuda_ctx_of(be);
    char s1[96], s2[96];
    IVL_CHECK(dst && dst->data && dst->loc == IVL_DEVICE, "cuda upload: destination is not a "
              "device tensor");
    IVL_CHECK(src && src->loc == IVL_HOST && (src->data || ivl_tensor_numel(src) == 0),
              "cuda upload: source is not a host tensor");
    int64_t n = ivl_tensor_numel(src);
    IVL_CHECK(n == ivl_tensor_numel(dst), "cuda upload: %s into %s: element counts differ",
              ivl_tensor_shape_str(src, s1, sizeof s1), ivl_tensor_shape_str(dst, s2, sizeof s2));
    if (n == 0) return;
    if (src->dtype == dst->dtype) {
        CUDA_CHECK(cudaMemcpyAsync(dst->data, src->data, ivl_tensor_nbytes(src),
                                   cudaMemcpyHostToDevice, c->stream));
        return;
    }
    IVL_CHECK(is_float_dt(src->dtype) && is_float_dt(dst->dtype),
              "cuda upload: cannot convert %s to %s", ivl_dtype_name(src->dtype),
              ivl_dtype_name(dst->dtype));
    // Raw copy of a chunk into staging, then convert on the device: the bus carries the
    // source bytes once and the host does no per-element work.
    size_t ss = ivl_dtype_size(src->dtype), ds = ivl_dtype_size(dst->dtype);
    for (int64_t i = 0; i < n; i += STAGE_CHUNK) {
        int64_t m = n - i < STAGE_CHUNK ? n - i : STAGE_CHUNK;
        void *stage = cuda_scratch(c, IVL_SCR_STAGE, (size_t)m * ss);
        CUDA_CHECK(cudaMemcpyAsync(stage, (const char *)src->data + (size_t)i * ss,
                                   (size_t)m * ss, cudaMemcpyHostToDevice, c->stream));
        cuda_convert(c, (char *)dst->data + (size_t)i * ds, dst->dtype, stage, src->dtype, m);
    }
    // The staging buffer is reused by the next chunk only after this one's kernel (same
    // stream); the host source may be freed as soon as we return (pageable copies are
    // staged by the driver before cudaMemcpyAsync returns).
}

static void cu_download(ivl_backend *be, ivl_tensor *dst, const ivl_tensor *src) {
    cuda_ctx *c = cuda_ctx_of(be);
    char s1[96], s2[96];
    IVL_CHECK(src && src->data && src->loc == IVL_DEVICE, "cuda download: source is not a "
              "device tensor");
    IVL_CHECK(dst && dst->loc == IVL_HOST, "cuda download: destination is not a host tensor");
    int64_t n = ivl_tensor_numel(src);
    IVL_CHECK(n == ivl_tensor_numel(dst), "cuda download: %s into %s: element counts differ",
              ivl_tensor_shape_str(src, s1, sizeof s1), ivl_tensor_shape_str(dst, s2, sizeof s2));
    if (n == 0) return;
    if (src->dtype == dst->dtype) {
        CUDA_CHECK(cudaMemcpyAsync(dst->data, src->data, ivl_tensor_nbytes(src),
                                   cudaMemcpyDeviceToHost, c->stream));
    } else {
        IVL_CHECK(is_float_dt(src->dtype) && is_float_dt(dst->dtype),
                  "cuda download: cannot convert %s to %s", ivl_dtype_name(src->dtype),
                  ivl_dtype_name(dst->dtype));
        size_t ss = ivl_dtype_size(src->dtype), ds = ivl_dtype_size(dst->dtype);
        for (int64_t i = 0; i < n; i += STAGE_CHUNK) {
            int64_t m = n - i < STAGE_CHUNK ? n - i : STAGE_CHUNK;
            void *stage = cuda_scratch(c, IVL_SCR_STAGE, (size_t)m * ds);
            cuda_convert(c, stage, dst->dtype, (const char *)src->data + (size_t)i * ss,
                         src->dtype, m);
            CUDA_CHECK(cudaMemcpyAsync((char *)dst->data + (size_t)i * ds, stage,
                                       (size_t)m * ds, cudaMemcpyDeviceToHost, c->stream));
        }
    }
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
}

static void cu_copy(ivl_backend *be, ivl_tensor *dst, const ivl_tensor *src) {
    cuda_ctx *c = cuda_ctx_of(be);
    char s1[96], s2[96];
    IVL_CHECK(dst->loc == IVL_DEVICE && src->loc == IVL_DEVICE && dst->dtype == src->dtype &&
                  ivl_tensor_numel(dst) == ivl_tensor_numel(src),
              "cuda copy: %s into %s: needs two device tensors of the same dtype and numel",
              ivl_tensor_shape_str(src, s1, sizeof s1), ivl_tensor_shape_str(dst, s2, sizeof s2));
    size_t nb = ivl_tensor_nbytes(src);
    if (nb && dst->data != src->data)
        CUDA_CHECK(cudaMemcpyAsync(dst->data, src->data, nb, cudaMemcpyDeviceToDevice,
                                   c->stream));
}

static void cu_zero(ivl_backend *be, ivl_tensor *t) {
    IVL_CHECK(t->loc == IVL_DEVICE, "cuda zero: not a device tensor");
    size_t nb = ivl_tensor_nbytes(t);
    if (nb) CUDA_CHECK(cudaMemsetAsync(t->data, 0, nb, cuda_ctx_of(be)->stream));
}

// Quantized weights (issue 16): the CPU backend has the kernels; the CUDA side is to come.
static int cu_upload_quant(ivl_backend *be, ivl_tensor *dst, const ivl_qweight *src) {
    (void)be;
    (void)dst;
    return ivl_errorf("quantized weights (int%d) are not supported on the CUDA backend yet; "
                      "run with --device cpu or convert without --quantize",
                      src ? src->bits : 0);
}

static void cu_synchronize(ivl_backend *be) {
    CUDA_CHECK(cudaStreamSynchronize(cuda_ctx_of(be)->stream));
}

// ---------------------------------------------------------------- extension table

static void *ext_stream(ivl_backend *be) { return (void *)cuda_ctx_of(be)->stream; }
static int ext_device(ivl_backend *be) { return cuda_ctx_of(be)->device; }
static int ext_cc(ivl_backend *be) { return cuda_ctx_of(be)->cc; }
static int ext_mem_info(ivl_backend *be, size_t *fr, size_t *tot) {
    CUDA_CHECK(cudaSetDevice(cuda_ctx_of(be)->device));
    CUDA_CHECK(cudaMemGetInfo(fr, tot));
    return 0;
}

// ---------------------------------------------------------------- create / destroy

static void cu_destroy(ivl_backend *be) {
    cuda_ctx *c = cuda_ctx_of(be);
    cudaStreamSynchronize(c->stream);
    for (int i = 0; i < IVL_SCR_COUNT; i++) cuda_dev_free(c, c->scr[i]);
    cuda_matmul_plans_free(c);
    if (c->workspace) cuda_dev_free(c, c->workspace);
    cudaStreamSynchronize(c->stream);
    cublasLtDestroy(c->lt);
    cudaStreamDestroy(c->stream);
    free(c->rope_host);
    for (int i = 0; i < IVL_SCR_COUNT; i++) free(c->up_host[i]);
    free(c);
    free(be);
}

static int env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

IVL_EXPORT ivl_backend *ivl_cuda_backend_create(int device) {
    int count = 0;
    CUDA_CHECK(cudaGetDeviceCount(&count));
    IVL_CHECK(device >= 0 && device < count, "CUDA device %d requested, this node has %d",
              device, count);
    CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, device));

    cuda_ctx *c = (cuda_ctx *)ivl_calloc(1, sizeof *c);
    c->ext.abi_version = IVL_CUDA_EXT_ABI;
    c->ext.stream = ext_stream;
    c->ext.device = ext_device;
    c->ext.cc = ext_cc;
    c->ext.mem_info = ext_mem_info;
    c->ext.fill_random = cuda_fill_random;
    c->device = device;
    c->cc = p.major * 10 + p.minor;
    c->sm_count = p.multiProcessorCount;
    c->smem_optin = p.sharedMemPerBlockOptin ? p.sharedMemPerBlockOptin : p.sharedMemPerBlock;
    // IVL_CUDA_EMULATE_CC=75 (or 70): take the kernel and dtype choices of an older card on this
    // one (fp16 compute, WMMA attention, that card's shared memory per block), so the pre-Ampere
    // path can be checked on whatever GPU is at hand. The binary's code is still this card's.
    const char *emu = getenv("IVL_CUDA_EMULATE_CC");
    if (emu && *emu) {
        int e = atoi(emu);
        IVL_CHECK(e >= 60 && e <= c->cc, "IVL_CUDA_EMULATE_CC=%s: give a compute capability x 10 "
                  "between 60 and this card's %d", emu, c->cc);
        c->cc = e;
        if (e < 80 && c->smem_optin > 65536) c->smem_optin = e >= 70 ? 65536 : 49152;
        LOG_WARN("CUDA: emulating sm_%d kernel choices on %s (IVL_CUDA_EMULATE_CC)", e, p.name);
    }
#ifdef IVL_DEBUG_SYNC
    c->debug_sync = 1;
#endif
    if (env_flag("IVL_CUDA_DEBUG_SYNC")) c->debug_sync = 1;
    const char *uc = getenv("IVL_CUDA_UPLOAD_CACHE");
    c->upload_cache = !(uc && !strcmp(uc, "0"));
    IVL_CHECK(c->cc >= 60, "GPU %s is sm_%d%d; the engine needs sm_60 or newer", p.name, p.major,
              p.minor);

    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    int pools = 0;
    cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device);
    c->use_pool = pools && !env_flag("IVL_CUDA_NO_POOL");
    if (c->use_pool) {
        // Keep freed memory in the pool (a caching allocator): the model frees and
        // re-allocates activations every forward.
        cudaMemPool_t pool;
        CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
        uint64_t thr = UINT64_MAX;
        CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &thr));
    }
    CUBLAS_CHECK(cublasLtCreate(&c->lt));
    c->workspace_size = 32u << 20;   // cuBLASLt recommends 32 MiB on Hopper
    c->workspace = cuda_dev_alloc(c, c->workspace_size);

    ivl_backend *be = (ivl_backend *)ivl_calloc(1, sizeof *be);
    be->name = "cuda";
    // bf16 needs sm_80 tensor cores for cuBLASLt; older cards compute in fp16.
    be->dtype = c->cc >= 80 ? IVL_BF16 : IVL_F16;
    if (be->dtype == IVL_F16)
        LOG_WARN("CUDA: %s (sm_%d) has no bf16 tensor cores: computing in fp16 instead of the "
                 "model's bf16 (the same weights; activations beyond +-65504 would overflow)",
                 p.name, c->cc);
    snprintf(be->device_name, sizeof be->device_name, "%s", p.name);
    be->ctx = c;
    be->destroy = cu_destroy;
    be->alloc = cu_alloc;
    be->free = cu_free;
    be->upload = cu_upload;
    be->download = cu_download;
    be->copy = cu_copy;
    be->zero = cu_zero;
    be->synchronize = cu_synchronize;
    be->matmul = cuda_op_matmul;
    be->rmsnorm = cuda_op_rmsnorm;
    be->sumsq_rows = cuda_op_sumsq_rows;
    be->rmsnorm_ss = cuda_op_rmsnorm_ss;
    be->layernorm = cuda_op_layernorm;
    be->gelu = cuda_op_gelu;
    be->silu_mul = cuda_op_silu_mul;
    be->add = cuda_op_add;
    be->add_scaled = cuda_op_add_scaled;
    be->scale = cuda_op_scale;
    be->rope = cuda_op_rope;
    be->attention = cuda_op_attention;
    be->embed = cuda_op_embed;
    be->patch_embed = cuda_op_patch_embed;
    be->pixel_shuffle = cuda_op_pixel_shuffle;
    be->argmax = cuda_op_argmax;
    be->scatter_rows = cuda_op_scatter_rows;
    be->attention_batch = cuda_op_attention_batch;
    be->matmul_n = cuda_op_matmul_n;
    be->matmul_glu = cuda_op_matmul_glu;
    be->upload_quant = cu_upload_quant;
    size_t fr = 0, tot = 0;
    CUDA_CHECK(cudaMemGetInfo(&fr, &tot));
    LOG_INFO("CUDA backend: device %d %s (sm_%d%d, %d SMs, %.1f/%.1f GiB free), compute %s%s",
             device, p.name, p.major, p.minor, c->sm_count, fr / 1073741824.0,
             tot / 1073741824.0, ivl_dtype_name(be->dtype),
             c->debug_sync ? ", debug sync after every kernel" : "");
    return be;
}
