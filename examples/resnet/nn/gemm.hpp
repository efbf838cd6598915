#pragma once
/// \file gemm.hpp
/// The matrix product the convolutions are made of, in the one form they need:
///
///   C[i][j] (= or +=) sum over segments s, rows r < k of  A_s[i][r] * B_s[r][j]
///     A_s[i][r] = a[i * a_m + r * a_k + s * a_seg]      (any strides: broadcast, never packed)
///     B_s[r][j] = b[b_seg[s] + r * ldb + j]             (rows contiguous along j)
///     C[i][j]   = c[i * ldc + j]
///
/// C is m x n, one row per output channel (or weight row), its columns the pixels: a row of C
/// and the rows of B are contiguous, so the kernel vectorizes along j and reads B in place.
/// The segments are the kernel rows of a row-lowered convolution (row_lowering.hpp: B_s is the
/// lowered image at the view of kernel row s), or the k x k taps of a direct one (conv2d.hpp:
/// B_s is the image shifted by the tap, masked to the image), so a whole convolution is ONE
/// product whose sum stays in registers, where Eigen needed k products, each packing both
/// operands.
///
/// With AVX-512 (float), a register-blocked kernel: MR rows of C x NV vectors of 16 columns
/// (4 x 4, or 8 x 2 and 16 x 1 for the narrow C of weight gradients: 16 of the 32 zmm registers
/// accumulate), one broadcast of A and NV loads of B per MR * NV FMAs; the last columns are masked.
/// Otherwise (no AVX-512, or double) a plain Eigen product per segment. Each element of C is summed
/// by one call in a fixed order (segments, then rows), so the result does not depend on how the
/// callers split the work between threads.

#include "common.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace swarmsgd::examples::resnet::nn {

/// Whether gemm() has its AVX-512 kernel (for float) in this build.
#if defined(__AVX512F__)
inline constexpr bool gemm_has_simd = true;
#else
inline constexpr bool gemm_has_simd = false;
#endif

/// A operand of gemm(): element (i, r) of segment s at data[i * m_stride + r * k_stride +
/// s * seg_stride].
template <class T>
struct gemm_lhs {
    const T* data = nullptr;
    std::ptrdiff_t m_stride = 0;    ///< between rows of C
    std::ptrdiff_t k_stride = 1;    ///< along the reduction
    std::ptrdiff_t seg_stride = 0;  ///< between segments
};

/// B operand of gemm(): element (r, j) of segment s at data[seg_offset[s] + r * row_stride + j]
/// (seg_offset null: offset 0, for a single segment). With a mask (the convolution straight
/// from the image, where a segment is a kernel tap), element (r, j) of segment s is read only
/// where bit j % 16 of mask[s * mask_stride + j / 16] is set, and counts as 0 elsewhere
/// (the padding): those elements need not be valid memory.
template <class T>
struct gemm_rhs {
    const T* data = nullptr;
    std::ptrdiff_t row_stride = 0;
    const std::ptrdiff_t* seg_offset = nullptr;
    const std::uint16_t* mask = nullptr;
    std::ptrdiff_t mask_stride = 0;
};

namespace gemm_detail {

/// The portable path: one Eigen product per segment; with a mask, plain loops.
template <class T>
void gemm_eigen(int m, int n, int k, int segments, const gemm_lhs<T>& a, const gemm_rhs<T>& b, T* c,
                std::ptrdiff_t ldc, bool accumulate) {
    using strided = Eigen::Map<const row_matrix<T>, Eigen::Unaligned,
                               Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;
    row_map<T> C(c, m, n, Eigen::OuterStride<>(ldc));
    if (!accumulate) C.setZero();
    for (int s = 0; s < segments && k > 0; ++s) {
        const T* bs = b.data + (b.seg_offset == nullptr ? 0 : b.seg_offset[s]);
        if (b.mask != nullptr) {
            const std::uint16_t* ms = b.mask + s * b.mask_stride;
            for (int i = 0; i < m; ++i)
                for (int r = 0; r < k; ++r) {
                    const T ai = a.data[i * a.m_stride + r * a.k_stride + s * a.seg_stride];
                    for (int j = 0; j < n; ++j)
                        if ((ms[j / 16] >> (j % 16)) & 1u)
                            c[i * ldc + j] += ai * bs[r * b.row_stride + j];
                }
            continue;
        }
        const strided A(a.data + s * a.seg_stride, m, k,
                        Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(a.m_stride, a.k_stride));
        C.noalias() += A * const_row_map<T>(bs, k, n, Eigen::OuterStride<>(b.row_stride));
    }
}

#if defined(__AVX512F__)

/// Tile of MR rows x NV vectors of C at columns [j, j + 16 NV); `tail` selects the valid
/// columns of the last vector.
template <int MR, int NV>
void kernel(int k, int segments, const gemm_lhs<float>& a, const float* a_data,
            const gemm_rhs<float>& b, int j, float* c, std::ptrdiff_t ldc, bool accumulate,
            __mmask16 tail) {
    // Flat arrays and full unrolling, so that GCC keeps them in registers.
    __m512 acc[MR * NV];
#pragma GCC unroll 32
    for (int t = 0; t < MR * NV; ++t) acc[t] = _mm512_setzero_ps();
    for (int s = 0; s < segments; ++s) {
        const float* as = a_data + s * a.seg_stride;
        const float* bs = b.data + (b.seg_offset == nullptr ? 0 : b.seg_offset[s]) + j;
        __mmask16 mv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            mv[v] = v == NV - 1 ? tail : __mmask16(0xFFFF);
            if (b.mask != nullptr) mv[v] &= b.mask[s * b.mask_stride + j / 16 + v];
        }
        for (int r = 0; r < k; ++r, as += a.k_stride, bs += b.row_stride) {
            __m512 bv[NV];
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) {
                bv[v] = _mm512_maskz_loadu_ps(mv[v], bs + 16 * v);
                asm("" : "+v"(bv[v]));  // one load each, not one per row of the tile
            }
#pragma GCC unroll 16
            for (int i = 0; i < MR; ++i) {
                const __m512 ai = _mm512_set1_ps(as[i * a.m_stride]);
#pragma GCC unroll 8
                for (int v = 0; v < NV; ++v)
                    acc[i * NV + v] = _mm512_fmadd_ps(ai, bv[v], acc[i * NV + v]);
            }
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
        float* ci = c + i * ldc + j;
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            const __mmask16 mv = v == NV - 1 ? tail : __mmask16(0xFFFF);
            __m512 out = acc[i * NV + v];
            if (accumulate) out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mv, ci + 16 * v));
            _mm512_mask_storeu_ps(ci + 16 * v, mv, out);
        }
    }
}

/// Columns [j, j + 16 V) of C (the last vector masked by `tail`), every row: tiles of MR rows,
/// then one tile of the m % MR last rows. The B panel of these columns stays in the L1 cache.
template <int MR, int V>
void column_block(int m, int k, int segments, const gemm_lhs<float>& a, const gemm_rhs<float>& b,
                  float* c, std::ptrdiff_t ldc, bool accumulate, int j, __mmask16 tail) {
    const auto run = [&]<int R>(int i) {
        kernel<R, V>(k, segments, a, a.data + i * a.m_stride, b, j, c + i * ldc, ldc, accumulate,
                     tail);
    };
    int i = 0;
    for (; i + MR <= m; i += MR) run.template operator()<MR>(i);
    const int rest = m - i;  // < MR
    [&]<int... R>(std::integer_sequence<int, R...>) {
        ((R + 1 == rest ? run.template operator()<R + 1>(i) : void()), ...);
    }
    (std::make_integer_sequence<int, MR - 1>{});
}

/// The whole product in tiles of MR rows x NV vectors (MR * NV accumulators, NV + 1 registers
/// for the operands): column blocks of 16 NV, the last one narrower.
template <int MR, int NV>
void gemm_tiled(int m, int n, int k, int segments, const gemm_lhs<float>& a,
                const gemm_rhs<float>& b, float* c, std::ptrdiff_t ldc, bool accumulate) {
    int j = 0;
    for (; j + 16 * NV <= n; j += 16 * NV)
        column_block<MR, NV>(m, k, segments, a, b, c, ldc, accumulate, j, 0xFFFF);
    const int rest = n - j;  // < 16 NV: ceil(rest / 16) vectors, the last one masked
    if (rest == 0) return;
    const auto tail = static_cast<__mmask16>((1u << ((rest - 1) % 16 + 1)) - 1u);
    [&]<int... V>(std::integer_sequence<int, V...>) {
        ((V + 1 == (rest + 15) / 16
              ? column_block<MR, V + 1>(m, k, segments, a, b, c, ldc, accumulate, j, tail)
              : void()),
         ...);
    }
    (std::make_integer_sequence<int, NV>{});
}

/// dst[j][i] = src[i][j] for a 16 x 16 block: src rows ld_src apart, dst rows ld_dst apart.
inline void transpose16(const float* src, std::size_t ld_src, float* dst, std::size_t ld_dst) {
    // The maskz forms, all lanes: the plain ones start from _mm512_undefined_ps(), which GCC 12
    // reports as used uninitialized where this is not inlined.
    constexpr __mmask16 all = 0xFFFF;
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + static_cast<std::size_t>(i) * ld_src);
    for (int i = 0; i < 16; i += 2) {  // interleave pairs of rows
        t[i] = _mm512_maskz_unpacklo_ps(all, r[i], r[i + 1]);
        t[i + 1] = _mm512_maskz_unpackhi_ps(all, r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {  // then pairs of pairs: 4 x 4 blocks per 128-bit lane
        r[i] = _mm512_maskz_shuffle_ps(all, t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_maskz_shuffle_ps(all, t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_maskz_shuffle_ps(all, t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_maskz_shuffle_ps(all, t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int h = 0; h < 16; h += 8) {  // then the 128-bit lanes, in two rounds
        for (int i = 0; i < 4; ++i) {
            t[h + i] = _mm512_maskz_shuffle_f32x4(all, r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_maskz_shuffle_f32x4(all, r[h + i], r[h + i + 4], 0xdd);
        }
    }
    for (int i = 0; i < 8; ++i) {
        r[i] = _mm512_maskz_shuffle_f32x4(all, t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_maskz_shuffle_f32x4(all, t[i], t[i + 8], 0xdd);
    }
    for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + static_cast<std::size_t>(i) * ld_dst, r[i]);
}

#endif

}  // namespace gemm_detail

/// dst [cols][rows] = src^T, src: rows x cols with row stride ld: the operand of a gemm()
/// whose C is transposed. In 16 x 16 blocks (AVX-512 shuffles for float when Simd).
template <class T, bool Simd = gemm_has_simd>
void transpose(std::size_t rows, std::size_t cols, const T* src, std::size_t ld, T* dst) {
    constexpr std::size_t block = 16;
    for (std::size_t i0 = 0; i0 < rows; i0 += block) {
        for (std::size_t j0 = 0; j0 < cols; j0 += block) {
#if defined(__AVX512F__)
            if constexpr (Simd && std::is_same_v<T, float>) {
                if (i0 + block <= rows && j0 + block <= cols) {
                    gemm_detail::transpose16(src + i0 * ld + j0, ld, dst + j0 * rows + i0, rows);
                    continue;
                }
            }
#endif
            for (std::size_t i = i0; i < std::min(rows, i0 + block); ++i)
                for (std::size_t j = j0; j < std::min(cols, j0 + block); ++j)
                    dst[j * rows + i] = src[i * ld + j];
        }
    }
}

/// C (m x n, row stride ldc) = sum over `segments` segments of A_s (m x k) * B_s (k x n), or
/// C += that sum (accumulate). See the file comment for the operands. Simd = false forces the
/// portable path (tests compare both).
template <class T, bool Simd = gemm_has_simd>
void gemm(int m, int n, int k, int segments, const gemm_lhs<T>& a, const gemm_rhs<T>& b, T* c,
          std::ptrdiff_t ldc, bool accumulate) {
    if (m <= 0 || n <= 0) return;
#if defined(__AVX512F__)
    if constexpr (Simd && std::is_same_v<T, float>) {
        // 16 accumulators whatever the width (a weight gradient's C is only 16-64 wide); rows
        // in multiples of the tile's for the network's channel counts (measured best on Zen 5)
        if (n <= 16) {
            gemm_detail::gemm_tiled<16, 1>(m, n, k, segments, a, b, c, ldc, accumulate);
        } else if (n <= 32) {
            gemm_detail::gemm_tiled<8, 2>(m, n, k, segments, a, b, c, ldc, accumulate);
        } else {
            gemm_detail::gemm_tiled<4, 4>(m, n, k, segments, a, b, c, ldc, accumulate);
        }
        return;
    }
#endif
    gemm_detail::gemm_eigen(m, n, k, segments, a, b, c, ldc, accumulate);
}

}  // namespace swarmsgd::examples::resnet::nn
