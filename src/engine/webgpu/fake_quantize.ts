/**
 * Fake quantization on the GPU: the WGSL kernels
 * `fake_quantize_int.wgsl`, `fake_quantize_fp8.wgsl` and
 * `fake_quantize_fp4.wgsl`, bit-exact with the float32 TypeScript reference
 * (`fakeQuantize` in quantize.ts) for every strategy a 2-D tensor can have.
 *
 * @module
 */

import type { CommandBatch } from "../../gpu/batch.ts";
import type { Gpu } from "../../gpu/device.ts";
import { kernelSync, loadKernel } from "../../gpu/kernel.ts";
import { GpuTensor } from "../../gpu/tensor.ts";
import { foldWorkgroups, workgroupsFor } from "../../gpu/workgroups.ts";
import { EngineError } from "../engine_error.ts";
import type { QuantizationArgs } from "../../quant/args.ts";
import { QuantizationShapeError } from "../../quant/errors.ts";
import { quantizedRange } from "../../quant/qparams.ts";
import type { WeightQParams } from "../../quant/quantize.ts";
import { qparamSlotMap } from "../../quant/slot_map.ts";

const WORKGROUP = 256;

/**
 * The kernel file that fake-quantizes values of the given args.
 *
 * @param args quantization args
 * @returns `fake_quantize_int.wgsl`, `fake_quantize_fp8.wgsl` or `fake_quantize_fp4.wgsl`
 * @example
 * ```ts
 * import { fakeQuantizeKernel } from "./fake_quantize.ts";
 * import { presetScheme } from "../../quant/presets.ts";
 * fakeQuantizeKernel(presetScheme("NVFP4A16", ["Linear"]).weights!); // "fake_quantize_fp4.wgsl"
 * ```
 */
export function fakeQuantizeKernel(args: QuantizationArgs): string {
  if (args.type === "int") return "fake_quantize_int.wgsl";
  return args.numBits === 8 ? "fake_quantize_fp8.wgsl" : "fake_quantize_fp4.wgsl";
}

/**
 * Compiles the three fake-quantize kernels ahead of use.
 *
 * @param gpu the device
 * @returns resolves when the pipelines are built
 * @example
 * ```ts ignore
 * import { getGpu } from "../../gpu/device.ts";
 * import { prepareGpuFakeQuantize } from "./fake_quantize.ts";
 * await prepareGpuFakeQuantize(await getGpu());
 * ```
 */
export async function prepareGpuFakeQuantize(gpu: Gpu): Promise<void> {
  await Promise.all(
    ["fake_quantize_int.wgsl", "fake_quantize_fp8.wgsl", "fake_quantize_fp4.wgsl"].map((f) =>
      loadKernel(gpu, f)
    ),
  );
}

/**
 * Records the fake quantization of a 2-D f32 tensor (a weight `[out, in]`,
 * or activations `[tokens, hidden]` for tensor/token/group args) into a
 * batch and returns the output tensor; nothing waits. The small qparam
 * tensors it uploads are released after the batch is submitted.
 *
 * @param batch where the dispatch is recorded
 * @param x the tensor, f32 `[rows, cols]`
 * @param qparams scales, zero points (null for symmetric), global scale, g_idx
 * @param args quantization args
 * @param options the module name for error messages
 * @returns a new f32 tensor `[rows, cols]` with the fake-quantized values
 * @throws {QuantizationShapeError} when the qparams do not fit the shape and strategy
 * @example
 * ```ts ignore
 * import { CommandBatch, getGpu, GpuTensor } from "../../gpu/mod.ts";
 * import { gpuFakeQuantize } from "./fake_quantize.ts";
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * const gpu = await getGpu();
 * const x = GpuTensor.fromArray(gpu, new Float32Array([0.3, -1]), [1, 2]);
 * const y = gpuFakeQuantize(new CommandBatch(gpu), x, { scale: new Float32Array([0.25]) },
 *   parseQuantizationArgs({ num_bits: 4 }, "w"));
 * await y.readF32(); // Float32Array [0.25, -1]
 * ```
 */
export function gpuFakeQuantize(
  batch: CommandBatch,
  x: GpuTensor,
  qparams: WeightQParams,
  args: QuantizationArgs,
  options: { where?: string } = {},
): GpuTensor {
  const where = options.where ?? "weight";
  if (x.shape.length !== 2 || x.dtype !== "f32") {
    throw new QuantizationShapeError(
      `${where}: GPU fake quantization needs an f32 [rows, cols] tensor, got ${x.dtype} [${x.shape}]`,
    );
  }
  const shape: [number, number] = [x.shape[0], x.shape[1]];
  const map = qparamSlotMap(shape, args, qparams.gIdx, where);
  if (qparams.scale.length !== map.slots) {
    throw new QuantizationShapeError(
      `${where}: ${args.strategy} quantization of [${shape}] needs ${map.slots} scales, got ${qparams.scale.length}`,
    );
  }
  const zp = qparams.zeroPoint ?? null;
  if (zp !== null && zp.length !== map.slots) {
    throw new QuantizationShapeError(
      `${where}: ${map.slots} zero points expected, got ${zp.length}`,
    );
  }
  const hasGlobal = qparams.globalScale !== undefined && qparams.globalScale !== null;
  if ((args.strategy === "tensor_group") !== hasGlobal) {
    throw new QuantizationShapeError(
      hasGlobal
        ? `${where}: a global scale is only used with tensor_group quantization`
        : `${where}: tensor_group quantization needs a global scale`,
    );
  }
  checkKernel(args, where);
  const gpu = batch.gpu;
  const scale = GpuTensor.fromArray(gpu, qparams.scale, [map.slots]);
  const zero = zp === null ? null : GpuTensor.fromArray(gpu, zp, [map.slots]);
  const y = recordFakeQuantize(
    batch,
    x,
    shape,
    {
      scale,
      zero,
      rowSlot: new Uint32Array(map.rowPart),
      colSlot: new Uint32Array(map.colPart),
      globalScale: hasGlobal ? qparams.globalScale! : null,
    },
    args,
    `fakeQuantize ${args.type}${args.numBits} ${args.strategy} [${shape}] ${where}`,
  );
  // destroy() waits until no unsubmitted batch uses the buffers.
  for (const t of [scale, zero]) t?.destroy();
  return y;
}

/**
 * Records the fake quantization of each row r of `x` `[rows, …]` with the
 * device scale `scale[r]` (and zero point `zeroPoint[r]`) and returns the
 * output tensor: {@link Engine.fakeQuantizeRows} on WebGPU. The scales may
 * be computed by earlier dispatches of the same batch (dynamic per-token
 * scales need no readback).
 *
 * @param batch where the dispatch is recorded
 * @param x the tensor, f32
 * @param scale one f32 per row
 * @param zeroPoint one f32 per row, or null (symmetric)
 * @param args the activation args (type and bits; the strategy is per row)
 * @returns a new f32 tensor of x's shape
 * @throws {EngineError} when the scales or zero points are not one per row
 * @throws {QuantizationShapeError} for a float width without a kernel
 * @example
 * ```ts ignore
 * const y = fakeQuantizeRowsGpu(batch, x, rowScales, null, fp8Args);
 * ```
 */
export function fakeQuantizeRowsGpu(
  batch: CommandBatch,
  x: GpuTensor,
  scale: GpuTensor,
  zeroPoint: GpuTensor | null,
  args: QuantizationArgs,
): GpuTensor {
  const rows = x.shape[0];
  const shape: [number, number] = [rows, rows === 0 ? 0 : x.numel / rows];
  if (x.dtype !== "f32" || scale.numel !== rows || (zeroPoint?.numel ?? rows) !== rows) {
    throw new EngineError(
      `fakeQuantizeRows: x ${x.dtype} [${x.shape}] needs f32 values and one scale` +
        `${zeroPoint === null ? "" : " and zero point"} per row, got [${scale.shape}]` +
        `${zeroPoint === null ? "" : ` and [${zeroPoint.shape}]`}`,
    );
  }
  checkKernel(args, "calibration input");
  return recordFakeQuantize(
    batch,
    x,
    shape,
    {
      scale,
      zero: zeroPoint,
      rowSlot: Uint32Array.from({ length: rows }, (_, i) => i),
      colSlot: new Uint32Array(shape[1]),
      globalScale: null,
    },
    args,
    `fake-quantize rows ${args.type}${args.numBits} [${shape}]`,
  );
}

function checkKernel(args: QuantizationArgs, where: string): void {
  if (args.type === "float" && args.numBits !== 4 && args.numBits !== 8) {
    throw new QuantizationShapeError(`${where}: float${args.numBits} has no fake-quantize kernel`);
  }
}

/** Where each element's scale and zero point are: slot `rowSlot[r] + colSlot[c]`. */
interface SlotQParams {
  scale: GpuTensor;
  /** Zero points per slot, or null (symmetric). */
  zero: GpuTensor | null;
  rowSlot: Uint32Array;
  colSlot: Uint32Array;
  /** tensor_group's global scale, or null. */
  globalScale: number | null;
}

/** One dispatch of the args' fake-quantize kernel over x `[rows, cols]` into a new tensor. */
function recordFakeQuantize(
  batch: CommandBatch,
  x: GpuTensor,
  shape: readonly [number, number],
  q: SlotQParams,
  args: QuantizationArgs,
  label: string,
): GpuTensor {
  const gpu = batch.gpu;
  const [qMin, qMax] = quantizedRange(args);
  const n = shape[0] * shape[1];
  const params = new ArrayBuffer(32);
  const hasGlobal = q.globalScale !== null;
  new Uint32Array(params, 0, 4).set([n, shape[1], q.zero === null ? 0 : 1, hasGlobal ? 1 : 0]);
  new Float32Array(params, 16, 3).set([qMin, qMax, q.globalScale ?? 0]);
  const zero = q.zero ?? GpuTensor.fromArray(gpu, new Float32Array(1), [1]);
  const rows = GpuTensor.fromArray(gpu, q.rowSlot, [shape[0]]);
  const cols = GpuTensor.fromArray(gpu, q.colSlot, [shape[1]]);
  const y = GpuTensor.allocate(gpu, [...x.shape]);
  batch.dispatch(
    kernelSync(gpu, fakeQuantizeKernel(args)),
    [x, q.scale, zero, rows, cols, y, { uniform: new Uint8Array(params) }],
    foldWorkgroups(gpu, workgroupsFor(n, WORKGROUP)),
    label,
  );
  // destroy() waits until no unsubmitted batch uses the buffers.
  for (const t of [q.zero === null ? zero : null, rows, cols]) t?.destroy();
  return y;
}
