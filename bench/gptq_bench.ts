/**
 * GPTQ throughput on the WebGPU device: one Linear calibrated on 128
 * sequences of 256 tokens, timed in phases — Hessian accumulation, the
 * inverse-Hessian factor (Cholesky, then triangular inverse), the
 * quantization loop — with the GFLOP/s each achieves and how the Cholesky
 * and triangular-inverse rates compare with the plain matmul kernel's.
 *
 * Cases: a 4096×4096 Linear (q_proj/o_proj of an 8B model) and the
 * down_proj shape, weight [4096, 14336], whose 14336×14336 Hessian (784 MiB
 * in f32) cannot sit in one storage binding and runs in row panels.
 * `--quick` runs small stand-ins of both (the second forced into panels)
 * in well under a minute.
 *
 * Flop counts: Hessian T·n² (the lower triangle of 2·T·n², which is what
 * is computed), Cholesky and triangular inverse order³/3 each, quantization
 * 2·rows·(in-block + inter-block multiply-adds). Cholesky time includes
 * building the permuted, damped matrix and one status read; inverse time
 * includes the identity fill, the reversal gather and one status read.
 *
 * `deno run -A bench/gptq_bench.ts [--quick] [--only=NAME]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { CommandBatch } from "../src/gpu/batch.ts";
import { describeGpu, getGpu } from "../src/gpu/device.ts";
import { matmul, prepareOps } from "../src/gpu/ops.ts";
import { GpuTensor } from "../src/gpu/tensor.ts";
import { parseQuantizationArgs } from "../src/quant/args.ts";
import { quantizeWeight } from "../src/modifiers/gptq/quantize_weight.ts";
import { webGpuSecondOrder } from "../src/engine/webgpu_second_order.ts";
import { HessianAccumulator } from "../src/engine/webgpu/second_order/hessian_accumulator.ts";
import { recordAtBUpdate } from "../src/engine/webgpu/second_order/matmul_at_b_update.ts";
import { roundUp } from "../src/engine/webgpu/second_order/panel_matrix.ts";
import { prepareGptqKernels } from "../src/engine/webgpu/second_order/prepare_kernels.ts";

interface Case {
  readonly name: string;
  readonly rows: number;
  readonly cols: number;
  readonly sequences: number;
  readonly seqLen: number;
  /** Sequences per `add` (one upload of at most a binding's worth of activations). */
  readonly perAdd: number;
  /** Forces Hessian / U panels of this many bytes (quick mode: exercise chunking). */
  readonly maxPanelBytes?: number;
}

const FULL: Case[] = [
  { name: "4096x4096", rows: 4096, cols: 4096, sequences: 128, seqLen: 256, perAdd: 8 },
  { name: "down_proj 4096x14336", rows: 4096, cols: 14336, sequences: 128, seqLen: 256, perAdd: 8 },
];
const QUICK: Case[] = [
  { name: "1024x1024", rows: 1024, cols: 1024, sequences: 16, seqLen: 256, perAdd: 8 },
  {
    name: "512x2048 paneled",
    rows: 512,
    cols: 2048,
    sequences: 16,
    seqLen: 256,
    perAdd: 8,
    maxPanelBytes: 512 * 2048 * 4,
  },
];

const { values } = parseArgs({
  args: Deno.args,
  options: { quick: { type: "boolean", default: false }, only: { type: "string" } },
});
const quick = values.quick === true;
const cases = (quick ? QUICK : FULL).filter((c) => !values.only || c.name.includes(values.only));

const gpu = await getGpu();
await prepareOps(gpu);
await prepareGptqKernels(gpu);

let seed = 0x2545f491;
/** xorshift32 uniforms in [-1, 1): cheap enough for half a billion activations. */
function fillRandom(out: Float32Array): Float32Array {
  let s = seed;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) / 2147483648 - 1;
  }
  seed = s;
  return out;
}

/** Best of `reps` GFLOP/s of a recorded workload. */
async function rate(
  flops: number,
  reps: number,
  record: (b: CommandBatch) => void,
): Promise<number> {
  const batch = new CommandBatch(gpu);
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    record(batch);
    await batch.done();
    best = Math.min(best, performance.now() - t);
  }
  return flops / best / 1e6;
}

/** WebGPU second-order ops on a batch of their own (U's panels bounded by `maxPanelBytes`). */
function opsOf(maxPanelBytes?: number) {
  return webGpuSecondOrder({ gpu, batch: new CommandBatch(gpu) }, { maxPanelBytes });
}

// Warm-up: first use of every pipeline and of the buffer pool, off the clock.
{
  const h = HessianAccumulator.create(gpu, 256);
  const batch = new CommandBatch(gpu);
  const x = GpuTensor.fromArray(gpu, fillRandom(new Float32Array(512 * 256)), [512, 256]);
  h.add(batch, x, 2);
  const args = parseQuantizationArgs({ num_bits: 4, group_size: 128, actorder: "static" }, "w");
  await quantizeWeight(opsOf(), fillRandom(new Float32Array(64 * 256)), [64, 256], h, args);
  x.destroy();
  h.destroy();
}

// The reference rates: matmul_f32 (y = x·wᵀ, the project's matmul) and the
// GPTQ update kernel (C −= Aᵀ·B) on a square problem. The matmul rate is
// measured again right before each factorization: on a shared machine the
// load drifts, and a ratio of rates taken minutes apart says little.
const mm = quick ? 1024 : 2048;
const a = GpuTensor.fromArray(gpu, fillRandom(new Float32Array(mm * mm)), [mm, mm]);
const b = GpuTensor.fromArray(gpu, fillRandom(new Float32Array(mm * mm)), [mm, mm]);
const c = GpuTensor.empty(gpu, [mm, mm]);
const measureMatmul = (reps: number) =>
  rate(2 * mm ** 3, reps, (batch) => matmul(batch, a, b).destroy());
const matmulGflops = await measureMatmul(3);
const updateGflops = await rate(2 * mm ** 3, 3, (batch) =>
  recordAtBUpdate(batch, {
    m: mm,
    n: mm,
    k: mm,
    a: { tensor: a, offset: 0, ld: mm },
    b: { tensor: b, offset: 0, ld: mm },
    c: { tensor: c, offset: 0, ld: mm },
  }));

interface Row {
  name: string;
  rows: number;
  cols: number;
  tokens: number;
  panels: number;
  hessianS: number;
  hessianGflops: number;
  choleskyS: number;
  choleskyGflops: number;
  inverseS: number;
  inverseGflops: number;
  quantizeS: number;
  quantizeGflops: number;
  totalS: number;
  matmulGflopsNow: number;
  choleskyVsMatmul: number;
  inverseVsMatmul: number;
  fellBackToRtn: boolean;
}

function quantizeFlops(rows: number, cols: number, block: number): number {
  let fma = 0;
  for (let i1 = 0; i1 < cols; i1 += block) {
    const i2 = Math.min(i1 + block, cols);
    const count = i2 - i1;
    fma += (count * (count - 1)) / 2 + count * Math.max(0, roundUp(cols, 8) - i2);
  }
  return 2 * rows * fma;
}

const results: Row[] = [];
for (const k of cases) {
  const tokens = k.sequences * k.seqLen;
  const h = HessianAccumulator.create(gpu, k.cols, { maxPanelBytes: k.maxPanelBytes });
  const batch = new CommandBatch(gpu);
  const host = new Float32Array(k.perAdd * k.seqLen * k.cols);
  let hessianMs = 0;
  for (let s = 0; s < k.sequences; s += k.perAdd) {
    fillRandom(host); // untimed: the activations would come from the model
    const t = performance.now();
    const x = GpuTensor.fromArray(gpu, host, [k.perAdd * k.seqLen, k.cols]);
    h.add(batch, x, k.perAdd);
    await batch.done();
    hessianMs += performance.now() - t;
    x.destroy();
  }
  const matmulNow = await measureMatmul(2);
  const weight = fillRandom(new Float32Array(k.rows * k.cols)).map((v) => 0.02 * v);
  const args = parseQuantizationArgs({ num_bits: 4, group_size: 128, actorder: "static" }, "w");
  const r = await quantizeWeight(opsOf(k.maxPanelBytes), weight, [k.rows, k.cols], h, args);
  const order = h.matrix.order;
  const panels = h.matrix.panels.length;
  h.destroy();
  const t = r.timings;
  const cholFlops = order ** 3 / 3;
  const row: Row = {
    name: k.name,
    rows: k.rows,
    cols: k.cols,
    tokens,
    panels,
    hessianS: hessianMs / 1000,
    hessianGflops: (tokens * k.cols * k.cols) / hessianMs / 1e6,
    choleskyS: t.choleskyMs / 1000,
    choleskyGflops: cholFlops / t.choleskyMs / 1e6,
    inverseS: t.inverseMs / 1000,
    inverseGflops: cholFlops / t.inverseMs / 1e6,
    quantizeS: t.quantizeMs / 1000,
    quantizeGflops: quantizeFlops(k.rows, k.cols, 128) / t.quantizeMs / 1e6,
    totalS: (hessianMs + t.totalMs) / 1000,
    matmulGflopsNow: matmulNow,
    choleskyVsMatmul: 0,
    inverseVsMatmul: 0,
    fellBackToRtn: r.fellBackToRtn,
  };
  row.choleskyVsMatmul = row.choleskyGflops / matmulNow;
  row.inverseVsMatmul = row.inverseGflops / matmulNow;
  results.push(row);
  console.error(`${k.name}: done in ${row.totalS.toFixed(1)} s`);
}
for (const t of [a, b, c]) t.destroy();

const f = (x: number, d = 2) => x.toFixed(d);
console.log(`device: ${describeGpu(gpu)}`);
console.log(
  `matmul_f32 ${mm}³: ${f(matmulGflops, 1)} GFLOP/s; matmul_at_b_update ${mm}³: ` +
    `${f(updateGflops, 1)} GFLOP/s`,
);
console.log(
  "| case | tokens | panels | Hessian s (GFLOP/s) | matmul GFLOP/s then | " +
    "Cholesky s (GFLOP/s, ×matmul) | tri-inverse s (GFLOP/s, ×matmul) | quantize s (GFLOP/s) | " +
    "total s |",
);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of results) {
  console.log(
    `| ${r.name} | ${r.tokens} | ${r.panels} | ${f(r.hessianS)} (${f(r.hessianGflops, 1)}) | ` +
      `${f(r.matmulGflopsNow, 1)} | ` +
      `${f(r.choleskyS)} (${f(r.choleskyGflops, 1)}, ${f(r.choleskyVsMatmul)}) | ` +
      `${f(r.inverseS)} (${f(r.inverseGflops, 1)}, ${f(r.inverseVsMatmul)}) | ` +
      `${f(r.quantizeS)} (${f(r.quantizeGflops, 1)}) | ${f(r.totalS)} |` +
      (r.fellBackToRtn ? " RTN fallback!" : ""),
  );
}
console.log(JSON.stringify({
  bench: "gptq",
  quick,
  device: gpu.adapterName,
  matmulGflops,
  updateGflops,
  cases: results,
}));
