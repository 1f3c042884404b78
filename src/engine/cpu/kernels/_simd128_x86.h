// _simd128_x86.h: the WebAssembly SIMD intrinsics gemm.c uses, on x86-64 SSE.
//
// gemm.c is written against <wasm_simd128.h>. Its native build (gemm_x86_64.so,
// see gemm.c's NATIVE section) keeps that source and maps each intrinsic to the
// SSE instruction with the same result, so the packing, softmax and exp code
// is one text for both targets. Only the intrinsics gemm.c uses are here.
//
// Differences from WebAssembly, and why they do not reach a result:
// - f32x4.max propagates NaN and orders -0 below +0; maxps returns its second
//   operand then. softmax_row takes the max of scores, where ±0 give the same
//   shift and a NaN score makes the whole row NaN either way.
// - Everything else here is bit-exact (IEEE add, sub, mul, div, compares,
//   bit operations, fused multiply-add for MADD as relaxed_madd is on FMA CPUs).

#ifndef LLMC_SIMD128_X86_H
#define LLMC_SIMD128_X86_H

#include <immintrin.h>
#include <stdint.h>

typedef __m128 v128_t;

#define SIMD_INLINE static inline __attribute__((always_inline))

SIMD_INLINE v128_t wasm_v128_load(const void* p) { return _mm_loadu_ps((const float*)p); }
SIMD_INLINE void wasm_v128_store(void* p, v128_t v) { _mm_storeu_ps((float*)p, v); }
SIMD_INLINE v128_t wasm_v128_load32_splat(const void* p) { return _mm_set1_ps(*(const float*)p); }
SIMD_INLINE v128_t wasm_f32x4_splat(float x) { return _mm_set1_ps(x); }
SIMD_INLINE v128_t wasm_i32x4_splat(int32_t x) { return _mm_castsi128_ps(_mm_set1_epi32(x)); }

SIMD_INLINE v128_t wasm_f32x4_add(v128_t a, v128_t b) { return _mm_add_ps(a, b); }
SIMD_INLINE v128_t wasm_f32x4_sub(v128_t a, v128_t b) { return _mm_sub_ps(a, b); }
SIMD_INLINE v128_t wasm_f32x4_mul(v128_t a, v128_t b) { return _mm_mul_ps(a, b); }
SIMD_INLINE v128_t wasm_f32x4_div(v128_t a, v128_t b) { return _mm_div_ps(a, b); }
SIMD_INLINE v128_t wasm_f32x4_max(v128_t a, v128_t b) { return _mm_max_ps(a, b); }
SIMD_INLINE v128_t wasm_f32x4_lt(v128_t a, v128_t b) { return _mm_cmplt_ps(a, b); }
SIMD_INLINE v128_t wasm_f32x4_ge(v128_t a, v128_t b) { return _mm_cmpge_ps(a, b); }
SIMD_INLINE v128_t wasm_f32x4_abs(v128_t a) {
  return _mm_and_ps(a, _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff)));
}
SIMD_INLINE v128_t wasm_f32x4_neg(v128_t a) {
  return _mm_xor_ps(a, _mm_castsi128_ps(_mm_set1_epi32((int32_t)0x80000000u)));
}
SIMD_INLINE float wasm_f32x4_extract_lane_(v128_t v, int lane) {
  float lanes[4];
  _mm_storeu_ps(lanes, v);
  return lanes[lane];
}
#define wasm_f32x4_extract_lane(v, lane) wasm_f32x4_extract_lane_((v), (lane))

SIMD_INLINE v128_t wasm_i32x4_sub(v128_t a, v128_t b) {
  return _mm_castsi128_ps(_mm_sub_epi32(_mm_castps_si128(a), _mm_castps_si128(b)));
}
#define wasm_i32x4_shl(a, bits) _mm_castsi128_ps(_mm_slli_epi32(_mm_castps_si128(a), (bits)))
// a & ~b, and v1 where c is set else v2: the operands of andnot are swapped on x86.
SIMD_INLINE v128_t wasm_v128_andnot(v128_t a, v128_t b) { return _mm_andnot_ps(b, a); }
SIMD_INLINE v128_t wasm_v128_bitselect(v128_t v1, v128_t v2, v128_t c) {
  return _mm_or_ps(_mm_and_ps(v1, c), _mm_andnot_ps(c, v2));
}
// Lanes i0..i3 of the concatenation a:b (0-3 from a, 4-7 from b).
#define wasm_i32x4_shuffle(a, b, i0, i1, i2, i3) \
  ((v128_t)__builtin_shuffle((__v4sf)(a), (__v4sf)(b), (__v4si){i0, i1, i2, i3}))

#endif
