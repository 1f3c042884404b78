/**
 * What a calibration batch costs beside the plain forward, on the CPU engine:
 * `deno run -A bench/calibration_ops_bench.ts [--tokens 4096] [--reps 15]`.
 *
 * At the 3M Llama's shapes (hidden 256, intermediate 768, 8 query and 4
 * key/value heads of 32) and one calibration batch of `--tokens` rows (the
 * recipes' 16 × 256), it times the forward's fused ops next to the work a
 * calibration or propagation forward adds to them: the FP8 input fake
 * quantization of a static FP8 recipe (one per Linear input group), the
 * static observers' per-token minimum and maximum, SmoothQuant's per-column
 * minimum and maximum, and GPTQ's (and SparseGPT's) Hessian Gram update, one
 * per input group. Each op runs `--reps` times; it prints the fastest and the
 * median wall time and the CPU time per call (user + system of all threads,
 * from /proc/self/stat, 10 ms ticks), then one JSON line.
 *
 * Wall times on a shared machine vary with its load; the fastest is the
 * figure to compare between builds.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { CpuEngine } from "../src/engine/cpu_engine.ts";
import type { Tensor } from "../src/engine/engine.ts";
import { CpuHessian } from "../src/engine/cpu/hessian.ts";
import { parseQuantizationArgs } from "../src/quant/args.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    tokens: { type: "string", default: "4096" },
    reps: { type: "string", default: "15" },
  },
  strict: true,
});
const tokens = Number(values.tokens);
const reps = Number(values.reps);
const HIDDEN = 256;
const INTERMEDIATE = 768;
const KV = 4 * 32;

/** Seconds of CPU time this process has used, all threads (Linux). */
function cpuSeconds(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Seeded values in (−0.5, 0.5), so every run times the same data. */
function seeded(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin((i + seed) * 12.9898) * 0.5;
  return a;
}

const engine = new CpuEngine();
const x = engine.upload(seeded(tokens * HIDDEN, 1), [tokens, HIDDEN]);
const act = engine.upload(seeded(tokens * INTERMEDIATE, 2), [tokens, INTERMEDIATE]);
const weight = (rows: number, cols: number, seed: number) =>
  engine.uploadWeight(seeded(rows * cols, seed), [rows, cols]);
const [q, k, v] = [weight(HIDDEN, HIDDEN, 3), weight(KV, HIDDEN, 4), weight(KV, HIDDEN, 5)];
const [gate, up] = [weight(INTERMEDIATE, HIDDEN, 6), weight(INTERMEDIATE, HIDDEN, 7)];
const down = weight(HIDDEN, INTERMEDIATE, 8);
const norm = engine.upload(new Float32Array(HIDDEN).fill(1), [HIDDEN]);
const fp8 = parseQuantizationArgs(
  { num_bits: 8, type: "float", strategy: "tensor", dynamic: false, symmetric: true },
  "input_activations",
);
const scales = engine.upload(new Float32Array(tokens).fill(0.01), [tokens]);
const hessian = new CpuHessian(HIDDEN);
const hessianDown = new CpuHessian(INTERMEDIATE);
const sequences = Math.max(1, Math.round(tokens / 256));

const drop = (...ts: Tensor[]) => ts.forEach((t) => t.destroy());
const ops: [string, () => void][] = [
  ["forward: matmulMany q/k/v", () => drop(...engine.matmulMany(x, [q, k, v]))],
  ["forward: matmulAdd o_proj", () => drop(engine.matmulAdd(x, q, x))],
  ["forward: swiGlu gate/up", () => drop(engine.swiGlu(x, gate, up))],
  ["forward: matmulAdd down_proj", () => drop(engine.matmulAdd(act, down, x))],
  ["forward: rmsnorm", () => drop(engine.rmsnorm(x, norm, 1e-6))],
  ["fp8 fake quantize [t, 256]", () => drop(engine.fakeQuantizeRows(x, scales, null, fp8))],
  ["fp8 fake quantize [t, 768]", () => drop(engine.fakeQuantizeRows(act, scales, null, fp8))],
  ["observer row min/max [t, 256]", () => {
    const { min, max } = engine.reduceRowsMinMax(x);
    drop(min, max);
  }],
  ["observer row min/max [t, 768]", () => {
    const { min, max } = engine.reduceRowsMinMax(act);
    drop(min, max);
  }],
  ["smoothquant column min/max [t, 256]", () => {
    const { min, max } = engine.reduceColumnsMinMax(x);
    drop(min, max);
  }],
  ["hessian add 256 (q/k/v, o, gate/up)", () => hessian.add(x, sequences)],
  ["hessian add 768 (down_proj)", () => hessianDown.add(act, sequences)],
];

console.log(`${tokens} tokens, ${engine.description}`);
console.log("| op | fastest ms | median ms | CPU ms / call |");
console.log("|---|---|---|---|");
const rows: { op: string; fastestMs: number; medianMs: number; cpuMs: number }[] = [];
for (const [name, run] of ops) {
  run(); // warm-up: the JIT and the engine's pooled arrays
  const walls: number[] = [];
  const cpu0 = cpuSeconds();
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    run();
    walls.push(performance.now() - t);
  }
  const cpuMs = ((cpuSeconds() - cpu0) * 1000) / reps;
  walls.sort((a, b) => a - b);
  const row = { op: name, fastestMs: walls[0], medianMs: walls[reps >> 1], cpuMs };
  rows.push(row);
  console.log(
    `| ${name} | ${row.fastestMs.toFixed(2)} | ${row.medianMs.toFixed(2)} | ${cpuMs.toFixed(1)} |`,
  );
}
console.log(JSON.stringify({ tokens, reps, ops: rows }));
engine.close();
