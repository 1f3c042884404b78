/**
 * Does a uniform-buffer load at a compile-time-constant offset run faster
 * than one whose offset varies by lane? `deno run -A
 * bench/uniform_broadcast_bench.ts [--cases 16:16:8,16:64:1] [--runs 4]`.
 *
 * Why: Mesa's llvmpipe (gallivm, `emit_load_ubo` in lp_bld_nir_soa.c) emits
 * one scalar load and a broadcast when NIR calls the offset
 * `nir_src_is_always_uniform` (constants and arithmetic on them; never a
 * loop counter or an invocation id), and a per-lane gather otherwise. If
 * broadcasts were much cheaper, a matmul could read the operand that all
 * lanes share (x) at constant offsets only.
 *
 * Each case `tm:kd:tn` generates a kernel in which every invocation owns tm
 * x rows × tn w rows and sums kd terms, written out in full (no loop, so the
 * x offsets are constants): per term it loads tm x values shared by every
 * lane and tn w values of its own (vec4s along k), and does tm·tn FMAs.
 * Variant "const" indexes x with constants; variant "varying" adds a value
 * that is 0 at run time but varies by lane as far as the compiler knows, so
 * the same loads become gathers. 256 workgroups of 64 invocations, 20
 * dispatches per timing, best of `--runs`. Compile time is split: the
 * module and pipeline (WGSL → GLSL → NIR), then llvmpipe's LLVM compilation,
 * which it does at the first dispatch (the first timing minus the best).
 * Run with MESA_SHADER_CACHE_DIR pointed at an empty folder for cold figures.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { describeGpu, getGpu } from "../src/gpu/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    cases: { type: "string", default: "16:16:8,16:64:1" },
    runs: { type: "string", default: "4" },
  },
});

const gpu = await getGpu();
const device = gpu.device;
console.log(`adapter: ${describeGpu(gpu)}`);

/** Floats in one 64 KiB window. */
const WINDOW = 16384;
const WORKGROUPS = 256;
const REPEATS = 20;

function kernel(tm: number, kd: number, tn: number, varying: boolean): string {
  const lanes = WINDOW / kd / tn; // distinct w rows that fit one window
  const lines: string[] = [];
  const accs: string[] = [];
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) accs.push(`a${i}_${j}`);
  for (let l4 = 0; l4 < kd / 4; l4++) {
    for (let j = 0; j < tn; j++) {
      lines.push(`  let w${l4}_${j} = ww[(n * ${tn}u + ${j}u) * ${kd / 4}u + ${l4}u];`);
    }
    for (let q = 0; q < 4; q++) {
      const l = l4 * 4 + q;
      for (let i4 = 0; i4 < tm / 4; i4++) {
        lines.push(`  let x${l}_${i4} = xw[${(l * tm) / 4 + i4}u${varying ? " + v" : ""}];`);
        for (let r = 0; r < 4; r++) {
          for (let j = 0; j < tn; j++) {
            const a = `a${i4 * 4 + r}_${j}`;
            lines.push(`  ${a} = fma(x${l}_${i4}.${"xyzw"[r]}, w${l4}_${j}.${"xyzw"[q]}, ${a});`);
          }
        }
      }
    }
  }
  return `struct P { zero: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<uniform> xw: array<vec4<f32>, ${WINDOW / 4}>;
@group(0) @binding(2) var<uniform> ww: array<vec4<f32>, ${WINDOW / 4}>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x % ${lanes}u;
  let v = (gid.x / ${lanes}u) & p.zero;
${accs.map((a) => `  var ${a} = 0.0;`).join("\n")}
${lines.join("\n")}
  y[gid.x] = ${accs.join(" + ")};
}`;
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(since);
  return (c.user + c.system) / 1000;
}

async function measure(tm: number, kd: number, tn: number, varying: boolean): Promise<string> {
  const cpu0 = process.cpuUsage();
  const module = device.createShaderModule({ code: kernel(tm, kd, tn, varying) });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === "error");
  if (errors.length > 0) throw new Error(errors.map((e) => e.message).join("\n"));
  const pipeline = await device.createComputePipelineAsync({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const pipelineCpu = cpuMs(cpu0);
  const usage = GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST;
  const p = device.createBuffer({ size: 16, usage });
  const xw = device.createBuffer({ size: WINDOW * 4, usage });
  const ww = device.createBuffer({ size: WINDOW * 4, usage });
  const y = device.createBuffer({ size: WORKGROUPS * 64 * 4, usage: GPUBufferUsage.STORAGE });
  device.queue.writeBuffer(xw, 0, new Float32Array(WINDOW).map((_, i) => (i % 7) / 10));
  device.queue.writeBuffer(ww, 0, new Float32Array(WINDOW).map((_, i) => (i % 5) / 10));
  device.queue.writeBuffer(p, 0, new Uint32Array(4));
  const group = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [p, xw, ww, y].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const flop = 2 * tm * tn * kd * WORKGROUPS * 64 * REPEATS;
  let first = 0;
  let best = { ms: Infinity, cpu: 0 };
  for (let r = 0; r < Number(values.runs); r++) {
    const c0 = process.cpuUsage();
    const start = performance.now();
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    for (let i = 0; i < REPEATS; i++) pass.dispatchWorkgroups(WORKGROUPS);
    pass.end();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    const ms = performance.now() - start;
    const cpu = cpuMs(c0);
    if (r === 0) first = cpu;
    if (ms < best.ms) best = { ms, cpu };
  }
  for (const b of [p, xw, ww, y]) b.destroy();
  return `| ${tm}:${kd}:${tn} | ${varying ? "varying" : "const"} | ${pipelineCpu.toFixed(0)} | ${
    (first - best.cpu).toFixed(0)
  } | ${(flop / best.ms / 1e6).toFixed(2)} | ${(flop / best.cpu / 1e6).toFixed(2)} |`;
}

console.log(
  "\n| tm:kd:tn | x offsets | pipeline ms CPU | LLVM at first dispatch, ms CPU | GFLOP/s | GFLOP per CPU-s |",
);
console.log("|---|---|---:|---:|---:|---:|");
for (const spec of values.cases.split(",")) {
  const [tm, kd, tn] = spec.split(":").map(Number);
  if (![tm, kd, tn].every((v) => Number.isInteger(v) && v > 0) || tm % 4 || kd % 4) {
    throw new Error(`--cases ${spec}: expected tm:kd:tn with tm and kd multiples of 4`);
  }
  for (const varying of [false, true]) console.log(await measure(tm, kd, tn, varying));
}
