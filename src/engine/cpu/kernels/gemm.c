// gemm.c: single-precision GEMM for wasm32 + 128-bit SIMD, shared by threads.
//
//   C[m,n] (+)= A[m,k] · B[k,n]
//
// A and B are read through element strides, so one routine serves all three
// callers in src/engine/cpu/gemm.ts:
//   matmulTransposed  y = x · wᵀ   A(i,p) = x[i*k + p]   B(p,j) = w[j*k + p]
//   matmul            y = a · b    A(i,p) = a[i*k + p]   B(p,j) = b[p*n + j]
//   accumulateGram    h += xᵀ · x  A(i,p) = x[p*k + i]   B(p,j) = x[p*k + j]
//
// A job may hold a batch of such products at fixed element strides (the heads
// of attention). Blocking (Goto/BLIS order). Each output is cut into column
// stripes of width `nc`; each stripe of each batch is one task, claimed by whichever thread is free (an atomic
// counter in the job block), which balances the load when a core is busy with
// something else. In a stripe, for each KC-deep slice of k, B's slice is packed
// into NR-wide micro-panels (KC × NR floats, contiguous, zero-padded); then for
// each block of MC rows, A's block is packed into MR-tall micro-panels and
// every MR × NR tile runs the micro-kernel: the B micro-panel stays in L1
// while the packed block of A (MC × KC, 256 KiB) stays in L2.
//
// Micro-kernel: MR × NR = 4 × 8 outputs in eight f32x4 accumulators; per k
// step two B vector loads, four broadcasts (`v128.load32_splat`) and eight
// multiply-adds. Eleven live vector registers, which V8's x64 code generator
// keeps in xmm registers: alone it runs 36.7 GFLOP per CPU-second on a Zen 2
// core at 2.45 GHz (94 % of its 128-bit FMA peak). 6 × 8 (fifteen registers)
// measured 19 and 5 × 8 16: V8 spills them.
//
// Fused multiply-add: built with -mrelaxed-simd, MADD is f32x4.relaxed_madd,
// which V8 lowers to vfmadd231ps on CPUs with FMA3. The plain build multiplies
// and adds (two roundings); the loader picks the relaxed build when the runtime
// validates it.
//
// Threads: every thread instantiates this module on the same shared memory and
// calls gemm_run(job, gen, tid); the code uses no globals and has no data, and it
// never touches the C stack (all scratch lives in the per-thread region the job
// names), so instances cannot step on each other.

#include <stdint.h>

// Native build (gemm_x86_64.so, `deno task build-wasm` with gcc): the same
// code for x86-64 with AVX2 + FMA, called through Deno's FFI by the same
// threads on the same shared memory. Two things differ:
// - Addresses in the job block are byte offsets into the WebAssembly memory;
//   natively they are added to the memory's base pointer (MEM below), which
//   is the same in every thread because the memory is shared.
// - The micro-kernel is 8 × 8 outputs in eight 256-bit registers (MR 8), with
//   vfmadd231ps as relaxed_madd is on FMA CPUs. Every output is still summed
//   over p in order, one fused multiply-add a step, KC slices in order, so
//   the native and the relaxed-SIMD builds give the same bits.
// The packing, softmax and exp code is shared: _simd128_x86.h maps the
// WebAssembly intrinsics it uses onto SSE.
#ifdef __wasm__
#include <wasm_simd128.h>
#define MR 4
#define MEM(base, address) ((void*)(uintptr_t)(uint32_t)(address))
#else
#include <cpuid.h>
// 1 when this CPU and OS can run the native build: AVX2 and FMA, and the OS
// saves the ymm registers (OSXSAVE, XCR0 bits 1 and 2). Compiled before the
// target pragma below, so it runs on any x86-64.
__attribute__((visibility("default"))) int llmc_gemm_supported(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  if (!fma || !osxsave || !avx) return 0;
  unsigned xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 6) != 6) return 0;
  if (__get_cpuid_max(0, 0) < 7) return 0;
  __cpuid_count(7, 0, a, b, c, d);
  return (b >> 5) & 1;  // AVX2
}
#pragma GCC target("avx2,fma")
#include "_simd128_x86.h"
#define MR 8
#define MEM(base, address) ((void*)((base) + (uint32_t)(address)))
#endif
#define NR 8
// KC 512 rather than 256: each tile of C is loaded and stored once per KC
// slice, and C's rows (often 4 KiB apart, the same cache sets) miss; halving
// the slices gave 5-8 % at 1024³ on a 2-core Zen 3 EPYC. The B micro-panel
// (KC × NR, 16 KiB) still fits the 32 KiB L1 and the A block (MC × KC,
// 256 KiB) the 512 KiB L2.
#define KC 512
#define MC 128

#if defined(__wasm_relaxed_simd__)
#define MADD(a, b, c) __builtin_wasm_relaxed_madd_f32x4((a), (b), (c))
#elif !defined(__wasm__)
#define MADD(a, b, c) _mm_fmadd_ps((a), (b), (c))
#else
#define MADD(a, b, c) wasm_f32x4_add(wasm_f32x4_mul((a), (b)), (c))
#endif

// The job block, int32 slots in linear memory. gemm.ts writes every field
// except CLAIM/DONE's progress, then publishes the job by storing CLAIM last.
enum {
  J_CLAIM = 0,    // (gen << 16) | next unclaimed task
  J_DONE = 1,     // tasks finished
  J_WAKE = 2,     // workers wait on this word (gemm.ts only)
  J_NTASKS = 3,   // batches × stripes per batch
  J_M = 4,
  J_N = 5,
  J_K = 6,
  J_A = 7,        // byte address of A
  J_A_RS = 8,     // A(i,p) = a[i*A_RS + p*A_CS]
  J_A_CS = 9,
  J_B = 10,
  J_B_RS = 11,    // B(p,j) = b[p*B_RS + j*B_CS]
  J_B_CS = 12,
  J_C = 13,
  J_LDC = 14,     // C(i,j) = c[i*LDC + j]
  J_ACCUMULATE = 15,  // 1: C += A·B, 0: C = A·B
  J_UNUSED_16 = 16,  // free (was the plain stripes' upper-triangle flag; run_gram_upper replaced it)
  J_NC = 17,      // stripe width, a multiple of NR
  J_SCRATCH = 18, // byte address of thread 0's scratch region
  J_SCRATCH_STRIDE = 19,  // bytes between threads' scratch regions
  J_FAILED = 20,  // set to UNKNOWN_OP by a task whose op this build lacks
  // 21, 22: STOP, WORKER_TASKS (gemm.ts only)
  J_NSTRIPES = 23,  // column stripes per batch
  J_A_BS = 24,      // batch b uses A + b*A_BS, C + b*C_BS (elements)
  J_B_BS = 25,      // ... and B + (b / B_GROUP)*B_BS: B_GROUP batches share
  J_C_BS = 26,      //     one B (grouped-query attention's key/value heads)
  J_B_GROUP = 27,
  J_CAUSAL = 28,         // 1: causal attention scores, 2: causal attention values
  J_CAUSAL_OFFSET = 29,  // query i sees keys j <= i + offset (kvLen - seq)
  J_OP = 30,             // 0: GEMM, 1: attention softmax (see run_softmax), 2: pack B,
                         // 3: SwiGLU (run_silu_mul), 4: GPTQ column block, 5: RMS norm,
                         // 6: causal attention fused (run_attention), 7: Walsh–Hadamard
                         // 20: Cholesky block, 21: lower-triangular inverse block,
                         // 22: ordered float64 sum, 23: ordered float64 dot,
                         // 24: GPTQ column block with a zero mask, 25: SparseGPT N:M block
                         // (run_cholesky_block and after), 26: element-wise sum (run_add),
                         // 27: RoPE in place (run_rope), 28: host copy (run_copy, native),
                         // 35: row minima and maxima,
                         // 36: column minima and maxima, 40: integer-grid fake
                         // quantization of rows, 41: rows' sums of squared differences
                         // (run_row_squared_error), 44: FP8 fake quantization of rows,
                         // 56: residual sum into a host array (run_add_host, native),
                         // 57: SwiGLU into a host array, 58: RMS norm between host arrays,
                         // 60: pack B (as 2) from a host array at J_Q_SCALE : J_Q_ZERO when
                         // not 0 : 0, 61: a Gram's upper triangle against packed x (run_gram_upper),
                         // 62: a Hessian's update from a Gram block into a host array
  J_WINDOW = 31,         // softmax: keys visible per query, 0 for all
  J_SCALE = 32,          // softmax: the score scale, as float32 bits
  // Products whose B is packed once (see run_rows and run_pack_b):
  J_PACKED = 33,   // byte address of packed B, 0 for the stripe path
  J_NPAD = 34,     // n rounded up to NR: floats per k step of packed B
  J_P0 = 35,       // pack job: B's rows from P0 (a multiple of KC; whole
  J_J0 = 36,       //   slices, NTASKS / groups of them) and columns [J0, J1)
  J_J1 = 37,       //   (J0 a multiple of NR) are staged at J_B
  J_GROUP = 38,    // pack job: micro-panels per task
  // A product against packed B in the native build reads A from a host array
  // instead when J_P0 : J_J0 (its address, low half first) is not 0 : 0, and
  // writes C into one when J_J1 : J_GROUP is not.
  // GPTQ column block (J_OP 4, see run_column_block); A, B, C, M, K, NC as there.
  J_Q_SCALE = 39,      // byte address of the effective scale per slot (f32)
  J_Q_ZERO = 40,       // ... of the zero point per slot (f32)
  J_Q_SLOT = 41,       // ... of the block's columns' slot column (u32, K of them)
  J_Q_ROW_DIV = 42,    // rows that share a slot row
  J_Q_SLOT_STRIDE = 43,  // slots per slot row
  J_Q_MIN = 44,        // clamp bounds, as float32 bits (J_OP 25: N and M, ints; J_OP 40 and 44 too)
  J_Q_MAX = 45,
  J_TERMS = 46,        // byte address of the loss terms (f64, M × K); J_OP 20, 21: of an int32 status
  J_EPS = 48,          // rmsnorm (J_OP 5): epsilon, a float64 in slots 48 and 49
  J_V = 50,            // fused attention (J_OP 6): byte address of v; J_OP 24, 25: of the mask
  J_FWHT_SCALE = 52,   // Walsh–Hadamard (J_OP 7): the scale, a float64 in slots 52 and 53
  J_FWHT_SIGNS = 54,   // Walsh–Hadamard: byte address of N float32 factors, one per run position (0: none)
  J_FWHT_SIGNS_FIRST = 55,  // 1: the factors multiply before the butterflies, 0: after the scale
};

// The hot routines stay separate wasm functions: V8 first runs a module
// through its baseline compiler (Liftoff, several times slower here) and
// optimizes one function at a time, and a call already running keeps its
// code. As separate functions, the micro-kernel is optimized after its first
// calls and later tiles of the same product use the fast code; inlined into
// one large function, a whole first product ran at baseline speed (84 ms
// instead of 9 at 512³).
#define NOINLINE __attribute__((noinline))

static inline int min_int(int a, int b) { return a < b ? a : b; }

// Claims the next task of generation `gen`; -1 when there is none (all
// claimed, or the job has moved on to a newer generation).
static int claim(int32_t* job, int gen) {
  int32_t cur = __atomic_load_n(&job[J_CLAIM], __ATOMIC_SEQ_CST);
  for (;;) {
    if ((cur >> 16) != gen) return -1;
    if ((cur & 0xffff) >= job[J_NTASKS]) return -1;
    if (__atomic_compare_exchange_n(&job[J_CLAIM], &cur, cur + 1, 0, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST)) {
      return cur & 0xffff;
    }
  }
}

#ifndef __wasm__
// A host array's 64-bit address from two job slots (low half first; native
// only: the WebAssembly builds cannot address host memory).
static inline float* host_at(const int32_t* job, int lo, int hi) {
  return (float*)(uintptr_t)(((uint64_t)(uint32_t)job[hi] << 32) | (uint32_t)job[lo]);
}
#endif

// An operand at byte offset job[at] of this memory, or (native build) in a
// host array whose address is in slots lo : hi when they are not 0 : 0.
static inline float* operand(char* base, const int32_t* job, int at, int lo, int hi) {
#ifndef __wasm__
  if (job[lo] | job[hi]) return host_at(job, lo, hi);
#else
  (void)lo, (void)hi;
#endif
  return (float*)MEM(base, job[at]);
}

// 4x4 transpose of rows r0..r3 (lanes = consecutive p) into columns.
#define TRANSPOSE4(r0, r1, r2, r3)                       \
  do {                                                    \
    v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5);   \
    v128_t t1 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);   \
    v128_t t2 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);   \
    v128_t t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);   \
    r0 = wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5);          \
    r1 = wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7);          \
    r2 = wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5);          \
    r3 = wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7);          \
  } while (0)

// Packs B(p, j) for p < kc, j < nc into NR-wide micro-panels:
// dst[(j / NR) * kc * NR + p * NR + j % NR], columns past nc zero.
NOINLINE static void pack_b(const float* b, int rs, int cs, int kc, int nc, float* dst) {
  for (int jr = 0; jr < nc; jr += NR) {
    const float* src = b + jr * cs;
    const int cols = min_int(NR, nc - jr);
    if (cols == NR && cs == 1) {
      // Rows of B are contiguous (matmul, Gram): copy two vectors per p.
      for (int p = 0; p < kc; p++) {
        wasm_v128_store(dst, wasm_v128_load(src));
        wasm_v128_store(dst + 4, wasm_v128_load(src + 4));
        src += rs;
        dst += NR;
      }
    } else if (cols == NR && rs == 1) {
      // Columns of B are contiguous (w[n,k] of matmulTransposed): transpose
      // 4 × 4 blocks from the eight source rows.
      int p = 0;
      for (; p + 4 <= kc; p += 4) {
        for (int h = 0; h < NR; h += 4) {
          v128_t r0 = wasm_v128_load(src + (h + 0) * cs + p);
          v128_t r1 = wasm_v128_load(src + (h + 1) * cs + p);
          v128_t r2 = wasm_v128_load(src + (h + 2) * cs + p);
          v128_t r3 = wasm_v128_load(src + (h + 3) * cs + p);
          TRANSPOSE4(r0, r1, r2, r3);
          wasm_v128_store(dst + 0 * NR + h, r0);
          wasm_v128_store(dst + 1 * NR + h, r1);
          wasm_v128_store(dst + 2 * NR + h, r2);
          wasm_v128_store(dst + 3 * NR + h, r3);
        }
        dst += 4 * NR;
      }
      for (; p < kc; p++) {
        for (int jj = 0; jj < NR; jj++) dst[jj] = src[jj * cs + p];
        dst += NR;
      }
    } else {
      for (int p = 0; p < kc; p++) {
        for (int jj = 0; jj < NR; jj++) dst[jj] = jj < cols ? src[p * rs + jj * cs] : 0.0f;
        dst += NR;
      }
    }
  }
}

// Packs A(i, p) for i < mc, p < kc into MR-tall micro-panels:
// dst[(i / MR) * kc * MR + p * MR + i % MR], rows past mc zero. Packing keeps
// the micro-kernel's reads contiguous; reading rows of A in place instead ran
// at half speed at k = 1024, whose 4 KiB row stride maps every row onto the
// same cache sets.
NOINLINE static void pack_a(const float* a, int rs, int cs, int mc, int kc, float* dst) {
  for (int ir = 0; ir < mc; ir += MR) {
    const float* src = a + ir * rs;
    const int rows = min_int(MR, mc - ir);
    if (rows == MR && rs == 1) {
      // Columns of A are contiguous (Gram): MR / 4 vectors per p.
      for (int p = 0; p < kc; p++) {
        for (int h = 0; h < MR; h += 4) wasm_v128_store(dst + h, wasm_v128_load(src + h));
        src += cs;
        dst += MR;
      }
    } else if (rows == MR && cs == 1) {
      // Rows of A are contiguous (x of matmul / matmulTransposed): transpose
      // 4 × 4 blocks from the MR source rows.
      int p = 0;
      for (; p + 4 <= kc; p += 4) {
        for (int h = 0; h < MR; h += 4) {
          v128_t r0 = wasm_v128_load(src + (h + 0) * rs + p);
          v128_t r1 = wasm_v128_load(src + (h + 1) * rs + p);
          v128_t r2 = wasm_v128_load(src + (h + 2) * rs + p);
          v128_t r3 = wasm_v128_load(src + (h + 3) * rs + p);
          TRANSPOSE4(r0, r1, r2, r3);
          wasm_v128_store(dst + 0 * MR + h, r0);
          wasm_v128_store(dst + 1 * MR + h, r1);
          wasm_v128_store(dst + 2 * MR + h, r2);
          wasm_v128_store(dst + 3 * MR + h, r3);
        }
        dst += 4 * MR;
      }
      for (; p < kc; p++) {
        for (int ii = 0; ii < MR; ii++) dst[ii] = src[ii * rs + p];
        dst += MR;
      }
    } else {
      for (int p = 0; p < kc; p++) {
        for (int ii = 0; ii < MR; ii++) dst[ii] = ii < rows ? src[ii * rs + p * cs] : 0.0f;
        dst += MR;
      }
    }
  }
}

// C[rows, cols] (+)= Apanel[kc, MR] · Bpanel[kc, NR] for one tile; the panels'
// padding rows and columns are zeros and their results are dropped. `edge` is
// MR*NR floats of scratch.
#ifdef __wasm__
NOINLINE static void micro_kernel(int kc, const float* a, int rows, const float* b, float* c, int ldc,
                      int cols, int store, float* edge) {
  v128_t c00 = wasm_f32x4_splat(0.0f), c01 = c00, c10 = c00, c11 = c00;
  v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int p = 0; p < kc; p++) {
    const v128_t b0 = wasm_v128_load(b);
    const v128_t b1 = wasm_v128_load(b + 4);
    v128_t x = wasm_v128_load32_splat(a);
    c00 = MADD(x, b0, c00);
    c01 = MADD(x, b1, c01);
    x = wasm_v128_load32_splat(a + 1);
    c10 = MADD(x, b0, c10);
    c11 = MADD(x, b1, c11);
    x = wasm_v128_load32_splat(a + 2);
    c20 = MADD(x, b0, c20);
    c21 = MADD(x, b1, c21);
    x = wasm_v128_load32_splat(a + 3);
    c30 = MADD(x, b0, c30);
    c31 = MADD(x, b1, c31);
    a += MR;
    b += NR;
  }
  if (rows == MR && cols == NR) {
    float* r0 = c;
    float* r1 = c + ldc;
    float* r2 = c + 2 * ldc;
    float* r3 = c + 3 * ldc;
    if (!store) {
      c00 = wasm_f32x4_add(c00, wasm_v128_load(r0));
      c01 = wasm_f32x4_add(c01, wasm_v128_load(r0 + 4));
      c10 = wasm_f32x4_add(c10, wasm_v128_load(r1));
      c11 = wasm_f32x4_add(c11, wasm_v128_load(r1 + 4));
      c20 = wasm_f32x4_add(c20, wasm_v128_load(r2));
      c21 = wasm_f32x4_add(c21, wasm_v128_load(r2 + 4));
      c30 = wasm_f32x4_add(c30, wasm_v128_load(r3));
      c31 = wasm_f32x4_add(c31, wasm_v128_load(r3 + 4));
    }
    wasm_v128_store(r0, c00);
    wasm_v128_store(r0 + 4, c01);
    wasm_v128_store(r1, c10);
    wasm_v128_store(r1 + 4, c11);
    wasm_v128_store(r2, c20);
    wasm_v128_store(r2 + 4, c21);
    wasm_v128_store(r3, c30);
    wasm_v128_store(r3 + 4, c31);
    return;
  }
  wasm_v128_store(edge + 0, c00);
  wasm_v128_store(edge + 4, c01);
  wasm_v128_store(edge + 8, c10);
  wasm_v128_store(edge + 12, c11);
  wasm_v128_store(edge + 16, c20);
  wasm_v128_store(edge + 20, c21);
  wasm_v128_store(edge + 24, c30);
  wasm_v128_store(edge + 28, c31);
  for (int i = 0; i < rows; i++) {
    for (int j = 0; j < cols; j++) {
      const float v = edge[i * NR + j];
      c[i * ldc + j] = store ? v : c[i * ldc + j] + v;
    }
  }
}

#else
// The native micro-kernel: MR × NR = 8 × 8 outputs, one 256-bit accumulator
// per row; per k step one B vector load, eight broadcasts and eight fused
// multiply-adds. Eight independent accumulators cover the FMA latency of two
// pipes of four cycles each; with B and the broadcast that is ten of the
// sixteen ymm registers.
NOINLINE static void micro_kernel(
    int kc, const float* a, int rows, const float* b, float* c, int ldc, int cols, int store,
    float* edge) {
  __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
  for (int p = 0; p < kc; p++) {
    const __m256 bv = _mm256_loadu_ps(b);
    c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 0), bv, c0);
    c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1), bv, c1);
    c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2), bv, c2);
    c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3), bv, c3);
    c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4), bv, c4);
    c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5), bv, c5);
    c6 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 6), bv, c6);
    c7 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 7), bv, c7);
    a += MR;
    b += NR;
  }
  __m256 acc[MR] = {c0, c1, c2, c3, c4, c5, c6, c7};
  if (rows == MR && cols == NR) {
    for (int i = 0; i < MR; i++) {
      float* r = c + i * ldc;
      const __m256 v = store ? acc[i] : _mm256_add_ps(acc[i], _mm256_loadu_ps(r));
      _mm256_storeu_ps(r, v);
    }
    return;
  }
  for (int i = 0; i < MR; i++) _mm256_storeu_ps(edge + i * NR, acc[i]);
  for (int i = 0; i < rows; i++) {
    for (int j = 0; j < cols; j++) {
      const float v = edge[i * NR + j];
      c[i * ldc + j] = store ? v : c[i * ldc + j] + v;
    }
  }
}

// Four rows of an MR-row A micro-panel (a: its row 0 or 4; the panel's rows
// are MR floats apart per k step) against three adjacent B micro-panels
// (b, b + bstride, b + 2·bstride): a 4 × 24 tile in twelve accumulators, per
// k step three B loads, four broadcasts and twelve fused multiply-adds. The
// 8 × 8 kernel above issues a load per multiply-add (a broadcast each); this
// one 7 per 12, which measured 94-99 GFLOP per CPU-second against 70-76 for
// the 8 × 8 on this machine's Zen 3 core (kc 256, 128 rows, 768 columns).
// Every output is still one fused multiply-add a step over p in order from
// 0, stored or added to C as there, so both kernels give the same bits.
NOINLINE static void micro_kernel_4x24(int kc, const float* a, const float* b, int bstride,
                                       float* c, int ldc, int store) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
  __m256 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
  const float* b1 = b + bstride;
  const float* b2 = b1 + bstride;
  for (int p = 0; p < kc; p++) {
    const __m256 x0 = _mm256_loadu_ps(b), x1 = _mm256_loadu_ps(b1), x2 = _mm256_loadu_ps(b2);
    __m256 av = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(av, x0, c00);
    c01 = _mm256_fmadd_ps(av, x1, c01);
    c02 = _mm256_fmadd_ps(av, x2, c02);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, x0, c10);
    c11 = _mm256_fmadd_ps(av, x1, c11);
    c12 = _mm256_fmadd_ps(av, x2, c12);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, x0, c20);
    c21 = _mm256_fmadd_ps(av, x1, c21);
    c22 = _mm256_fmadd_ps(av, x2, c22);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, x0, c30);
    c31 = _mm256_fmadd_ps(av, x1, c31);
    c32 = _mm256_fmadd_ps(av, x2, c32);
    a += MR;
    b += NR;
    b1 += NR;
    b2 += NR;
  }
  const __m256 acc[12] = {c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32};
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 3; j++) {
      float* r = c + i * ldc + j * NR;
      const __m256 v = acc[3 * i + j];
      _mm256_storeu_ps(r, store ? v : _mm256_add_ps(v, _mm256_loadu_ps(r)));
    }
  }
}
#endif

// C[mc, nc] (+)= the packed A block (mc × kc, MR-row micro-panels) times nc
// columns of packed B (consecutive KC-deep micro-panels from `panel`, kc · NR
// floats apart), tile by tile. In the native build whole triples of
// micro-panels and whole MR-row panels take the 4 × 24 kernel (twice per
// panel of rows); the rest the MR × NR one. Same bits either way.
static void block_tiles(int kc, const float* pa, int mc, const float* panel, int nc, float* c,
                        int ldc, int store, float* edge) {
  int jr = 0;
#ifndef __wasm__
  for (; jr + 3 * NR <= nc; jr += 3 * NR) {
    const float* b = panel + jr * kc;
    int ir = 0;
    for (; ir + MR <= mc; ir += MR) {
      float* tile = c + ir * ldc + jr;
      micro_kernel_4x24(kc, pa + ir * kc, b, kc * NR, tile, ldc, store);
      micro_kernel_4x24(kc, pa + ir * kc + 4, b, kc * NR, tile + 4 * ldc, ldc, store);
    }
    for (; ir < mc; ir += MR) {
      for (int q = 0; q < 3; q++) {
        micro_kernel(kc, pa + ir * kc, mc - ir, b + q * kc * NR, c + ir * ldc + jr + q * NR, ldc,
                     NR, store, edge);
      }
    }
  }
#endif
  for (; jr < nc; jr += NR) {
    const int cols = min_int(NR, nc - jr);
    for (int ir = 0; ir < mc; ir += MR) {
      micro_kernel(kc, pa + ir * kc, min_int(MR, mc - ir), panel + jr * kc, c + ir * ldc + jr, ldc,
                   cols, store, edge);
    }
  }
}

#ifndef __wasm__
// The kernels below read A in place, row by row (lda floats apart; the rows
// of x in a plain product), instead of from an MR-row packed micro-panel:
// run_rows then packs no A block per KC slice and column group (which took
// about 5 % of the decoder forward's CPU time). Per k step each row's A(i, p)
// is broadcast from its row as the packed kernels broadcast it from the
// panel, and every output is the same fused multiply-add chain over p from
// 0, stored or added to C the same way, so the bits are those of the packed
// kernels.

// A 4 × 24 tile: micro_kernel_4x24 with A's rows at a, a + lda, a + 2·lda, a + 3·lda.
NOINLINE static void micro_kernel_4x24_rows(int kc, const float* a, int lda, const float* b,
                                            int bstride, float* c, int ldc, int store) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
  __m256 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
  const float* b1 = b + bstride;
  const float* b2 = b1 + bstride;
  const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda;
  for (int p = 0; p < kc; p++) {
    const __m256 x0 = _mm256_loadu_ps(b), x1 = _mm256_loadu_ps(b1), x2 = _mm256_loadu_ps(b2);
    __m256 av = _mm256_broadcast_ss(a0 + p);
    c00 = _mm256_fmadd_ps(av, x0, c00);
    c01 = _mm256_fmadd_ps(av, x1, c01);
    c02 = _mm256_fmadd_ps(av, x2, c02);
    av = _mm256_broadcast_ss(a1 + p);
    c10 = _mm256_fmadd_ps(av, x0, c10);
    c11 = _mm256_fmadd_ps(av, x1, c11);
    c12 = _mm256_fmadd_ps(av, x2, c12);
    av = _mm256_broadcast_ss(a2 + p);
    c20 = _mm256_fmadd_ps(av, x0, c20);
    c21 = _mm256_fmadd_ps(av, x1, c21);
    c22 = _mm256_fmadd_ps(av, x2, c22);
    av = _mm256_broadcast_ss(a3 + p);
    c30 = _mm256_fmadd_ps(av, x0, c30);
    c31 = _mm256_fmadd_ps(av, x1, c31);
    c32 = _mm256_fmadd_ps(av, x2, c32);
    b += NR;
    b1 += NR;
    b2 += NR;
  }
  const __m256 acc[12] = {c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32};
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 3; j++) {
      float* r = c + i * ldc + j * NR;
      const __m256 v = acc[3 * i + j];
      _mm256_storeu_ps(r, store ? v : _mm256_add_ps(v, _mm256_loadu_ps(r)));
    }
  }
}

// A 4 × 16 tile (two B micro-panels, eight accumulators: enough to cover the
// fused multiply-add latency): for a product's last 16 columns (n = 256 is
// ten triples and two panels), which otherwise took the 8 × 8 kernel's load
// per multiply-add.
NOINLINE static void micro_kernel_4x16_rows(int kc, const float* a, int lda, const float* b,
                                            int bstride, float* c, int ldc, int store) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00;
  __m256 c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  const float* b1 = b + bstride;
  const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda;
  for (int p = 0; p < kc; p++) {
    const __m256 x0 = _mm256_loadu_ps(b), x1 = _mm256_loadu_ps(b1);
    __m256 av = _mm256_broadcast_ss(a0 + p);
    c00 = _mm256_fmadd_ps(av, x0, c00);
    c01 = _mm256_fmadd_ps(av, x1, c01);
    av = _mm256_broadcast_ss(a1 + p);
    c10 = _mm256_fmadd_ps(av, x0, c10);
    c11 = _mm256_fmadd_ps(av, x1, c11);
    av = _mm256_broadcast_ss(a2 + p);
    c20 = _mm256_fmadd_ps(av, x0, c20);
    c21 = _mm256_fmadd_ps(av, x1, c21);
    av = _mm256_broadcast_ss(a3 + p);
    c30 = _mm256_fmadd_ps(av, x0, c30);
    c31 = _mm256_fmadd_ps(av, x1, c31);
    b += NR;
    b1 += NR;
  }
  const __m256 acc[8] = {c00, c01, c10, c11, c20, c21, c30, c31};
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 2; j++) {
      float* r = c + i * ldc + j * NR;
      const __m256 v = acc[2 * i + j];
      _mm256_storeu_ps(r, store ? v : _mm256_add_ps(v, _mm256_loadu_ps(r)));
    }
  }
}

// An 8 × cols tile (cols <= NR, one B micro-panel): micro_kernel's full MR
// rows with A read in place; a partial tile goes through `edge` as there.
NOINLINE static void micro_kernel_8x8_rows(int kc, const float* a, int lda, const float* b,
                                           float* c, int ldc, int cols, int store, float* edge) {
  __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
  const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda;
  const float *a4 = a + 4 * lda, *a5 = a + 5 * lda, *a6 = a + 6 * lda, *a7 = a + 7 * lda;
  for (int p = 0; p < kc; p++) {
    const __m256 bv = _mm256_loadu_ps(b);
    c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + p), bv, c0);
    c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + p), bv, c1);
    c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + p), bv, c2);
    c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + p), bv, c3);
    c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a4 + p), bv, c4);
    c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a5 + p), bv, c5);
    c6 = _mm256_fmadd_ps(_mm256_broadcast_ss(a6 + p), bv, c6);
    c7 = _mm256_fmadd_ps(_mm256_broadcast_ss(a7 + p), bv, c7);
    b += NR;
  }
  __m256 acc[MR] = {c0, c1, c2, c3, c4, c5, c6, c7};
  if (cols == NR) {
    for (int i = 0; i < MR; i++) {
      float* r = c + i * ldc;
      _mm256_storeu_ps(r, store ? acc[i] : _mm256_add_ps(acc[i], _mm256_loadu_ps(r)));
    }
    return;
  }
  for (int i = 0; i < MR; i++) _mm256_storeu_ps(edge + i * NR, acc[i]);
  for (int i = 0; i < MR; i++) {
    for (int j = 0; j < cols; j++) {
      const float v = edge[i * NR + j];
      c[i * ldc + j] = store ? v : c[i * ldc + j] + v;
    }
  }
}

// block_tiles with A's mc rows read in place (lda floats apart, each from
// its slice's first column): whole MR-row panels by the kernels above
// (column triples, then pairs, then a single micro-panel); the last rows
// short of a panel are packed and go through the MR × NR kernel. kc k steps
// run against B micro-panels of kb ≥ kc packed steps (kb · NR floats
// apart; the causal attention values stop short of a slice). Same bits.
static void block_tiles_rows(int kc, int kb, const float* a, int lda, int mc, const float* panel,
                             int nc, float* c, int ldc, int store, float* pack_a_buf, float* edge) {
  const int mfull = mc / MR * MR;
  // Column triples, but a single micro-panel left after them (n = 128: five
  // triples and one) takes the last triple with it as two pairs.
  int triples = nc / (3 * NR);
  if (triples > 0 && nc - triples * 3 * NR >= NR && nc - triples * 3 * NR < 2 * NR) triples--;
  int jr = 0;
  for (; jr < triples * 3 * NR; jr += 3 * NR) {
    const float* b = panel + jr * kb;
    for (int ir = 0; ir < mfull; ir += 4) {
      micro_kernel_4x24_rows(kc, a + ir * lda, lda, b, kb * NR, c + ir * ldc + jr, ldc, store);
    }
  }
  for (; jr + 2 * NR <= nc; jr += 2 * NR) {
    const float* b = panel + jr * kb;
    for (int ir = 0; ir < mfull; ir += 4) {
      micro_kernel_4x16_rows(kc, a + ir * lda, lda, b, kb * NR, c + ir * ldc + jr, ldc, store);
    }
  }
  for (; jr < nc; jr += NR) {
    for (int ir = 0; ir < mfull; ir += MR) {
      micro_kernel_8x8_rows(kc, a + ir * lda, lda, panel + jr * kb, c + ir * ldc + jr, ldc,
                            min_int(NR, nc - jr), store, edge);
    }
  }
  if (mfull < mc) {
    pack_a(a + mfull * lda, lda, 1, mc - mfull, kc, pack_a_buf);
    for (int j = 0; j < nc; j += NR) {
      micro_kernel(kc, pack_a_buf, mc - mfull, panel + j * kb, c + mfull * ldc + j, ldc,
                   min_int(NR, nc - j), store, edge);
    }
  }
}
#endif

// Causal attention values: the k steps of slice [pc, pc + kc) a micro-panel
// whose last row sees keys up to `last_key` must run; the later ones only add
// zero probabilities. (Both the values product and the fused attention stop
// there, per micro-panel, so they sum the same terms.)
static inline int causal_steps(int last_key, int pc, int kc) {
  return min_int(kc, last_key + 1 - pc);
}

// One task: the column stripe [j0, j1) of batch `batch`'s C, every k slice.
NOINLINE static void run_stripe(char* base, const int32_t* job, int batch, int stripe,
                                float* pack, float* pack_a_buf, float* edge) {
  const int m = job[J_M], n = job[J_N], k = job[J_K];
  const float* a = (const float*)MEM(base, job[J_A]) + batch * job[J_A_BS];
  const float* b = (const float*)MEM(base, job[J_B]) + (batch / job[J_B_GROUP]) * job[J_B_BS];
  float* c = (float*)MEM(base, job[J_C]) + batch * job[J_C_BS];
  const int a_rs = job[J_A_RS], a_cs = job[J_A_CS];
  const int b_rs = job[J_B_RS], b_cs = job[J_B_CS];
  const int ldc = job[J_LDC], nc = job[J_NC];
  const int j0 = stripe * nc;
  const int j1 = min_int(j0 + nc, n);
  // Causal attention scores: rows whose keys in this stripe all lie in their
  // future are skipped (the caller masks them anyway).
  const int causal = job[J_CAUSAL], offset = job[J_CAUSAL_OFFSET];
  int m_begin = 0;
  if (causal == 1 && j0 - offset > 0) m_begin = min_int(m, (j0 - offset) / MR * MR);
  for (int pc = 0; pc < k; pc += KC) {
    const int kc = min_int(KC, k - pc);
    const int store = pc == 0 && !job[J_ACCUMULATE];
    pack_b(b + pc * b_rs + j0 * b_cs, b_rs, b_cs, kc, j1 - j0, pack);
    // MC rows of A (MC × KC floats, 256 KiB) stay in L2 while every micro-panel
    // of the stripe passes over them.
    for (int ic = m_begin; ic < m; ic += MC) {
      const int mc = min_int(MC, m - ic);
      // Causal attention values: a k slice that lies wholly in the future of
      // every row of the block only adds the probabilities' zeros.
      if (causal == 2 && pc > ic + mc - 1 + offset) continue;
      pack_a(a + ic * a_rs + pc * a_cs, a_rs, a_cs, mc, kc, pack_a_buf);
      if (!causal) {
        block_tiles(kc, pack_a_buf, mc, pack, j1 - j0, c + ic * ldc + j0, ldc, store, edge);
        continue;
      }
      for (int jr = j0; jr < j1; jr += NR) {
        const float* panel = pack + (jr - j0) * kc;
        const int cols = min_int(NR, j1 - jr);
        for (int ir = 0; ir < mc; ir += MR) {
          const int rows = min_int(MR, mc - ir);
          const int steps = causal == 2 ? causal_steps(ic + ir + rows - 1 + offset, pc, kc) : kc;
          if (steps <= 0) continue;
          micro_kernel(steps, pack_a_buf + ir * kc, rows, panel, c + (ic + ir) * ldc + jr, ldc,
                       cols, store, edge);
        }
      }
    }
  }
}

// Products with B packed once for the whole job (plain products: no batch,
// triangle or causal mask). A pack job (J_OP 2) first packs every KC slice
// of B into NR-wide micro-panels at J_PACKED, slice after slice:
//   packed[pc * npad + jr * kc + p * NR + j % NR] = B(pc + p, jr + j % NR)
// with kc = min(KC, k - pc). Then each task of the product is a block of MC
// rows by a group of J_NC columns: per KC slice it packs its A block once
// (MC × KC, in L2) and runs it against every micro-panel of its columns
// (each KC × NR, in L1). Every element of C is summed in the same order as
// on the stripe path (slices in order, the micro-kernel over each slice), so
// the two paths give the same bits; this one packs A once per column group
// instead of once per stripe and B once instead of once per stripe.
NOINLINE static void run_pack_b(char* base, const int32_t* job, int task, const float* stage) {
  const int k = job[J_K], npad = job[J_NPAD];
  const int p0 = job[J_P0], j0 = job[J_J0], j1 = job[J_J1];
  const int group = job[J_GROUP] * NR;
  const int ngroups = (j1 - j0 + group - 1) / group;
  const int pc = p0 + (task / ngroups) * KC;
  const int jr0 = j0 + (task % ngroups) * group;
  const int jr1 = min_int(jr0 + group, j1);
  const int kc = min_int(KC, k - pc);
  const int rs = job[J_B_RS], cs = job[J_B_CS];
  float* packed = (float*)MEM(base, job[J_PACKED]);
  pack_b(stage + (pc - p0) * rs + (jr0 - j0) * cs, rs, cs, kc, jr1 - jr0,
         packed + pc * npad + jr0 * kc);
}

NOINLINE static void run_rows(char* base, const int32_t* job, int task, float* pack_a_buf,
                              float* edge) {
  const int m = job[J_M], n = job[J_N], k = job[J_K];
  const int npad = job[J_NPAD], width = job[J_NC], ngroups = job[J_NSTRIPES];
  const float* a = operand(base, job, J_A, J_P0, J_J0);
  const float* packed = (const float*)MEM(base, job[J_PACKED]);
  float* c = operand(base, job, J_C, J_J1, J_GROUP);
  const int a_rs = job[J_A_RS], a_cs = job[J_A_CS], ldc = job[J_LDC];
  const int ic = (task / ngroups) * MC;
  const int mc = min_int(MC, m - ic);
  const int j0 = (task % ngroups) * width;
  const int j1 = min_int(j0 + width, n);
  for (int pc = 0; pc < k; pc += KC) {
    const int kc = min_int(KC, k - pc);
    const int store = pc == 0 && !job[J_ACCUMULATE];
#ifndef __wasm__
    if (a_cs == 1) {
      block_tiles_rows(kc, kc, a + ic * a_rs + pc, a_rs, mc, packed + pc * npad + j0 * kc, j1 - j0,
                       c + ic * ldc + j0, ldc, store, pack_a_buf, edge);
      continue;
    }
#endif
    pack_a(a + ic * a_rs + pc * a_cs, a_rs, a_cs, mc, kc, pack_a_buf);
    block_tiles(kc, pack_a_buf, mc, packed + pc * npad + j0 * kc, j1 - j0, c + ic * ldc + j0, ldc,
                store, edge);
  }
}

// The upper triangle of a Gram product C[m, n] (+)= xᵀx (J_OP 61), x's
// rows the k steps: x packed once by a pack job (J_OP 2, or 60 from a host
// array) into NR-wide micro-panels at J_PACKED, as run_rows' packed B. Those
// panels are also xᵀ's MR-row A panels (natively MR = NR, so they are read
// in place; the WebAssembly builds' 4-row panels are copied out of them):
// one packed copy serves every stripe, where the stripe path packed all of
// A's rows above each stripe's end again (and the stripe's columns of B).
// A task is a column stripe [j0, j1) (J_NC wide, the rightmost first): the
// rows above j0 as whole blocks, then the square on the diagonal by groups
// of 3·NR columns, each with the rows up to its end. Every element is the
// stripe path's sum (slices in order, one fused multiply-add chain over
// each), so the two give the same bits; elements below the diagonal are
// partly written and never meant to be read.
static const float* gram_a_block(const float* panels, int ic, int mc, int kc, float* pack_a_buf) {
#if MR == NR
  (void)mc, (void)pack_a_buf;
  return panels + ic * kc;
#else
  for (int ir = 0; ir < mc; ir += MR) {
    const float* src = panels + (ic + ir) / NR * NR * kc + (ic + ir) % NR;
    float* dst = pack_a_buf + ir * kc;
    for (int p = 0; p < kc; p++) {
      for (int ii = 0; ii < MR; ii++) dst[p * MR + ii] = src[p * NR + ii];
    }
  }
  return pack_a_buf;
#endif
}

// Rows [r0, r1) of C against the packed columns [j0, j1) of slice pc, MC rows a block.
static void gram_rows(const float* panels, int kc, int r0, int r1, int j0, int j1, float* c,
                      int ldc, int store, float* pack_a_buf, float* edge) {
  for (int ic = r0; ic < r1; ic += MC) {
    const int mc = min_int(MC, r1 - ic);
    const float* pa = gram_a_block(panels, ic, mc, kc, pack_a_buf);
    block_tiles(kc, pa, mc, panels + j0 * kc, j1 - j0, c + ic * ldc + j0, ldc, store, edge);
  }
}

NOINLINE static void run_gram_upper(char* base, const int32_t* job, int task, float* pack_a_buf,
                                    float* edge) {
  const int m = job[J_M], n = job[J_N], k = job[J_K];
  const int npad = job[J_NPAD], nc = job[J_NC];
  const float* packed = (const float*)MEM(base, job[J_PACKED]);
  float* c = (float*)MEM(base, job[J_C]);
  const int ldc = job[J_LDC];
  // Stripes are cut from the right end, so that a narrower remainder is the
  // first stripe, which reaches the fewest rows and is claimed last.
  const int j0 = npad - (task + 1) * nc > 0 ? npad - (task + 1) * nc : 0;
  const int j1 = min_int(npad - task * nc, n);
  for (int pc = 0; pc < k; pc += KC) {
    const int kc = min_int(KC, k - pc);
    const int store = pc == 0 && !job[J_ACCUMULATE];
    const float* panels = packed + pc * npad;
    gram_rows(panels, kc, 0, min_int(j0, m), j0, j1, c, ldc, store, pack_a_buf, edge);
    for (int jg = j0; jg < j1 && j0 < m; jg += 3 * NR) {
      const int jg1 = min_int(jg + 3 * NR, j1);
      gram_rows(panels, kc, j0, min_int(jg1, m), jg, jg1, c, ldc, store, pack_a_buf, edge);
    }
  }
}

// exp(x) for x <= 0 (softmax arguments), Cephes expf: x = n·ln 2 + r with
// |r| <= ln 2 / 2 (ln 2 split in two for an exact n·ln 2), a degree-6
// polynomial for e^r, then 2^n through the exponent bits. About 1 ulp;
// arguments below -87.3 give 0. n comes from adding 1.5·2²³, which rounds
// x·log2(e) to an integer held in the low mantissa bits (cheaper in V8 than
// f32x4.nearest plus a saturating conversion).
static inline v128_t exp_nonpositive(v128_t x) {
  const v128_t lo = wasm_f32x4_splat(-87.33654f);
  const v128_t underflow = wasm_f32x4_lt(x, lo);
  x = wasm_f32x4_max(x, lo);
  const v128_t magic = wasm_f32x4_splat(12582912.0f);  // 1.5 · 2^23
  const v128_t t = MADD(x, wasm_f32x4_splat(1.44269504088896341f), magic);
  const v128_t n = wasm_f32x4_sub(t, magic);
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t y = wasm_f32x4_splat(1.9875691500e-4f);
  y = MADD(y, r, wasm_f32x4_splat(1.3981999507e-3f));
  y = MADD(y, r, wasm_f32x4_splat(8.3334519073e-3f));
  y = MADD(y, r, wasm_f32x4_splat(4.1665795894e-2f));
  y = MADD(y, r, wasm_f32x4_splat(1.6666665459e-1f));
  y = MADD(y, r, wasm_f32x4_splat(5.0000001201e-1f));
  y = MADD(y, wasm_f32x4_mul(r, r), wasm_f32x4_add(r, wasm_f32x4_splat(1.0f)));
  // 2^n for n in [-126, 0]: t's bits are 0x4B400000 + n; the biased exponent
  // n + 127 shifted into place.
  const v128_t two_n = wasm_i32x4_shl(wasm_i32x4_sub(t, wasm_i32x4_splat(0x4B400000 - 127)), 23);
  return wasm_v128_andnot(wasm_f32x4_mul(y, two_n), underflow);
}

#ifndef __wasm__
// The part of exp_nonpositive8 after the first step of the range reduction:
// from r = x − n·0.693359375 (t = x·log2(e) + 1.5·2^23, n = t − 1.5·2^23) to
// the polynomial times 2^n. exp_nonpositive8 and its lean form share it.
static inline __m256 exp8_reduced(__m256 t, __m256 n, __m256 r) {
  r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i two_n = _mm256_slli_epi32(
      _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4B400000 - 127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(two_n));
}

// The native build's exp_nonpositive on eight lanes: every lane the same
// operations (fused multiply-adds where MADD is one), so the same bits.
static inline __m256 exp_nonpositive8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33654f);
  const __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OS);
  x = _mm256_max_ps(x, lo);
  const __m256 magic = _mm256_set1_ps(12582912.0f);  // 1.5 · 2^23
  const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), magic);
  const __m256 n = _mm256_sub_ps(t, magic);
  const __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
  return _mm256_andnot_ps(underflow, exp8_reduced(t, n, r));
}
#endif

// The largest of p[first..last], by the order softmax_row has always used
// (eight keys a step natively, then four, then one): with NaN scores the
// order decides which value wins, so both softmax routines share this code.
// row_max_from continues from key j with the eight-key steps' maxima mv8
// so far (natively; softmax_rows runs the first steps of four rows at once).
#ifndef __wasm__
static inline float row_max_from(const float* p, int j, int last, __m256 mv8) {
  for (; j + 8 <= last + 1; j += 8) mv8 = _mm256_max_ps(mv8, _mm256_loadu_ps(p + j));
  v128_t mv = _mm_max_ps(_mm256_castps256_ps128(mv8), _mm256_extractf128_ps(mv8, 1));
#else
static inline float row_max_from(const float* p, int j, int last) {
  v128_t mv = wasm_f32x4_splat(-__builtin_inff());
#endif
  for (; j + 4 <= last + 1; j += 4) mv = wasm_f32x4_max(mv, wasm_v128_load(p + j));
  const float m0 = wasm_f32x4_extract_lane(mv, 0), m1 = wasm_f32x4_extract_lane(mv, 1);
  const float m2 = wasm_f32x4_extract_lane(mv, 2), m3 = wasm_f32x4_extract_lane(mv, 3);
  float max = m0 > m1 ? m0 : m1;
  max = max > m2 ? max : m2;
  max = max > m3 ? max : m3;
  for (; j <= last; j++) max = p[j] > max ? p[j] : max;
  return max;
}

static inline float row_max(const float* p, int first, int last) {
#ifndef __wasm__
  return row_max_from(p, first, last, _mm256_set1_ps(-__builtin_inff()));
#else
  return row_max_from(p, first, last);
#endif
}

// One row of attention probabilities in place: p[j] = softmax(scale·p)[j]
// over the visible keys [first, last], 0 elsewhere in [0, len). The native
// build takes eight keys a step first (then four, then one, as the
// WebAssembly build does): the maximum is the same value, each exp the same
// bits, and the sum adds each step's two halves one after the other, so it
// sums the four lanes in the WebAssembly build's order.
NOINLINE static void softmax_row(float* p, int first, int last, int len, float scale) {
  const float max = row_max(p, first, last);
  // scale > 0, so the largest scaled score is scale · max.
  const v128_t vscale = wasm_f32x4_splat(scale);
  const v128_t vshift = wasm_f32x4_splat(scale * max);
  v128_t sv = wasm_f32x4_splat(0.0f);
  int j = first;
#ifndef __wasm__
  const __m256 vscale8 = _mm256_set1_ps(scale), vshift8 = _mm256_set1_ps(scale * max);
  for (; j + 8 <= last + 1; j += 8) {
    const __m256 e = exp_nonpositive8(
        _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(p + j), vscale8), vshift8));
    _mm256_storeu_ps(p + j, e);
    sv = _mm_add_ps(sv, _mm256_castps256_ps128(e));
    sv = _mm_add_ps(sv, _mm256_extractf128_ps(e, 1));
  }
#endif
  for (; j + 4 <= last + 1; j += 4) {
    const v128_t e = exp_nonpositive(wasm_f32x4_sub(wasm_f32x4_mul(wasm_v128_load(p + j), vscale), vshift));
    wasm_v128_store(p + j, e);
    sv = wasm_f32x4_add(sv, e);
  }
  float sum = wasm_f32x4_extract_lane(sv, 0) + wasm_f32x4_extract_lane(sv, 1) +
              wasm_f32x4_extract_lane(sv, 2) + wasm_f32x4_extract_lane(sv, 3);
  for (; j <= last; j++) {
    const v128_t e = exp_nonpositive(wasm_f32x4_splat(p[j] * scale - scale * max));
    p[j] = wasm_f32x4_extract_lane(e, 0);
    sum += p[j];
  }
  const v128_t inv = wasm_f32x4_splat(1.0f / sum);
  j = first;
#ifndef __wasm__
  const __m256 inv8 = _mm256_set1_ps(1.0f / sum);
  for (; j + 8 <= last + 1; j += 8) _mm256_storeu_ps(p + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), inv8));
#endif
  for (; j + 4 <= last + 1; j += 4) wasm_v128_store(p + j, wasm_f32x4_mul(wasm_v128_load(p + j), inv));
  for (; j <= last; j++) p[j] *= 1.0f / sum;
  for (j = 0; j < first; j++) p[j] = 0.0f;
  for (j = last + 1; j < len; j++) p[j] = 0.0f;
}

// One softmax task: rows [r0, r1) of head `batch`'s scores [seq, kvLen]:
// query i sees keys (i + offset - window, i + offset], offset = kvLen - seq.
NOINLINE static void run_softmax(char* base, const int32_t* job, int batch, int chunk) {
  const int seq = job[J_M], len = job[J_N], rows = job[J_NC];
  const int offset = job[J_CAUSAL_OFFSET], window = job[J_WINDOW];
  union { int32_t i; float f; } bits = {job[J_SCALE]};
  float* p = (float*)MEM(base, job[J_C]) + batch * job[J_C_BS];
  const int r0 = chunk * rows, r1 = min_int(seq, r0 + rows);
  for (int i = r0; i < r1; i++) {
    const int last = min_int(len - 1, i + offset);
    int first = window > 0 ? last - window + 1 : 0;
    if (first < 0) first = 0;
    softmax_row(p + i * len, first, last, len, bits.f);
  }
}

// ---- Causal attention fused (J_OP 6) ----
//
// A task is sequence b, KV head g and span s: the query rows of every head
// that shares g (grouped-query attention), in blocks of NC rows, blocks s,
// s + S, s + 2S, ... (S = J_NSTRIPES spans, interleaved so that each span
// holds a fair share of the causal triangle). q [seq, heads·d] at A (row
// stride A_RS), k and v [kvLen, kvHeads·d] at B and V (row stride B_RS), out
// [seq, heads·d] at C (LDC); query i sees keys (i + offset − window, i +
// offset]. Sequence b's q and out start A_BS and C_BS floats after sequence
// b − 1's, its k and v B_BS floats after. Natively q, k, v and out may be
// host arrays instead (their addresses at P0 : J0, J1 : GROUP, Q_SCALE :
// Q_ZERO and Q_SLOT : Q_ROW_DIV, 0 : 0 for none), read and written in place.
//
// The task packs g's keys once for all its blocks and heads, as the blocks
// reach them (kᵀ in NR-key micro-panels of d steps, and v), instead of once
// per block and head, then per block and head: the scores of the keys the
// block's rows see, the softmax of each row, the values. Every number is the
// one the three separate jobs (attentionScores → attentionSoftmax →
// attentionValues) give:
// - a score is one fused multiply-add chain over d in order from 0 (per KC
//   slice of d, the slices added in order), as the products' kernels run it;
// - a row's softmax is softmax_row's: the same maximum, exps, sum order and
//   product by 1 / sum;
// - an output is one chain over the keys in order per KC slice of keys (the
//   slices added in order). The chains here start at the first key some row
//   of the micro-panel sees and stop at the last one: the keys outside a
//   row's window add exact zeros (0 · v + acc is acc: leading terms meet an
//   accumulator of +0, and the products' kernels already stop each
//   micro-panel at its own last key, a different one per build's MR).
// Scratch (this thread's, J_SCRATCH + tid · J_SCRATCH_STRIDE), in floats,
// kp = kvLen rounded up to NR, dp = d rounded up to NR:
//   kt     kp × d    kᵀ, key micro-panels: kt[(j / NR)·d·NR + p·NR + j % NR]
//   vp     kp × dp   v natively as rows: vp[j·dp + c] (dp − d zeros a row);
//                    in the WebAssembly builds as column micro-panels:
//                    vp[(c / NR)·kp·NR + j·NR + c % NR] (columns past d zero)
//   s      NC × (kp + 2·NR)  the block's scores of one head, row r at r·(kp +
//                    2·NR), key j at j; the floats past kp let a row's last
//                    vectors run past its last key (see softmax_rows)
//   pa     NC × KC   (WebAssembly builds) packed rows of q or of s
//   edge   MR × NR
// NC is a multiple of 24: of the native kernels' 3, 4, 6 and 8 rows and of
// the WebAssembly builds' MR.

// The first and last key query row i sees.
static inline int attention_last(int i, int offset, int kv_len) {
  return min_int(kv_len - 1, i + offset);
}
static inline int attention_first(int i, int offset, int kv_len, int window) {
  const int first = window > 0 ? attention_last(i, offset, kv_len) - window + 1 : 0;
  return first > 0 ? first : 0;
}

#ifndef __wasm__
// One vector of a tile's output: stored, or added to what o holds (!store);
// the last vector of a row writes only its first `cols` lanes (mask).
static inline __attribute__((always_inline)) void attention_store(float* o, __m256 x, int whole,
                                                                  __m256i mask, int store) {
  if (whole) {
    _mm256_storeu_ps(o, store ? x : _mm256_add_ps(x, _mm256_loadu_ps(o)));
  } else {
    _mm256_maskstore_ps(o, mask, store ? x : _mm256_add_ps(x, _mm256_maskload_ps(o, mask)));
  }
}

// `count` tiles side by side, tile u: c[r][u·8·NV + 8v + x] (+)= Σ_{t < steps}
// a[r][t] · b[u·bnext + t·bstep + v·bvstride + x] for r < ROWS, v < NV, x < 8.
// A tile is ROWS · NV accumulators, per step NV vector loads, ROWS broadcasts
// and ROWS · NV fused multiply-adds, each output one chain from 0 in order
// (the bits of the products' micro-kernels). Rows r < rows are stored (or
// added, !store); the last tile's last vector only its first `cols` columns.
// The shapes used: scores take 4 query rows by 1 to 3 key micro-panels
// (4 × 24: twelve accumulators, three loads and four broadcasts a step, as
// micro_kernel_4x24_rows); values take 6 rows by 16 columns (twelve
// accumulators, two loads and six broadcasts a step), 4 by 24 for an odd
// count of column vectors, 8 by 8 for a single one. Every loop over rows and
// vectors is unrolled, so the accumulators stay in registers (GCC left some
// of these loops rolled, and then kept the accumulators in memory: a store
// per multiply-add). A row of tiles a call: the scores' tiles are only d = 32
// steps deep, and one call each measured about 13 % slower.
#define ATTENTION_TILE(ROWS, NV)                                                               \
  NOINLINE static void attention_tile_##ROWS##x##NV(                                           \
      int steps, const float* const* a, const float* b, int bstep, int bvstride, int bnext,    \
      int count, float* c, int ldc, int rows, int cols, int store) {                           \
    const float* ar[ROWS];                                                                     \
    _Pragma("GCC unroll 8") for (int r = 0; r < ROWS; r++) ar[r] = a[r];                       \
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols),                           \
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));        \
    for (int u = 0; u < count; u++, b += bnext, c += NV * NR) {                                \
      __m256 acc[ROWS][NV];                                                                    \
      _Pragma("GCC unroll 8") for (int r = 0; r < ROWS; r++) {                                 \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();  \
      }                                                                                        \
      const float* bt = b;                                                                     \
      for (int t = 0; t < steps; t++) {                                                        \
        __m256 bv[NV];                                                                         \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) bv[v] =                           \
            _mm256_loadu_ps(bt + v * bvstride);                                                \
        _Pragma("GCC unroll 8") for (int r = 0; r < ROWS; r++) {                               \
          const __m256 x = _mm256_broadcast_ss(ar[r] + t);                                     \
          _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] =                     \
              _mm256_fmadd_ps(x, bv[v], acc[r][v]);                                            \
        }                                                                                      \
        bt += bstep;                                                                           \
      }                                                                                        \
      const int whole = u < count - 1 || cols == NR;                                           \
      _Pragma("GCC unroll 8") for (int r = 0; r < ROWS; r++) {                                 \
        if (r < rows) {                                                                        \
          _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                               \
            attention_store(c + r * ldc + v * NR, acc[r][v], v < NV - 1 || whole, mask,       \
                            store);                                                            \
          }                                                                                    \
        }                                                                                      \
      }                                                                                        \
    }                                                                                          \
  }
ATTENTION_TILE(4, 3)
ATTENTION_TILE(4, 2)
ATTENTION_TILE(4, 1)
ATTENTION_TILE(6, 2)
ATTENTION_TILE(8, 1)

// exp_nonpositive8 for arguments known to be ≥ -87.33654 (no lane
// underflows, none is NaN): the same bits without the clamp and the mask,
// which change nothing there, and with x − n·0.693359375 as one fused
// multiply-add: n is an integer of at most 7 bits and 0.693359375 = 355/512,
// so n·0.693359375 is exact and the separate product rounded nothing.
static inline __m256 exp_nonpositive8_lean(__m256 x) {
  const __m256 magic = _mm256_set1_ps(12582912.0f);  // 1.5 · 2^23
  const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), magic);
  const __m256 n = _mm256_sub_ps(t, magic);
  return exp8_reduced(t, n, _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x));
}

// The exps of eight keys of one row (p, as softmax_row computes them;
// exp_nonpositive8_lean where `lean`), stored in place and added to its sum
// as softmax_row adds them.
static inline __attribute__((always_inline)) __m128 exp_sum8(float* p, __m256 vscale,
                                                             __m256 vshift, __m128 sv, int lean) {
  const __m256 x = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(p), vscale), vshift);
  const __m256 e = lean ? exp_nonpositive8_lean(x) : exp_nonpositive8(x);
  _mm256_storeu_ps(p, e);
  sv = _mm_add_ps(sv, _mm256_castps256_ps128(e));
  return _mm_add_ps(sv, _mm256_extractf128_ps(e, 1));
}

// Four rows' common eight-key steps [0, end) of exps and sums, interleaved.
#define EXP_SUM8_ROWS(LEAN)                                                \
  for (int t = 0; t < end; t += 8) {                                      \
    s0 = exp_sum8(p[0] + t, vscale, h0, s0, LEAN);                        \
    s1 = exp_sum8(p[1] + t, vscale, h1, s1, LEAN);                        \
    s2 = exp_sum8(p[2] + t, vscale, h2, s2, LEAN);                        \
    s3 = exp_sum8(p[3] + t, vscale, h3, s3, LEAN);                        \
  }

// softmax_row's sum of the exps e[0..len) in its order (see softmax_rows).
static float row_sum(const float* e, int len) {
  __m128 sv = _mm_setzero_ps();
  int k = 0;
  for (; k + 8 <= len; k += 8) {
    sv = _mm_add_ps(sv, _mm_loadu_ps(e + k));
    sv = _mm_add_ps(sv, _mm_loadu_ps(e + k + 4));
  }
  if (k + 4 <= len) sv = _mm_add_ps(sv, _mm_loadu_ps(e + k)), k += 4;
  float lane[4];
  _mm_storeu_ps(lane, sv);
  float sum = lane[0] + lane[1] + lane[2] + lane[3];
  for (; k < len; k++) sum += e[k];
  return sum;
}

// softmax_row on n ≤ 4 rows of a block's scores (row r at s + r·lds, key j
// at j). The same bits: the same maximum (row_max's steps), every exp the
// same operations, the sum in the same order (each eight-key step's halves
// into four lanes, a four-key step's, the lanes left to right, then single
// keys) and the same product by 1 / sum. What differs is the schedule: the
// rows' eight-key steps run interleaved (a row's sum is one chain of
// dependent adds; four rows are four), the last keys take one vector exp
// (the lanes a four-key step and single keys would compute), and each loop
// runs the four rows' common trip count (one loop exit a phase for four rows
// instead of one a row: the exits' mispredictions had cost as much as the
// normalization). Zeros: on at least the 8 keys after last_r (the lanes of
// its last vector past last_r, then a vector), and on [z0, first_r): the
// values' micro-panels of up to 8 rows read those (a row's neighbour in a
// panel sees at most 7 keys more or fewer). A row writes at most 15 floats
// past last_r (its spare floats).
NOINLINE static void softmax_rows(float* s, int lds, int n, const int* first, const int* last,
                                  int z0, float scale) {
  float* p[4];
  int len[4], common = 1 << 30;
  for (int r = 0; r < n; r++) {
    p[r] = s + r * lds + first[r];  // key first[r] of row r
    len[r] = last[r] + 1 - first[r];
    common = min_int(common, len[r] / 8);
  }
  if (n < 4) common = 0;
  // The maxima: row_max's steps, the common eight-key steps interleaved.
  __m256 mv8[4];
  for (int r = 0; r < n; r++) mv8[r] = _mm256_set1_ps(-__builtin_inff());
  // (In locals: GCC keeps an array indexed by a variable in memory, and a
  // store and reload in each chain.) With the maxima, the minima (NaN
  // ignored), for the lean exp below.
  __m256 mn8[4];
  for (int r = 0; r < n; r++) mn8[r] = _mm256_set1_ps(__builtin_inff());
  if (common > 0) {
    __m256 m0 = mv8[0], m1 = mv8[1], m2 = mv8[2], m3 = mv8[3];
    __m256 n0 = mn8[0], n1 = mn8[1], n2 = mn8[2], n3 = mn8[3];
    for (int t = 0; t < 8 * common; t += 8) {
      const __m256 x0 = _mm256_loadu_ps(p[0] + t), x1 = _mm256_loadu_ps(p[1] + t);
      const __m256 x2 = _mm256_loadu_ps(p[2] + t), x3 = _mm256_loadu_ps(p[3] + t);
      m0 = _mm256_max_ps(m0, x0), m1 = _mm256_max_ps(m1, x1);
      m2 = _mm256_max_ps(m2, x2), m3 = _mm256_max_ps(m3, x3);
      // minps returns its second operand for a NaN.
      n0 = _mm256_min_ps(x0, n0), n1 = _mm256_min_ps(x1, n1);
      n2 = _mm256_min_ps(x2, n2), n3 = _mm256_min_ps(x3, n3);
    }
    mv8[0] = m0, mv8[1] = m1, mv8[2] = m2, mv8[3] = m3;
    mn8[0] = n0, mn8[1] = n1, mn8[2] = n2, mn8[3] = n3;
  }
  const __m256 vscale = _mm256_set1_ps(scale);
  __m256 vshift[4];
  __m128 sv[4];
  // lean: every visible key's exp argument is ≥ -87.33654 (the clamp), so
  // exp_nonpositive8_lean gives exp_nonpositive8's bits, but for NaN scores
  // (lean gives NaN, the clamp exp(-87.33654); fixed below). The argument is
  // monotonic in the score, so the least score's argument is the least.
  int lean[4];
  for (int r = 0; r < n; r++) {
    const float max = row_max_from(p[r], 8 * common, len[r] - 1, mv8[r]);
    float lanes8[8];
    _mm256_storeu_ps(lanes8, mn8[r]);
    float min = lanes8[0];
    for (int x = 1; x < 8; x++) min = lanes8[x] < min ? lanes8[x] : min;
    for (int j = 8 * common; j < len[r]; j++) min = p[r][j] < min ? p[r][j] : min;
    lean[r] = min * scale - scale * max >= -87.33654f;
    vshift[r] = _mm256_set1_ps(scale * max);
    sv[r] = _mm_setzero_ps();
  }
  // The exps and their sums.
  if (common > 0) {
    const int end = 8 * common;
    __m128 s0 = sv[0], s1 = sv[1], s2 = sv[2], s3 = sv[3];
    const __m256 h0 = vshift[0], h1 = vshift[1], h2 = vshift[2], h3 = vshift[3];
    if (lean[0] & lean[1] & lean[2] & lean[3]) {
      EXP_SUM8_ROWS(1)
    } else {
      // Each row's own exp: the lean rows' lean one gives the same bits.
      EXP_SUM8_ROWS(0)
    }
    sv[0] = s0, sv[1] = s1, sv[2] = s2, sv[3] = s3;
  }
  __m256 inv[4];
  for (int r = 0; r < n; r++) {
    int k = 8 * common;
    for (; k + 8 <= len[r]; k += 8) {
      sv[r] = lean[r] ? exp_sum8(p[r] + k, vscale, vshift[r], sv[r], 1)
                      : exp_sum8(p[r] + k, vscale, vshift[r], sv[r], 0);
    }
    const int rest = len[r] - k;  // 0 to 7 keys
    float lane[4], tail[8];
    // Lanes past the last key are computed from whatever follows it and
    // dropped (zeroed below).
    const __m256 x = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(p[r] + k), vscale), vshift[r]);
    const __m256 e = lean[r] ? exp_nonpositive8_lean(x) : exp_nonpositive8(x);
    _mm256_storeu_ps(p[r] + k, e);
    _mm256_storeu_ps(tail, e);
    if (rest >= 4) sv[r] = _mm_add_ps(sv[r], _mm256_castps256_ps128(e));
    _mm_storeu_ps(lane, sv[r]);
    float sum = lane[0] + lane[1] + lane[2] + lane[3];
    for (int t = rest >= 4 ? 4 : 0; t < rest; t++) sum += tail[t];
    if (lean[r] && sum != sum) {
      // A NaN score: its exp is the clamp's, exp_nonpositive8(NaN); the sum again.
      const __m256 clamp = exp_nonpositive8(_mm256_set1_ps(__builtin_nanf("")));
      for (int j = 0; j < len[r]; j += 8) {
        const __m256 v = _mm256_loadu_ps(p[r] + j);
        _mm256_storeu_ps(p[r] + j, _mm256_blendv_ps(v, clamp, _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
      }
      sum = row_sum(p[r], len[r]);
    }
    inv[r] = _mm256_set1_ps(1.0f / sum);
  }
  // The products by 1 / sum: whole vectors, the rows' common ones
  // interleaved, then each row's last vector with zeros past its last key.
  int whole = 1 << 30;
  for (int r = 0; r < n; r++) whole = min_int(whole, (len[r] - 1) / 8);
  if (n < 4) whole = 0;
  for (int t = 0; t < 8 * whole; t += 8) {
    _mm256_storeu_ps(p[0] + t, _mm256_mul_ps(_mm256_loadu_ps(p[0] + t), inv[0]));
    _mm256_storeu_ps(p[1] + t, _mm256_mul_ps(_mm256_loadu_ps(p[1] + t), inv[1]));
    _mm256_storeu_ps(p[2] + t, _mm256_mul_ps(_mm256_loadu_ps(p[2] + t), inv[2]));
    _mm256_storeu_ps(p[3] + t, _mm256_mul_ps(_mm256_loadu_ps(p[3] + t), inv[3]));
  }
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int r = 0; r < n; r++) {
    int k = 8 * whole;
    for (; k + 8 < len[r]; k += 8) {
      _mm256_storeu_ps(p[r] + k, _mm256_mul_ps(_mm256_loadu_ps(p[r] + k), inv[r]));
    }
    const __m256 keep = _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_set1_epi32(len[r] - k), lanes));
    _mm256_storeu_ps(p[r] + k,
                     _mm256_and_ps(keep, _mm256_mul_ps(_mm256_loadu_ps(p[r] + k), inv[r])));
    _mm256_storeu_ps(p[r] + k + 8, _mm256_setzero_ps());
    for (float* z = s + r * lds + z0; z < p[r]; z++) *z = 0.0f;
  }
}
#endif

// Packs the keys of micro-panels [kp0, kp1) of one KV head: kᵀ into kt's
// micro-panels, v into vp (see the scratch layout above).
static void attention_pack(const float* k, const float* v, int kv_rs, int kv_len, int d,
                           int kp0, int kp1, float* kt, float* vp) {
  const int j0 = kp0 * NR, j1 = min_int(kv_len, kp1 * NR);
  if (j1 <= j0) return;
  pack_b(k + j0 * kv_rs, 1, kv_rs, d, j1 - j0, kt + j0 * d);
#ifndef __wasm__
  const int dp = (d + NR - 1) / NR * NR;
  for (int j = j0; j < j1; j++) {
    const float* src = v + j * kv_rs;
    float* dst = vp + j * dp;
    int c = 0;
    for (; c + NR <= d; c += NR) _mm256_storeu_ps(dst + c, _mm256_loadu_ps(src + c));
    for (; c < d; c++) dst[c] = src[c];
    for (; c < dp; c++) dst[c] = 0.0f;
  }
#else
  const int kp = (kv_len + NR - 1) / NR * NR;
  for (int c = 0; c < d; c += NR) {
    pack_b(v + j0 * kv_rs + c, kv_rs, 1, j1 - j0, min_int(NR, d - c), vp + c * kp + j0 * NR);
  }
#endif
}

// The scores of one head for the block's rows [i0, i0 + mrows): row r (query
// i0 + r) gets the keys of the micro-panels its micro-panel of rows sees.
static void attention_scores(const float* q, int q_rs, int mrows, int i0, int d, int offset,
                             int kv_len, int window, const float* kt, float* s, int lds,
                             float* pa, float* edge) {
#ifndef __wasm__
  (void)pa, (void)edge;
  for (int r = 0; r < mrows; r += 4) {
    // Rows past the block's last repeat it (their scores are never read).
    const float* a[4];
    for (int x = 0; x < 4; x++) a[x] = q + min_int(r + x, mrows - 1) * q_rs;
    const int kp0 = attention_first(i0 + r, offset, kv_len, window) / NR;
    const int kp1 = attention_last(i0 + min_int(r + 3, mrows - 1), offset, kv_len) / NR + 1;
    for (int pc = 0; pc < d; pc += KC) {
      const int kc = min_int(KC, d - pc), store = pc == 0;
      const float* ap[4] = {a[0] + pc, a[1] + pc, a[2] + pc, a[3] + pc};
      // Triples of key micro-panels, but a single one left after them is
      // taken with the last triple as two pairs.
      const int panels = kp1 - kp0;
      int triples = panels / 3;
      if (triples > 0 && panels % 3 == 1) triples--;
      const float* b = kt + kp0 * d * NR + pc * NR;
      float* c = s + r * lds + kp0 * NR;
      attention_tile_4x3(kc, ap, b, NR, d * NR, 3 * d * NR, triples, c, lds, 4, NR, store);
      const int rest = panels - 3 * triples;
      b += triples * 3 * d * NR, c += triples * 3 * NR;
      if (rest >= 2) {
        attention_tile_4x2(kc, ap, b, NR, d * NR, 2 * d * NR, rest / 2, c, lds, 4, NR, store);
      }
      if (rest % 2 == 1) {
        b += rest / 2 * 2 * d * NR, c += rest / 2 * 2 * NR;
        attention_tile_4x1(kc, ap, b, NR, d * NR, d * NR, 1, c, lds, 4, NR, store);
      }
    }
  }
#else
  for (int pc = 0; pc < d; pc += KC) {
    const int kc = min_int(KC, d - pc);
    pack_a(q + pc, q_rs, 1, mrows, kc, pa);
    for (int r = 0; r < mrows; r += MR) {
      const int rows = min_int(MR, mrows - r);
      const int kp0 = attention_first(i0 + r, offset, kv_len, window) / NR;
      const int kp1 = attention_last(i0 + r + rows - 1, offset, kv_len) / NR + 1;
      for (int kp = kp0; kp < kp1; kp++) {
        micro_kernel(kc, pa + r * kc, rows, kt + kp * d * NR + pc * NR, s + r * lds + kp * NR, lds,
                     NR, pc == 0, edge);
      }
    }
  }
#endif
}

#ifndef __wasm__
// Output rows [r, r + ROWS) ∩ the block, COUNT tiles of NV column vectors
// from column C0, against the values' rows (v row j at vb + j·vstride): per
// KC slice of keys, the keys the rows see.
#define ATTENTION_VALUES(ROWS, NV, C0, COUNT)                                                  \
  for (int r = 0; r < mrows; r += ROWS) {                                                     \
    const int rows = min_int(ROWS, mrows - r);                                                \
    const int kf = attention_first(i0 + r, offset, kv_len, window);                           \
    const int kl = attention_last(i0 + r + rows - 1, offset, kv_len);                         \
    for (int pc = kf / KC * KC, first_slice = 1; pc <= kl; pc += KC, first_slice = 0) {       \
      const int j0 = pc > kf ? pc : kf, j1 = min_int(pc + KC - 1, kl);                        \
      const float* a[ROWS];                                                                   \
      for (int x = 0; x < ROWS; x++) a[x] = s + (r + x) * lds + j0;                           \
      attention_tile_##ROWS##x##NV(j1 + 1 - j0, a, vb + j0 * vstride + (C0), vstride, NR,     \
                                   NV * NR, COUNT, out + r * ldc + (C0), ldc, rows,           \
                                   min_int(NR, d - (C0) - ((COUNT) * NV - 1) * NR), first_slice); \
    }                                                                                         \
  }
#endif

// The values of one head for the block's rows: out[r] = Σ_j p[r][j] · v[j],
// v's row j at vb + j·vstride (natively; the WebAssembly builds read the
// packed column micro-panels vp).
static void attention_values(const float* s, int lds, int mrows, int i0, int d, int offset,
                             int kv_len, int window, const float* vb, int vstride,
                             const float* vp, float* out, int ldc, float* pa, float* edge) {
#ifndef __wasm__
  (void)vp, (void)pa, (void)edge;
  const int nv = (d + NR - 1) / NR;
  if (nv == 1) {
    ATTENTION_VALUES(8, 1, 0, 1)
  } else if (nv % 2 == 1) {
    ATTENTION_VALUES(4, 3, 0, 1)
    if (nv > 3) ATTENTION_VALUES(6, 2, 3 * NR, (nv - 3) / 2)
  } else {
    ATTENTION_VALUES(6, 2, 0, nv / 2)
  }
#else
  (void)vb, (void)vstride;
  const int kp = (kv_len + NR - 1) / NR * NR;
  for (int r = 0; r < mrows; r += MR) {
    const int rows = min_int(MR, mrows - r);
    const int kf = attention_first(i0 + r, offset, kv_len, window);
    const int kl = attention_last(i0 + r + rows - 1, offset, kv_len);
    for (int pc = kf / KC * KC, first_slice = 1; pc <= kl; pc += KC, first_slice = 0) {
      const int j0 = pc > kf ? pc : kf, j1 = min_int(pc + KC - 1, kl);
      pack_a(s + r * lds + j0, lds, 1, rows, j1 + 1 - j0, pa);
      for (int c = 0; c < d; c += NR) {
        micro_kernel(j1 + 1 - j0, pa, rows, vp + c * kp + j0 * NR, out + r * ldc + c, ldc,
                     min_int(NR, d - c), first_slice, edge);
      }
    }
  }
#endif
}

NOINLINE static void run_attention(char* base, const int32_t* job, int task, float* scratch) {
  const int seq = job[J_M], kv_len = job[J_N], d = job[J_K];
  const int rows = job[J_NC], spans = job[J_NSTRIPES];
  const int q_rs = job[J_A_RS], kv_rs = job[J_B_RS], ldc = job[J_LDC];
  const int offset = job[J_CAUSAL_OFFSET], window = job[J_WINDOW];
  const int group = job[J_B_GROUP], kv_heads = ldc / d / group;
  union { int32_t i; float f; } scale = {job[J_SCALE]};
  const int span = task % spans;
  task /= spans;
  const int g = task % kv_heads, b = task / kv_heads;
  const float* q = operand(base, job, J_A, J_P0, J_J0) + b * job[J_A_BS];
  const float* k = operand(base, job, J_B, J_J1, J_GROUP) + b * job[J_B_BS] + g * d;
  const float* v = operand(base, job, J_V, J_Q_SCALE, J_Q_ZERO) + b * job[J_B_BS] + g * d;
  float* out = operand(base, job, J_C, J_Q_SLOT, J_Q_ROW_DIV) + b * job[J_C_BS];
  const int kp = (kv_len + NR - 1) / NR * NR, dp = (d + NR - 1) / NR * NR;
  const int lds = kp + 2 * NR;
  float* kt = scratch;              // kp × d
  float* vp = kt + kp * d;          // kp × dp
  float* s = vp + kp * dp;          // rows × lds
  float* pa = s + rows * lds;       // rows × KC
  float* edge = pa + rows * KC;     // MR × NR
  // The values' rows as attention_values reads them natively: packed
  // contiguous, since in place, kv_rs floats apart (often a multiple of 512
  // bytes), they fall into a few L1 sets (the values' tiles ran 40 % slower).
  const float* vb = vp;
  const int vstride = dp;
  int packed = -1;                  // key micro-panels packed: [.., packed)
  for (int i0 = span * rows; i0 < seq; i0 += spans * rows) {
    const int mrows = min_int(rows, seq - i0);
    const int z0 = attention_first(i0, offset, kv_len, window);
    const int z1 = attention_last(i0 + mrows - 1, offset, kv_len);
    const int kp0 = packed < 0 ? z0 / NR : packed, kp1 = z1 / NR + 1;
    attention_pack(k, v, kv_rs, kv_len, d, kp0 > z0 / NR ? kp0 : z0 / NR, kp1, kt, vp);
    packed = kp1;
    for (int h = g * group; h < (g + 1) * group; h++) {
      attention_scores(q + i0 * q_rs + h * d, q_rs, mrows, i0, d, offset, kv_len, window, kt, s,
                       lds, pa, edge);
#ifndef __wasm__
      for (int r = 0; r < mrows; r += 4) {
        int first[4], last[4];
        const int n = min_int(4, mrows - r);
        for (int x = 0; x < n; x++) {
          first[x] = attention_first(i0 + r + x, offset, kv_len, window);
          last[x] = attention_last(i0 + r + x, offset, kv_len);
        }
        softmax_rows(s + r * lds, lds, n, first, last, z0, scale.f);
      }
#else
      for (int r = 0; r < mrows; r++) {
        softmax_row(s + r * lds, attention_first(i0 + r, offset, kv_len, window),
                    attention_last(i0 + r, offset, kv_len), z1 + 1, scale.f);
      }
#endif
      attention_values(s, lds, mrows, i0, d, offset, kv_len, window, vb, vstride, vp,
                       out + i0 * ldc + h * d, ldc, pa, edge);
    }
  }
}

// The butterflies of span h (h ≥ 4 here, a multiple of 4) over one run of n
// floats: lo ← lo + hi, hi ← lo − hi for each pair h apart in each block of
// 2h. Vectors only regroup the same float32 sums and differences.
static inline void fwht_span(float* v, int n, int h) {
  for (int i = 0; i < n; i += 2 * h) {
    float* lo = v + i;
    float* hi = v + i + h;
    int j = 0;
#ifndef __wasm__
    for (; j + 8 <= h; j += 8) {
      const __m256 a = _mm256_loadu_ps(lo + j), b = _mm256_loadu_ps(hi + j);
      _mm256_storeu_ps(lo + j, _mm256_add_ps(a, b));
      _mm256_storeu_ps(hi + j, _mm256_sub_ps(a, b));
    }
#endif
    for (; j < h; j += 4) {
      const v128_t a = wasm_v128_load(lo + j), b = wasm_v128_load(hi + j);
      wasm_v128_store(lo + j, wasm_f32x4_add(a, b));
      wasm_v128_store(hi + j, wasm_f32x4_sub(a, b));
    }
  }
}

// Spans 1 and 2 of one run (n a multiple of 4) in registers, four values a
// step: (v0 + v1, v0 − v1, v2 + v3, v2 − v3), then (w0 + w2, w1 + w3, w0 −
// w2, w1 − w3); the same sums and differences as the pairwise loops.
static inline void fwht_spans_1_2(float* v, int n) {
  for (int i = 0; i < n; i += 4) {
    v128_t x = wasm_v128_load(v + i);
    v128_t a = wasm_i32x4_shuffle(x, x, 0, 0, 2, 2), b = wasm_i32x4_shuffle(x, x, 1, 1, 3, 3);
    x = wasm_i32x4_shuffle(wasm_f32x4_add(a, b), wasm_f32x4_sub(a, b), 0, 5, 2, 7);
    a = wasm_i32x4_shuffle(x, x, 0, 1, 0, 1);
    b = wasm_i32x4_shuffle(x, x, 2, 3, 2, 3);
    wasm_v128_store(v + i, wasm_i32x4_shuffle(wasm_f32x4_add(a, b), wasm_f32x4_sub(a, b), 0, 1, 6, 7));
  }
}

// v[i] ← (float)((double)v[i] · scale), then × f[i] when f is given (the
// factors after the scale); either step alone when the other is absent.
static inline void fwht_finish(float* v, int n, double scale, const float* f) {
  int i = 0;
#ifndef __wasm__
  const __m256d s = _mm256_set1_pd(scale);
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(v + i);
    if (scale != 1) {
      const __m128 lo = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x)), s));
      const __m128 hi = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)), s));
      x = _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
    }
    if (f != 0) x = _mm256_mul_ps(x, _mm256_loadu_ps(f + i));
    _mm256_storeu_ps(v + i, x);
  }
#endif
  for (; i < n; i++) {
    float x = v[i];
    if (scale != 1) x = (float)((double)x * scale);
    if (f != 0) x = x * f[i];
    v[i] = x;
  }
}

// v[i] ← v[i] · f[i], float32 products.
static inline void fwht_factors(float* v, const float* f, int n) {
  int i = 0;
#ifndef __wasm__
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(v + i, _mm256_mul_ps(_mm256_loadu_ps(v + i), _mm256_loadu_ps(f + i)));
  }
#endif
  for (; i + 4 <= n; i += 4) {
    wasm_v128_store(v + i, wasm_f32x4_mul(wasm_v128_load(v + i), wasm_v128_load(f + i)));
  }
  for (; i < n; i++) v[i] = v[i] * f[i];
}

// One task of a fast Walsh–Hadamard transform (J_OP 7): runs [task·NC,
// (task + 1)·NC) of the N-float runs of x (M runs in all, at A), each run
// transformed in place by butterflies of span K (the stride), 2K, … N/2, then
// multiplied by the float64 scale unless it is 1. The arithmetic of
// fastWalshHadamard in src/transform/block_apply.ts: float32 sums and
// differences (exact through float64, as there) and the scale's product
// rounded once, so both give the same bits; vectors only regroup them. With
// factors (J_FWHT_SIGNS: a random-hadamard rotation's signs), each run
// position's value is also multiplied by its factor as a float32 product
// (CpuEngine.mul's bits), before the butterflies or after the scale.
NOINLINE static void run_fwht(char* base, const int32_t* job, int task) {
  const int runs = job[J_M], n = job[J_N], stride = job[J_K], chunk = job[J_NC];
  const double scale = *(const double*)&job[J_FWHT_SCALE];
  float* x = (float*)MEM(base, job[J_A]);
  const float* signs = job[J_FWHT_SIGNS] == 0 ? 0 : (const float*)MEM(base, job[J_FWHT_SIGNS]);
  const int signs_first = job[J_FWHT_SIGNS_FIRST];
  const float* last = signs != 0 && !signs_first ? signs : 0;
  const int r1 = min_int(runs, (task + 1) * chunk);
  for (int r = task * chunk; r < r1; r++) {
    float* v = x + r * n;
    if (signs != 0 && signs_first) fwht_factors(v, signs, n);
    int h = stride;
    if (h == 1 && n % 4 == 0) {
      fwht_spans_1_2(v, n);
      h = 4;
    }
    for (; h < n; h *= 2) {
      if (h % 4 == 0) {
        fwht_span(v, n, h);
        continue;
      }
      for (int i = 0; i < n; i += 2 * h) {
        float* lo = v + i;
        float* hi = v + i + h;
        for (int j = 0; j < h; j++) {
          const float a = lo[j], b = hi[j];
          lo[j] = a + b;
          hi[j] = a - b;
        }
      }
    }
    if (scale != 1 || last != 0) fwht_finish(v, n, scale, last);
  }
}

// y = silu(g) · u element-wise (a SwiGLU MLP's activation): silu(g) =
// g · sigmoid(g), sigmoid from e = exp(-|g|) <= 1 as 1 / (1 + e) for g >= 0
// and e / (1 + e) below, so exp never overflows.
NOINLINE static void silu_mul(const float* g, const float* u, float* y, int n) {
  const v128_t one = wasm_f32x4_splat(1.0f);
  int i = 0;
#ifndef __wasm__
  // Native: eight elements a step first, each lane the four-lane loop's operations.
  const __m256 one8 = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int32_t)0x80000000u));
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 e = exp_nonpositive8(_mm256_or_ps(gv, sign));  // -|g|
    const __m256 ge = _mm256_cmp_ps(gv, _mm256_setzero_ps(), _CMP_GE_OS);
    const __m256 num = _mm256_or_ps(_mm256_and_ps(one8, ge), _mm256_andnot_ps(ge, e));
    const __m256 sig = _mm256_div_ps(num, _mm256_add_ps(one8, e));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(gv, sig), _mm256_loadu_ps(u + i)));
  }
#endif
  for (; i + 4 <= n; i += 4) {
    const v128_t gv = wasm_v128_load(g + i);
    const v128_t e = exp_nonpositive(wasm_f32x4_neg(wasm_f32x4_abs(gv)));
    const v128_t num = wasm_v128_bitselect(one, e, wasm_f32x4_ge(gv, wasm_f32x4_splat(0.0f)));
    const v128_t sig = wasm_f32x4_div(num, wasm_f32x4_add(one, e));
    wasm_v128_store(y + i, wasm_f32x4_mul(wasm_f32x4_mul(gv, sig), wasm_v128_load(u + i)));
  }
  for (; i < n; i++) {
    const float e = wasm_f32x4_extract_lane(exp_nonpositive(wasm_f32x4_splat(g[i] < 0 ? g[i] : -g[i])), 0);
    const float sig = (g[i] >= 0 ? 1.0f : e) / (1.0f + e);
    y[i] = g[i] * sig * u[i];
  }
}

// One SwiGLU task (J_OP 3): elements [task·NC, (task + 1)·NC) of y = silu(g) · u,
// g at A, u at B, y at C, N elements in all. NC is a multiple of 4, so every
// element takes the path it would take in one pass over the whole array.
NOINLINE static void run_silu_mul(char* base, const int32_t* job, int task) {
  const int n = job[J_N], chunk = job[J_NC];
  const int i0 = task * chunk, i1 = min_int(n, i0 + chunk);
  silu_mul((const float*)MEM(base, job[J_A]) + i0, (const float*)MEM(base, job[J_B]) + i0,
           (float*)MEM(base, job[J_C]) + i0, i1 - i0);
}

// One task of an element-wise sum (J_OP 26): elements [task·NC, (task + 1)·NC)
// of y = a + b in float32, a at A, b at B, y at C (y may be a or b), N in all
// (a residual connection added to a product that is still in this memory;
// CpuEngine.add's bits: one float32 sum per element).
NOINLINE static void run_add(char* base, const int32_t* job, int task) {
  const int n = job[J_N], chunk = job[J_NC];
  const int i0 = task * chunk, i1 = min_int(n, i0 + chunk);
  const float* a = (const float*)MEM(base, job[J_A]);
  const float* b = (const float*)MEM(base, job[J_B]);
  float* y = (float*)MEM(base, job[J_C]);
  int i = i0;
  for (; i + 4 <= i1; i += 4) {
    wasm_v128_store(y + i, wasm_f32x4_add(wasm_v128_load(a + i), wasm_v128_load(b + i)));
  }
  for (; i < i1; i++) y[i] = a[i] + b[i];
}

// One task of RoPE (rotate_half) in place (J_OP 27): rows [task·NC, (task +
// 1)·NC) of x [M, N] at A (N = heads · K, K the head dimension), the row's
// position (P0 + row) mod SEQ (P0: the first row's index in its batch of
// sequences, SEQ at J_J0), cos and sin [SEQ, K / 2] at B and V. Each pair
// (x1, x2) = (x[i], x[i + K/2]) of a head becomes (x1·c − x2·s, x2·c + x1·s),
// every product and sum rounded to float32: CpuEngine.ropeInPlace's bits
// (its products are Math.fround'ed, its sums stored as float32; the build
// contracts nothing into a fused multiply-add).
NOINLINE static void run_rope(char* base, const int32_t* job, int task) {
  const int rows = job[J_M], n = job[J_N], d = job[J_K], chunk = job[J_NC];
  const int first = job[J_P0], seq = job[J_J0], half = d / 2;
  float* x = operand(base, job, J_A, J_Q_SCALE, J_Q_ZERO);  // natively maybe a host array
  const float* cs = (const float*)MEM(base, job[J_B]);
  const float* sn = (const float*)MEM(base, job[J_V]);
  const int r1 = min_int(rows, (task + 1) * chunk);
  for (int r = task * chunk; r < r1; r++) {
    const float* c = cs + ((first + r) % seq) * half;
    const float* s = sn + ((first + r) % seq) * half;
    for (int h = 0; h < n; h += d) {
      float* lo = x + r * n + h;
      float* hi = lo + half;
      for (int i = 0; i < half; i++) {
        const float x1 = lo[i], x2 = hi[i];
        const float a = x1 * c[i], b = x2 * s[i], e = x2 * c[i], f = x1 * s[i];
        lo[i] = a - b;
        hi[i] = e + f;
      }
    }
  }
}


// One task of a copy across the memory's boundary (J_OP 28, the native
// build only; the WebAssembly builds cannot address host memory and are
// never given it): floats [task·NC, (task + 1)·NC) of N between a host
// array at the 64-bit address A (low half) : B (high half) and byte offset
// C of this memory, into the memory when K is 1, out of it when 0. A large
// operand's copy is then shared by the threads like the work on it.
NOINLINE static void run_copy(char* base, const int32_t* job, int task) {
#ifndef __wasm__
  const int n = job[J_N], chunk = job[J_NC];
  const int i0 = task * chunk, i1 = min_int(n, i0 + chunk);
  float* host = host_at(job, J_A, J_B);
  float* mem = (float*)MEM(base, job[J_C]);
  const float* src = job[J_K] ? host : mem;
  float* dst = job[J_K] ? mem : host;
  int i = i0;
  for (; i + 8 <= i1; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
  for (; i < i1; i++) dst[i] = src[i];
#else
  (void)base, (void)job, (void)task;
#endif
}

// One task of a Hessian's running update from a Gram block (J_OP 62, the
// native build only, as run_copy): rows [task·NC, (task + 1)·NC) of M of the
// block at C (row i holds h's row I0 + i from column I0 on, LDC floats
// apart) update h, a host array of K × K floats at Q_SCALE : Q_ZERO, from
// the diagonal rightwards: h ← h·beta + alpha·g in float64 (beta at EPS,
// alpha at FWHT_SCALE), rounded to float32 once. The build does not contract
// (-ffp-contract=off), so each element is TypeScript's
// `h[at] * beta + alpha * done[from]`, bit for bit.
NOINLINE static void run_gram_scale_add(char* base, const int32_t* job, int task) {
#ifndef __wasm__
  const int m = job[J_M], k = job[J_K], i0 = job[J_A], ldc = job[J_LDC], chunk = job[J_NC];
  const double beta = *(const double*)&job[J_EPS], alpha = *(const double*)&job[J_FWHT_SCALE];
  float* h = host_at(job, J_Q_SCALE, J_Q_ZERO);
  const float* g = (const float*)MEM(base, job[J_C]);
  for (int i = task * chunk; i < min_int(m, (task + 1) * chunk); i++) {
    float* hr = h + (size_t)(i0 + i) * k + i0;
    const float* gr = g + (size_t)i * ldc;
    for (int j = i; j < k - i0; j++) hr[j] = (float)((double)hr[j] * beta + alpha * (double)gr[j]);
  }
#else
  (void)base, (void)job, (void)task;
#endif
}

// One task of a residual sum into a host array (J_OP 56, the native build
// only, as run_copy): elements [task·NC, (task + 1)·NC) of N of y = r + c,
// r a host array at A (low half) : B (high half), c at byte offset C of this
// memory, y a host array at P0 : J0 (may be r). The sum run_add computes
// into this memory, written where run_copy would copy it: a product's
// residual connection in one pass instead of a copy in, the sum and a copy
// out.
NOINLINE static void run_add_host(char* base, const int32_t* job, int task) {
#ifndef __wasm__
  const int n = job[J_N], chunk = job[J_NC];
  const int i0 = task * chunk, i1 = min_int(n, i0 + chunk);
  const float* r = host_at(job, J_A, J_B);
  const float* c = (const float*)MEM(base, job[J_C]);
  float* y = host_at(job, J_P0, J_J0);
  int i = i0;
  for (; i + 8 <= i1; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(r + i), _mm256_loadu_ps(c + i)));
  }
  for (; i < i1; i++) y[i] = r[i] + c[i];
#else
  (void)base, (void)job, (void)task;
#endif
}

// One task of SwiGLU into a host array (J_OP 57, native only): run_silu_mul's
// elements [task·NC, (task + 1)·NC) of N, g and u at byte offsets A and B of
// this memory, y a host array at P0 (low half) : J0 (high half), so the
// activation is not written here and then copied out.
NOINLINE static void run_silu_mul_host(char* base, const int32_t* job, int task) {
#ifndef __wasm__
  const int n = job[J_N], chunk = job[J_NC];
  const int i0 = task * chunk, i1 = min_int(n, i0 + chunk);
  silu_mul((const float*)MEM(base, job[J_A]) + i0, (const float*)MEM(base, job[J_B]) + i0,
           host_at(job, J_P0, J_J0) + i0, i1 - i0);
#else
  (void)base, (void)job, (void)task;
#endif
}

// Float64 and float32 vectors of four lanes (GCC/Clang vector extensions:
// one ymm register in the native build, two f64x2 in WebAssembly), for the
// column blocks below, which run LANES rows side by side.
typedef double f64x4 __attribute__((vector_size(32)));
typedef float f32x4 __attribute__((vector_size(16)));
typedef long long i64x4 __attribute__((vector_size(32)));

// Rows a column block runs side by side: two f64x4 per column step.
#define LANES 8

// Four float32 values widened to float64 (exact). GCC splits the generic
// conversion into halves; the native build names the one instruction.
static inline f64x4 load4_f32(const float* p) {
#ifdef __wasm__
  f32x4 v;
  __builtin_memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, f64x4);
#else
  return (f64x4)_mm256_cvtps_pd(_mm_loadu_ps(p));
#endif
}

// Rounds each lane to float32 and stores it.
static inline void store4_f32(float* p, f64x4 x) {
#ifdef __wasm__
  const f32x4 v = __builtin_convertvector(x, f32x4);
  __builtin_memcpy(p, &v, sizeof v);
#else
  _mm_storeu_ps(p, _mm256_cvtpd_ps((__m256d)x));
#endif
}

// Each lane rounded to float32 (what a Float32Array store does), as float64.
static inline f64x4 round_f32(f64x4 x) {
#ifdef __wasm__
  return __builtin_convertvector(__builtin_convertvector(x, f32x4), f64x4);
#else
  return (f64x4)_mm256_cvtps_pd(_mm256_cvtpd_ps((__m256d)x));
#endif
}

// m ? a : b per lane (m: all ones or all zeros).
static inline f64x4 select4(i64x4 m, f64x4 a, f64x4 b) {
  return (f64x4)((m & (i64x4)a) | (~m & (i64x4)b));
}

// Round half to even of float64 lanes whose magnitude is below 2^51:
// adding 1.5 · 2^52 leaves no fraction bits, so the FPU's rounding does it
// (as roundHalfEven in src/quant/round_half_even.ts, whose bits this must
// give, the sign of a zero result included).
static inline f64x4 round_half_even4(f64x4 x) {
  const double magic = 6755399441055744.0;  // 1.5 · 2^52
  const f64x4 r = (x + magic) - magic;
  return select4(r == 0, x * 0, r);
}

// The end of a column step of four lanes, x's value q chosen: its loss term
// (x − q)² / d² (dd = d²) into terms, its scaled error (x − q) / d rounded
// to float32 into err, q into q_out; returns the error.
static inline f64x4 record_step4(f64x4 x, f64x4 q, double d, double dd, float* q_out,
                                 double* terms, float* err) {
  const f64x4 diff = x - q;
  const f64x4 term = diff * diff / dd;
  __builtin_memcpy(terms, &term, sizeof term);
  const f64x4 e = round_f32(diff / d);
  store4_f32(err, e);
  store4_f32(q_out, q);
  return e;
}

// One column step of four lanes: x fake-quantized with scale s and zero
// point z to [qmin, qmax], then recorded (record_step4).
static inline f64x4 quantize_step4(f64x4 x, f64x4 s, f64x4 z, double qmin, double qmax, double d,
                                   double dd, float* q_out, double* terms, float* err) {
  f64x4 t = round_f32(x / s);
  t = round_f32(t + z);
  t = select4(t < qmin, (f64x4){qmin, qmin, qmin, qmin},
              select4(t > qmax, (f64x4){qmax, qmax, qmax, qmax}, t));
  const f64x4 c = round_half_even4(t);
  const f64x4 q = round_f32(round_f32(c - z) * s);
  return record_step4(x, q, d, dd, q_out, terms, err);
}

// The column blocks' lanes (run_column_block, run_prune_block): rows g ..
// g + lanes − 1 of wb[M, K] transposed into wt[K][LANES], padding lanes 0.
static void lanes_in(const float* wb, int g, int lanes, int count, float* wt) {
  for (int l = 0; l < LANES; l++) {
    const float* src = wb + (g + (l < lanes ? l : 0)) * count;
    for (int j = 0; j < count; j++) wt[j * LANES + l] = l < lanes ? src[j] : 0;
  }
}

// Column i's scaled errors e0 (lanes 0–3) and e1 (4–7) taken from the
// lanes' later columns j of the block: w[j] −= e · U[i, j].
static inline void lanes_update(float* wt, const float* ui, int i, int count, f64x4 e0, f64x4 e1) {
  for (int j = i + 1; j < count; j++) {
    float* wj = wt + j * LANES;
    const double u = ui[j];
    store4_f32(wj, load4_f32(wj) - e0 * u);
    store4_f32(wj + 4, load4_f32(wj + 4) - e1 * u);
  }
}

// The lanes' w, err and loss terms back into rows g .. g + lanes − 1.
static void lanes_out(const float* wt, const float* et, const double* tt, int g, int lanes,
                      int count, float* wb, float* err, double* terms) {
  for (int l = 0; l < lanes; l++) {
    const int r = g + l;
    for (int j = 0; j < count; j++) {
      wb[r * count + j] = wt[j * LANES + l];
      err[r * count + j] = et[j * LANES + l];
      terms[r * count + j] = tt[j * LANES + l];
    }
  }
}

// One task of a GPTQ column block (J_OP 4) with quantization to an integer
// grid and no pruning: rows [task·NC, (task + 1)·NC) of the block's weight
// columns wb[M, K] (row-major, the block's K columns of each row), with U's
// block ub[K, K] (row-major, upper triangular). For each column i in order,
// each row's value is fake-quantized with its slot's scale and zero point,
// its scaled error e = (w − q) / U[i, i] goes to err[M, K], its loss term
// (w − q)² / U[i, i]² to terms[M, K], and e · U[i, j] is taken from the
// row's later columns j of the block. Rows are independent, so tasks may run
// on any thread. The arithmetic is cpuColumnBlock's in src/engine/cpu/
// second_order.ts, operation for operation: float32 values combined in
// float64 and rounded to float32 where it rounds (Math.fround), so both
// give the same bits. J_OP 24 is the same with a zero mask (uint8 [M, K] at
// V, a sparse weight's): the in-block updates are e · U[i, j] · mask[j],
// as cpuColumnBlock's masked loop multiplies them.
//
// Each row is a chain of dependent steps (a column's value waits for the
// previous column's update), so one row at a time leaves the core waiting
// on its divisions. The task runs LANES rows side by side instead, each row
// a lane of float64 vectors: their columns are transposed into the
// thread's scratch (`scratch`: the loss terms as [K][LANES] float64, w,
// err and the mask as [K][LANES] float32, the lanes' slot rows), run there
// and transposed back. Every lane does its own row's operations in the
// same order, so the bits are those of one row at a time (padding lanes
// past the task's last row compute on zeros and are dropped).
NOINLINE static void run_column_block(char* base, const int32_t* job, int task, float* scratch) {
  const int rows = job[J_M], count = job[J_K], chunk = job[J_NC];
  const int r0 = task * chunk, r1 = min_int(rows, r0 + chunk);
  float* wb = (float*)MEM(base, job[J_A]);
  const float* ub = (const float*)MEM(base, job[J_B]);
  float* err = (float*)MEM(base, job[J_C]);
  double* terms = (double*)MEM(base, job[J_TERMS]);
  const float* scale = (const float*)MEM(base, job[J_Q_SCALE]);
  const float* zero = (const float*)MEM(base, job[J_Q_ZERO]);
  const uint32_t* slot = (const uint32_t*)MEM(base, job[J_Q_SLOT]);
  const int row_div = job[J_Q_ROW_DIV], slot_stride = job[J_Q_SLOT_STRIDE];
  union { int32_t i; float f; } qmin = {job[J_Q_MIN]}, qmax = {job[J_Q_MAX]};
  const uint8_t* mask = job[J_OP] == 24 ? (const uint8_t*)MEM(base, job[J_V]) : 0;
  // gemm.ts sends no block wider than the scratch holds (COLUMN_BLOCK_MAX_COUNT).
  if ((int64_t)count * LANES * (3 * 4 + 8) + LANES * 4 > (int64_t)(uint32_t)job[J_SCRATCH_STRIDE]) {
    return;
  }
  double* tt = (double*)scratch;  // [K][LANES] loss terms
  float* wt = (float*)(tt + count * LANES);
  float* et = wt + count * LANES;
  float* mt = et + count * LANES;
  // In the scratch, not on the C stack (which WebAssembly threads share).
  int32_t* sr = (int32_t*)(mt + count * LANES);
  const double lo = qmin.f, hi = qmax.f;
  for (int g = r0; g < r1; g += LANES) {
    const int n = min_int(LANES, r1 - g);
    lanes_in(wb, g, n, count, wt);
    if (mask) {
      for (int l = 0; l < LANES; l++) {
        const uint8_t* ms = mask + (g + (l < n ? l : 0)) * count;
        for (int j = 0; j < count; j++) mt[j * LANES + l] = ms[j];
      }
    }
    // The lanes' slot rows; padding lanes read the first row's.
    for (int l = 0; l < LANES; l++) sr[l] = (g + (l < n ? l : 0)) / row_div * slot_stride;
    uint32_t last_slot = 0;
    f64x4 s0 = {0}, s1 = {0}, z0 = {0}, z1 = {0};
    for (int i = 0; i < count; i++) {
      if (i == 0 || slot[i] != last_slot) {
        last_slot = slot[i];
        const int c = (int)last_slot;
        s0 = (f64x4){scale[sr[0] + c], scale[sr[1] + c], scale[sr[2] + c], scale[sr[3] + c]};
        s1 = (f64x4){scale[sr[4] + c], scale[sr[5] + c], scale[sr[6] + c], scale[sr[7] + c]};
        z0 = (f64x4){zero[sr[0] + c], zero[sr[1] + c], zero[sr[2] + c], zero[sr[3] + c]};
        z1 = (f64x4){zero[sr[4] + c], zero[sr[5] + c], zero[sr[6] + c], zero[sr[7] + c]};
      }
      const float* ui = ub + i * count;
      const double d = ui[i], dd = (double)ui[i] * (double)ui[i];
      float* wi = wt + i * LANES;
      const f64x4 e0 = quantize_step4(load4_f32(wi), s0, z0, lo, hi, d, dd, wi,
                                      tt + i * LANES, et + i * LANES);
      const f64x4 e1 = quantize_step4(load4_f32(wi + 4), s1, z1, lo, hi, d, dd, wi + 4,
                                      tt + i * LANES + 4, et + i * LANES + 4);
      if (mask) {
        for (int j = i + 1; j < count; j++) {
          float* wj = wt + j * LANES;
          const float* mj = mt + j * LANES;
          const double u = ui[j];
          store4_f32(wj, load4_f32(wj) - e0 * u * load4_f32(mj));
          store4_f32(wj + 4, load4_f32(wj + 4) - e1 * u * load4_f32(mj + 4));
        }
      } else {
        lanes_update(wt, ui, i, count, e0, e1);
      }
    }
    lanes_out(wt, et, tt, g, n, count, wb, err, terms);
  }
}

// SparseGPT's pruning metric W² / d², in float32 as its TypeScript twin
// rounds it.
static inline float prune_metric(float w, float d) { return (w * w) / (d * d); }

// One column step of four lanes of a pruning block: q = 0 where the lane's
// flag is set, else x, then recorded (record_step4).
static inline f64x4 prune_step4(f64x4 x, f64x4 pruned, double d, double dd, float* q_out,
                                double* terms, float* err) {
  const f64x4 q = select4(pruned != 0, (f64x4){0, 0, 0, 0}, x);
  return record_step4(x, q, d, dd, q_out, terms, err);
}

// One task of a SparseGPT column block with N:M pruning (J_OP 25): rows
// [task·NC, (task + 1)·NC) of wb[M, K] and U's block ub[K, K] as in
// run_column_block, N and M (ints) at Q_MIN and Q_MAX, and, when V is not
// 0, the weight's uint8 keep mask [M, K] at V (0: an existing zero that
// stays pruned). At the start of each window of M columns, each row prunes
// its existing zeros and the N smallest W² / U[j, j]² of the window (those
// zeros count as 0; ties: the lower column); then column by column as in
// run_column_block with q = 0 for a pruned value and q = w otherwise.
// cpuColumnBlock's "n:m" path (without quantization), operation for
// operation. Rows run LANES side by side in the thread's scratch as in
// run_column_block (the loss terms, w and err as [K][LANES], then the
// window's pruned flags as [M][LANES] float32, 1 pruned); each lane picks
// its own row's window.
NOINLINE static void run_prune_block(char* base, const int32_t* job, int task, float* scratch) {
  const int rows = job[J_M], count = job[J_K], chunk = job[J_NC];
  const int n = job[J_Q_MIN], m = job[J_Q_MAX];
  const int r0 = task * chunk, r1 = min_int(rows, r0 + chunk);
  float* wb = (float*)MEM(base, job[J_A]);
  const float* ub = (const float*)MEM(base, job[J_B]);
  float* err = (float*)MEM(base, job[J_C]);
  double* terms = (double*)MEM(base, job[J_TERMS]);
  const uint8_t* keep = job[J_V] ? (const uint8_t*)MEM(base, job[J_V]) : 0;
  // gemm.ts sends no block wider than the scratch holds, nor M past 32.
  if ((int64_t)count * LANES * (2 * 4 + 8) + 32 * LANES * 4 >
      (int64_t)(uint32_t)job[J_SCRATCH_STRIDE]) {
    return;
  }
  double* tt = (double*)scratch;  // [K][LANES] loss terms
  float* wt = (float*)(tt + count * LANES);
  float* et = wt + count * LANES;
  float* pm = et + count * LANES;  // [M][LANES] the window's pruned flags
  for (int g = r0; g < r1; g += LANES) {
    const int lanes = min_int(LANES, r1 - g);
    lanes_in(wb, g, lanes, count, wt);
    int i0 = 0;
    for (int i = 0; i < count; i++) {
      if (i % m == 0) {
        i0 = i;
        const int end = min_int(i + m, count);
        for (int l = 0; l < LANES; l++) {
          const uint8_t* k = keep && l < lanes ? keep + (g + l) * count : 0;
          uint32_t pruned = 0;  // bit j − i
          if (k) {
            for (int j = i; j < end; j++) pruned |= (uint32_t)(k[j] == 0) << (j - i);
          }
          // N picks of the smallest (metric, column) not picked yet.
          uint32_t taken = 0;
          const int picks = min_int(n, end - i);
          for (int t = 0; t < picks; t++) {
            int best = -1;
            float least = 0;
            for (int j = i; j < end; j++) {
              if ((taken >> (j - i)) & 1) continue;
              const float mt = k && k[j] == 0 ? 0.0f
                                              : prune_metric(wt[j * LANES + l], ub[j * count + j]);
              if (best < 0 || mt < least) {
                best = j;
                least = mt;
              }
            }
            taken |= 1u << (best - i);
          }
          pruned |= taken;
          for (int j = i; j < end; j++) pm[(j - i) * LANES + l] = (float)((pruned >> (j - i)) & 1);
        }
      }
      const float* ui = ub + i * count;
      const double d = ui[i], dd = (double)ui[i] * (double)ui[i];
      float* wi = wt + i * LANES;
      const float* pi = pm + (i - i0) * LANES;
      const f64x4 e0 = prune_step4(load4_f32(wi), load4_f32(pi), d, dd, wi, tt + i * LANES,
                                   et + i * LANES);
      const f64x4 e1 = prune_step4(load4_f32(wi + 4), load4_f32(pi + 4), d, dd, wi + 4,
                                   tt + i * LANES + 4, et + i * LANES + 4);
      lanes_update(wt, ui, i, count, e0, e1);
    }
    lanes_out(wt, et, tt, g, lanes, count, wb, err, terms);
  }
}

// One row of an RMS norm from its sum of squares `ss`: the inverse rounded
// to float32, then two float32 products.
static inline void rmsnorm_row(const float* xr, const float* w, float* yr, int cols, double ss,
                               double eps) {
  const float mean = (float)(ss / cols);
  const float inv = (float)(1.0 / __builtin_sqrt((double)mean + eps));
  for (int c = 0; c < cols; c++) yr[c] = (xr[c] * inv) * w[c];
}

// One task of an RMS norm (J_OP 5): rows [task·NC, (task + 1)·NC) of
// y = x / sqrt(mean(x²) + eps) · w, x [M, N] at A, w [N] at B, y at C. The
// arithmetic is CpuEngine.rmsnorm's (src/engine/cpu_engine.ts), operation for
// operation: the squares summed in float64 in column order, the inverse
// rounded to float32, then two float32 products. Four rows at a time, each
// its own sum, so the four sums' additions overlap. The sums are four
// scalars, not an array: an array indexed in a loop lives on the
// WebAssembly build's shadow stack, which every thread's instance places at
// the same address (the module has no stack of its own), so threads running
// this at once overwrote each other's sums. rmsnorm_rows runs rows [r0, r1)
// with x and y at any address (this memory, or host arrays for J_OP 58).
static void rmsnorm_rows(const float* x, const float* w, float* y, int r0, int r1, int cols,
                         double eps) {
  int r = r0;
  for (; r + 4 <= r1; r += 4) {
    const float* x0 = x + r * cols;
    const float* x1 = x0 + cols;
    const float* x2 = x1 + cols;
    const float* x3 = x2 + cols;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int c = 0; c < cols; c++) {
      const double v0 = x0[c], v1 = x1[c], v2 = x2[c], v3 = x3[c];
      s0 += v0 * v0;
      s1 += v1 * v1;
      s2 += v2 * v2;
      s3 += v3 * v3;
    }
    rmsnorm_row(x0, w, y + r * cols, cols, s0, eps);
    rmsnorm_row(x1, w, y + (r + 1) * cols, cols, s1, eps);
    rmsnorm_row(x2, w, y + (r + 2) * cols, cols, s2, eps);
    rmsnorm_row(x3, w, y + (r + 3) * cols, cols, s3, eps);
  }
  for (; r < r1; r++) {
    const float* xr = x + r * cols;
    double ss = 0;
    for (int c = 0; c < cols; c++) {
      const double v = xr[c];
      ss += v * v;
    }
    rmsnorm_row(xr, w, y + r * cols, cols, ss, eps);
  }
}

NOINLINE static void run_rmsnorm(char* base, const int32_t* job, int task) {
  const int rows = job[J_M], cols = job[J_N], chunk = job[J_NC];
  const double eps = *(const double*)&job[J_EPS];
  const int r0 = task * chunk, r1 = min_int(rows, r0 + chunk);
  rmsnorm_rows((const float*)MEM(base, job[J_A]), (const float*)MEM(base, job[J_B]),
               (float*)MEM(base, job[J_C]), r0, r1, cols, eps);
}

// One task of RMS norm between host arrays (J_OP 58, native only, as
// run_copy): run_rmsnorm's rows with x at P0 (low half) : J0 (high half) and
// y at J1 : GROUP (may be x), w at byte offset B of this memory; x is not
// copied in nor y out.
NOINLINE static void run_rmsnorm_host(char* base, const int32_t* job, int task) {
#ifndef __wasm__
  const int rows = job[J_M], cols = job[J_N], chunk = job[J_NC];
  const double eps = *(const double*)&job[J_EPS];
  const int r0 = task * chunk, r1 = min_int(rows, r0 + chunk);
  rmsnorm_rows(host_at(job, J_P0, J_J0), (const float*)MEM(base, job[J_B]),
               host_at(job, J_J1, J_GROUP), r0, r1, cols, eps);
#else
  (void)base, (void)job, (void)task;
#endif
}

// The dense blocks of the CPU inverse-Hessian factor (cpuInverseFactor in
// src/engine/cpu/second_order.ts), whose arithmetic they must give bit for
// bit: float32 values combined in float64, rounded to float32 only where the
// TypeScript stores into a Float32Array.
//
// J_OP 20, one task: the Cholesky factor of the [M, M] block at A (row-major,
// its lower triangle read), in place: its lower triangle becomes L (the upper
// one is left as it was). The int32 at TERMS becomes 1 when the block is not
// (numerically) positive definite, else 0; L is then incomplete. Each sum is
// a chain of dependent subtractions; the rows below the diagonal run four at
// a time so that their chains overlap (each still sums in order).
NOINLINE static void run_cholesky_block(char* base, const int32_t* job) {
  const int b = job[J_M];
  float* a = (float*)MEM(base, job[J_A]);
  int32_t* failed = (int32_t*)MEM(base, job[J_TERMS]);
  *failed = 0;
  for (int j = 0; j < b; j++) {
    const float* lj = a + j * b;
    double s = lj[j];
    for (int k = 0; k < j; k++) s -= (double)lj[k] * (double)lj[k];
    if (!(s > 0) || !__builtin_isfinite(s)) {
      *failed = 1;
      return;
    }
    const double d = __builtin_sqrt(s);
    int i = j + 1;
    for (; i + 4 <= b; i += 4) {
      float* l0 = a + i * b;
      float* l1 = l0 + b;
      float* l2 = l1 + b;
      float* l3 = l2 + b;
      double t0 = l0[j], t1 = l1[j], t2 = l2[j], t3 = l3[j];
      for (int k = 0; k < j; k++) {
        const double v = lj[k];
        t0 -= (double)l0[k] * v;
        t1 -= (double)l1[k] * v;
        t2 -= (double)l2[k] * v;
        t3 -= (double)l3[k] * v;
      }
      l0[j] = (float)(t0 / d);
      l1[j] = (float)(t1 / d);
      l2[j] = (float)(t2 / d);
      l3[j] = (float)(t3 / d);
    }
    for (; i < b; i++) {
      float* li = a + i * b;
      double t = li[j];
      for (int k = 0; k < j; k++) t -= (double)li[k] * (double)lj[k];
      li[j] = (float)(t / d);
    }
    a[j * b + j] = (float)d;
  }
}

// 1.0 in the lanes whose column c0 + l is `i`, else 0.
static inline f64x4 unit_lanes(int i, int c0) {
  return (f64x4){i == c0, i == c0 + 1, i == c0 + 2, i == c0 + 3};
}

// J_OP 21: X = L⁻¹ for the lower-triangular [M, M] block L at A (its lower
// triangle read) by forward substitution, column by column: columns
// [task·NC, (task + 1)·NC) of X in float64 at B ([M, LDX] scratch, LDX =
// M rounded up to 8 at LDC), then rounded to float32 into C (zeros above the
// diagonal). Columns are independent, so tasks may run on any thread (NC a
// multiple of 8). The int32 at TERMS becomes 1 when a value of X is not
// finite (the caller zeroes it first).
//
// Column c's X[i, c] = ((i == c) − Σ_{k=c}^{i−1} L[i, k]·X[k, c]) / L[i, i],
// each sum in order from k = c. Eight columns c0..c0+7 run side by side as
// two float64 vectors (X's rows are contiguous in c): a lane's terms start
// at its own column (the first seven k are masked per lane), and a lane's
// results above its diagonal, or past the task's columns, are dropped.
NOINLINE static void run_lower_inverse_block(char* base, const int32_t* job, int task,
                                             double* tmp) {
  const int b = job[J_M], chunk = job[J_NC], ldx = job[J_LDC];
  const float* l = (const float*)MEM(base, job[J_A]);
  double* x = (double*)MEM(base, job[J_B]);
  float* out = (float*)MEM(base, job[J_C]);
  int32_t* failed = (int32_t*)MEM(base, job[J_TERMS]);
  const int c1 = min_int(b, (task + 1) * chunk);
  for (int c0 = task * chunk; c0 < c1; c0 += 8) {
    const int width = min_int(8, c1 - c0);
    for (int i = 0; i < c0; i++) {
      for (int c = c0; c < c0 + width; c++) out[i * b + c] = 0;
    }
    for (int i = c0; i < b; i++) {
      const float* li = l + i * b;
      f64x4 s0 = unit_lanes(i, c0), s1 = unit_lanes(i, c0 + 4);
      const int masked = min_int(i, c0 + 7);
      int k = c0;
      for (; k < masked; k++) {
        const double v = li[k];
        f64x4 x0, x1;
        __builtin_memcpy(&x0, x + k * ldx + c0, sizeof x0);
        __builtin_memcpy(&x1, x + k * ldx + c0 + 4, sizeof x1);
        // Lane l's sum starts at k = c0 + l.
        const f64x4 from0 = {c0, c0 + 1, c0 + 2, c0 + 3};
        const f64x4 from1 = {c0 + 4, c0 + 5, c0 + 6, c0 + 7};
        s0 = select4(from0 <= k, s0 - v * x0, s0);
        s1 = select4(from1 <= k, s1 - v * x1, s1);
      }
      for (; k < i; k++) {
        const double v = li[k];
        f64x4 x0, x1;
        __builtin_memcpy(&x0, x + k * ldx + c0, sizeof x0);
        __builtin_memcpy(&x1, x + k * ldx + c0 + 4, sizeof x1);
        s0 -= v * x0;
        s1 -= v * x1;
      }
      const double d = li[i];
      const f64x4 r0 = s0 / d, r1 = s1 / d;
      // Lanes at or below the diagonal (c ≤ i) and in the task keep theirs.
      __builtin_memcpy(tmp, &r0, sizeof r0);
      __builtin_memcpy(tmp + 4, &r1, sizeof r1);
      for (int c = c0; c < c0 + width; c++) {
        if (c > i) {
          out[i * b + c] = 0;
          continue;
        }
        x[i * ldx + c] = tmp[c - c0];
        const float v = (float)tmp[c - c0];
        out[i * b + c] = v;
        if (!__builtin_isfinite(v)) __atomic_store_n(failed, 1, __ATOMIC_RELAXED);
      }
    }
  }
}

// J_OP 22, one task: the float64 sum of the M float64 values at A, added in
// order from 0 (the GPTQ column block's loss terms, summed as its
// TypeScript twin sums them), stored as a float64 at C.
NOINLINE static void run_ordered_sum(char* base, const int32_t* job) {
  const int n = job[J_M];
  const double* v = (const double*)MEM(base, job[J_A]);
  double s = 0;
  for (int i = 0; i < n; i++) s += v[i];
  *(double*)MEM(base, job[J_C]) = s;
}

// J_OP 23, one task: the float64 at C plus the products a[i] · b[i] (float32
// values, exact in float64) of the M floats at A and B, added in order (a
// quadratic form's row dots, summed as their TypeScript twin sums them),
// stored back at C.
NOINLINE static void run_ordered_dot(char* base, const int32_t* job) {
  const int n = job[J_M];
  const float* a = (const float*)MEM(base, job[J_A]);
  const float* b = (const float*)MEM(base, job[J_B]);
  double* out = (double*)MEM(base, job[J_C]);
  double s = *out;
  for (int i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
  *out = s;
}

// FP8 E4M3 fake quantization of one value with float32 ops and no zero point
// (J_OP 44's reference and its row tails): y = e4m3(clamp(x / s, Q_MIN, Q_MAX)) · s, each
// step rounded to float32. The operations of fakeQuantizeFp8RunF32 in
// src/quant/_quantize_kernels.ts, value by value, so both give the same bits:
// the division and the product are single float32 operations (the
// TypeScript's float64 ones rounded once give the same value), the clamp lets
// a NaN through, the encoding rounds to nearest even on the bits (normals) or
// through a float32 addition of 2^14 (subnormals, step 2^-9), and a NaN code
// (0x7f) decodes to the quiet NaN 0x7fc00000.
static inline float f32_of(int32_t i) {
  union { int32_t i; float f; } u = {i};
  return u.f;
}
static inline int32_t bits_of(float f) {
  union { float f; int32_t i; } u = {f};
  return u.i;
}
static inline float e4m3_fake_quantize(float x, float s, float qmin, float qmax) {
  float t = x / s;
  t = t < qmin ? qmin : t;
  t = t > qmax ? qmax : t;
  const int32_t w = bits_of(t);
  const int32_t f = w & 0x7fffffff;
  const int32_t sign = (w >> 24) & 0x80;
  // Normals: round to nearest even on the bits; beyond 448's code: 0x7f (NaN), or saturated.
  const int32_t normal = ((f - (120 << 23) + 0x7ffff + ((f >> 20) & 1)) >> 20) | sign;
  const int32_t big = f > 0x7f800000 ? 0x7f : 0x7f | sign;
  // Subnormals: a float32 addition of 2^14 rounds |t| to a multiple of 2^-9.
  const int32_t small = (int32_t)(((f32_of(f) + 16384.0f) - 16384.0f) * 512.0f) | sign;
  const int32_t b = f >= (121 << 23) ? (f < (1087 << 20) ? normal : big) : small;
  const int32_t e = (b >> 3) & 15, m = b & 7;
  const int32_t value = e == 0 ? bits_of((float)m * (1.0f / 512.0f)) : ((e + 120) << 23) | (m << 20);
  const float y = f32_of(value ^ ((b & 0x80) << 24)) * s;
  return (b & 0x7f) == 0x7f ? f32_of(0x7fc00000) : y;
}

// Lane helpers of the four-wide fake quantization below (J_OP 40): the
// integer and clamp operations differ between WebAssembly and SSE only in
// name; the float ones are the IEEE operations of both.
#ifdef __wasm__
static inline v128_t fq_i32(int32_t x) { return wasm_i32x4_splat(x); }
static inline v128_t fq_and(v128_t a, v128_t b) { return wasm_v128_and(a, b); }
static inline v128_t fq_or(v128_t a, v128_t b) { return wasm_v128_or(a, b); }
static inline v128_t fq_gt(v128_t a, v128_t b) { return wasm_i32x4_gt(a, b); }
// t < lo ? lo : t, then t > hi ? hi : t (a NaN stays).
static inline v128_t fq_clamp(v128_t t, v128_t lo, v128_t hi) {
  return wasm_f32x4_pmin(wasm_f32x4_pmax(t, lo), hi);
}
#else
#define FQ_I(a) _mm_castps_si128(a)
#define FQ_F(a) _mm_castsi128_ps(a)
static inline v128_t fq_i32(int32_t x) { return FQ_F(_mm_set1_epi32(x)); }
static inline v128_t fq_and(v128_t a, v128_t b) { return _mm_and_ps(a, b); }
static inline v128_t fq_or(v128_t a, v128_t b) { return _mm_or_ps(a, b); }
static inline v128_t fq_gt(v128_t a, v128_t b) { return FQ_F(_mm_cmpgt_epi32(FQ_I(a), FQ_I(b))); }
// maxps/minps return their second operand when either is NaN: t, as above.
static inline v128_t fq_clamp(v128_t t, v128_t lo, v128_t hi) {
  return _mm_min_ps(hi, _mm_max_ps(lo, t));
}
#endif

// Integer-grid fake quantization of rows with float32 ops (J_OP 40): rows
// [task·NC, (task + 1)·NC) of x[M, N] at A, row r with its scale scale[r] (B)
// and, when J_Q_ZERO is not 0, its zero point zero[r], into y at C:
//   no zero point: t = clamp(x / s);      y = rne(t) · s
//   zero point z:  t = clamp(x / s + z);  y = (rne(t) − z) · s
// each step rounded to float32, clamped to [Q_MIN, Q_MAX]. The operations of
// fakeQuantizeIntRunF32 in src/quant/_quantize_kernels.ts, value by value, so
// both give the same bits: the division, sum, difference and product are
// single float32 operations (the TypeScript's float64 ones rounded once give
// the same value), the clamp lets a NaN through, and round half to even is a
// float32 addition and subtraction of 1.5·2^23 (exact for |t| < 2^22, which
// gemm.ts checks of the bounds) with t's sign put back, as roundHalfEven
// keeps a zero's sign. A NaN result is the negative quiet NaN 0xffc00000,
// the TypeScript's usual one on x86-64 (its NaN bits depend on V8's compiler
// tier: 0xffffffff too).
static inline float int_fake_quantize(float x, float s, float z, int zp, float qmin, float qmax) {
  float t = x / s;
  if (zp) t = t + z;
  t = t < qmin ? qmin : t;
  t = t > qmax ? qmax : t;
  const float r = f32_of(bits_of((t + 12582912.0f) - 12582912.0f) | (bits_of(t) & (int32_t)0x80000000));
  const float y = (zp ? r - z : r) * s;
  return y != y ? f32_of((int32_t)0xffc00000) : y;
}

static inline v128_t int_fake_quantize4(v128_t x, v128_t s, v128_t z, int zp, v128_t qmin,
                                        v128_t qmax) {
  v128_t t = wasm_f32x4_div(x, s);
  if (zp) t = wasm_f32x4_add(t, z);
  t = fq_clamp(t, qmin, qmax);
  const v128_t magic = wasm_f32x4_splat(12582912.0f);
  const v128_t r = fq_or(wasm_f32x4_sub(wasm_f32x4_add(t, magic), magic),
                         fq_and(t, fq_i32((int32_t)0x80000000)));
  const v128_t y = wasm_f32x4_mul(zp ? wasm_f32x4_sub(r, z) : r, s);
  const v128_t nan = fq_gt(fq_and(y, fq_i32(0x7fffffff)), fq_i32(0x7f800000));
  return wasm_v128_bitselect(fq_i32((int32_t)0xffc00000), y, nan);
}

NOINLINE static void run_fake_quantize_int(char* base, const int32_t* job, int task) {
  const int rows = job[J_M], cols = job[J_N], chunk = job[J_NC];
  const float* x = (const float*)MEM(base, job[J_A]);
  const float* scale = (const float*)MEM(base, job[J_B]);
  const int zp = job[J_Q_ZERO] != 0;
  const float* zero = zp ? (const float*)MEM(base, job[J_Q_ZERO]) : 0;
  float* y = (float*)MEM(base, job[J_C]);
  const float qmin = f32_of(job[J_Q_MIN]), qmax = f32_of(job[J_Q_MAX]);
  const v128_t lo = wasm_f32x4_splat(qmin), hi = wasm_f32x4_splat(qmax);
  const int r1 = min_int(rows, (task + 1) * chunk);
  for (int r = task * chunk; r < r1; r++) {
    const float s = scale[r], z = zp ? zero[r] : 0.0f;
    const v128_t sv = wasm_f32x4_splat(s), zv = wasm_f32x4_splat(z);
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    int c = 0;
    for (; c + 4 <= cols; c += 4) {
      wasm_v128_store(yr + c, int_fake_quantize4(wasm_v128_load(xr + c), sv, zv, zp, lo, hi));
    }
    for (; c < cols; c++) yr[c] = int_fake_quantize(xr[c], s, z, zp, qmin, qmax);
  }
}

// The minimum and maximum of each row in one pass (J_OP 35): rows
// [task·NC, (task + 1)·NC) of x[M, N] at A (N ≥ 1), minima to B and maxima to
// C, as JavaScript's Math.min and Math.max fold them (reduceRows in
// src/engine/cpu_engine.ts): −0 below +0, and any NaN gives NaN (the quiet
// NaN 0x7fc00000). Each float's bits map to an int32 key in the same order
// (negative values' magnitude bits flipped, so −0 is −1 and +0 is 0), which
// integer min and max fold without branches; NaNs are counted apart.
static inline int32_t order_key(int32_t bits) { return bits ^ ((bits >> 31) & 0x7fffffff); }

NOINLINE static void run_row_min_max(char* base, const int32_t* job, int task) {
  const int rows = job[J_M], cols = job[J_N], chunk = job[J_NC];
  const int32_t* x = (const int32_t*)MEM(base, job[J_A]);
  int32_t* lo_out = (int32_t*)MEM(base, job[J_B]);
  int32_t* hi_out = (int32_t*)MEM(base, job[J_C]);
  const int r1 = min_int(rows, (task + 1) * chunk);
  for (int r = task * chunk; r < r1; r++) {
    const int32_t* xr = x + r * cols;
    int32_t lo = 0x7fffffff, hi = (int32_t)0x80000000, nan = 0;
    for (int c = 0; c < cols; c++) {
      const int32_t b = xr[c];
      const int32_t key = order_key(b);
      nan |= (b & 0x7fffffff) > 0x7f800000;
      lo = key < lo ? key : lo;
      hi = key > hi ? key : hi;
    }
    lo_out[r] = nan ? 0x7fc00000 : order_key(lo);
    hi_out[r] = nan ? 0x7fc00000 : order_key(hi);
  }
}

// Per-row sums of squared differences (J_OP 41): rows [task·NC, (task + 1)·NC)
// of a[M, N] (and b[M, N] when K is 1), y[r] = Σ_c (a − b)² (Σ_c a² without
// b) into y at C. The bits of CpuEngine.rowSquaredError's TypeScript loop
// (src/engine/cpu_engine.ts), which they replace: each difference and square
// is a float32 op, added to a float64 sum that starts at +0 and runs over
// the columns strictly in order, then rounded to float32 once. a is at
// byte offset A of this memory, or (native) in a host array at P0 : J0 when
// that is not 0 : 0; b likewise at B or J1 : GROUP.
//
// A row's sum is a chain of dependent additions (several cycles each), so
// eight rows run side by side: each group of four rows' squares is
// transposed so that one float64 vector holds one column of four rows, and
// every lane still adds its own row's columns in order. Memory bound, not
// latency bound, this way.
static inline f64x4 widen4(v128_t v) {
#ifdef __wasm__
  f32x4 f;
  __builtin_memcpy(&f, &v, sizeof f);
  return __builtin_convertvector(f, f64x4);
#else
  return (f64x4)_mm256_cvtps_pd(v);
#endif
}

// Rows r0..r0+3 at stride n (floats), columns [c, c + 4): their squares
// (of a − b, or of a when b is null), transposed to one vector per column.
#define SQUARES4(a, b, n, c, s0, s1, s2, s3)                            \
  do {                                                                  \
    const float* a0_ = (a) + (c);                                       \
    s0 = wasm_v128_load(a0_);                                           \
    s1 = wasm_v128_load(a0_ + (n));                                     \
    s2 = wasm_v128_load(a0_ + 2 * (uintptr_t)(n));                         \
    s3 = wasm_v128_load(a0_ + 3 * (uintptr_t)(n));                         \
    if (b) {                                                            \
      const float* b0_ = (b) + (c);                                     \
      s0 = wasm_f32x4_sub(s0, wasm_v128_load(b0_));                     \
      s1 = wasm_f32x4_sub(s1, wasm_v128_load(b0_ + (n)));               \
      s2 = wasm_f32x4_sub(s2, wasm_v128_load(b0_ + 2 * (uintptr_t)(n)));   \
      s3 = wasm_f32x4_sub(s3, wasm_v128_load(b0_ + 3 * (uintptr_t)(n)));   \
    }                                                                   \
    s0 = wasm_f32x4_mul(s0, s0);                                        \
    s1 = wasm_f32x4_mul(s1, s1);                                        \
    s2 = wasm_f32x4_mul(s2, s2);                                        \
    s3 = wasm_f32x4_mul(s3, s3);                                        \
    TRANSPOSE4(s0, s1, s2, s3);                                         \
  } while (0)

// One row's sum from column c on, continuing `acc` (the scalar tail).
static inline double squares_from(const float* a, const float* b, int c, int n, double acc) {
  if (b) {
    for (; c < n; c++) {
      const float d = a[c] - b[c];
      acc += (double)(d * d);
    }
  } else {
    for (; c < n; c++) acc += (double)(a[c] * a[c]);
  }
  return acc;
}

NOINLINE static void run_row_squared_error(char* base, const int32_t* job, int task) {
  const int rows = job[J_M], n = job[J_N], chunk = job[J_NC];
  const float* a = operand(base, job, J_A, J_P0, J_J0);
  const float* b = job[J_K] ? operand(base, job, J_B, J_J1, J_GROUP) : 0;
  float* y = (float*)MEM(base, job[J_C]);
  const int r1 = min_int(rows, (task + 1) * chunk);
  int r = task * chunk;
  for (; r + 8 <= r1; r += 8) {
    const float* ar = a + (uintptr_t)r * n;
    const float* br = b ? b + (uintptr_t)r * n : 0;
    const float* ar4 = ar + 4 * (uintptr_t)n;
    const float* br4 = b ? br + 4 * (uintptr_t)n : 0;
    f64x4 lo = {0, 0, 0, 0}, hi = {0, 0, 0, 0};
    int c = 0;
    for (; c + 4 <= n; c += 4) {
      v128_t p0, p1, p2, p3, q0, q1, q2, q3;
      SQUARES4(ar, br, n, c, p0, p1, p2, p3);
      SQUARES4(ar4, br4, n, c, q0, q1, q2, q3);
      lo += widen4(p0);
      hi += widen4(q0);
      lo += widen4(p1);
      hi += widen4(q1);
      lo += widen4(p2);
      hi += widen4(q2);
      lo += widen4(p3);
      hi += widen4(q3);
    }
    double sums[8];
    __builtin_memcpy(sums, &lo, sizeof lo);
    __builtin_memcpy(sums + 4, &hi, sizeof hi);
    for (int i = 0; i < 8; i++) {
      const uintptr_t at = (uintptr_t)i * n;
      y[r + i] = (float)squares_from(ar + at, b ? br + at : 0, c, n, sums[i]);
    }
  }
  for (; r < r1; r++) {
    const uintptr_t at = (uintptr_t)r * n;
    y[r] = (float)squares_from(a + at, b ? b + at : 0, 0, n, 0.0);
  }
}

// The minimum and maximum of each column (J_OP 36): columns [task·NC,
// (task + 1)·NC) of x[M, N] at A (M ≥ 1), minima to B and maxima to C, with
// the values of Math.min and Math.max folded over the column (reduceColumns in
// src/engine/cpu_engine.ts), by the order keys of run_row_min_max. A NaN takes
// the key no float reaches at its end (order_key gives INT32_MIN and
// INT32_MAX only to NaN bits), so it wins the column's fold; rows in order,
// each row's columns contiguous.
NOINLINE static void run_column_min_max(char* base, const int32_t* job, int task) {
  const int rows = job[J_M], cols = job[J_N], chunk = job[J_NC];
  const int32_t* x = (const int32_t*)MEM(base, job[J_A]);
  int32_t* lo = (int32_t*)MEM(base, job[J_B]);
  int32_t* hi = (int32_t*)MEM(base, job[J_C]);
  const int c0 = task * chunk, c1 = min_int(cols, c0 + chunk);
  for (int c = c0; c < c1; c++) {
    lo[c] = 0x7fffffff;
    hi[c] = (int32_t)0x80000000;
  }
  for (int r = 0; r < rows; r++) {
    const int32_t* xr = x + r * cols;
    for (int c = c0; c < c1; c++) {
      const int32_t b = xr[c];
      const int32_t key = order_key(b);
      const int nan = (b & 0x7fffffff) > 0x7f800000;
      const int32_t kmin = nan ? (int32_t)0x80000000 : key;
      const int32_t kmax = nan ? 0x7fffffff : key;
      lo[c] = kmin < lo[c] ? kmin : lo[c];
      hi[c] = kmax > hi[c] ? kmax : hi[c];
    }
  }
  for (int c = c0; c < c1; c++) {
    lo[c] = lo[c] == (int32_t)0x80000000 ? 0x7fc00000 : order_key(lo[c]);
    hi[c] = hi[c] == 0x7fffffff ? 0x7fc00000 : order_key(hi[c]);
  }
}

// FP8 E4M3 fake quantization of rows (J_OP 44): rows [task·NC, (task + 1)·NC)
// of x[M, N] at A, row r with its scale scale[r] (B), into y at C, with
// e4m3_fake_quantize's bits, eight values at a time and without the code in
// between. Encoding t to its 8-bit
// code and decoding it again is, on t's float32 bits, a rounding in place:
// - a normal code (|t| ≥ 2^-6): the code is (f − (120 << 23) + rnd) >> 20 and
//   its value ((e + 120) << 23) | (m << 20) = (code << 20) + (120 << 23), so
//   the value is (f + rnd) with its 20 low bits cleared (rnd = 0x7ffff plus
//   bit 20 of f: nearest, ties to even);
// - a subnormal code (|t| < 2^-6): the code is m = 512 · v for
//   v = (|t| + 2^14) − 2^14 (a multiple of 2^-9, at most 2^-6) and its value is
//   v itself;
// - every code e4m3_fake_quantize decodes to NaN (|t| ≥ 480 after the clamp: NaN only when
//   Q_MAX is 448) gives the quiet NaN 0x7fc00000.
// The sign is put back before the product with s, as e4m3_fake_quantize does. GCC's and
// clang's vector extensions: AVX2 in the native build, two SIMD128 halves in
// WebAssembly.
typedef float fq8_f32 __attribute__((vector_size(32), aligned(4), may_alias));
typedef int32_t fq8_i32 __attribute__((vector_size(32), aligned(4), may_alias));

static inline fq8_i32 fq8_select(fq8_i32 mask, fq8_i32 a, fq8_i32 b) {
  return (a & mask) | (b & ~mask);
}

static inline fq8_f32 e4m3_fake_quantize8(fq8_f32 x, fq8_f32 s, fq8_f32 qmin, fq8_f32 qmax) {
  fq8_f32 t = x / s;
  // t < qmin ? qmin : t, then t > qmax ? qmax : t (a NaN stays).
  t = (fq8_f32)fq8_select(t < qmin, (fq8_i32)qmin, (fq8_i32)t);
  t = (fq8_f32)fq8_select(t > qmax, (fq8_i32)qmax, (fq8_i32)t);
  const fq8_i32 w = (fq8_i32)t;
  const fq8_i32 f = w & 0x7fffffff;
  const fq8_i32 normal = (f + (0x7ffff + ((f >> 20) & 1))) & (int32_t)0xfff00000;
  const fq8_f32 step = (fq8_f32){0} + 16384.0f;
  const fq8_i32 small = (fq8_i32)(((fq8_f32)f + step) - step);
  const fq8_i32 magnitude = fq8_select(f >= (121 << 23), normal, small);
  const fq8_f32 y = (fq8_f32)(magnitude | (w & (int32_t)0x80000000)) * s;
  return (fq8_f32)fq8_select(f >= (1087 << 20), (fq8_i32){0} + 0x7fc00000, (fq8_i32)y);
}

NOINLINE static void run_fake_quantize_fp8_wide(char* base, const int32_t* job, int task) {
  const int rows = job[J_M], cols = job[J_N], chunk = job[J_NC];
  const float* x = (const float*)MEM(base, job[J_A]);
  const float* scale = (const float*)MEM(base, job[J_B]);
  float* y = (float*)MEM(base, job[J_C]);
  const float qmin = f32_of(job[J_Q_MIN]), qmax = f32_of(job[J_Q_MAX]);
  const fq8_f32 lo = (fq8_f32){0} + qmin, hi = (fq8_f32){0} + qmax;
  const int r1 = min_int(rows, (task + 1) * chunk);
  for (int r = task * chunk; r < r1; r++) {
    const float s = scale[r];
    const fq8_f32 sv = (fq8_f32){0} + s;
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    int c = 0;
    for (; c + 8 <= cols; c += 8) {
      *(fq8_f32*)(yr + c) = e4m3_fake_quantize8(*(const fq8_f32*)(xr + c), sv, lo, hi);
    }
    for (; c < cols; c++) yr[c] = e4m3_fake_quantize(xr[c], s, qmin, qmax);
  }
}

// J_FAILED's value for an op this build does not know (gemm.ts: UNKNOWN_OP).
#define UNKNOWN_OP 2

// One task of the job, by its op (J_OP); `pack` is this thread's scratch.
static void run_task(char* base, const int32_t* job, int task, float* pack) {
  const int nstripes = job[J_NSTRIPES];
  switch (job[J_OP]) {
    case 1: run_softmax(base, job, task / nstripes, task % nstripes); return;
    case 2: run_pack_b(base, job, task, (const float*)MEM(base, job[J_B])); return;
    case 60: run_pack_b(base, job, task, operand(base, job, J_B, J_Q_SCALE, J_Q_ZERO)); return;
    case 61: run_gram_upper(base, job, task, pack, pack + MC * KC); return;
    case 62: run_gram_scale_add(base, job, task); return;
    case 3: run_silu_mul(base, job, task); return;
    case 4: run_column_block(base, job, task, pack); return;
    case 24: run_column_block(base, job, task, pack); return;
    case 25: run_prune_block(base, job, task, pack); return;
    case 5: run_rmsnorm(base, job, task); return;
    case 6: run_attention(base, job, task, pack); return;
    case 7: run_fwht(base, job, task); return;
    case 26: run_add(base, job, task); return;
    case 27: run_rope(base, job, task); return;
    case 28: run_copy(base, job, task); return;
    case 56: run_add_host(base, job, task); return;
    case 57: run_silu_mul_host(base, job, task); return;
    case 58: run_rmsnorm_host(base, job, task); return;
    case 20: run_cholesky_block(base, job); return;
    case 21: run_lower_inverse_block(base, job, task, (double*)pack); return;
    case 22: run_ordered_sum(base, job); return;
    case 23: run_ordered_dot(base, job); return;
    case 40: run_fake_quantize_int(base, job, task); return;
    case 35: run_row_min_max(base, job, task); return;
    case 36: run_column_min_max(base, job, task); return;
    case 41: run_row_squared_error(base, job, task); return;
    case 44: run_fake_quantize_fp8_wide(base, job, task); return;
    case 0: break;  // a product, below
    // An op this build does not know comes from TypeScript newer than the
    // binary (a kernel rebuild not yet done): the caller reports it instead
    // of the job running as a product.
    default: __atomic_store_n((int32_t*)&job[J_FAILED], UNKNOWN_OP, __ATOMIC_RELAXED); return;
  }
  if (job[J_PACKED] != 0) {
    // No B slice to pack here: A's block and the edge tile start the region.
    run_rows(base, job, task, pack, pack + MC * KC);
    return;
  }
  float* pack_a_buf = pack + KC * job[J_NC];  // KC × nc of packed B, then MC × KC of packed A
  float* edge = pack_a_buf + MC * KC;         // then MR × NR
  const int stripe = task % nstripes;
  run_stripe(base, job, task / nstripes, stripe, pack, pack_a_buf, edge);
}

// Runs tasks of job generation `gen` until none is left and returns how many
// it ran. Thread `tid` uses scratch region tid (J_SCRATCH + tid ·
// J_SCRATCH_STRIDE). Addresses are offsets from `base` (see MEM).
static int run_tasks(char* base, int32_t* job, int gen, int tid) {
  for (int ran = 0;; ran++) {
    const int task = claim(job, gen);
    if (task < 0) return ran;
    const uint32_t scratch = (uint32_t)job[J_SCRATCH] + (uint32_t)tid * (uint32_t)job[J_SCRATCH_STRIDE];
    run_task(base, job, task, (float*)MEM(base, scratch));
    __atomic_fetch_add(&job[J_DONE], 1, __ATOMIC_SEQ_CST);
  }
}

// The stamp of the source this build was compiled from: the first 32 bits of the SHA-256 of
// gemm.c and _simd128_x86.h, passed in by build_wasm.ts. The loader compares it with the stamp
// its TypeScript expects (_kernel_stamps.ts), so a build from other source, whose ops may mean
// other things under the same numbers, is refused instead of giving wrong results.
#ifndef LLMC_KERNEL_STAMP
#error "LLMC_KERNEL_STAMP is not defined: build with `deno task build-wasm`"
#endif

#ifdef __wasm__
__attribute__((export_name("gemm_stamp"))) uint32_t gemm_stamp(void) { return LLMC_KERNEL_STAMP; }
#else
__attribute__((visibility("default"))) uint32_t llmc_gemm_stamp(void) { return LLMC_KERNEL_STAMP; }
#endif

#ifdef __wasm__
__attribute__((export_name("gemm_run"))) int gemm_run(int32_t* job, int gen, int tid) {
  return run_tasks(0, job, gen, tid);
}
#else
// The native entry: `base` is the shared WebAssembly memory's first byte,
// `job` the job block's offset in it.
__attribute__((visibility("default"))) int llmc_gemm_run(char* base, uint32_t job, int gen,
                                                         int tid) {
  return run_tasks(base, (int32_t*)MEM(base, job), gen, tid);
}
#endif

#ifdef __wasm__
// h[i][j] = h[j][i] for i > j: completes a symmetric result of which the
// upper triangle (and the diagonal blocks) were computed. Blocked for cache.
__attribute__((export_name("mirror_upper"))) void mirror_upper(float* h, int n) {
  const int B = 32;
  for (int ib = 0; ib < n; ib += B) {
    for (int jb = 0; jb <= ib; jb += B) {
      const int i_end = min_int(ib + B, n);
      for (int i = ib; i < i_end; i++) {
        const int j_end = min_int(jb + B, i);
        for (int j = jb; j < j_end; j++) h[i * n + j] = h[j * n + i];
      }
    }
  }
}
#endif
