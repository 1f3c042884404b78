/**
 * The job block's slots and the constants that `kernels/gemm.c` and its
 * TypeScript callers (the main thread and the workers) must agree on.
 *
 * @module
 */

/** Int32 slots of the job block; the same numbering as the enum in gemm.c. */
export const JOB = {
  CLAIM: 0,
  DONE: 1,
  WAKE: 2,
  NTASKS: 3,
  M: 4,
  N: 5,
  K: 6,
  A: 7,
  A_RS: 8,
  A_CS: 9,
  B: 10,
  B_RS: 11,
  B_CS: 12,
  C: 13,
  LDC: 14,
  ACCUMULATE: 15,
  // 16 is free.
  NC: 17,
  SCRATCH: 18,
  SCRATCH_STRIDE: 19,
  /** Set by a worker whose kernel threw; the main thread then raises. */
  FAILED: 20,
  /** Set to 1 when the pool shuts down; workers leave their loop. */
  STOP: 21,
  /** Stripes run by worker threads since the runtime started (for tests and benches). */
  WORKER_TASKS: 22,
  NSTRIPES: 23,
  A_BS: 24,
  B_BS: 25,
  C_BS: 26,
  B_GROUP: 27,
  CAUSAL: 28,
  CAUSAL_OFFSET: 29,
  /**
   * 0: GEMM, 1: softmax, 2: pack B, 3: SwiGLU, 4: GPTQ column block, 5: RMS norm, 6: attention,
   * 7: FWHT, 20: Cholesky block, 21: lower-triangular inverse block, 22: ordered float64 sum,
   * 23: ordered float64 dot, 24: GPTQ column block with a zero mask, 25: SparseGPT N:M block,
   * 26: residual add, 27: RoPE, 28: threaded copy, 35: row minima and maxima, 36: column minima
   * and maxima, 40: integer-grid fake quantization of rows, 44: FP8 fake quantization of rows,
   * 56: residual sum into a host array, 57: SwiGLU into a host array, 58: RMS norm between host
   * arrays (56–58 native only).
   */
  OP: 30,
  WINDOW: 31,
  /** float32 bits. */
  SCALE: 32,
  /** Byte address of B packed once for the whole product; 0 for the stripe path. */
  PACKED: 33,
  /** n rounded up to NR. */
  NPAD: 34,
  /** Pack job: the staged rows start at P0 (a multiple of KC) and the columns span [J0, J1). */
  P0: 35,
  J0: 36,
  J1: 37,
  /** Pack job: micro-panels per task. */
  GROUP: 38,
  /** GPTQ column block (OP 4): the slots' scales, zero points, the block's columns' slots. */
  Q_SCALE: 39,
  Q_ZERO: 40,
  Q_SLOT: 41,
  Q_ROW_DIV: 42,
  Q_SLOT_STRIDE: 43,
  /** float32 bits of the grid's clamp bounds (OP 25: N and M, ints; OP 44: ±448). */
  Q_MIN: 44,
  Q_MAX: 45,
  /** Byte address of the float64 loss terms (OP 4); of an int32 status word (OPs 20, 21). */
  TERMS: 46,
  /** RMS norm (OP 5): epsilon, a float64 in this slot and the next. */
  EPS: 48,
  /** Fused attention (OP 6): byte address of v; GPTQ / SparseGPT column block (OPs 24, 25): of its uint8 mask. */
  V: 50,
  /** Walsh–Hadamard (OP 7): the scale, a float64 in this slot and the next. */
  FWHT_SCALE: 52,
  /** Walsh–Hadamard: byte address of one float32 factor per run position, 0 for none. */
  FWHT_SIGNS: 54,
  /** Walsh–Hadamard: 1 when the factors multiply before the butterflies, 0 after the scale. */
  FWHT_SIGNS_FIRST: 55,
} as const;

/** Slots in the job block. */
export const JOB_SLOTS = 64;
/** Byte address of the job block (the module has no data or stack below it). */
export const JOB_ADDRESS = 1024;
/** Byte address of thread 0's scratch region. */
export const SCRATCH_ADDRESS = 4096;

/**
 * The micro-kernel's width and the k slice, as in gemm.c. Its height MR is 4
 * in the WebAssembly builds and 8 in the native one; MC is a multiple of both.
 */
export const NR = 8;
export const KC = 512;
export const MC = 128;
/** The tallest micro-kernel of any build (the native one's MR). */
export const MR_MAX = 8;
/** Widest column stripe (one task); its packed B slice is KC × NC_MAX floats. */
export const NC_MAX = 256;
/** Bytes of one thread's scratch: packed B slice, packed A block, one edge tile. */
export const SCRATCH_STRIDE = (KC * NC_MAX + MC * KC + MR_MAX * NR) * 4;

/**
 * The fused attention's query blocks are a multiple of this many rows: of the
 * native kernels' 3, 4, 6 and 8 rows and of every build's MR (see
 * run_attention in gemm.c).
 */
export const ATTENTION_ROW_MULTIPLE = 24;

/**
 * Bytes of one thread's scratch for the fused attention with blocks of
 * `rows` query rows (run_attention's layout in gemm.c): a key/value head's
 * packed kᵀ and v, one head's scores of a block, a packed block of rows and
 * one edge tile.
 *
 * @example
 * ```ts ignore
 * attentionScratchBytes(256, 32, 24); // (256·32 + 256·32 + 24·272 + 24·512 + 64) · 4
 * ```
 */
export function attentionScratchBytes(kvLen: number, headDim: number, rows: number): number {
  const kp = Math.ceil(kvLen / NR) * NR, dp = Math.ceil(headDim / NR) * NR;
  const floats = kp * headDim + kp * dp + rows * (kp + 2 * NR) + rows * KC + MR_MAX * NR;
  return Math.ceil(floats * 4 / 64) * 64;
}

/** A wasm page. */
export const PAGE_BYTES = 65536;
/** The most a wasm32 memory can hold: 65536 pages, 4 GiB. */
export const MAX_PAGES = 65536;

/** The exports of gemm.wasm. */
export interface GemmExports {
  gemm_stamp(): number;
  gemm_run(job: number, gen: number, tid: number): number;
  mirror_upper(h: number, n: number): void;
}
