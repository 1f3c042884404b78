/**
 * The CPU engine's GEMM kernels: `deno run -A bench/cpu_gemm_bench.ts
 * [--sizes 256,1024,2048] [--threads 1,2] [--variants avx2,relaxed] [--runs N]`.
 *
 * `--variants` picks the builds to compare (default: the one this process
 * would use); "avx2" is the native library, "relaxed" and "simd" WebAssembly.
 *
 * For matmulTransposed (y = x·wᵀ), matmul (y = a·b) and accumulateGram
 * (h += xᵀx, rows = k = size), at each size and thread count, prints:
 * - best: GFLOP/s of the fastest of the runs (wall clock, copies in and out
 *   included), the figure to compare with other machines;
 * - median: GFLOP/s of the median run, which shows how busy the machine was;
 * - per CPU-s: flops per second of CPU time the process used during the
 *   fastest run (user + system over all its threads), which stays close to
 *   the kernels' speed on a core even when other processes take the CPU.
 * Gram flops are counted as 2·rows·k² (the full product); the kernel computes
 * the upper triangle only, about half of that.
 *
 * Then attention over one 256-token sequence (12 heads of 64, 4 key/value
 * heads): attentionScores followed by attentionValues, plain and causal
 * (causal counted with the same flops, so its figure shows the work skipped).
 *
 * Runs per case: 10 at 256, 5 at 1024, 2 at 2048 (or --runs). Then one JSON
 * line. The CPU, its flags and the load average come first, since a busy
 * machine lowers every wall-clock figure.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { type CpuGemm, createCpuGemm, type KernelVariant } from "../src/engine/cpu/gemm.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    sizes: { type: "string", default: "256,1024,2048" },
    threads: { type: "string", default: "1,2" },
    runs: { type: "string" },
    variants: { type: "string" },
  },
});
const sizes = values.sizes.split(",").map(Number);
const threadCounts = values.threads.split(",").map(Number);

function cpuReport(): Record<string, unknown> {
  let model = "unknown", mhz = 0, flags: string[] = [];
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    model = /model name\s*:\s*(.*)/.exec(info)?.[1] ?? model;
    mhz = Number(/cpu MHz\s*:\s*(.*)/.exec(info)?.[1] ?? 0);
    const all = (/flags\s*:\s*(.*)/.exec(info)?.[1] ?? "").split(" ");
    flags = ["sse4_1", "avx", "avx2", "fma", "avx512f"].filter((f) => all.includes(f));
  } catch {
    // not Linux: the model stays unknown
  }
  return {
    model,
    mhz: Math.round(mhz),
    flags,
    hardwareConcurrency: navigator.hardwareConcurrency,
    loadavg: Deno.loadavg().map((x) => Number(x.toFixed(2))),
  };
}

const cpuBefore = cpuReport();
console.log(`cpu: ${JSON.stringify(cpuBefore)}`);

function operand(length: number, seed: number): Float32Array {
  return Float32Array.from({ length }, (_, i) => (((i + seed) * 7919) % 1000) / 1000 - 0.5);
}

interface Row {
  op: string;
  size: number;
  threads: number;
  variant: string;
  runs: number;
  best_ms: number;
  gflops_best: number;
  gflops_median: number;
  gflops_per_cpu_s: number;
}

function time(run: () => void, runs: number, flops: number) {
  const walls: number[] = [];
  let best = Infinity, cpuAtBest = Infinity;
  for (let r = 0; r < runs; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    run();
    const wall = performance.now() - t0;
    const c = process.cpuUsage(c0);
    walls.push(wall);
    if (wall < best) {
      best = wall;
      cpuAtBest = (c.user + c.system) / 1000;
    }
  }
  walls.sort((a, b) => a - b);
  const median = walls[Math.floor(walls.length / 2)];
  return {
    best_ms: Number(best.toFixed(2)),
    gflops_best: Number((flops / best / 1e6).toFixed(2)),
    gflops_median: Number((flops / median / 1e6).toFixed(2)),
    gflops_per_cpu_s: Number((flops / Math.max(cpuAtBest, 1e-3) / 1e6).toFixed(2)),
  };
}

/** Waits (up to 30 s) until the pool's workers have taken part in a product. */
async function warmUp(gemm: CpuGemm, threads: number): Promise<void> {
  const s = 256;
  const x = operand(s * s, 1), w = operand(s * s, 2), y = new Float32Array(s * s);
  const deadline = performance.now() + 30_000;
  do {
    gemm.matmulTransposed(x, w, s, s, s, y);
    if (threads === 1 || gemm.workerTasks > 0) return;
    await new Promise((r) => setTimeout(r, 20));
  } while (performance.now() < deadline);
  console.log(`warning: the ${threads - 1} worker(s) did not start within 30 s`);
}

const rows: Row[] = [];
const variants: (KernelVariant | undefined)[] = values.variants
  ? values.variants.split(",") as KernelVariant[]
  : [undefined];
const builds = new Set<string>();
for (const requested of variants) {
  for (const threads of threadCounts) {
    const gemm = createCpuGemm({ threads, variant: requested });
    const variant = gemm.info().variant;
    builds.add(variant);
    await warmUp(gemm, threads);
    for (const size of sizes) {
      const runs = values.runs ? Number(values.runs) : size <= 256 ? 10 : size <= 1024 ? 5 : 2;
      const a = operand(size * size, 3), b = operand(size * size, 4);
      const y = new Float32Array(size * size);
      const h = new Float32Array(size * size);
      const flops = 2 * size ** 3;
      const cases: Array<[string, () => void]> = [
        ["matmulTransposed", () => gemm.matmulTransposed(a, b, size, size, size, y)],
        ["matmul", () => gemm.matmul(a, b, size, size, size, y)],
        ["accumulateGram", () => gemm.accumulateGram(h, a, size, size)],
      ];
      for (const [op, run] of cases) {
        run(); // tier-up and memory growth outside the clock
        rows.push({ op, size, threads, variant, runs, ...time(run, runs, flops) });
      }
    }
    // Attention of one 256-token sequence, 12 heads of 64 (4 key/value heads):
    // scores then values, each 2·12·256²·64 flops.
    const shape = { seq: 256, kvLen: 256, heads: 12, kvHeads: 4, headDim: 64 };
    const q = operand(256 * 12 * 64, 5), kv = operand(256 * 4 * 64, 6);
    const scores = new Float32Array(12 * 256 * 256), out = new Float32Array(256 * 12 * 64);
    // Plain, then causal (tiles wholly in the future skipped; flops counted as plain).
    for (const causal of [false, true]) {
      const run = () => {
        gemm.attentionScores(q, kv, { ...shape, causal }, scores);
        gemm.attentionValues(scores, kv, { ...shape, causal }, out);
      };
      run();
      rows.push({
        op: `${causal ? "causal " : ""}attention 12×256²×64`,
        size: 256,
        threads,
        variant,
        runs: 10,
        ...time(run, 10, 2 * 2 * 12 * 256 * 256 * 64),
      });
    }
    gemm.close();
  }
}

console.log(`\nbuilds: ${[...builds].join(", ")}`);
console.log(
  "\n| op | n | build | threads | best ms | GFLOP/s best | GFLOP/s median | GFLOP/s per CPU-s |",
);
console.log("|---|---:|---|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.op} | ${r.size} | ${r.variant} | ${r.threads} | ${r.best_ms} | ${r.gflops_best} | ${r.gflops_median} | ${r.gflops_per_cpu_s} |`,
  );
}
const cpuAfter = cpuReport();
console.log(`load average after: ${JSON.stringify(cpuAfter.loadavg)}`);
console.log(JSON.stringify({
  bench: "cpu_gemm",
  cpu: cpuBefore,
  loadavg_after: cpuAfter.loadavg,
  builds: [...builds],
  results: rows,
}));
