/**
 * {@link Engine.blockTransform} on the host: the float64 WebAssembly SIMD
 * kernels of `kernels/block_transform.c` (f64x2), fed one cache-sized piece
 * of the weight at a time.
 *
 * - `right` (`X ← X · diag(T, …)`): rows are independent, so the weight goes
 *   through the kernel's memory in chunks of whole rows.
 * - `left` (`X ← diag(T, …) · X`): each run of n rows is mixed, so the
 *   weight goes through in strips of n rows × w columns (n·w·8 bytes about
 *   {@link STRIP_VALUES}·8), copied contiguous: the butterflies (or the dense
 *   product) then stay in cache instead of streaming the whole weight once
 *   per stage.
 * - `randomize`'s permutation (`T = F[perm][:, perm]`) is applied while
 *   copying in and out: `x · Q` scatters, `· Qᵀ` gathers (and rows alike on
 *   the left), around F's factored product.
 *
 * The kernel's memory holds the transform (dense: n² values) plus one chunk
 * or strip, so a fused rotation holds the tensor being rotated and little
 * more. The kernels compute every value with the same float64 operations in
 * the same order as src/transform/block_apply.ts, so results are bit-for-bit
 * the same.
 *
 * @module
 */

import type { BlockTransform, BlockTransformPlacement } from "../engine.ts";
import { EngineError } from "../engine_error.ts";
import { CpuKernelError, readKernel } from "./_gemm_runtime.ts";
import { stampMismatch } from "./_kernel_stamp.ts";
import { MAX_PAGES, PAGE_BYTES } from "./_gemm_layout.ts";

/** Values per right-hand chunk (8 MiB of float64). */
const CHUNK_VALUES = 1 << 20;
/** Values per left-hand strip (2 MiB of float64). */
const STRIP_VALUES = 1 << 18;
/** The first byte the kernels' operands use (0 stays a null pointer). */
const HEAP_BASE = 1024;

interface Exports {
  block_transform_stamp(): number;
  fwht_right(
    x: number,
    runs: number,
    m: number,
    k: number,
    base: number,
    signs: number,
    scale: number,
    transpose: number,
    tmp: number,
  ): void;
  fwht_left(
    x: number,
    m: number,
    k: number,
    w: number,
    base: number,
    signs: number,
    scale: number,
    transpose: number,
    tmp: number,
  ): void;
  dense_right(x: number, y: number, rows: number, cols: number, b: number, mp: number): void;
  dense_left(x: number, y: number, b: number, w: number, m: number): void;
}

/** A bump allocation of float64 regions (byte addresses). */
class Regions {
  #end = HEAP_BASE;
  /** Reserves `count` doubles, 16-byte aligned; returns the byte address. */
  take(count: number): number {
    const at = this.#end;
    this.#end = at + Math.ceil(count / 2) * 16;
    return at;
  }
  /** One past the last byte reserved. */
  get end(): number {
    return this.#end;
  }
}

/**
 * The host float64 block-transform kernels and their memory.
 *
 * @example
 * ```ts
 * import { BlockTransformKernels } from "./block_transform.ts";
 * const kernels = new BlockTransformKernels();
 * const x = new Float64Array([1, 2]);
 * const swap = { matrix: new Float64Array([0, 1, 1, 0]), size: 2 };
 * kernels.blockTransform(x, swap, { rows: 1, cols: 2, side: "right", transpose: false, what: "x" });
 * console.assert(x[0] === 2 && x[1] === 1);
 * ```
 */
export class BlockTransformKernels {
  readonly #memory: WebAssembly.Memory;
  readonly #k: Exports;
  readonly #chunkValues: number;
  readonly #stripValues: number;
  /** The transform whose dense form sits at the heap's start, so repeated calls skip packing it. */
  #packed: { t: BlockTransform; side: string; transpose: boolean } | null = null;

  /**
   * Instantiates the committed `kernels/block_transform.wasm`.
   *
   * @param pieces values per right-hand chunk and per left-hand strip (tests
   *   make them small to cross piece boundaries cheaply)
   */
  constructor(pieces: { chunkValues?: number; stripValues?: number } = {}) {
    this.#chunkValues = pieces.chunkValues ?? CHUNK_VALUES;
    this.#stripValues = pieces.stripValues ?? STRIP_VALUES;
    const bytes = readKernel("block_transform.wasm");
    this.#memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_PAGES, shared: true });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      env: { memory: this.#memory },
    });
    this.#k = instance.exports as unknown as Exports;
    const stale = stampMismatch(
      "block_transform.wasm",
      "block_transform.c",
      this.#k.block_transform_stamp(),
    );
    if (stale !== null) throw new CpuKernelError(`CPU kernels: ${stale}`);
  }

  /**
   * `X ← X · diag(T, …, T)` (right) or `diag(T, …, T) · X` (left), Tᵀ with
   * `transpose`, in place (see {@link Engine.blockTransform}).
   *
   * @param x the matrix `[rows, cols]`, row-major float64
   * @param t the block
   * @param at where it applies
   * @throws {EngineError} when x's length or the block size does not fit
   */
  blockTransform(x: Float64Array, t: BlockTransform, at: BlockTransformPlacement): void {
    const { rows, cols, side, what } = at;
    const n = t.size;
    if (!Number.isInteger(rows) || !Number.isInteger(cols) || x.length !== rows * cols) {
      throw new EngineError(`${what}: holds ${x.length} values, expected ${rows} × ${cols}`);
    }
    const dim = side === "right" ? cols : rows;
    if (!Number.isInteger(n) || n < 1 || dim % n !== 0) {
      throw new EngineError(
        `${what}: ${dim} ${side === "right" ? "columns" : "rows"} are not a multiple of ` +
          `the transform size ${n}`,
      );
    }
    if (x.length === 0) return;
    if (side === "right") this.#right(x, t, at);
    else this.#left(x, t, at);
  }

  #right(x: Float64Array, t: BlockTransform, at: BlockTransformPlacement): void {
    const { rows, cols, transpose } = at;
    const n = t.size;
    const f = t.fast;
    const regions = new Regions();
    const dense = f === undefined ? this.#dense(regions, t, "right", transpose) : 0;
    const chunkRows = Math.max(1, Math.min(rows, Math.floor(this.#chunkValues / cols)));
    const xAt = regions.take(chunkRows * cols);
    const yAt = f === undefined ? regions.take(chunkRows * cols) : 0;
    const params = f === undefined ? null : this.#factors(regions, f, f.baseSize);
    this.#reserve(regions.end);
    const mem = new Float64Array(this.#memory.buffer);
    const perm = f?.perm;
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const r1 = Math.min(rows, r0 + chunkRows);
      const count = (r1 - r0) * cols;
      const part = x.subarray(r0 * cols, r1 * cols);
      if (perm) permuteRuns(part, mem, xAt / 8, n, perm, true);
      else mem.set(part, xAt / 8);
      if (f === undefined) {
        this.#k.dense_right(xAt, yAt, r1 - r0, cols, n, dense);
        part.set(mem.subarray(yAt / 8, yAt / 8 + count));
        continue;
      }
      const p = params!;
      this.#k.fwht_right(
        xAt,
        count / n,
        f.sylvesterSize,
        f.baseSize,
        p.base,
        p.signs,
        f.scale,
        transpose ? 1 : 0,
        p.tmp,
      );
      if (perm) permuteRuns(part, mem, xAt / 8, n, perm, false);
      else part.set(mem.subarray(xAt / 8, xAt / 8 + count));
    }
  }

  #left(x: Float64Array, t: BlockTransform, at: BlockTransformPlacement): void {
    const { rows, cols, transpose } = at;
    const n = t.size;
    const f = t.fast;
    const regions = new Regions();
    const dense = f === undefined ? this.#dense(regions, t, "left", transpose) : 0;
    const w = Math.max(1, Math.min(cols, Math.floor(this.#stripValues / n)));
    const xAt = regions.take(n * w);
    const yAt = f === undefined ? regions.take(n * w) : 0;
    const params = f === undefined ? null : this.#factors(regions, f, f.baseSize * w);
    this.#reserve(regions.end);
    const mem = new Float64Array(this.#memory.buffer);
    const perm = f?.perm;
    const x0 = xAt / 8;
    const out = f === undefined ? yAt / 8 : x0;
    for (let r0 = 0; r0 < rows; r0 += n) {
      for (let c0 = 0; c0 < cols; c0 += w) {
        const width = Math.min(w, cols - c0);
        // Row i of the block goes to strip row perm[i] (x·Q on rows), then back from perm[j].
        for (let i = 0; i < n; i++) {
          const src = (r0 + i) * cols + c0;
          mem.set(x.subarray(src, src + width), x0 + (perm ? perm[i] : i) * width);
        }
        if (f === undefined) this.#k.dense_left(xAt, yAt, n, width, dense);
        else {
          const p = params!;
          this.#k.fwht_left(
            xAt,
            f.sylvesterSize,
            f.baseSize,
            width,
            p.base,
            p.signs,
            f.scale,
            transpose ? 1 : 0,
            p.tmp,
          );
        }
        for (let j = 0; j < n; j++) {
          const from = out + (perm ? perm[j] : j) * width;
          x.set(mem.subarray(from, from + width), (r0 + j) * cols + c0);
        }
      }
    }
  }

  /** H_K and the signs as doubles, and `tmpValues` of scratch; byte addresses. */
  #factors(
    regions: Regions,
    f: NonNullable<BlockTransform["fast"]>,
    tmpValues: number,
  ): { base: number; signs: number; tmp: number } {
    const k = f.baseSize;
    const base = regions.take(k * k);
    const signs = regions.take(f.signs.length);
    const tmp = regions.take(tmpValues);
    this.#reserve(regions.end);
    const mem = new Float64Array(this.#memory.buffer);
    for (let i = 0; i < k * k; i++) mem[base / 8 + i] = f.base[i];
    mem.set(f.signs, signs / 8);
    // The factored kernels never leave the dense matrix at the heap's start.
    this.#packed = null;
    return { base, signs, tmp };
  }

  /**
   * The dense block at the heap's start: right, M (or Mᵀ) in panels of 8
   * columns (see dense_right in block_transform.c); left, M (or Mᵀ) row-major.
   */
  #dense(regions: Regions, t: BlockTransform, side: string, transpose: boolean): number {
    const n = t.size;
    const panels = Math.ceil(n / 8);
    const at = regions.take(side === "right" ? panels * 8 * n : n * n);
    const p = this.#packed;
    if (p !== null && p.t === t && p.side === side && p.transpose === transpose) return at;
    this.#reserve(regions.end);
    const mem = new Float64Array(this.#memory.buffer);
    const m = t.matrix;
    const get = (i: number, j: number) => (transpose ? m[j * n + i] : m[i * n + j]);
    const base = at / 8;
    if (side === "right") {
      for (let panel = 0; panel < panels; panel++) {
        for (let i = 0; i < n; i++) {
          for (let c = 0; c < 8; c++) {
            const j = panel * 8 + c;
            mem[base + (panel * n + i) * 8 + c] = j < n ? get(i, j) : 0;
          }
        }
      }
    } else {
      for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) mem[base + i * n + k] = get(i, k);
    }
    this.#packed = { t, side, transpose };
    return at;
  }

  /** Grows the memory to hold `bytes`. */
  #reserve(bytes: number): void {
    const have = this.#memory.buffer.byteLength;
    if (bytes <= have) return;
    const pages = Math.ceil((bytes - have) / PAGE_BYTES);
    if (have / PAGE_BYTES + pages > MAX_PAGES) {
      throw new EngineError(
        `blockTransform: needs ${bytes} bytes of kernel memory, more than WebAssembly's 4 GiB`,
      );
    }
    this.#memory.grow(pages);
  }
}

/**
 * Copies runs of n values between `part` and the kernel memory at `at`
 * (indices of doubles), through the permutation: in, `mem[perm[i]] = x[i]`
 * per run; out, `x[j] = mem[perm[j]]`.
 */
function permuteRuns(
  part: Float64Array,
  mem: Float64Array,
  at: number,
  n: number,
  perm: Int32Array,
  into: boolean,
): void {
  for (let run = 0; run < part.length; run += n) {
    const m0 = at + run;
    if (into) { for (let i = 0; i < n; i++) mem[m0 + perm[i]] = part[run + i]; }
    else for (let j = 0; j < n; j++) part[run + j] = mem[m0 + perm[j]];
  }
}

let host: BlockTransformKernels | null = null;

/**
 * The process's one {@link BlockTransformKernels} (both engines and the
 * fused-rotation weight sources share it; its memory is reused across calls).
 *
 * @returns the kernels
 * @example
 * ```ts
 * import { hostBlockTransform } from "./block_transform.ts";
 * console.assert(hostBlockTransform() === hostBlockTransform());
 * ```
 */
export function hostBlockTransform(): BlockTransformKernels {
  host ??= new BlockTransformKernels();
  return host;
}
