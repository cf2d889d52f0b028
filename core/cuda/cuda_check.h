// cuda_check.h - CUDA_CHECK / CUBLAS_CHECK: run a CUDA runtime or cuBLAS(Lt) call and end the
// job through ivl_fatal_call (core/check.h) with the statement and the library's message when
// it fails. Used only inside core/cuda/ (the module); engine code never sees CUDA types.
#ifndef IVL_CUDA_CHECK_H
#define IVL_CUDA_CHECK_H

#include <cublasLt.h>
#include <cuda_runtime.h>

// check.h is C11: in C++ (nvcc) _Noreturn is spelled [[noreturn]], and the names are C.
#if defined(__cplusplus) && !defined(_Noreturn)
#define _Noreturn [[noreturn]]
#endif
#ifdef __cplusplus
extern "C" {
#endif
#include "core/check.h"
#ifdef __cplusplus
}
#endif

// cuBLAS has no status-to-string before 11.4 in cublasLt; cublasGetStatusString lives in
// libcublas, which we do not link (cuBLASLt only), so name the codes ourselves.
static inline const char *ivl_cublas_status_str(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED (out of device memory?)";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
    }
}

#define CUDA_CHECK(call)                                                                  \
    do {                                                                                  \
        cudaError_t ivl_err_ = (call);                                                    \
        if (ivl_err_ != cudaSuccess)                                                      \
            ivl_fatal_call("CUDA", #call, cudaGetErrorString(ivl_err_), __FILE__, __LINE__, \
                           __func__);                                                     \
    } while (0)

#define CUBLAS_CHECK(call)                                                                \
    do {                                                                                  \
        cublasStatus_t ivl_st_ = (call);                                                  \
        if (ivl_st_ != CUBLAS_STATUS_SUCCESS)                                             \
            ivl_fatal_call("cuBLAS", #call, ivl_cublas_status_str(ivl_st_), __FILE__,      \
                           __LINE__, __func__);                                           \
    } while (0)

#endif
