/**
 * High-level tensor ops. Each records its kernel into a CommandBatch and
 * returns the output tensor at once; nothing waits. The caller owns the
 * outputs and destroys them when done.
 *
 * @module
 */

import type { CommandBatch } from "./batch.ts";
import { ChunkedWeight } from "./chunked.ts";
import type { Gpu } from "./device.ts";
import { ShapeError } from "./errors.ts";
import { type KernelOptions, kernelSync, loadKernel } from "./kernel.ts";
import { placeholder } from "./_placeholder.ts";
import {
  defaultMatmulPath,
  type MatmulPath,
  prepareUniformMatmul,
  recordUniformMatmul,
  type UniformShape,
} from "./matmul_uniform.ts";
import { GpuTensor } from "./tensor.ts";
import { foldWorkgroups, workgroupsFor } from "./workgroups.ts";

/** Kind of row reduction computed by `reduceRows`. */
export type RowReduction = "sum" | "min" | "max" | "absmax";

const REDUCTIONS: Record<RowReduction, number> = { sum: 0, min: 1, max: 2, absmax: 3 };

/** Workgroup shape of matmul_f32 (fastest measured; see kernels/matmul_f32.wgsl). */
export const MATMUL_WORKGROUP = { x: 8, y: 8 } as const;
/** Outputs per invocation along each axis in matmul_f32 (8 x 8 register block). */
const MATMUL_TILE = 8;
const ELEMENTWISE_WG = 256;

/**
 * Compiles every kernel these ops use, so compile errors surface here and
 * the ops never build pipelines mid-pipeline. Optional for file: imports;
 * required once for https: imports (the ops cannot fetch synchronously).
 *
 * @param gpu the device
 * @returns resolves when all pipelines are built
 *
 * @example
 * ```ts
 * import { getGpu } from "./device.ts";
 * import { prepareOps } from "./ops.ts";
 * await prepareOps(await getGpu());
 * ```
 */
export async function prepareOps(gpu: Gpu): Promise<void> {
  // Only the matmul kernel `matmul` will choose: cold shader caches make each one seconds.
  const matmulKernels = defaultMatmulPath(gpu) === "uniform"
    ? [prepareUniformMatmul(gpu)]
    : [true, false].map((aligned) => loadKernel(gpu, "matmul_f32.wgsl", matmulOptions(aligned)));
  await Promise.all([
    ...matmulKernels,
    ...Object.values(REDUCTIONS).map((op) =>
      loadKernel(gpu, "reduce_rows.wgsl", { constants: { OP: op } })
    ),
    ...["elementwise_add", "elementwise_mul", "elementwise_scale", "elementwise_copy", "transpose"]
      .map((name) => loadKernel(gpu, `${name}.wgsl`)),
  ]);
}

/**
 * y = x·wᵀ (+ bias): the Linear layout, f32 accumulation.
 *
 * @param batch where the dispatches are recorded
 * @param x activations [..., K] (leading dimensions are flattened into M)
 * @param w weight [N, K], as one tensor or as row chunks
 * @param bias optional [N]
 * @param options.path "storage" (kernels/matmul_f32.wgsl, real GPUs) or
 *   "uniform" (uniform-buffer windows, src/gpu/matmul_uniform.ts, fast on
 *   software adapters); default `defaultMatmulPath(gpu)`
 * @param options.shape the uniform kernel's shape knobs (benchmarks; defaults are the measured best)
 * @returns y [..., N]
 * @throws {ShapeError} when K, N or dtypes disagree
 *
 * @example
 * ```ts
 * import { CommandBatch } from "./batch.ts";
 * import { getGpu } from "./device.ts";
 * import { matmul } from "./ops.ts";
 * import { GpuTensor } from "./tensor.ts";
 * const gpu = await getGpu();
 * const batch = new CommandBatch(gpu);
 * const x = GpuTensor.fromArray(gpu, new Float32Array([1, 2]), [1, 2]);
 * const w = GpuTensor.fromArray(gpu, new Float32Array([3, 4, 5, 6]), [2, 2]);
 * const y = matmul(batch, x, w);
 * console.assert((await y.readF32()).join() === "11,17");
 * ```
 */
export function matmul(
  batch: CommandBatch,
  x: GpuTensor,
  w: GpuTensor | ChunkedWeight,
  bias?: GpuTensor,
  options: { path?: MatmulPath; shape?: UniformShape } = {},
): GpuTensor {
  const gpu = batch.gpu;
  requireF32("matmul", x, bias);
  if (w instanceof GpuTensor) requireF32("matmul", w);
  if (x.shape.length < 1 || w.shape.length !== 2) {
    throw new ShapeError(
      `matmul: expected x [..., K] and w [N, K], got [${x.shape}] and [${w.shape}]`,
    );
  }
  const [n, k] = w.shape;
  const xk = x.shape[x.shape.length - 1];
  if (xk !== k) {
    throw new ShapeError(`matmul: x [${x.shape}] has K=${xk} but w [${w.shape}] has K=${k}`);
  }
  if (bias && (bias.numel !== n || bias.shape.length !== 1)) {
    throw new ShapeError(`matmul: bias [${bias.shape}] must be [${n}] for w [${w.shape}]`);
  }
  const m = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const y = GpuTensor.allocate(gpu, [...x.shape.slice(0, -1), n]);
  if ((options.path ?? defaultMatmulPath(gpu)) === "uniform") {
    recordUniformMatmul(batch, x, w, y, { m, k, n }, bias, options.shape);
    return y;
  }
  const aligned = k % 4 === 0;
  const pipeline = kernelSync(gpu, "matmul_f32.wgsl", matmulOptions(aligned));
  const chunks = w instanceof ChunkedWeight ? w.chunks : [{ tensor: w, row0: 0, rows: n }];
  const rowGroups = workgroupsFor(m, MATMUL_TILE * MATMUL_WORKGROUP.y);
  for (const chunk of chunks) {
    const params = new Uint32Array([m, chunk.rows, k, n, chunk.row0, bias ? 1 : 0]);
    batch.dispatch(
      pipeline,
      [x, chunk.tensor, y, bias ?? placeholder(gpu), { uniform: params }],
      [workgroupsFor(chunk.rows, MATMUL_TILE * MATMUL_WORKGROUP.x), rowGroups],
      `matmul [${m},${k}]x[${chunk.rows},${k}]ᵀ`,
    );
  }
  return y;
}

/**
 * a + b, elementwise; b may also be broadcast over a's leading dimensions
 * (b's shape equal to a's trailing dimensions, e.g. a bias [C] for a [R, C]).
 *
 * @param batch where the dispatch is recorded
 * @param a f32 tensor
 * @param b f32 tensor, a's shape or a suffix of it
 * @returns a new tensor of a's shape
 *
 * @example
 * ```ts
 * import { CommandBatch } from "./batch.ts";
 * import { getGpu } from "./device.ts";
 * import { add } from "./ops.ts";
 * import { GpuTensor } from "./tensor.ts";
 * const gpu = await getGpu();
 * const a = GpuTensor.fromArray(gpu, new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const b = GpuTensor.fromArray(gpu, new Float32Array([10, 20]), [2]);
 * console.assert((await add(new CommandBatch(gpu), a, b).readF32()).join() === "11,22,13,24");
 * ```
 */
export function add(batch: CommandBatch, a: GpuTensor, b: GpuTensor): GpuTensor {
  return binary(batch, "elementwise_add", a, b);
}

/**
 * a * b, elementwise, with the same broadcasting as `add`.
 *
 * @param batch where the dispatch is recorded
 * @param a f32 tensor
 * @param b f32 tensor, a's shape or a suffix of it
 * @returns a new tensor of a's shape
 *
 * @example
 * ```ts
 * import { CommandBatch } from "./batch.ts";
 * import { getGpu } from "./device.ts";
 * import { mul } from "./ops.ts";
 * import { GpuTensor } from "./tensor.ts";
 * const gpu = await getGpu();
 * const a = GpuTensor.fromArray(gpu, new Float32Array([1, 2]), [2]);
 * console.assert((await mul(new CommandBatch(gpu), a, a).readF32()).join() === "1,4");
 * ```
 */
export function mul(batch: CommandBatch, a: GpuTensor, b: GpuTensor): GpuTensor {
  return binary(batch, "elementwise_mul", a, b);
}

/**
 * x * s for a scalar s.
 *
 * @param batch where the dispatch is recorded
 * @param x f32 tensor
 * @param s the factor
 * @returns a new tensor of x's shape
 *
 * @example
 * ```ts
 * import { CommandBatch } from "./batch.ts";
 * import { getGpu } from "./device.ts";
 * import { scale } from "./ops.ts";
 * import { GpuTensor } from "./tensor.ts";
 * const gpu = await getGpu();
 * const x = GpuTensor.fromArray(gpu, new Float32Array([1, -2]), [2]);
 * console.assert((await scale(new CommandBatch(gpu), x, 0.5).readF32()).join() === "0.5,-1");
 * ```
 */
export function scale(batch: CommandBatch, x: GpuTensor, s: number): GpuTensor {
  requireF32("scale", x);
  const y = GpuTensor.allocate(batch.gpu, [...x.shape]);
  const params = new ArrayBuffer(8);
  new Uint32Array(params, 0, 1)[0] = x.numel;
  new Float32Array(params, 4, 1)[0] = s;
  dispatchElementwise(
    batch,
    "elementwise_scale",
    [x, y, { uniform: new Uint8Array(params) }],
    x.numel,
  );
  return y;
}

/**
 * A copy of x into a new buffer (any dtype, bit for bit).
 *
 * @param batch where the dispatch is recorded
 * @param x the tensor to copy
 * @returns a new tensor with x's shape, dtype and contents
 *
 * @example
 * ```ts
 * import { CommandBatch } from "./batch.ts";
 * import { getGpu } from "./device.ts";
 * import { copy } from "./ops.ts";
 * import { GpuTensor } from "./tensor.ts";
 * const gpu = await getGpu();
 * const x = GpuTensor.fromArray(gpu, new Int32Array([-7]), [1]);
 * console.assert((await copy(new CommandBatch(gpu), x).read())[0] === -7);
 * ```
 */
export function copy(batch: CommandBatch, x: GpuTensor): GpuTensor {
  const y = GpuTensor.allocate(batch.gpu, [...x.shape], x.dtype);
  dispatchElementwise(
    batch,
    "elementwise_copy",
    [x, y, { uniform: new Uint32Array([x.numel]) }],
    x.numel,
  );
  return y;
}

/**
 * Reduces each row of x [R, C] (leading dimensions are rows) to one value.
 *
 * @param batch where the dispatch is recorded
 * @param x f32 tensor [..., C]
 * @param op "sum", "min", "max" or "absmax" (max |x|)
 * @returns a new f32 tensor of x's leading shape ([R] for a 2-D x)
 *
 * @example
 * ```ts
 * import { CommandBatch } from "./batch.ts";
 * import { getGpu } from "./device.ts";
 * import { reduceRows } from "./ops.ts";
 * import { GpuTensor } from "./tensor.ts";
 * const gpu = await getGpu();
 * const x = GpuTensor.fromArray(gpu, new Float32Array([1, -5, 2, 3]), [2, 2]);
 * console.assert((await reduceRows(new CommandBatch(gpu), x, "absmax").readF32()).join() === "5,3");
 * ```
 */
export function reduceRows(batch: CommandBatch, x: GpuTensor, op: RowReduction): GpuTensor {
  requireF32("reduceRows", x);
  if (!(op in REDUCTIONS)) throw new ShapeError(`reduceRows: unknown op "${op}"`);
  if (x.shape.length < 1) throw new ShapeError(`reduceRows: x [${x.shape}] needs a column axis`);
  const cols = x.shape[x.shape.length - 1];
  const rows = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const y = GpuTensor.allocate(batch.gpu, x.shape.length === 1 ? [1] : x.shape.slice(0, -1));
  batch.dispatch(
    kernelSync(batch.gpu, "reduce_rows.wgsl", { constants: { OP: REDUCTIONS[op] } }),
    [x, y, { uniform: new Uint32Array([rows, cols]) }],
    foldWorkgroups(batch.gpu, rows),
    `reduceRows ${op} [${rows},${cols}]`,
  );
  return y;
}

/**
 * The transpose of a 2-D tensor (any dtype).
 *
 * @param batch where the dispatch is recorded
 * @param x tensor [R, C]
 * @returns a new tensor [C, R]
 *
 * @example
 * ```ts
 * import { CommandBatch } from "./batch.ts";
 * import { getGpu } from "./device.ts";
 * import { transpose } from "./ops.ts";
 * import { GpuTensor } from "./tensor.ts";
 * const gpu = await getGpu();
 * const x = GpuTensor.fromArray(gpu, new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
 * console.assert((await transpose(new CommandBatch(gpu), x).readF32()).join() === "1,4,2,5,3,6");
 * ```
 */
export function transpose(batch: CommandBatch, x: GpuTensor): GpuTensor {
  if (x.shape.length !== 2) throw new ShapeError(`transpose: x [${x.shape}] must be 2-D`);
  const [rows, cols] = x.shape;
  const y = GpuTensor.allocate(batch.gpu, [cols, rows], x.dtype);
  batch.dispatch(
    kernelSync(batch.gpu, "transpose.wgsl"),
    [x, y, { uniform: new Uint32Array([rows, cols]) }],
    [workgroupsFor(cols, 16), workgroupsFor(rows, 16)],
    `transpose [${rows},${cols}]`,
  );
  return y;
}

function binary(batch: CommandBatch, kernel: string, a: GpuTensor, b: GpuTensor): GpuTensor {
  const name = kernel.replace("elementwise_", "");
  requireF32(name, a, b);
  const suffix = a.shape.slice(a.shape.length - b.shape.length);
  if (b.shape.length > a.shape.length || suffix.some((d, i) => d !== b.shape[i])) {
    throw new ShapeError(
      `${name}: b [${b.shape}] must equal a [${a.shape}] or its trailing dimensions`,
    );
  }
  const y = GpuTensor.allocate(batch.gpu, [...a.shape]);
  const params = new Uint32Array([a.numel, Math.max(b.numel, 1)]);
  dispatchElementwise(batch, kernel, [a, b, y, { uniform: params }], a.numel);
  return y;
}

function dispatchElementwise(
  batch: CommandBatch,
  kernel: string,
  bindings: Parameters<CommandBatch["dispatch"]>[1],
  n: number,
): void {
  batch.dispatch(
    kernelSync(batch.gpu, `${kernel}.wgsl`),
    bindings,
    foldWorkgroups(batch.gpu, workgroupsFor(n, ELEMENTWISE_WG)),
    `${kernel} [${n}]`,
  );
}

function matmulOptions(aligned: boolean): KernelOptions {
  return {
    entryPoint: aligned ? "main" : "main_unaligned",
    constants: { WG_X: MATMUL_WORKGROUP.x, WG_Y: MATMUL_WORKGROUP.y },
  };
}

function requireF32(op: string, ...tensors: Array<GpuTensor | undefined>): void {
  for (const t of tensors) {
    if (t && t.dtype !== "f32") {
      throw new ShapeError(`${op}: expected f32, got ${t.dtype} [${t.shape}]`);
    }
  }
}
