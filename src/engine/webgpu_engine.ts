/**
 * The WebGPU engine: {@link Engine} over llmc's WGSL kernels. Ops record
 * dispatches into one current {@link CommandBatch}; `flush` submits it and
 * `read` brings tensors back in one device poll, so a forward costs the same
 * submits and polls it did before the seam existed. On a software adapter
 * (llvmpipe, lavapipe, SwiftShader) `matmul` reads its operands through
 * uniform-buffer windows (src/gpu/matmul_uniform.ts) instead of storage
 * buffers, several times faster there; real GPUs keep the storage kernel,
 * whose outputs are bit-identical to before the seam.
 *
 * Nothing above the seam dispatches WGSL itself: the Hessian accumulation,
 * GPTQ's and SparseGPT's linear algebra (./webgpu/second_order/) and the
 * activation fake-quantization are engine ops. Tests and benchmarks that
 * drive a kernel directly reach the device and the current batch through
 * {@link webGpuOf}.
 *
 * @module
 */

import { CommandBatch } from "../gpu/batch.ts";
import { ChunkedWeight } from "../gpu/chunked.ts";
import { describeGpu, type Gpu } from "../gpu/device.ts";
import { storagePool } from "../gpu/buffer_pool.ts";
import { defaultMatmulPath } from "../gpu/matmul_uniform.ts";
import { add, copy, matmul, mul, prepareOps, reduceRows, scale, transpose } from "../gpu/ops.ts";
import { GpuTensor, readMany } from "../gpu/tensor.ts";
import { ModelOps } from "./webgpu/model_ops.ts";
import { accumulateWeighted, maskRows, routeTopK } from "./webgpu/moe_ops.ts";
import { EngineError } from "./engine_error.ts";
import { hostBlockTransform } from "./cpu/block_transform.ts";
import { prepareWalshHadamard, walshHadamardGpu } from "./webgpu/walsh_hadamard.ts";
import { fakeQuantizeRowsGpu } from "./webgpu/fake_quantize.ts";
import type { QuantizationArgs } from "../quant/args.ts";
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
  WalshHadamardSigns,
} from "./engine.ts";
import { webGpuSecondOrder } from "./webgpu_second_order.ts";

/**
 * {@link Engine} on a WebGPU device.
 *
 * @example
 * ```ts ignore
 * import { getGpu } from "../gpu/device.ts";
 * import { WebGpuEngine } from "./webgpu_engine.ts";
 * const engine = await WebGpuEngine.create(await getGpu());
 * const x = engine.upload(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const [y] = await engine.read([engine.matmul(x, x)]);
 * ```
 */
export class WebGpuEngine implements Engine {
  readonly kind = "webgpu" as const;
  /**
   * GPTQ's and SparseGPT's ops, recorded without waiting, their reads
   * coalesced into few polls (src/engine/webgpu_second_order.ts).
   */
  readonly secondOrder: SecondOrderOps = webGpuSecondOrder(this);
  #batch: CommandBatch | null = null;

  private constructor(
    /** The device. */
    readonly gpu: Gpu,
    private readonly ops: ModelOps,
  ) {}

  /**
   * Compiles the model kernels (attention for `headDims`; others on first use).
   *
   * @param gpu the device
   * @param headDims head sizes to compile attention for now
   * @returns the engine
   * @example
   * ```ts ignore
   * const engine = await WebGpuEngine.create(await getGpu(), [64]);
   * ```
   */
  static async create(gpu: Gpu, headDims: readonly number[] = []): Promise<WebGpuEngine> {
    const [ops] = await Promise.all([
      ModelOps.load(gpu, headDims),
      prepareOps(gpu),
      prepareWalshHadamard(gpu),
    ]);
    return new WebGpuEngine(gpu, ops);
  }

  /** The adapter, backend and limits, and which matmul kernel runs on it. */
  get description(): string {
    const path = defaultMatmulPath(this.gpu);
    return `${describeGpu(this.gpu)}; matmul: ${
      path === "uniform" ? "uniform-buffer windows (software adapter)" : "storage buffers"
    }`;
  }

  /** One storage binding. */
  get maxTensorBytes(): number {
    return Math.min(this.gpu.limits.maxStorageBufferBindingSize, this.gpu.limits.maxBufferSize);
  }

  /**
   * The batch ops record into now (created on first use). Only code that
   * dispatches its own kernels needs it (see {@link webGpuOf}).
   */
  get batch(): CommandBatch {
    return this.#batch ??= new CommandBatch(this.gpu);
  }

  upload(data: HostArray, shape: readonly number[]): GpuTensor {
    return GpuTensor.fromArray(this.gpu, data, [...shape]);
  }

  uploadWeight(data: Float32Array, shape: readonly [number, number]): Tensor {
    return data.byteLength > this.maxTensorBytes
      ? ChunkedWeight.fromArray(this.gpu, data, [shape[0], shape[1]])
      : GpuTensor.fromArray(this.gpu, data, [...shape], { immutable: true });
  }

  allocate(shape: readonly number[]): GpuTensor {
    return GpuTensor.allocate(this.gpu, [...shape]);
  }

  read(tensors: readonly Tensor[]): Promise<HostArray[]> {
    return readMany(tensors.map((t) => gpuTensor(t, "read")));
  }

  flush(): Promise<void> {
    const batch = this.#batch ?? new CommandBatch(this.gpu);
    this.#batch = null;
    return batch.done();
  }

  matmul(x: Tensor, w: Tensor, bias?: Tensor): GpuTensor {
    const weight = w instanceof ChunkedWeight ? w : gpuTensor(w, "matmul");
    return matmul(
      this.batch,
      gpuTensor(x, "matmul"),
      weight,
      bias === undefined ? undefined : gpuTensor(bias, "matmul"),
    );
  }

  matmulMany(
    x: Tensor,
    ws: readonly Tensor[],
    biases?: readonly (Tensor | undefined)[],
    rope?: ManyRope,
    after?: readonly (ProductTransform | undefined)[],
  ): GpuTensor[] {
    if (biases !== undefined && biases.length !== ws.length) {
      throw new EngineError(`matmulMany: ${ws.length} weights but ${biases.length} biases`);
    }
    if (after !== undefined && after.length !== ws.length) {
      throw new EngineError(`matmulMany: ${ws.length} weights but ${after.length} transforms`);
    }
    if (rope !== undefined && !(rope.count <= ws.length)) {
      throw new EngineError(`matmulMany: RoPE on ${rope.count} of ${ws.length} products`);
    }
    const ys = ws.map((w, i) => this.#transformed(this.matmul(x, w, biases?.[i]), after?.[i]));
    for (const y of ys.slice(0, rope?.count ?? 0)) {
      const n = y.shape[y.shape.length - 1];
      this.ropeInPlace(y, rope!.cos, rope!.sin, n / rope!.headDim, rope!.headDim);
    }
    return ys;
  }

  matmulAdd(x: Tensor, w: Tensor, residual: Tensor, after?: ProductTransform): GpuTensor {
    const y = this.#transformed(this.matmul(x, w), after);
    try {
      if (residual.shape.join() !== y.shape.join()) {
        throw new EngineError(
          `matmulAdd: residual [${residual.shape}] is not the product's [${y.shape}]`,
        );
      }
      return this.add(residual, y);
    } finally {
      y.destroy();
    }
  }

  add(a: Tensor, b: Tensor): GpuTensor {
    return add(this.batch, gpuTensor(a, "add"), gpuTensor(b, "add"));
  }

  mul(a: Tensor, b: Tensor): GpuTensor {
    return mul(this.batch, gpuTensor(a, "mul"), gpuTensor(b, "mul"));
  }

  scale(x: Tensor, s: number): GpuTensor {
    return scale(this.batch, gpuTensor(x, "scale"), s);
  }

  copy(x: Tensor): GpuTensor {
    return copy(this.batch, gpuTensor(x, "copy"));
  }

  rmsnorm(x: Tensor, weight: Tensor, eps: number): GpuTensor {
    return this.ops.rmsnorm(this.batch, gpuTensor(x, "rmsnorm"), gpuTensor(weight, "rmsnorm"), eps);
  }

  ropeInPlace(x: Tensor, cos: Tensor, sin: Tensor, heads: number, headDim: number): void {
    this.ops.ropeInPlace(
      this.batch,
      gpuTensor(x, "rope"),
      gpuTensor(cos, "rope"),
      gpuTensor(sin, "rope"),
      heads,
      headDim,
    );
  }

  attention(q: Tensor, k: Tensor, v: Tensor, shape: AttentionShape): GpuTensor {
    return this.ops.attention(
      this.batch,
      gpuTensor(q, "attention"),
      gpuTensor(k, "attention"),
      gpuTensor(v, "attention"),
      shape,
    );
  }

  siluMul(gate: Tensor, up: Tensor): GpuTensor {
    return this.ops.siluMul(this.batch, gpuTensor(gate, "siluMul"), gpuTensor(up, "siluMul"));
  }

  swiGlu(x: Tensor, gate: Tensor, up: Tensor, after?: SwiGluTransforms): GpuTensor {
    if (up.shape.join() !== gate.shape.join()) {
      throw new EngineError(`swiGlu: gate [${gate.shape}] and up [${up.shape}] differ`);
    }
    // The two products (and their transforms) are recorded like any others;
    // destroyed once the activation is recorded.
    const g = this.#transformed(this.matmul(x, gate), after?.gate);
    const u = this.#transformed(this.matmul(x, up), after?.up);
    try {
      return this.siluMul(g, u);
    } finally {
      g.destroy();
      u.destroy();
    }
  }

  /** y itself without a transform, else its `walshHadamard` (y destroyed once recorded). */
  #transformed(y: GpuTensor, t: ProductTransform | undefined): GpuTensor {
    if (t === undefined) return y;
    try {
      return this.walshHadamard(y, t.n, t.scale, t.stride, t.signs, t.base);
    } finally {
      y.destroy();
    }
  }

  embeddingGather(tableBlock: Tensor, rowStart: number, ids: Tensor, out: Tensor): void {
    const what = "embeddingGather";
    this.ops.embeddingGather(
      this.batch,
      gpuTensor(tableBlock, what),
      rowStart,
      gpuTensor(ids, what),
      gpuTensor(out, what),
    );
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
    const what = "logSoftmaxNll";
    this.ops.logSoftmaxNll(
      this.batch,
      gpuTensor(logits, what),
      gpuTensor(targets, what),
      gpuTensor(state, what),
      gpuTensor(nll, what),
      v0,
      first,
      last,
    );
  }

  routeTopK(logits: Tensor, topK: number, normalize: boolean): GpuTensor {
    return routeTopK(this.batch, gpuTensor(logits, "routeTopK"), topK, normalize);
  }

  accumulateWeighted(
    acc: Tensor,
    y: Tensor,
    weights: Tensor,
    col: number,
    options: AccumulateOptions = {},
  ): void {
    const what = "accumulateWeighted";
    accumulateWeighted(
      this.batch,
      gpuTensor(acc, what),
      gpuTensor(y, what),
      gpuTensor(weights, what),
      col,
      options,
    );
  }

  maskRows(x: Tensor, weights: Tensor, col: number): GpuTensor {
    return maskRows(this.batch, gpuTensor(x, "maskRows"), gpuTensor(weights, "maskRows"), col);
  }

  copyColumns(block: Tensor, out: Tensor, col0: number): void {
    this.ops.copyColumns(
      this.batch,
      gpuTensor(block, "copyColumns"),
      gpuTensor(out, "copyColumns"),
      col0,
    );
  }

  reshape(t: Tensor, shape: readonly number[]): GpuTensor {
    const g = gpuTensor(t, "reshape");
    if (shape.reduce((a, b) => a * b, 1) !== g.numel) {
      throw new EngineError(`reshape: [${g.shape}] cannot be seen as [${shape}]`);
    }
    return g.view([...shape]);
  }

  reduceRows(x: Tensor, op: RowReduction): GpuTensor {
    return reduceRows(this.batch, gpuTensor(x, "reduceRows"), op);
  }

  /** The composition the interface specifies (a transpose and a row reduction). */
  /** The two reductions the interface names (two dispatches). */
  reduceRowsMinMax(x: Tensor): { min: GpuTensor; max: GpuTensor } {
    return { min: this.reduceRows(x, "min"), max: this.reduceRows(x, "max") };
  }

  /** The two reductions the interface names. */
  reduceColumnsMinMax(x: Tensor): { min: GpuTensor; max: GpuTensor } {
    return { min: this.reduceColumns(x, "min"), max: this.reduceColumns(x, "max") };
  }

  reduceColumns(x: Tensor, op: RowReduction): GpuTensor {
    const gx = gpuTensor(x, "reduceColumns");
    if (gx.shape.length !== 2 || gx.shape[0] < 1 || gx.shape[1] < 1) {
      throw new EngineError(`reduceColumns: x [${gx.shape}] must be 2-D and not empty`);
    }
    const t = transpose(this.batch, gx);
    const out = reduceRows(this.batch, t, op);
    t.destroy();
    return out;
  }

  /** The composition the interface specifies (four dispatches: the values are its values). */
  rowSquaredError(a: Tensor, b?: Tensor): GpuTensor {
    const ga = gpuTensor(a, "rowSquaredError");
    if (b !== undefined && b.shape.join() !== ga.shape.join()) {
      throw new EngineError(`rowSquaredError: a [${ga.shape}] and b [${b.shape}] differ`);
    }
    const negated = b === undefined ? null : scale(this.batch, gpuTensor(b, "rowSquaredError"), -1);
    const d = negated === null ? ga : add(this.batch, ga, negated);
    const sq = mul(this.batch, d, d);
    const out = reduceRows(this.batch, sq, "sum");
    for (const t of [negated, negated === null ? null : d, sq]) t?.destroy();
    return out;
  }

  /**
   * With signs: the transform and a broadcast `mul`, composed (their values);
   * with a base, the signs first, the `[·, K] × [K, K]` matmul, then the rest.
   */
  walshHadamard(
    x: Tensor,
    n: number,
    scale: number,
    stride = 1,
    signs?: WalshHadamardSigns,
    base?: Tensor,
  ): GpuTensor {
    const gx = gpuTensor(x, "walshHadamard");
    if (signs === undefined && base === undefined) {
      return walshHadamardGpu(this.batch, gx, n, scale, stride);
    }
    if (signs !== undefined && signs.values.numel !== n) {
      throw new EngineError(`walshHadamard: signs [${signs.values.shape}] must hold n = ${n}`);
    }
    if (base !== undefined && base.numel !== stride * stride) {
      throw new EngineError(`walshHadamard: base [${base.shape}] must be [${stride}, ${stride}]`);
    }
    const runs = (t: GpuTensor) => this.reshape(t, [t.numel / n, n]);
    const values = signs === undefined ? null : this.reshape(signs.values, [n]);
    const steps: GpuTensor[] = [];
    const last = () => steps[steps.length - 1] ?? gx;
    if (signs?.first) steps.push(this.mul(runs(gx), values!));
    if (base !== undefined) {
      steps.push(this.matmul(this.reshape(last(), [gx.numel / stride, stride]), base));
    }
    steps.push(walshHadamardGpu(this.batch, runs(last()), n, scale, stride));
    if (signs !== undefined && !signs.first) steps.push(this.mul(runs(last()), values!));
    const out = steps.pop()!;
    for (const t of steps) t.destroy();
    if (out.shape.join() === gx.shape.join()) return out;
    // A view does not own its buffer: a copy in x's shape outlives `out`.
    const shaped = this.copy(this.reshape(out, gx.shape));
    out.destroy();
    return shaped;
  }

  /**
   * The host float64 kernels, as on the CPU engine: WGSL has no float64, and
   * float32 (even compensated) would change the bytes of every rotated
   * checkpoint; a weight is a host array when it is rotated anyway.
   */
  blockTransform(x: Float64Array, t: BlockTransform, at: BlockTransformPlacement): void {
    hostBlockTransform().blockTransform(x, t, at);
  }

  transpose(x: Tensor): GpuTensor {
    return transpose(this.batch, gpuTensor(x, "transpose"));
  }

  fakeQuantizeRows(
    x: Tensor,
    scale: Tensor,
    zeroPoint: Tensor | null,
    args: QuantizationArgs,
  ): GpuTensor {
    const what = "fakeQuantizeRows";
    return fakeQuantizeRowsGpu(
      this.batch,
      gpuTensor(x, what),
      gpuTensor(scale, what),
      zeroPoint === null ? null : gpuTensor(zeroPoint, what),
      args,
    );
  }

  /** Frees the device's pooled storage buffers (host memory on software and unified-memory devices). */
  trim(): void {
    storagePool(this.gpu).trim();
  }

  close(): void {
    // Submitted so the batch lets go of its buffers; the device is shared and stays open.
    this.#batch?.submit();
    this.#batch = null;
  }
}

/**
 * The device and current batch behind an engine, for code that dispatches
 * its own WGSL kernels; null on any other engine.
 *
 * @param engine an engine
 * @returns the WebGPU engine, or null
 * @example
 * ```ts ignore
 * const gpu = webGpuOf(engine);
 * if (gpu) reduceRows(gpu.batch, x as GpuTensor, "absmax");
 * ```
 */
export function webGpuOf(engine: Engine): WebGpuEngine | null {
  return engine instanceof WebGpuEngine ? engine : null;
}

function gpuTensor(t: Tensor, op: string): GpuTensor {
  if (!(t instanceof GpuTensor)) {
    throw new EngineError(`${op}: a ${t.constructor.name} [${t.shape}] is not a WebGPU tensor`);
  }
  return t;
}
