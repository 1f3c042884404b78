/**
 * The CPU engine: {@link Engine} on host arrays. Matmuls go through
 * `cpu/gemm.ts` (the WebAssembly SIMD kernels), and so does attention
 * (`causalAttention`: q·kᵀ, softmax and p·v as SIMD jobs) and the SwiGLU
 * activation (`siluMul`, whose exp costs too much in TypeScript); the other
 * element-wise ops, norms, RoPE and the log-softmax are plain TypeScript
 * loops, where the cost is memory traffic rather than arithmetic. The fused
 * ops of a decoder layer (`swiGlu`, `matmulMany` with RoPE, `matmulAdd`)
 * keep their products in the kernels' memory for the work that follows
 * (the activation, RoPE, the residual sum there), so only their results are
 * copied out; each gives the bits of the separate ops.
 *
 * Arithmetic: values are stored as float32 like the WGSL kernels store
 * them; the SIMD kernels accumulate in float32 (fused multiply-add where
 * the runtime has it, attention's softmax sums too), the other reductions
 * (norm sums) in float64, so results agree with the WebGPU engine to
 * float32 rounding, not bit for bit.
 *
 * Ops run eagerly when called; `flush` has nothing to start and `read`
 * resolves at once with copies.
 *
 * Memory: the float32 arrays of the tensors the engine makes come from a
 * pool and return to it when their tensor is destroyed (see
 * cpu/_array_pool.ts), so a forward reuses the previous forward's arrays
 * instead of leaving them to the garbage collector; {@link CpuEngine.trim}
 * empties the pool between phases.
 *
 * @module
 */

import { ArrayPool } from "./cpu/_array_pool.ts";
import {
  causalAttention,
  columnMinMax,
  cpuKernelInfo,
  matmulTransposed,
  matmulTransposedAdd,
  matmulTransposedMany,
  rmsnorm,
  rowMinMax,
  rowSquaredError,
  siluMul,
  swiGlu,
  walshHadamard,
} from "./cpu/gemm.ts";
import { CPU_SECOND_ORDER } from "./cpu/second_order.ts";
import { fakeQuantizeRowRuns } from "./cpu/fake_quantize.ts";
import { hostBlockTransform } from "./cpu/block_transform.ts";
import type {
  AccumulateOptions,
  AttentionShape,
  BlockTransform,
  BlockTransformPlacement,
  Engine,
  HostArray,
  ManyRope,
  ProductTransform,
  RowReduction,
  SecondOrderOps,
  SwiGluTransforms,
  Tensor,
  TensorDType,
  WalshHadamardSigns,
} from "./engine.ts";
import { EngineError } from "./engine_error.ts";
import type { KernelVariant } from "./cpu/_gemm_runtime.ts";
import type { RopeTables, RowTransform } from "./cpu/gemm.ts";
import type { QuantizationArgs } from "../quant/args.ts";

/** How the banner names each build of the GEMM kernels. */
const KERNEL_NAMES: Record<KernelVariant, string> = {
  avx2: "native AVX2 + FMA",
  relaxed: "WebAssembly relaxed SIMD",
  simd: "WebAssembly SIMD",
};

/**
 * Released arrays beyond this many pooled bytes are left to the garbage
 * collector: a forward's working set is far smaller; the bound only matters
 * when shapes keep changing.
 */
const POOL_BYTES = 2 ** 30;

/**
 * A tensor of the {@link CpuEngine}: a host array and its shape.
 *
 * @example
 * ```ts
 * import { CpuTensor } from "./cpu_engine.ts";
 * const t = new CpuTensor(new Float32Array(6), [2, 3]);
 * console.assert(t.numel === 6 && t.dtype === "f32");
 * ```
 */
export class CpuTensor implements Tensor {
  #data: HostArray | null;
  #onDestroy: (() => void) | undefined;

  /**
   * Wraps host values as an engine tensor.
   *
   * @param data the values (kept, not copied)
   * @param shape dimensions; their product must be `data.length`
   * @param onDestroy called once, by the first {@link destroy} (the engine
   *   returns its own arrays to its pool this way)
   */
  constructor(data: HostArray, readonly shape: readonly number[], onDestroy?: () => void) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) {
      throw new EngineError(`CpuTensor: shape [${shape}] needs ${n} values, got ${data.length}`);
    }
    this.#data = data;
    this.#onDestroy = onDestroy;
  }

  /** Number of elements. */
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Element type. */
  get dtype(): TensorDType {
    const d = this.data;
    return d instanceof Float32Array ? "f32" : d instanceof Int32Array ? "i32" : "u32";
  }

  /** The values; throws after destroy. */
  get data(): HostArray {
    if (this.#data === null) throw new EngineError(`use of a destroyed tensor [${this.shape}]`);
    return this.#data;
  }

  /** Whether destroy() was called. */
  get destroyed(): boolean {
    return this.#data === null;
  }

  /** Drops the values (idempotent). */
  destroy(): void {
    if (this.#data === null) return;
    this.#data = null;
    const done = this.#onDestroy;
    this.#onDestroy = undefined;
    done?.();
  }
}

/**
 * {@link Engine} on the host CPU.
 *
 * @example
 * ```ts
 * import { CpuEngine } from "./cpu_engine.ts";
 * const engine = new CpuEngine();
 * const x = engine.upload(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const [y] = await engine.read([engine.matmul(x, x)]);
 * console.assert(y.join() === "5,11,11,25");
 * ```
 */
export class CpuEngine implements Engine {
  readonly kind = "cpu" as const;
  /** No device limit: typed arrays cap a tensor at 2³¹ − 1 floats. */
  readonly maxTensorBytes = (2 ** 31 - 1) * 4;
  /** GPTQ's and SparseGPT's linear algebra in float32 with the SIMD products (cpu/second_order.ts). */
  readonly secondOrder: SecondOrderOps = CPU_SECOND_ORDER;

  readonly #pool = new ArrayPool(POOL_BYTES);

  /** Bytes of released arrays the engine keeps for reuse. */
  get pooledBytes(): number {
    return this.#pool.pooledBytes;
  }

  /**
   * Lets the garbage collector have the pooled arrays (call between phases
   * whose tensors differ, e.g. before quantizing a layer's weights).
   *
   * @example
   * ```ts
   * import { CpuEngine } from "./cpu_engine.ts";
   * const engine = new CpuEngine();
   * engine.allocate([4]).destroy();
   * engine.trim();
   * console.assert(engine.pooledBytes === 0);
   * ```
   */
  trim(): void {
    this.#pool.trim();
  }

  /** A float32 array for a new tensor: pooled, zeroed only when `zero`. */
  #f32(length: number, zero = false): Float32Array {
    return this.#pool.take(length, zero);
  }

  /** A tensor over an array of the engine's (from #f32); destroying its last tensor pools it. */
  #own(data: Float32Array, shape: readonly number[]): CpuTensor {
    this.#pool.retain(data);
    return new CpuTensor(data, [...shape], () => this.#pool.release(data));
  }

  /** The CPU and how the kernels use it. */
  get description(): string {
    const info = cpuKernelInfo();
    const kernels = KERNEL_NAMES[info.variant] +
      (info.nativeNote ? ` (no native AVX2 build: ${info.nativeNote})` : "");
    return `CPU (${navigator.hardwareConcurrency} logical cores, ${Deno.build.arch}), ` +
      `gemm: ${kernels}, ${info.threads} thread${info.threads === 1 ? "" : "s"}`;
  }

  upload(data: HostArray, shape: readonly number[]): CpuTensor {
    if (!(data instanceof Float32Array)) return new CpuTensor(data.slice(), [...shape]);
    const a = this.#f32(data.length);
    a.set(data);
    return this.#own(a, shape);
  }

  uploadWeight(data: Float32Array, shape: readonly [number, number]): CpuTensor {
    return this.upload(data, shape);
  }

  allocate(shape: readonly number[]): CpuTensor {
    return this.#own(this.#f32(shape.reduce((a, b) => a * b, 1), true), shape);
  }

  read(tensors: readonly Tensor[]): Promise<HostArray[]> {
    try {
      return Promise.resolve(tensors.map((t) => cpu(t, "read").data.slice()));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  matmul(x: Tensor, w: Tensor, bias?: Tensor): CpuTensor {
    const xs = f32(x, "matmul");
    const ws = f32(w, "matmul");
    const { m, n, k } = productShape("matmul", x, w);
    const b = bias === undefined ? undefined : f32(bias, "matmul");
    if (b !== undefined && b.length !== n) {
      throw new EngineError(`matmul: bias [${bias!.shape}] must be [${n}]`);
    }
    const y = matmulTransposed(xs, ws, m, n, k, this.#f32(m * n));
    if (b !== undefined) addBias(y, b, m, n);
    return this.#own(y, [...x.shape.slice(0, -1), n]);
  }

  matmulMany(
    x: Tensor,
    ws: readonly Tensor[],
    biases?: readonly (Tensor | undefined)[],
    rope?: ManyRope,
    after?: readonly (ProductTransform | undefined)[],
  ): CpuTensor[] {
    const what = "matmulMany";
    if (biases !== undefined && biases.length !== ws.length) {
      throw new EngineError(`${what}: ${ws.length} weights but ${biases.length} biases`);
    }
    if (after !== undefined && after.length !== ws.length) {
      throw new EngineError(`${what}: ${ws.length} weights but ${after.length} transforms`);
    }
    if (rope !== undefined && !(rope.count <= ws.length)) {
      throw new EngineError(`${what}: RoPE on ${rope.count} of ${ws.length} products`);
    }
    const xs = f32(x, what);
    const shapes = ws.map((w) => productShape(what, x, w));
    const products = ws.map((w, i) => {
      const b = biases?.[i];
      const bias = b === undefined ? undefined : f32(b, what);
      if (bias !== undefined && bias.length !== shapes[i].n) {
        throw new EngineError(`${what}: bias ${i} [${b!.shape}] must be [${shapes[i].n}]`);
      }
      const rotated = i < (rope?.count ?? 0);
      return {
        w: f32(w, what),
        n: shapes[i].n,
        bias,
        rope: rotated,
        after: rowTransform(after?.[i], what),
      };
    });
    if (ws.length === 0) return [];
    const { m, k } = shapes[0];
    const outs = shapes.map(({ n }) => this.#f32(m * n));
    try {
      matmulTransposedMany(xs, products, m, k, outs, rope && ropeTables(rope));
    } catch (e) {
      for (const y of outs) this.#pool.release(y);
      throw new EngineError(`${what}: ${(e as Error).message}`);
    }
    return outs.map((y, i) => this.#own(y, [...x.shape.slice(0, -1), shapes[i].n]));
  }

  matmulAdd(x: Tensor, w: Tensor, residual: Tensor, after?: ProductTransform): CpuTensor {
    const what = "matmulAdd";
    const { m, n, k } = productShape(what, x, w);
    const shape = [...x.shape.slice(0, -1), n];
    if (residual.shape.join() !== shape.join()) {
      throw new EngineError(
        `${what}: residual [${residual.shape}] is not the product's [${shape}]`,
      );
    }
    const [xs, ws, rs] = [f32(x, what), f32(w, what), f32(residual, what)];
    const y = this.#f32(m * n);
    try {
      matmulTransposedAdd(xs, ws, rs, m, n, k, y, rowTransform(after, what));
    } catch (e) {
      this.#pool.release(y);
      throw new EngineError(`${what}: ${(e as Error).message}`);
    }
    return this.#own(y, shape);
  }

  add(a: Tensor, b: Tensor): CpuTensor {
    return this.#own(broadcast(a, b, "add", this.#f32(a.numel)), a.shape);
  }

  mul(a: Tensor, b: Tensor): CpuTensor {
    return this.#own(broadcast(a, b, "mul", this.#f32(a.numel)), a.shape);
  }

  scale(x: Tensor, s: number): CpuTensor {
    const xs = f32(x, "scale");
    const y = this.#f32(xs.length);
    const sf = Math.fround(s);
    for (let i = 0; i < xs.length; i++) y[i] = xs[i] * sf;
    return this.#own(y, x.shape);
  }

  copy(x: Tensor): CpuTensor {
    const xs = cpu(x, "copy").data;
    if (!(xs instanceof Float32Array)) return new CpuTensor(xs.slice(), [...x.shape]);
    const y = this.#f32(xs.length);
    y.set(xs);
    return this.#own(y, x.shape);
  }

  rmsnorm(x: Tensor, weight: Tensor, eps: number): CpuTensor {
    const xs = f32(x, "rmsnorm");
    const w = f32(weight, "rmsnorm");
    const cols = w.length;
    const rows = xs.length / cols;
    if (!Number.isInteger(rows)) {
      throw new EngineError(`rmsnorm: [${x.shape}] is not a whole number of rows of ${cols}`);
    }
    const y = rmsnorm(xs, w, rows, cols, eps, this.#f32(xs.length));
    return this.#own(y, x.shape);
  }

  ropeInPlace(x: Tensor, cos: Tensor, sin: Tensor, heads: number, headDim: number): void {
    const xs = f32(x, "rope");
    const cs = f32(cos, "rope");
    const sn = f32(sin, "rope");
    const half = headDim / 2;
    const seqLen = cs.length / half;
    const rows = xs.length / (heads * headDim);
    for (let r = 0; r < rows; r++) {
      const pos = (r % seqLen) * half;
      for (let h = 0; h < heads; h++) {
        const base = (r * heads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const c = cs[pos + i];
          const s = sn[pos + i];
          const x1 = xs[base + i];
          const x2 = xs[base + i + half];
          xs[base + i] = Math.fround(x1 * c) - Math.fround(x2 * s);
          xs[base + i + half] = Math.fround(x2 * c) + Math.fround(x1 * s);
        }
      }
    }
  }

  attention(q: Tensor, k: Tensor, v: Tensor, shape: AttentionShape): CpuTensor {
    const qs = f32(q, "attention");
    const ks = f32(k, "attention");
    const vs = f32(v, "attention");
    const { sequences, seqLen, heads, kvHeads, headDim } = shape;
    if (heads % kvHeads !== 0 || qs.length !== sequences * seqLen * heads * headDim) {
      throw new EngineError(`attention: q [${q.shape}] does not fit ${JSON.stringify(shape)}`);
    }
    // Every sequence's rows are written whole (causalAttention writes all of its `out`).
    const out = this.#f32(qs.length);
    // All of it (both products and the softmax, every sequence) runs as
    // SIMD jobs on the kernels' threads, several sequences a job.
    causalAttention(qs, ks, vs, {
      sequences,
      seq: seqLen,
      kvLen: seqLen,
      heads,
      kvHeads,
      headDim,
      window: shape.window,
    }, out);
    return this.#own(out, [sequences * seqLen, heads * headDim]);
  }

  siluMul(gate: Tensor, up: Tensor): CpuTensor {
    const g = f32(gate, "siluMul");
    const u = f32(up, "siluMul");
    if (g.length !== u.length) {
      throw new EngineError(`siluMul: gate [${gate.shape}] and up [${up.shape}] differ`);
    }
    return this.#own(siluMul(g, u, g.length, this.#f32(g.length)), gate.shape);
  }

  swiGlu(x: Tensor, gate: Tensor, up: Tensor, after?: SwiGluTransforms): CpuTensor {
    const what = "swiGlu";
    const { m, n, k } = productShape(what, x, gate);
    if (up.shape.join() !== gate.shape.join()) {
      throw new EngineError(`${what}: gate [${gate.shape}] and up [${up.shape}] differ`);
    }
    // The transforms run on each chunk's products in the kernels' memory.
    const transforms = { gate: rowTransform(after?.gate, what), up: rowTransform(after?.up, what) };
    const xs = f32(x, what);
    const [g, u] = [f32(gate, what), f32(up, what)];
    const y = this.#f32(m * n);
    try {
      swiGlu(xs, g, u, m, n, k, y, transforms);
    } catch (e) {
      this.#pool.release(y);
      throw new EngineError(`${what}: ${(e as Error).message}`);
    }
    return this.#own(y, [...x.shape.slice(0, -1), n]);
  }

  embeddingGather(tableBlock: Tensor, rowStart: number, ids: Tensor, out: Tensor): void {
    const table = f32(tableBlock, "embeddingGather");
    const idv = cpu(ids, "embeddingGather").data;
    const o = f32(out, "embeddingGather");
    const [rows, hidden] = tableBlock.shape;
    for (let i = 0; i < idv.length; i++) {
      const r = idv[i] - rowStart;
      if (r >= 0 && r < rows) o.set(table.subarray(r * hidden, (r + 1) * hidden), i * hidden);
    }
  }

  logSoftmaxNll(
    logits: Tensor,
    targets: Tensor,
    state: Tensor,
    nll: Tensor,
    v0: number,
    first: boolean,
    last: boolean,
  ): void {
    const l = f32(logits, "logSoftmaxNll");
    const tg = cpu(targets, "logSoftmaxNll").data;
    const st = f32(state, "logSoftmaxNll");
    const out = f32(nll, "logSoftmaxNll");
    const [rows, block] = logits.shape;
    for (let r = 0; r < rows; r++) {
      const base = r * block;
      let max = first ? -Infinity : st[r * 3];
      let sum = first ? 0 : st[r * 3 + 1];
      let target = first ? 0 : st[r * 3 + 2];
      let blockMax = -Infinity;
      for (let c = 0; c < block; c++) blockMax = Math.max(blockMax, l[base + c]);
      const m = Math.max(max, blockMax);
      sum = sum === 0 ? 0 : sum * Math.exp(max - m);
      for (let c = 0; c < block; c++) sum += Math.exp(l[base + c] - m);
      max = m;
      const t = tg[r] - v0;
      if (t >= 0 && t < block) target = l[base + t];
      st[r * 3] = max;
      st[r * 3 + 1] = sum;
      st[r * 3 + 2] = target;
      if (last) out[r] = tg[r] < 0 ? 0 : max + Math.log(sum) - target;
    }
  }

  routeTopK(logits: Tensor, topK: number, normalize: boolean): CpuTensor {
    const l = f32(logits, "routeTopK");
    if (logits.shape.length !== 2 || topK < 1 || topK > logits.shape[1]) {
      throw new EngineError(
        `routeTopK: expected logits [rows, experts] and 1 ≤ topK ≤ experts, ` +
          `got [${logits.shape}], ${topK}`,
      );
    }
    const [rows, experts] = logits.shape;
    const w = new Float32Array(l.length);
    const order = Array.from({ length: experts }, (_, e) => e);
    for (let r = 0; r < rows; r++) {
      const row = l.subarray(r * experts, (r + 1) * experts);
      let m = -Infinity;
      for (const v of row) m = Math.max(m, v);
      let total = 0;
      for (const v of row) total += Math.exp(v - m);
      // Softmax is monotone: rank the logits; equal ones by the lower index (stable sort).
      const kept = order.slice().sort((a, b) => row[b] - row[a]).slice(0, topK);
      let chosen = 0;
      for (const e of kept) chosen += Math.exp(row[e] - m) / total;
      for (const e of kept) {
        const p = Math.exp(row[e] - m) / total;
        w[r * experts + e] = normalize ? p / chosen : p;
      }
    }
    return new CpuTensor(w, [rows, experts]);
  }

  accumulateWeighted(
    acc: Tensor,
    y: Tensor,
    weights: Tensor,
    col: number,
    options: AccumulateOptions = {},
  ): void {
    const what = "accumulateWeighted";
    const a = f32(acc, what);
    const ys = f32(y, what);
    const ws = f32(weights, what);
    const { rows, cols, stride } = combineShape(what, y, acc, weights, col);
    for (let r = 0; r < rows; r++) {
      let g = ws[r * stride + col];
      if (options.sigmoid) g = 1 / (1 + Math.exp(-g));
      const base = r * cols;
      for (let c = 0; c < cols; c++) {
        a[base + c] = (options.overwrite ? 0 : a[base + c]) + g * ys[base + c];
      }
    }
  }

  maskRows(x: Tensor, weights: Tensor, col: number): CpuTensor {
    const xs = f32(x, "maskRows");
    const ws = f32(weights, "maskRows");
    const { rows, cols, stride } = combineShape("maskRows", x, x, weights, col);
    const out = new Float32Array(xs.length);
    for (let r = 0; r < rows; r++) {
      if (ws[r * stride + col] !== 0) {
        out.set(xs.subarray(r * cols, (r + 1) * cols), r * cols);
      }
    }
    return new CpuTensor(out, [...x.shape]);
  }

  copyColumns(block: Tensor, out: Tensor, col0: number): void {
    const b = f32(block, "copyColumns");
    const o = f32(out, "copyColumns");
    const [rows, cols] = block.shape;
    const ld = out.shape[out.shape.length - 1];
    for (let r = 0; r < rows; r++) o.set(b.subarray(r * cols, (r + 1) * cols), r * ld + col0);
  }

  walshHadamard(
    x: Tensor,
    n: number,
    scale: number,
    stride = 1,
    signs?: WalshHadamardSigns,
    base?: Tensor,
  ): CpuTensor {
    const xs = f32(x, "walshHadamard");
    const factors = signs === undefined ? undefined : f32(signs.values, "walshHadamard");
    if (factors !== undefined && factors.length !== n) {
      throw new EngineError(`walshHadamard: signs [${signs!.values.shape}] must hold n = ${n}`);
    }
    const k = base === undefined ? undefined : f32(base, "walshHadamard");
    if (k !== undefined && k.length !== stride * stride) {
      throw new EngineError(`walshHadamard: base [${base!.shape}] must be [${stride}, ${stride}]`);
    }
    const y = this.#f32(xs.length);
    try {
      // Read from x, written to y: the kernels copy each chunk in and out once,
      // and with a base run the whole factored product on it while it is there.
      const options = { out: y, signs: factors, signsFirst: signs?.first, base: k };
      walshHadamard(xs, n, scale, stride, options);
    } catch (e) {
      this.#pool.release(y);
      throw new EngineError(`walshHadamard: ${(e as Error).message}`);
    }
    return this.#own(y, x.shape);
  }

  blockTransform(x: Float64Array, t: BlockTransform, at: BlockTransformPlacement): void {
    hostBlockTransform().blockTransform(x, t, at);
  }

  reshape(t: Tensor, shape: readonly number[]): CpuTensor {
    const data = cpu(t, "reshape").data;
    // A view of one of the engine's arrays keeps it out of the pool while it lives.
    if (data instanceof Float32Array && this.#pool.holds(data)) return this.#own(data, shape);
    return new CpuTensor(data, [...shape]);
  }

  reduceRows(x: Tensor, op: RowReduction): CpuTensor {
    const xs = f32(x, "reduceRows");
    if (x.shape.length < 1) throw new EngineError(`reduceRows: x [${x.shape}] needs a column axis`);
    const cols = x.shape[x.shape.length - 1];
    const rows = cols === 0 ? 0 : xs.length / cols;
    const y = new Float32Array(Math.max(rows, 1));
    // One loop per op: a test of the op per element made this a calibration hot spot.
    for (let r = 0; r < rows; r++) {
      const start = r * cols;
      const end = start + cols;
      let acc = REDUCTION_START[op];
      if (op === "sum") { for (let i = start; i < end; i++) acc += xs[i]; }
      else if (op === "min") { for (let i = start; i < end; i++) acc = Math.min(acc, xs[i]); }
      else if (op === "max") { for (let i = start; i < end; i++) acc = Math.max(acc, xs[i]); }
      else for (let i = start; i < end; i++) acc = Math.max(acc, Math.abs(xs[i]));
      y[r] = acc;
    }
    return new CpuTensor(y, x.shape.length === 1 ? [1] : x.shape.slice(0, -1));
  }

  reduceRowsMinMax(x: Tensor): { min: CpuTensor; max: CpuTensor } {
    const xs = f32(x, "reduceRowsMinMax");
    if (x.shape.length < 1) {
      throw new EngineError(`reduceRowsMinMax: x [${x.shape}] needs a column axis`);
    }
    const cols = x.shape[x.shape.length - 1];
    const rows = cols === 0 ? 0 : xs.length / cols;
    const shape = x.shape.length === 1 ? [1] : x.shape.slice(0, -1);
    const min = new Float32Array(Math.max(rows, 1));
    const max = new Float32Array(Math.max(rows, 1));
    // Both in one pass on the kernels (reduceRows' loops read the rows twice).
    if (rows > 0) rowMinMax(xs, rows, cols, min, max);
    return { min: new CpuTensor(min, shape), max: new CpuTensor(max, [...shape]) };
  }

  reduceColumns(x: Tensor, op: RowReduction): CpuTensor {
    const xs = f32(x, "reduceColumns");
    const [rows, cols] = x.shape;
    if (x.shape.length !== 2 || rows < 1 || cols < 1) {
      throw new EngineError(`reduceColumns: x [${x.shape}] must be 2-D and not empty`);
    }
    // Every column's running value in float64, rows in order: reduceRows' sums
    // (float64, in the transpose's column order) and its min/max exactly.
    const acc = new Float64Array(cols).fill(REDUCTION_START[op]);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      if (op === "sum") { for (let c = 0; c < cols; c++) acc[c] += xs[base + c]; }
      else if (op === "min") {
        for (let c = 0; c < cols; c++) acc[c] = Math.min(acc[c], xs[base + c]);
      } else if (op === "max") {
        for (let c = 0; c < cols; c++) acc[c] = Math.max(acc[c], xs[base + c]);
      } else for (let c = 0; c < cols; c++) acc[c] = Math.max(acc[c], Math.abs(xs[base + c]));
    }
    return new CpuTensor(Float32Array.from(acc), [cols]);
  }

  reduceColumnsMinMax(x: Tensor): { min: CpuTensor; max: CpuTensor } {
    const xs = f32(x, "reduceColumnsMinMax");
    const [rows, cols] = x.shape;
    if (x.shape.length !== 2 || rows < 1 || cols < 1) {
      throw new EngineError(`reduceColumnsMinMax: x [${x.shape}] must be 2-D and not empty`);
    }
    const min = new Float32Array(cols);
    const max = new Float32Array(cols);
    // Both in one pass on the kernels (reduceColumns' loops read x twice).
    columnMinMax(xs, rows, cols, min, max);
    return { min: new CpuTensor(min, [cols]), max: new CpuTensor(max, [cols]) };
  }

  rowSquaredError(a: Tensor, b?: Tensor): CpuTensor {
    const as = f32(a, "rowSquaredError");
    const bs = b === undefined ? null : f32(b, "rowSquaredError");
    if (a.shape.length < 1) throw new EngineError(`rowSquaredError: a [${a.shape}] has no columns`);
    if (b !== undefined && b.shape.join() !== a.shape.join()) {
      throw new EngineError(`rowSquaredError: a [${a.shape}] and b [${b.shape}] differ`);
    }
    const cols = a.shape[a.shape.length - 1];
    const rows = cols === 0 ? 0 : as.length / cols;
    const y = new Float32Array(Math.max(rows, 1));
    // On the kernels, with the bits of add, mul and reduceRows' sum: float32
    // differences and squares, each row summed in float64 in column order
    // (tests/engine/row_squared_error_test.ts holds the loop it replaced).
    if (rows > 0) rowSquaredError(as, bs, rows, cols, y);
    return new CpuTensor(y, a.shape.length === 1 ? [1] : a.shape.slice(0, -1));
  }

  transpose(x: Tensor): CpuTensor {
    if (x.shape.length !== 2) throw new EngineError(`transpose: x [${x.shape}] must be 2-D`);
    const xs = cpu(x, "transpose").data;
    const [rows, cols] = x.shape;
    const y = new (xs.constructor as new (n: number) => HostArray)(xs.length);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) y[c * rows + r] = xs[r * cols + c];
    }
    return new CpuTensor(y, [cols, rows]);
  }

  fakeQuantizeRows(
    x: Tensor,
    scale: Tensor,
    zeroPoint: Tensor | null,
    args: QuantizationArgs,
  ): CpuTensor {
    const what = "fakeQuantizeRows";
    const xs = f32(x, what);
    const zp = zeroPoint === null ? null : f32(zeroPoint, what);
    const y = fakeQuantizeRowRuns(xs, x.shape[0], f32(scale, what), zp, args, this.#f32(xs.length));
    return this.#own(y, x.shape);
  }

  close(): void {}
}

/** A {@link ProductTransform} on the kernels' host arrays. */
function rowTransform(t: ProductTransform | undefined, what: string): RowTransform | undefined {
  if (t === undefined) return undefined;
  const signs = t.signs === undefined ? undefined : f32(t.signs.values, what);
  const base = t.base === undefined ? undefined : f32(t.base, what);
  const options = { signs, signsFirst: t.signs?.first, base };
  return { n: t.n, scale: t.scale, stride: t.stride, options };
}

/** A {@link ManyRope}'s tables for the kernels. */
function ropeTables(rope: ManyRope): RopeTables {
  const cos = f32(rope.cos, "matmulMany");
  const seqLen = rope.cos.shape[0];
  return { cos, sin: f32(rope.sin, "matmulMany"), seqLen, headDim: rope.headDim };
}

/** y[i, j] += b[j] for the m × n rows of y (a Linear's bias, float32 sums). */
function addBias(y: Float32Array, b: Float32Array, m: number, n: number): void {
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) y[i * n + j] += b[j];
}

/** m, n and k of x `[..., K]` · wᵀ for w `[N, K]`; throws naming `op` when they do not fit. */
function productShape(op: string, x: Tensor, w: Tensor): { m: number; n: number; k: number } {
  if (x.shape.length < 1 || w.shape.length !== 2) {
    throw new EngineError(
      `${op}: expected x [..., K] and w [N, K], got [${x.shape}] and [${w.shape}]`,
    );
  }
  const [n, k] = w.shape;
  if (x.shape[x.shape.length - 1] !== k) {
    throw new EngineError(`${op}: x [${x.shape}] and w [${w.shape}] disagree on K`);
  }
  return { m: x.numel / k, n, k };
}

/** Where each {@link RowReduction} starts. */
const REDUCTION_START: Record<RowReduction, number> = {
  sum: 0,
  min: Infinity,
  max: -Infinity,
  absmax: 0,
};

/**
 * The host array behind a tensor of the CPU engine.
 *
 * @param t a tensor
 * @param op the op asking, for the error
 * @returns its CpuTensor
 * @throws {EngineError} for another engine's tensor
 * @example
 * ```ts
 * import { cpuTensor, CpuEngine } from "./cpu_engine.ts";
 * const t = new CpuEngine().upload(new Float32Array([1]), [1]);
 * console.assert(cpuTensor(t, "example").data[0] === 1);
 * ```
 */
export function cpuTensor(t: Tensor, op: string): CpuTensor {
  return cpu(t, op);
}

function cpu(t: Tensor, op: string): CpuTensor {
  if (!(t instanceof CpuTensor)) {
    throw new EngineError(`${op}: a ${t.constructor.name} [${t.shape}] is not a CPU tensor`);
  }
  return t;
}

/**
 * `a op b` elementwise into y (a.numel floats), b equal to a or a
 * trailing-dimension broadcast of it. One plain loop per op and layout: a
 * callback per element, or an index modulo where none is needed, made these
 * the slowest ops of AWQ's grid search.
 */
function broadcast(a: Tensor, b: Tensor, op: "add" | "mul", y: Float32Array): Float32Array {
  const as = f32(a, op);
  const bs = f32(b, op);
  const suffix = a.shape.slice(a.shape.length - b.shape.length);
  if (b.shape.length > a.shape.length || suffix.some((d, i) => d !== b.shape[i])) {
    throw new EngineError(`${op}: b [${b.shape}] must equal a [${a.shape}] or its trailing dims`);
  }
  const n = as.length;
  const nb = Math.max(bs.length, 1);
  if (nb === n) {
    if (op === "add") { for (let i = 0; i < n; i++) y[i] = as[i] + bs[i]; }
    else for (let i = 0; i < n; i++) y[i] = as[i] * bs[i];
    return y;
  }
  for (let r = 0; r < n; r += nb) {
    const m = Math.min(nb, n - r);
    if (op === "add") { for (let j = 0; j < m; j++) y[r + j] = as[r + j] + bs[j]; }
    else for (let j = 0; j < m; j++) y[r + j] = as[r + j] * bs[j];
  }
  return y;
}

// Rows, columns and weight stride of a MoE combine; throws when they do not fit.
function combineShape(
  op: string,
  y: Tensor,
  out: Tensor,
  weights: Tensor,
  col: number,
): { rows: number; cols: number; stride: number } {
  const cols = y.shape[y.shape.length - 1];
  const rows = y.numel / cols;
  const stride = weights.shape[weights.shape.length - 1];
  if (out.numel !== y.numel || weights.numel !== rows * stride || col < 0 || col >= stride) {
    throw new EngineError(
      `${op}: y [${y.shape}], out [${out.shape}] and weights [${weights.shape}] ` +
        `(column ${col}) do not fit`,
    );
  }
  return { rows, cols, stride };
}

function f32(t: Tensor, op: string): Float32Array {
  const d = cpu(t, op).data;
  if (!(d instanceof Float32Array)) throw new EngineError(`${op}: expected f32, got [${t.shape}]`);
  return d;
}
