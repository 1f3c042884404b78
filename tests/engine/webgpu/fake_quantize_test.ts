/**
 * The WGSL fake-quantize kernels against the TypeScript reference, bit for
 * bit (float32), and the kernels' correctly rounded division against
 * JavaScript's (Math.fround(a / b) is the correctly rounded f32 quotient).
 */
import { assert, assertEquals, assertThrows } from "../../quant/_assert.ts";
import { CommandBatch, compileKernel, getGpu, GpuTensor } from "../../../src/gpu/mod.ts";
import {
  fakeQuantizeKernel,
  gpuFakeQuantize,
  prepareGpuFakeQuantize,
} from "../../../src/engine/webgpu/fake_quantize.ts";
import { fakeQuantize } from "../../../src/quant/quantize.ts";
import type { WeightQParams } from "../../../src/quant/quantize.ts";
import { parseQuantizationArgs } from "../../../src/quant/args.ts";
import type { QuantizationArgs } from "../../../src/quant/args.ts";
import { presetScheme } from "../../../src/quant/presets.ts";
import { rtnQuantizeModule } from "../../../src/quant/rtn.ts";
import { QuantizationShapeError } from "../../../src/quant/errors.ts";
import { seededRandom } from "../../../src/model/seeded_random.ts";

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

function mismatches(got: Float32Array, want: Float32Array): string[] {
  const g = bits(got);
  const w = bits(want);
  const out: string[] = [];
  for (let i = 0; i < g.length && out.length < 5; i++) {
    if (g[i] !== w[i] && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) {
      out.push(
        `[${i}] gpu ${got[i]} (0x${g[i].toString(16)}) vs ts ${want[i]} (0x${w[i].toString(16)})`,
      );
    }
  }
  return out;
}

Deno.test("div_rn is correctly rounded, subnormal quotients and their ties included", async () => {
  const gpu = await getGpu();
  const code = `@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> q: array<f32>;
//! include "quantize_common.wgsl"
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * 65535u * 256u;
  if (i < arrayLength(&q)) { q[i] = div_rn(a[i], b[i]); }
}`;
  const pipeline = await compileKernel(gpu, "div_rn_test", code);
  const rnd = seededRandom(17);
  const n = 1 << 17;
  const a = new Float32Array(n);
  const b = new Float32Array(n);
  const u32 = new Uint32Array(1);
  const f32 = new Float32Array(u32.buffer);
  const randomFloat = (expLo: number, expHi: number) => {
    const e = expLo + Math.floor(rnd() * (expHi - expLo + 1));
    u32[0] = ((rnd() < 0.5 ? 0x80000000 : 0) | (e << 23) | Math.floor(rnd() * 0x800000)) >>> 0;
    return f32[0];
  };
  for (let i = 0; i < n; i++) {
    const kind = i % 4;
    if (kind === 0) {
      a[i] = randomFloat(100, 154); // ordinary quotients
      b[i] = randomFloat(100, 154);
    } else if (kind === 1) {
      a[i] = randomFloat(1, 40); // tiny / large: subnormal and underflowing quotients
      b[i] = randomFloat(100, 160);
    } else if (kind === 2) {
      // exact subnormal midpoints: odd multiples of 2^-149 halved
      a[i] = (2 * Math.floor(rnd() * 1000) + 1) * 2 ** -149;
      b[i] = 2;
    } else {
      // quotients of small integers (many exact and near-tie cases) and quantizer-like values
      a[i] = Math.fround((Math.floor(rnd() * 4000) - 2000) * 0.01 * (1 + rnd()));
      b[i] = Math.fround(rnd() * 0.05 + 1e-4);
    }
  }
  a[0] = 0;
  a[1] = -0;
  a[2] = 1;
  b[2] = 0;
  a[3] = 2 ** -149;
  b[3] = 2 ** -149;
  const ga = GpuTensor.fromArray(gpu, a, [n]);
  const gb = GpuTensor.fromArray(gpu, b, [n]);
  const gq = GpuTensor.allocate(gpu, [n]);
  const batch = new CommandBatch(gpu);
  batch.dispatch(pipeline, [ga, gb, gq], [n / 256, 1]);
  const got = await gq.readF32();
  const want = Float32Array.from(a, (v, i) => Math.fround(v / b[i]));
  assertEquals(mismatches(got, want), []);
  for (const t of [ga, gb, gq]) t.destroy();
});

interface Case {
  name: string;
  args: QuantizationArgs;
  shape: [number, number];
  gIdx?: boolean;
  asymZeroPointNull?: boolean;
}

const args = (raw: Record<string, unknown>) =>
  parseQuantizationArgs(raw, "gpu", { warn: () => {} });

const CASES: Case[] = [
  { name: "int4 group 32 sym", args: args({ num_bits: 4, group_size: 32 }), shape: [48, 160] },
  {
    name: "int4 group 32 asym g_idx",
    args: args({ num_bits: 4, group_size: 32, symmetric: false, actorder: "group" }),
    shape: [40, 128],
    gIdx: true,
  },
  { name: "int8 channel sym", args: presetScheme("W8A16", ["Linear"]).weights!, shape: [67, 129] },
  { name: "int2 tensor asym", args: args({ num_bits: 2, symmetric: false }), shape: [33, 70] },
  {
    name: "int3 channel asym",
    args: args({ num_bits: 3, strategy: "channel", symmetric: false }),
    shape: [31, 45],
  },
  {
    name: "int8 token",
    args: args({ num_bits: 8, strategy: "token", dynamic: true }),
    shape: [17, 64],
  },
  {
    name: "int8 block",
    args: args({ num_bits: 8, strategy: "block", block_structure: [16, 32] }),
    shape: [64, 96],
  },
  { name: "fp8 channel", args: presetScheme("FP8_DYNAMIC", ["Linear"]).weights!, shape: [70, 130] },
  { name: "fp8 tensor", args: presetScheme("FP8", ["Linear"]).weights!, shape: [30, 50] },
  { name: "fp8 block", args: presetScheme("FP8_BLOCK", ["Linear"]).weights!, shape: [256, 128] },
  {
    name: "fp8 asym channel",
    args: args({ num_bits: 8, type: "float", strategy: "channel", symmetric: false }),
    shape: [20, 40],
  },
  { name: "nvfp4", args: presetScheme("NVFP4A16", ["Linear"]).weights!, shape: [64, 176] },
  { name: "mxfp4", args: presetScheme("MXFP4A16", ["Linear"]).weights!, shape: [40, 128] },
];

function testWeight(rows: number, cols: number, seed: number): Float32Array {
  const rnd = seededRandom(seed);
  const w = Float32Array.from({ length: rows * cols }, () => (rnd() * 2 - 1) * 0.05);
  // rows of very different magnitude (FP8 subnormal codes), exact zeros and -0, outliers
  for (let c = 0; c < cols; c++) w[c] *= 1e-4;
  for (let i = 3; i < w.length; i += 97) w[i] = 0;
  for (let i = 5; i < w.length; i += 89) w[i] = -0;
  for (let i = 11; i < w.length; i += 211) w[i] *= 40;
  return w;
}

Deno.test("fake-quantize kernels match the TypeScript reference bit for bit", async () => {
  const gpu = await getGpu();
  await prepareGpuFakeQuantize(gpu);
  const batch = new CommandBatch(gpu);
  const runs: { name: string; y: GpuTensor; want: Float32Array; x: GpuTensor }[] = [];
  CASES.forEach((c, k) => {
    const w = testWeight(c.shape[0], c.shape[1], 300 + k);
    let gIdx: Int32Array | null = null;
    if (c.gIdx) {
      const rnd = seededRandom(k);
      const perm = Array.from({ length: c.shape[1] }, (_, i) => i).sort(() => rnd() - 0.5);
      gIdx = new Int32Array(c.shape[1]);
      perm.forEach((col, pos) => (gIdx![col] = Math.floor(pos / c.args.groupSize!)));
    }
    const weightArgs = c.args.dynamic === false
      ? c.args
      : args({ num_bits: c.args.numBits, strategy: "channel" });
    const rtn = rtnQuantizeModule(w, c.shape, weightArgs, { gIdx });
    // add exact ties x = (k + 1/2)·s on the first slot's elements where the grid allows
    const qp: WeightQParams = {
      scale: rtn.scale,
      zeroPoint: c.args.symmetric ? null : rtn.zeroPoint,
      globalScale: rtn.globalScale,
      gIdx,
    };
    if (c.args.type === "int") {
      for (let i = 0; i < 8; i++) {
        w[c.shape[1] + i] = Math.fround(
          (i - 3.5) * rtn.scale[c.args.strategy === "tensor" ? 0 : 1],
        );
      }
    }
    const want = fakeQuantize(w, c.shape, qp, c.args);
    const x = GpuTensor.fromArray(gpu, w, c.shape);
    runs.push({
      name: c.name,
      x,
      y: gpuFakeQuantize(batch, x, qp, c.args, { where: c.name }),
      want,
    });
  });
  batch.submit();
  for (const r of runs) {
    const got = await r.y.readF32();
    assertEquals(mismatches(got, r.want), [], r.name);
    r.x.destroy();
    r.y.destroy();
  }
});

Deno.test("GPU fake quantization checks its inputs like the reference", async () => {
  const gpu = await getGpu();
  const batch = new CommandBatch(gpu);
  const x = GpuTensor.fromArray(gpu, new Float32Array(2 * 172), [2, 172]);
  assertThrows(
    () =>
      gpuFakeQuantize(
        batch,
        x,
        { scale: new Float32Array(2) },
        args({ num_bits: 4, group_size: 16 }),
        { where: "m.down_proj" },
      ),
    QuantizationShapeError,
    "m.down_proj: 172 columns",
  );
  assertThrows(
    () => gpuFakeQuantize(batch, x, { scale: new Float32Array(3) }, args({ strategy: "channel" })),
    QuantizationShapeError,
    "needs 2 scales",
  );
  assertThrows(
    () =>
      gpuFakeQuantize(
        batch,
        x,
        { scale: new Float32Array(1) },
        presetScheme("NVFP4A16", ["Linear"]).weights!,
      ),
    QuantizationShapeError,
  );
  assert(fakeQuantizeKernel(args({ type: "float" })) === "fake_quantize_fp8.wgsl");
  x.destroy();
});
