/**
 * The fake quantization inside gptq_column_block.wgsl against src/quant's
 * TypeScript fakeQuantize, bit for bit: with U = I the column loop
 * propagates nothing (every update adds an exact zero), so its output must
 * be exactly the round-to-nearest fake quantization, for every number
 * format and strategy GPTQ supports, including values on rounding ties.
 */

import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { parseQuantizationArgs, type QuantizationArgs } from "../../src/quant/args.ts";
import { fakeQuantize } from "../../src/quant/quantize.ts";
import { webGpuSecondOrder } from "../../src/engine/webgpu_second_order.ts";
import type { ColumnQuantization } from "../../src/engine/engine.ts";
import { CommandBatch } from "../../src/gpu/batch.ts";
import { gptqQParams, permuteColumns } from "../../src/modifiers/gptq/gptq_qparams.ts";
import { prepareGptqKernels } from "../../src/engine/webgpu/second_order/prepare_kernels.ts";
import { blockedColumnLoop } from "../../src/modifiers/gptq/quantize_weight.ts";
import { gaussian } from "./_helpers.ts";

const gpu = await getGpu();
await prepareGptqKernels(gpu);
const ops = webGpuSecondOrder({ gpu, batch: new CommandBatch(gpu) });

/** The WebGPU column loop on U = I, columns in `perm` order, back in column order. */
async function identityLoop(
  weight: Float32Array,
  [rows, cols]: [number, number],
  blockSize: number,
  quantization: ColumnQuantization,
  perm: Int32Array | null = null,
): Promise<{ weight: Float32Array; loss: number }> {
  const u = ops.identityFactor(cols, blockSize);
  try {
    const w = perm ? permuteColumns(weight, rows, cols, perm) : weight.slice();
    const out = await blockedColumnLoop(ops, u, w, [rows, cols], blockSize, {
      quantization,
      nonZero: null,
      maskInBlock: false,
    });
    assert.ok(out.ok);
    if (perm === null) return out;
    const back = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      for (let p = 0; p < cols; p++) back[r * cols + perm[p]] = out.weight[r * cols + p];
    }
    return { weight: back, loss: out.loss };
  } finally {
    u.destroy();
  }
}

/**
 * A weight whose even rows have amax = amaxT·step, which makes their
 * symmetric scale exactly `step` (int: amax/((2^N−1)/2), fp8: amax/448,
 * MXFP4: a power of two), and hold values t·step for the given rounding
 * ties t; the other values are Gaussian, clipped inside the amax.
 */
function weightWithTies(
  rows: number,
  cols: number,
  seed: number,
  step: number,
  amaxT: number,
  ties: readonly number[],
): Float32Array {
  const g = gaussian(seed);
  const amax = amaxT * step;
  const w = Float32Array.from({ length: rows * cols }, () => {
    const v = (g() * amax) / 3;
    return Math.max(-0.9 * amax, Math.min(0.9 * amax, v));
  });
  for (let r = 0; r < rows; r += 2) {
    w[r * cols] = amax;
    for (let c = 1, k = r; c < cols; c += 3, k++) w[r * cols + c] = ties[k % ties.length] * step;
  }
  return w;
}

function tiesFor(args: QuantizationArgs): { step: number; amaxT: number; ties: number[] } {
  if (args.type === "int") {
    return {
      step: 2 ** -5,
      amaxT: (2 ** args.numBits - 1) / 2,
      ties: [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5],
    };
  }
  if (args.numBits === 8) {
    // 17 → 16 and 19 → 20 (even mantissas), 5.25 → 5, 1.0625 → 1, 3.125 → 3, a subnormal tie.
    return { step: 2 ** -6, amaxT: 448, ties: [17, 19, -17, 5.25, 1.0625, 3.125, 1.5 * 2 ** -9] };
  }
  // The E2M1 thresholds: ≤0.25→0, <0.75→0.5, ≤1.25→1, <1.75→1.5, ≤2.5→2, <3.5→3, ≤5→4.
  return { step: 2 ** -4, amaxT: 6, ties: [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, -0.25, -2.5, -5] };
}

function bitsEqual(got: Float32Array, want: Float32Array, label: string): void {
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== w[i]) {
      assert.fail(`${label}: element ${i}: GPU ${got[i]} vs reference ${want[i]}`);
    }
  }
}

const CASES: Array<[string, Record<string, unknown>]> = [
  ["int4 symmetric channel", { num_bits: 4, strategy: "channel" }],
  ["int8 symmetric channel", { num_bits: 8, strategy: "channel" }],
  ["int4 asymmetric group 32", { num_bits: 4, group_size: 32, symmetric: false }],
  ["int8 asymmetric tensor", { num_bits: 8, strategy: "tensor", symmetric: false }],
  ["int3 symmetric group 16", { num_bits: 3, group_size: 16 }],
  ["fp8 channel", { num_bits: 8, type: "float", strategy: "channel" }],
  ["fp8 tensor", { num_bits: 8, type: "float", strategy: "tensor" }],
  ["fp8 block 16x32", { num_bits: 8, type: "float", strategy: "block", block_structure: [16, 32] }],
  ["nvfp4 tensor_group 16", {
    num_bits: 4,
    type: "float",
    strategy: "tensor_group",
    group_size: 16,
    scale_dtype: "torch.float8_e4m3fn",
    observer: "static_minmax",
  }],
  ["mxfp4 group 32", { num_bits: 4, type: "float", group_size: 32, scale_dtype: "torch.uint8" }],
];

for (const [label, spec] of CASES) {
  Deno.test(`RTN path of the column kernel is bit-exact: ${label}`, async () => {
    const [rows, cols] = [48, 96];
    const args = parseQuantizationArgs(spec, label);
    const { step, amaxT, ties } = tiesFor(args);
    const weight = weightWithTies(rows, cols, cols + label.length, step, amaxT, ties);
    const qp = gptqQParams(weight, [rows, cols], args, null);
    const out = await identityLoop(weight, [rows, cols], 32, qp.columns);
    const want = fakeQuantize(weight, [rows, cols], {
      scale: qp.scale,
      zeroPoint: qp.zeroPoint,
      globalScale: qp.globalScale,
    }, args);
    bitsEqual(out.weight, want, label);
    assert.ok(out.loss > 0);
  });
}

Deno.test("RTN path with activation order 'group' looks scales up through g_idx", async () => {
  const [rows, cols] = [16, 64];
  const args = parseQuantizationArgs({ num_bits: 4, group_size: 16, actorder: "group" }, "w");
  const { step, amaxT, ties } = tiesFor(args);
  const weight = weightWithTies(rows, cols, 7, step, amaxT, ties);
  const g = gaussian(3);
  const perm = Int32Array.from(
    Array.from({ length: cols }, (_, i) => [g(), i]).sort((a, b) => a[0] - b[0]).map((x) => x[1]),
  );
  const qp = gptqQParams(weight, [rows, cols], args, perm);
  assert.ok(qp.gIdx !== null);
  {
    const out = await identityLoop(weight, [rows, cols], 16, qp.columns, perm);
    const want = fakeQuantize(weight, [rows, cols], {
      scale: qp.scale,
      zeroPoint: qp.zeroPoint,
      gIdx: qp.gIdx,
    }, args);
    bitsEqual(out.weight, want, "actorder group");
  }
});
