/**
 * Shared pieces of the GPTQ / SparseGPT tests: seeded synthetic layers
 * with correlated inputs, Hessians accumulated on the GPU, reconstruction
 * error, and the comparison of a GPU result with the CPU reference that
 * tells a legitimate rounding-tie flip from a bug.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CommandBatch } from "../../src/gpu/batch.ts";
import type { Gpu } from "../../src/gpu/device.ts";
import { GpuTensor } from "../../src/gpu/tensor.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import type { QuantizationArgs } from "../../src/quant/args.ts";
import { quantizedRange } from "../../src/quant/qparams.ts";
import { roundToF8E4M3 } from "../../src/io/floats.ts";
import { castToFp4 } from "../../src/quant/fp4.ts";
import { roundHalfEven } from "../../src/quant/round_half_even.ts";
import { HessianAccumulator } from "../../src/engine/webgpu/second_order/hessian_accumulator.ts";
import { WebGpuEngine } from "../../src/engine/webgpu_engine.ts";
import type {
  PanelMatrix,
  PanelMatrixOptions,
} from "../../src/engine/webgpu/second_order/panel_matrix.ts";

const engines = new Map<Gpu, Promise<WebGpuEngine>>();

/** One WebGPU engine per device, shared by the tests of a file (the GPTQ entry points take an engine). */
export function webGpuEngine(gpu: Gpu): Promise<WebGpuEngine> {
  let e = engines.get(gpu);
  if (e === undefined) engines.set(gpu, e = WebGpuEngine.create(gpu));
  return e;
}

/** A seeded standard normal generator. */
export function gaussian(seed: number): () => number {
  const u = seededRandom(seed);
  return () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
}

/** A synthetic Linear: weight [rows, cols] and calibration inputs [tokens, cols]. */
export interface SyntheticLayer {
  readonly rows: number;
  readonly cols: number;
  readonly tokens: number;
  readonly weight: Float32Array;
  readonly inputs: Float32Array;
}

/**
 * Inputs with strongly correlated columns (each column mixes one of 8
 * shared latent factors with its own noise, plus a per-column scale so
 * diag(H) varies and activation ordering matters), and a Gaussian weight.
 */
export function syntheticLayer(
  rows: number,
  cols: number,
  tokens: number,
  seed: number,
): SyntheticLayer {
  const g = gaussian(seed);
  const factors = 8;
  const latent = Float32Array.from({ length: tokens * factors }, g);
  const colScale = Float32Array.from({ length: cols }, (_, c) => 0.5 + ((c * 37) % 11) / 10);
  const inputs = new Float32Array(tokens * cols);
  for (let t = 0; t < tokens; t++) {
    for (let c = 0; c < cols; c++) {
      inputs[t * cols + c] = colScale[c] * (latent[t * factors + (c % factors)] + 0.5 * g());
    }
  }
  const weight = Float32Array.from({ length: rows * cols }, () => 0.1 * g());
  return { rows, cols, tokens, weight, inputs };
}

/** Accumulates the layer's Hessian on the GPU in `batches` equal batches of one sequence each. */
export async function accumulate(
  gpu: Gpu,
  layer: SyntheticLayer,
  batches = 4,
  options: PanelMatrixOptions = {},
): Promise<HessianAccumulator> {
  const h = HessianAccumulator.create(gpu, layer.cols, options);
  const batch = new CommandBatch(gpu);
  const per = layer.tokens / batches;
  const xs: GpuTensor[] = [];
  for (let b = 0; b < batches; b++) {
    const x = layer.inputs.subarray(b * per * layer.cols, (b + 1) * per * layer.cols);
    const t = GpuTensor.fromArray(gpu, x, [per, layer.cols]);
    h.add(batch, t, 1);
    xs.push(t);
  }
  await batch.done();
  for (const t of xs) t.destroy();
  return h;
}

/** ‖X·Wᵀ − X·Ŵᵀ‖_F² over the calibration inputs (f64). */
export function reconstructionError(layer: SyntheticLayer, quantized: Float32Array): number {
  const { rows, cols, tokens, weight, inputs } = layer;
  let sum = 0;
  const diff = new Float64Array(rows * cols);
  for (let i = 0; i < diff.length; i++) diff[i] = weight[i] - quantized[i];
  for (let t = 0; t < tokens; t++) {
    for (let r = 0; r < rows; r++) {
      let y = 0;
      for (let c = 0; c < cols; c++) y += inputs[t * cols + c] * diff[r * cols + c];
      sum += y * y;
    }
  }
  return sum;
}

/** The code a pre-rounding value t maps to (clamped, then rounded as the format does). */
function codeOf(t: number, args: QuantizationArgs): number {
  const [lo, hi] = quantizedRange(args);
  const c = t < lo ? lo : t > hi ? hi : t;
  if (args.type === "int") return roundHalfEven(c);
  return args.numBits === 8 ? roundToF8E4M3(c) : castToFp4(c);
}

/** Whether a pre-rounding value t sits within a relative 1e-3 of a rounding boundary. */
export function nearRoundingTie(t: number, args: QuantizationArgs): boolean {
  const eps = 1e-3 * Math.max(1, Math.abs(t));
  return codeOf(t - eps, args) !== codeOf(t + eps, args);
}

/** The outcome of {@link compareWithReference}. */
export interface Comparison {
  /** Largest |gpu − ref| over rows without a tie flip. */
  readonly maxDiff: number;
  /** Rows whose first difference was a tie (the rest of such a row may differ). */
  readonly flippedRows: number;
}

/**
 * Asserts the GPU weight equals the reference within `tol`, row by row.
 * A row may diverge only if, walking its columns in processing order, the
 * first element off by more than `tol` was a tie in the reference
 * (`isTie(index)`: a rounding boundary, a pruning threshold), which f32 and
 * f64 arithmetic may decide either way; after that the row's error
 * propagation legitimately differs. At most `maxFlippedRows` rows may do so.
 */
export function compareWithReference(
  gpuWeight: Float32Array,
  ref: { weight: Float32Array; perm: Int32Array | null },
  shape: readonly [number, number],
  isTie: (index: number) => boolean,
  options: { tol?: number; maxFlippedRows?: number } = {},
): Comparison {
  const [rows, cols] = shape;
  const tol = options.tol ?? 1e-4;
  const maxFlipped = options.maxFlippedRows ?? Math.max(1, Math.floor(rows / 50));
  let maxDiff = 0;
  let flipped = 0;
  for (let r = 0; r < rows; r++) {
    let rowMax = 0;
    for (let p = 0; p < cols; p++) {
      const c = ref.perm ? ref.perm[p] : p;
      const i = r * cols + c;
      const d = Math.abs(gpuWeight[i] - ref.weight[i]);
      if (!(d <= tol)) {
        assert.ok(
          isTie(i),
          `row ${r}, column ${c}: GPU ${gpuWeight[i]} vs reference ${ref.weight[i]}, not at a tie`,
        );
        flipped++;
        rowMax = -1;
        break;
      }
      rowMax = Math.max(rowMax, d);
    }
    if (rowMax >= 0) maxDiff = Math.max(maxDiff, rowMax);
  }
  assert.ok(flipped <= maxFlipped, `${flipped} rows diverged at ties (at most ${maxFlipped})`);
  return { maxDiff, flippedRows: flipped };
}

/** Writes a row-major [n, n] matrix into a PanelMatrix of size n, with identity padding. */
export function uploadMatrix(m: PanelMatrix, data: ArrayLike<number>): void {
  const n = m.size;
  for (let q = 0; q < m.panels.length; q++) {
    const r0 = m.panelStart(q);
    const block = new Float32Array((m.panelEnd(q) - r0) * m.order);
    for (let r = r0; r < m.panelEnd(q); r++) {
      if (r >= n) block[(r - r0) * m.order + r] = 1;
      else for (let c = 0; c < n; c++) block[(r - r0) * m.order + c] = data[r * n + c];
    }
    m.gpu.device.queue.writeBuffer(m.panels[q].buffer, 0, block);
  }
}

/**
 * A symmetric [n, n] matrix with unit diagonal and a coupling c between
 * columns 2k and 2k+1 (eigenvalues 1 ± c: indefinite once |c| > 1).
 */
export function coupled(n: number, c: number): Float32Array {
  const h = new Float32Array(n * n);
  for (let i = 0; i < n; i++) h[i * n + i] = 1;
  for (let i = 0; i + 1 < n; i += 2) h[i * n + i + 1] = h[(i + 1) * n + i] = c;
  return h;
}

/** A random symmetric positive definite matrix XᵀX/T + shift·I (f64). */
export function randomSpd(n: number, seed: number, shift = 0.1): Float64Array {
  const g = gaussian(seed);
  const t = 2 * n;
  const x = Float64Array.from({ length: t * n }, g);
  const a = new Float64Array(n * n);
  for (let k = 0; k < t; k++) {
    for (let i = 0; i < n; i++) {
      const xi = x[k * n + i] / t;
      for (let j = 0; j <= i; j++) a[i * n + j] += xi * x[k * n + j];
    }
  }
  for (let i = 0; i < n; i++) {
    a[i * n + i] += shift;
    for (let j = 0; j < i; j++) a[j * n + i] = a[i * n + j];
  }
  return a;
}

/**
 * Counts awaited GPU round trips while `fn` runs: a mapAsync started while
 * no other map is pending (readMany maps all its buffers at once: one
 * trip), and every onSubmittedWorkDone.
 */
export async function countRoundTrips<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; trips: number }> {
  const buffer = GPUBuffer.prototype;
  const queue = GPUQueue.prototype;
  const mapAsync = buffer.mapAsync;
  const workDone = queue.onSubmittedWorkDone;
  let pending = 0;
  let trips = 0;
  buffer.mapAsync = function (this: GPUBuffer, ...a: Parameters<GPUBuffer["mapAsync"]>) {
    if (pending === 0) trips++;
    pending++;
    return mapAsync.apply(this, a).finally(() => pending--);
  };
  queue.onSubmittedWorkDone = function (this: GPUQueue) {
    trips++;
    return workDone.apply(this);
  };
  try {
    return { value: await fn(), trips };
  } finally {
    buffer.mapAsync = mapAsync;
    queue.onSubmittedWorkDone = workDone;
  }
}
