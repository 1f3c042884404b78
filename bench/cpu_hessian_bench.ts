/**
 * The CPU engine's running Hessian (`CpuHessian.add`, GPTQ's and
 * SparseGPT's `H ← H·n₀/n₁ + 2/n₁·xᵀx`) against the whole-matrix update it
 * replaced (a zeroed k × k Gram through `accumulateGram`, mirrored, then
 * every element scaled in TypeScript), alternating, on the 3M synthetic
 * Llama's shapes by default: one layer's four Hessians (three of 256
 * columns, one of 768) fed 4 × 4096 rows each. Checks that both give the
 * same bits.
 *
 * ```sh
 * deno run -A bench/cpu_hessian_bench.ts [--rows 4096] [--adds 4] [--runs 5]
 * ```
 *
 * Prints wall and process CPU time (user + sys, all threads) per run and
 * the best of each. It reports, it does not fail.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { accumulateGram } from "../src/engine/cpu/gemm.ts";
import { CpuHessian } from "../src/engine/cpu/hessian.ts";
import { seededRandom } from "../src/model/seeded_random.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rows: { type: "string", default: "4096" },
    adds: { type: "string", default: "4" },
    runs: { type: "string", default: "5" },
  },
});
const rows = Number(values.rows);
const adds = Number(values.adds);
const runs = Number(values.runs);
const widths = [256, 256, 256, 768];
const random = seededRandom(1);
const inputs = widths.map((k) =>
  Array.from({ length: adds }, () => Float32Array.from({ length: rows * k }, () => random() - 0.5))
);

/** The update before: a full Gram from zero, then every element of H. */
function wholeMatrix(k: number, xs: Float32Array[]): Float32Array {
  const h = new Float32Array(k * k);
  const g = new Float32Array(k * k);
  xs.forEach((x, i) => {
    g.fill(0);
    accumulateGram(g, x, rows, k);
    const beta = (i * 16) / ((i + 1) * 16);
    const alpha = 2 / ((i + 1) * 16);
    for (let j = 0; j < h.length; j++) h[j] = h[j] * beta + alpha * g[j];
  });
  return h;
}

function upperOnly(k: number, xs: Float32Array[]): Float32Array {
  const h = new CpuHessian(k);
  for (const x of xs) h.add(x, 16);
  return h.matrix;
}

function time(run: () => Float32Array[]): { wall: number; cpu: number; out: Float32Array[] } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const out = run();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000, out };
}

const best = { before: [Infinity, Infinity], after: [Infinity, Infinity] };
for (let r = 0; r < runs; r++) {
  const before = time(() => widths.map((k, i) => wholeMatrix(k, inputs[i])));
  const after = time(() => widths.map((k, i) => upperOnly(k, inputs[i])));
  const same = after.out.every((h, i) =>
    new Uint32Array(h.buffer).every((v, j) => v === new Uint32Array(before.out[i].buffer)[j])
  );
  for (const [name, t] of [["before", before], ["after", after]] as const) {
    best[name] = [Math.min(best[name][0], t.wall), Math.min(best[name][1], t.cpu)];
  }
  console.log(
    `run ${r}: whole-matrix ${before.wall.toFixed(0)} ms wall / ${before.cpu.toFixed(0)} ms CPU, ` +
      `upper-only ${after.wall.toFixed(0)} ms / ${after.cpu.toFixed(0)} ms, same bits: ${same}`,
  );
}
console.log(
  `best: whole-matrix ${best.before[0].toFixed(0)} ms wall / ${
    best.before[1].toFixed(0)
  } ms CPU, ` +
    `upper-only ${best.after[0].toFixed(0)} ms / ${best.after[1].toFixed(0)} ms`,
);
