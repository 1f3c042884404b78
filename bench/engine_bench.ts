/**
 * The compute engines side by side on this machine: for each engine
 * (WebGPU, CPU), f32 matmul GFLOP/s through `engine.matmul` (upload and
 * readback included), stories260K forward tokens/s (`model.nll` over
 * 8 windows of 256 tokens, as `llmc ppl` runs it), and the whole-process
 * wall time, CPU time and peak RSS of `llmc oneshot` with the GPTQ W4A16
 * channel recipe on 64 × 256 calibration tokens (what `deno task demo`
 * compresses). Every measurement runs in its own process; the CPU caps the
 * machine reports head the table.
 *
 * ```sh
 * deno run -A bench/engine_bench.ts [--engines webgpu,cpu] [--matmul 512] [--skip-gptq]
 * ```
 *
 * On a shared machine wall time includes waiting for a core; CPU time
 * (user + sys of the process) does not, so both are printed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createEngine, type EngineChoice } from "../src/engine/choose.ts";
import type { EngineKind } from "../src/engine/engine.ts";
import { cpuKernelInfo } from "../src/engine/cpu/gemm.ts";
import { loadEvaluationWindows } from "../src/data/evaluation_windows.ts";
import { HfModel } from "../src/io/hf_model.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { DecoderModel } from "../src/model/decoder_model.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const SHARED = `${ROOT}../shared/`;
const MODEL = `${SHARED}models/stories260K`;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    child: { type: "string" },
    engine: { type: "string" },
    engines: { type: "string", default: "webgpu,cpu" },
    matmul: { type: "string", default: "512" },
    "skip-gptq": { type: "boolean", default: false },
  },
});

/** CPU model and the SIMD extensions that matter here. */
function cpuCaps(): string {
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    const model = /^model name\s*:\s*(.*)$/m.exec(info)?.[1] ?? "unknown CPU";
    const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? "").split(/\s+/));
    const caps = ["avx2", "fma", "avx512f"].map((f) => `${f} ${flags.has(f) ? "yes" : "no"}`);
    return `${model}, ${navigator.hardwareConcurrency} logical cores, ${caps.join(", ")}`;
  } catch {
    return `${Deno.build.arch}, ${navigator.hardwareConcurrency} logical cores`;
  }
}

async function matmulChild(kind: EngineKind, n: number): Promise<Record<string, unknown>> {
  const { engine } = await createEngine({ engine: kind });
  const a = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const run = async () => {
    const x = engine.upload(a, [n, n]);
    const y = engine.matmul(x, x);
    await engine.read([y]);
    x.destroy();
    y.destroy();
  };
  await run(); // compiles on WebGPU
  const reps = 3;
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) await run();
  const seconds = (performance.now() - t0) / 1000 / reps;
  return { matmulN: n, gflops: (2 * n ** 3) / seconds / 1e9, engine: engine.description };
}

async function forwardChild(kind: EngineKind): Promise<Record<string, unknown>> {
  const hf = await HfModel.open(MODEL);
  const { engine } = await createEngine({ engine: kind, headDims: [hf.config.headDim] });
  const model = await DecoderModel.load(hf, engine);
  const windows = await loadEvaluationWindows({
    path: `${SHARED}data/tinystories_eval.txt`,
    tokenizer: await loadTokenizer(MODEL),
    seqLen: 256,
    windows: 8,
  });
  const ids = new Int32Array(8 * 256);
  windows.forEach((w, i) => ids.set(w, i * 256));
  await model.nll(ids, 8); // compiles on WebGPU
  const reps = 2;
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) await model.nll(ids, 8);
  const seconds = (performance.now() - t0) / 1000 / reps;
  model.close();
  hf.close();
  return { tokensPerSecond: ids.length / seconds };
}

async function childJson(args: string[]): Promise<Record<string, unknown>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}bench/engine_bench.ts`, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (out.code !== 0) throw new Error(`engine_bench ${args.join(" ")} exited with ${out.code}`);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

/** `llmc oneshot` GPTQ under /usr/bin/time: wall, user + sys CPU seconds, peak RSS. */
async function gptqRun(kind: EngineKind): Promise<Record<string, unknown>> {
  const outDir = await Deno.makeTempDir({ prefix: "llmc-engine-bench-" });
  try {
    const out = await new Deno.Command("/usr/bin/time", {
      args: [
        "-f",
        "TIME %e %U %S %M",
        Deno.execPath(),
        "run",
        "-A",
        `${ROOT}src/cli/main.ts`,
        "oneshot",
        "--model",
        MODEL,
        "--recipe",
        `${ROOT}recipes/w4a16_gptq_channel.yaml`,
        "--dataset",
        `${SHARED}data/tinystories_calib.txt`,
        "--num-calibration-samples",
        "64",
        "--max-seq-length",
        "256",
        "--output-dir",
        `${outDir}/out`,
        "--progress",
        "none",
        "--engine",
        kind,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(err);
    if (out.code !== 0 || m === null) throw new Error(`oneshot --engine ${kind} failed:\n${err}`);
    return {
      gptqWallSeconds: Number(m[1]),
      gptqCpuSeconds: Number(m[2]) + Number(m[3]),
      gptqPeakRssMiB: Number(m[4]) / 1024,
    };
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
}

if (values.child !== undefined) {
  const kind = values.engine as EngineKind;
  const result = values.child === "matmul"
    ? await matmulChild(kind, Number(values.matmul))
    : await forwardChild(kind);
  console.log(JSON.stringify(result));
  Deno.exit(0);
}

const kinds = values.engines!.split(",") as EngineChoice[];
const n = Number(values.matmul);
console.log(`machine: ${cpuCaps()}`);
console.log(`cpu gemm kernels: ${JSON.stringify(cpuKernelInfo())}`);
console.log(
  `| engine | matmul ${n}³ GFLOP/s | forward tokens/s | GPTQ wall s | GPTQ CPU s | GPTQ peak RSS MiB |`,
);
console.log("|---|---|---|---|---|---|");
for (const kind of kinds) {
  if (kind === "auto") continue;
  const mm = await childJson(["--child", "matmul", "--engine", kind, "--matmul", String(n)]);
  const fw = await childJson(["--child", "forward", "--engine", kind]);
  const gq = values["skip-gptq"] ? null : await gptqRun(kind);
  const f = (v: unknown, d: number) => typeof v === "number" ? v.toFixed(d) : "-";
  console.log(
    `| ${kind} | ${f(mm.gflops, 2)} | ${f(fw.tokensPerSecond, 0)} | ${
      f(gq?.gptqWallSeconds, 1)
    } | ` +
      `${f(gq?.gptqCpuSeconds, 1)} | ${f(gq?.gptqPeakRssMiB, 0)} |`,
  );
  console.log(JSON.stringify({ bench: "engine", kind, ...mm, ...fw, ...gq }));
}
