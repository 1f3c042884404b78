/**
 * Fake quantization of a Linear's input activations during calibration
 * forwards (upstream's quantization-aware calibration, §3.5/§4.11): each
 * Linear's wrapped forward quantizes its input with the input args before
 * the matmul. Which args llmc simulates, and how:
 *
 * - static `tensor` (FP8 / INT8, symmetric or asymmetric): with the scale the
 *   observer holds after the current sample (upstream's pre-forward hook
 *   updates the observer, then the forward quantizes with the updated
 *   scale), one scale per sample mapped onto its token rows;
 * - dynamic `token`, symmetric (FP8_DYNAMIC, W8A8 int8): per-token scales
 *   `amax / (bit_range / 2)` computed on the GPU; the scale is formed as
 *   `amax · (1 / (bit_range / 2))` (one f32 rounding different from the
 *   division at most), and an all-zero row gets a tiny nonzero scale, which
 *   leaves its zeros unchanged as upstream's eps does.
 *
 * Other activation args (asymmetric dynamic tokens, dynamic groups, NVFP4's
 * dynamic local groups) are not simulated: calibration forwards see their
 * inputs unquantized, and a warning says so.
 *
 * @module
 */

import { CpuTensor, cpuTensor } from "../engine/cpu_engine.ts";
import type { Engine, Tensor } from "../engine/engine.ts";
import { webGpuOf } from "../engine/webgpu_engine.ts";
import { CommandBatch } from "../gpu/batch.ts";
import { kernelSync } from "../gpu/kernel.ts";
import { add, reduceRows, scale as scaleBy } from "../gpu/ops.ts";
import { GpuTensor } from "../gpu/tensor.ts";
import { foldWorkgroups, workgroupsFor } from "../gpu/workgroups.ts";
import type { QuantizationArgs } from "../quant/args.ts";
import { fakeQuantizeKernel, gpuFakeQuantize } from "../engine/webgpu/fake_quantize.ts";
import { quantizedRange } from "../quant/qparams.ts";
import { fakeQuantize } from "../quant/quantize.ts";

/** The command batch to record into: the engine's current one (WebGPU), or null (CPU). */
function batchOf(where: Engine | CommandBatch): CommandBatch | null {
  return where instanceof CommandBatch ? where : webGpuOf(where)?.batch ?? null;
}

/**
 * x fake-quantized on the host, each row as one tensor-strategy block with
 * its own scale (and zero point): what the GPU kernel computes per row.
 * Consecutive rows with the same scale and zero point (a sample's tokens, or
 * every row once the scale is final) go through `fakeQuantize` as one block:
 * the same elementwise ops, without a quantization plan per row.
 */
function fakeQuantizeRowsOnHost(
  x: Tensor,
  scale: ArrayLike<number>,
  zeroPoint: ArrayLike<number> | null,
  args: QuantizationArgs,
): Tensor {
  const data = cpuTensor(x, "fake-quantize").data as Float32Array;
  const rows = x.shape[0];
  const cols = x.numel / rows;
  const perTensor: QuantizationArgs = { ...args, strategy: "tensor", dynamic: false };
  const y = new Float32Array(data.length);
  const same = (a: number, b: number) =>
    scale[a] === scale[b] && (zeroPoint === null || zeroPoint[a] === zeroPoint[b]);
  for (let r0 = 0; r0 < rows;) {
    let r1 = r0 + 1;
    while (r1 < rows && same(r0, r1)) r1++;
    const q = fakeQuantize(data.subarray(r0 * cols, r1 * cols), [r1 - r0, cols], {
      scale: Float32Array.of(scale[r0]),
      ...(zeroPoint === null ? {} : { zeroPoint: Float32Array.of(zeroPoint[r0]) }),
    }, perTensor);
    y.set(q, r0 * cols);
    r0 = r1;
  }
  return new CpuTensor(y, [...x.shape]);
}

/** How calibration forwards treat a Linear's input args. */
export type InputSimulation =
  /** Static tensor scales from the observer (running in calibration, final when propagating). */
  | { readonly kind: "static" }
  /** Per-token scales computed on the fly. */
  | { readonly kind: "dynamic_token" }
  /** Not simulated; `reason` says why. */
  | { readonly kind: "none"; readonly reason: string };

/**
 * How llmc simulates quantizing inputs with these args in calibration forwards.
 *
 * @param args a Linear's input activation args
 * @returns the simulation
 * @example
 * ```ts
 * import { inputSimulation } from "./activation_fake_quant.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * inputSimulation(presetScheme("FP8", ["Linear"]).inputActivations!).kind; // "static"
 * inputSimulation(presetScheme("FP8_DYNAMIC", ["Linear"]).inputActivations!).kind; // "dynamic_token"
 * ```
 */
export function inputSimulation(args: QuantizationArgs): InputSimulation {
  if (args.dynamic === false && args.strategy === "tensor") return { kind: "static" };
  if (args.dynamic === true && args.strategy === "token" && args.symmetric) {
    return { kind: "dynamic_token" };
  }
  return {
    kind: "none",
    reason: `${args.dynamic === "local" ? "dynamic local" : args.dynamic ? "dynamic" : "static"} ` +
      `${args.symmetric ? "symmetric" : "asymmetric"} ${args.strategy} inputs`,
  };
}

/**
 * Fake-quantizes `x` with one static scale (and zero point) per token row:
 * row r uses `scale[r]`. Used with each sample's running scale repeated over
 * its tokens, or with one final scale repeated over all rows.
 *
 * @param engine the layer's engine (or, WebGPU only, its command batch)
 * @param x the input `[rows, cols]`
 * @param scale one scale per row
 * @param zeroPoint one zero point per row, or null (symmetric)
 * @param args the input args (static tensor strategy)
 * @returns a new tensor (the layer destroys it)
 * @example
 * ```ts ignore
 * const y = fakeQuantizeRows(tap.engine, x, rowScales, null, args);
 * ```
 */
export function fakeQuantizeRows(
  engine: Engine | CommandBatch,
  x: Tensor,
  scale: Float32Array,
  zeroPoint: Float32Array | null,
  args: QuantizationArgs,
): Tensor {
  // The token strategy's slot map (one slot per row) carries per-row scales.
  const perRow: QuantizationArgs = { ...args, strategy: "token", dynamic: true };
  const batch = batchOf(engine);
  if (batch === null) {
    return fakeQuantizeRowsOnHost(x, scale, args.symmetric ? null : zeroPoint, args);
  }
  return gpuFakeQuantize(
    batch,
    x as GpuTensor,
    { scale, zeroPoint: args.symmetric ? null : zeroPoint },
    perRow,
    { where: "calibration input" },
  );
}

/** Smallest normal f32: a scale that changes no representable scale it is added to. */
const TINY_SCALE = 2 ** -126;

/**
 * Fake-quantizes `x` per token with symmetric dynamic scales computed on the
 * GPU (no readback).
 *
 * @param engine the layer's engine (or, WebGPU only, its command batch)
 * @param x the input `[rows, cols]`
 * @param args symmetric dynamic token args (FP8 or int)
 * @returns a new tensor (the layer destroys it)
 * @example
 * ```ts ignore
 * const y = fakeQuantizeDynamicTokens(tap.engine, x, presetScheme("FP8_DYNAMIC", ["Linear"]).inputActivations!);
 * ```
 */
export function fakeQuantizeDynamicTokens(
  engine: Engine | CommandBatch,
  x: Tensor,
  args: QuantizationArgs,
): Tensor {
  const rows = x.shape[0];
  const cols = x.numel / rows;
  const [qMin, qMax] = quantizedRange(args);
  const batch = batchOf(engine);
  if (batch === null) {
    // The same float32 steps as the GPU: absmax · (1 / half range) + 2⁻¹²⁶.
    const data = cpuTensor(x, "fake-quantize").data as Float32Array;
    const inv = Math.fround(1 / ((qMax - qMin) / 2));
    const scale = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      let amax = 0;
      for (let c = 0; c < cols; c++) amax = Math.max(amax, Math.abs(data[r * cols + c]));
      scale[r] = Math.fround(Math.fround(amax * inv) + TINY_SCALE);
    }
    return fakeQuantizeRowsOnHost(x, scale, null, args);
  }
  const gpu = batch.gpu;
  const xg = x as GpuTensor;
  const amax = reduceRows(
    batch,
    new GpuTensor(gpu, xg.buffer, [rows, cols], "f32", false),
    "absmax",
  );
  const raw = scaleBy(batch, amax, 1 / ((qMax - qMin) / 2));
  const tiny = GpuTensor.fromArray(gpu, new Float32Array([TINY_SCALE]), [1]);
  const scale = add(batch, new GpuTensor(gpu, raw.buffer, [rows, 1], "f32", false), tiny);
  const zero = GpuTensor.fromArray(gpu, new Float32Array(1), [1]);
  const rowSlot = GpuTensor.fromArray(gpu, Uint32Array.from({ length: rows }, (_, i) => i), [rows]);
  const colSlot = GpuTensor.fromArray(gpu, new Uint32Array(cols), [cols]);
  const y = GpuTensor.allocate(gpu, [rows, cols]);
  const params = new ArrayBuffer(32);
  new Uint32Array(params, 0, 4).set([rows * cols, cols, 0, 0]);
  new Float32Array(params, 16, 3).set([qMin, qMax, 0]);
  batch.dispatch(
    kernelSync(gpu, fakeQuantizeKernel(args)),
    [xg, scale, zero, rowSlot, colSlot, y, { uniform: new Uint8Array(params) }],
    foldWorkgroups(gpu, workgroupsFor(rows * cols, 256)),
    `dynamic token fake-quantize [${rows},${cols}]`,
  );
  for (const t of [amax, raw, tiny, scale, zero, rowSlot, colSlot]) t.destroy();
  return y;
}
