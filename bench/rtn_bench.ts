/**
 * RTN + compression throughput of the data-free `oneshot` path, and the
 * streaming of `modelFreePtq`, on a synthetic float32 Llama with seeded
 * random weights (about 1 GB; `--quick`: about 100 MB), generated into a
 * temporary folder and deleted afterwards.
 *
 * Each measured run is its own process, so its peak RSS (VmHWM from
 * /proc/self/status) is that run's alone. Throughput is GB/s of source
 * weights read (all tensors) and of Linear weights quantized. On a shared
 * machine, `--repeat N` runs each configuration N times and keeps the
 * fastest run.
 *
 * A second table times the compute alone, in this process: RTN qparams
 * (`rtnQuantizeModule`) and compression (`compressModule`) of one MLP-sized
 * weight per scheme and dtype, fastest of several warm runs, so the inner
 * loops can be compared without the file I/O around them.
 *
 * `deno run -A bench/rtn_bench.ts [--quick] [--keep] [--repeat N]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { HfModel } from "../src/io/hf_model.ts";
import { writeSyntheticModel } from "../src/model/synthetic_model.ts";
import { oneshot } from "../src/oneshot.ts";
import { modelFreePtq } from "../src/model_free/model_free_ptq.ts";
import { roundToBf16 } from "../src/io/floats.ts";
import { compressModule } from "../src/compress/compress_module.ts";
import type { ComputeDType } from "../src/quant/compute_dtype.ts";
import { moduleFormat } from "../src/quant/format.ts";
import { presetScheme } from "../src/quant/presets.ts";
import { rtnGlobalScale, rtnQuantizeModule } from "../src/quant/rtn.ts";

interface Shape {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
}

const FULL: Shape = {
  hidden: 2048,
  intermediate: 5632,
  layers: 5,
  heads: 32,
  kvHeads: 8,
  vocab: 8192,
};
const QUICK: Shape = {
  hidden: 1024,
  intermediate: 2816,
  layers: 2,
  heads: 16,
  kvHeads: 4,
  vocab: 4096,
};

function peakRssBytes(): number {
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(Deno.readTextFileSync("/proc/self/status"));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Writes a seeded random F32 llama (tied embeddings) and returns its weight bytes. */
async function generate(dir: string, s: Shape): Promise<number> {
  await writeSyntheticModel({ modelType: "llama", ...s, tied: true }, dir);
  const m = await HfModel.open(dir);
  const bytes = m.tensorNames().reduce((sum, n) => sum + m.info(n).byteLength, 0);
  m.close();
  return bytes;
}

interface RunResult {
  readonly task: string;
  readonly scheme: string;
  readonly seconds: number;
  readonly sourceBytes: number;
  readonly quantizedBytes: number;
  readonly outputBytes: number;
  readonly peakRssBytes: number;
}

/** One measured run (inside the child process). */
async function runOne(
  task: string,
  scheme: string,
  model: string,
  out: string,
): Promise<RunResult> {
  const t0 = performance.now();
  let quantizedBytes = 0;
  let outputBytes = 0;
  if (task === "oneshot") {
    const r = await oneshot({
      model,
      scheme,
      ignore: ["lm_head"],
      outputDir: out,
      onProgress: (e) => {
        if (e.layer !== null) quantizedBytes += e.bytesRead;
      },
    });
    outputBytes = r.totalSize;
  } else {
    const r = await modelFreePtq(model, out, scheme, ["re:.*embed_tokens$", "lm_head"], {
      onWarning: () => {},
    });
    quantizedBytes = r.quantizedBytes;
    outputBytes = r.totalSize;
  }
  const seconds = (performance.now() - t0) / 1000;
  let sourceBytes = 0;
  for (const e of Deno.readDirSync(model)) {
    if (e.name.endsWith(".safetensors")) sourceBytes += Deno.statSync(`${model}/${e.name}`).size;
  }
  await Deno.remove(out, { recursive: true });
  return {
    task,
    scheme,
    seconds,
    sourceBytes,
    quantizedBytes,
    outputBytes,
    peakRssBytes: peakRssBytes(),
  };
}

async function child(task: string, scheme: string, model: string, out: string): Promise<RunResult> {
  const self = new URL(import.meta.url).pathname;
  const p = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", self, "--child", task, "--scheme", scheme, "--model", model, "--out", out],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(p.stdout).trim();
  if (p.code !== 0) throw new Error(`${task} ${scheme} failed (exit ${p.code}): ${text}`);
  return JSON.parse(text.split("\n").at(-1)!);
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    repeat: { type: "string", default: "1" },
    child: { type: "string" },
    scheme: { type: "string" },
    model: { type: "string" },
    out: { type: "string" },
  },
});

if (values.child) {
  console.log(
    JSON.stringify(await runOne(values.child, values.scheme!, values.model!, values.out!)),
  );
  Deno.exit(0);
}

interface ComputeResult {
  readonly scheme: string;
  readonly dtype: ComputeDType;
  readonly qparamsMs: number;
  readonly compressMs: number;
  readonly gbps: number;
}

/** Compute alone: qparams and compression of one `[intermediate, hidden]` weight, warm. */
function computeOnly(s: Shape): ComputeResult[] {
  const shape: [number, number] = [s.intermediate, s.hidden];
  const base = new Float32Array(shape[0] * shape[1]);
  let seed = 1;
  for (let i = 0; i < base.length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    base[i] = (seed / 2 ** 32 - 0.5) * 0.1;
  }
  const results: ComputeResult[] = [];
  for (const dtype of ["F32", "BF16"] as const) {
    const w = dtype === "F32" ? base : base.map(roundToBf16);
    for (const scheme of ["W4A16", "FP8_DYNAMIC", "W8A8", "NVFP4A16"]) {
      const sch = presetScheme(scheme, ["Linear"]);
      const args = sch.weights!;
      let qparamsMs = Infinity;
      let compressMs = Infinity;
      for (let it = 0; it < 6; it++) {
        const t0 = performance.now();
        const g = args.strategy === "tensor_group" ? rtnGlobalScale(w, args, dtype) : null;
        const qp = rtnQuantizeModule(w, shape, args, { globalScale: g, dtype });
        const t1 = performance.now();
        compressModule("m", w, shape, sch, { weight: qp }, dtype, moduleFormat(sch));
        const t2 = performance.now();
        qparamsMs = Math.min(qparamsMs, t1 - t0);
        compressMs = Math.min(compressMs, t2 - t1);
      }
      const gbps = (w.length * (dtype === "F32" ? 4 : 2)) / 1e9 / ((qparamsMs + compressMs) / 1000);
      results.push({ scheme, dtype, qparamsMs, compressMs, gbps });
    }
  }
  return results;
}

const shape = values.quick ? QUICK : FULL;
const repeat = Math.max(1, Number(values.repeat) || 1);
const root = await Deno.makeTempDir({ prefix: "llmc-rtn-bench-" });
try {
  const model = `${root}/model`;
  await Deno.mkdir(model);
  const g0 = performance.now();
  const size = await generate(model, shape);
  console.error(
    `generated ${(size / 1e9).toFixed(3)} GB synthetic llama in ${
      ((performance.now() - g0) / 1000).toFixed(1)
    } s`,
  );
  const runs: RunResult[] = [];
  for (
    const [task, scheme] of [
      ["oneshot", "W4A16"],
      ["oneshot", "FP8_DYNAMIC"],
      ["model-free", "W4A16"],
      ["model-free", "FP8_DYNAMIC"],
    ]
  ) {
    let best: RunResult | null = null;
    for (let i = 0; i < repeat; i++) {
      const r = await child(task, scheme, model, `${root}/out-${task}-${scheme}`);
      if (best === null || r.seconds < best.seconds) best = r;
    }
    runs.push(best!);
  }
  const compute = computeOnly(shape);
  const gb = (b: number) => (b / 1e9).toFixed(3);
  console.log(
    `\nRTN + compression on a synthetic ${
      gb(size)
    } GB float32 Llama (${Deno.build.os}/${Deno.build.arch}, ${navigator.hardwareConcurrency} CPUs)`,
  );
  console.log(
    "| task | scheme | seconds | source GB/s | Linear GB/s | output GB | peak RSS MB | RSS / model |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  for (const r of runs) {
    console.log(
      `| ${r.task} | ${r.scheme} | ${r.seconds.toFixed(2)} | ${
        (r.sourceBytes / 1e9 / r.seconds).toFixed(3)
      } | ` +
        `${(r.quantizedBytes / 1e9 / r.seconds).toFixed(3)} | ${gb(r.outputBytes)} | ` +
        `${(r.peakRssBytes / 2 ** 20).toFixed(0)} | ${(r.peakRssBytes / size).toFixed(2)} |`,
    );
  }
  console.log(
    `\nCompute only: qparams + compression of one [${shape.intermediate}, ${shape.hidden}] ` +
      `weight (fastest of 6, GB/s of the weight in its dtype)`,
  );
  console.log("| scheme | dtype | qparams ms | compress ms | GB/s |");
  console.log("|---|---|---|---|---|");
  for (const c of compute) {
    console.log(
      `| ${c.scheme} | ${c.dtype} | ${c.qparamsMs.toFixed(1)} | ${c.compressMs.toFixed(1)} | ` +
        `${c.gbps.toFixed(2)} |`,
    );
  }
  console.log(JSON.stringify({
    bench: "rtn",
    quick: values.quick,
    repeat,
    compute,
    modelBytes: size,
    shape,
    runs: runs.map((r) => ({
      ...r,
      sourceGBps: r.sourceBytes / 1e9 / r.seconds,
      linearGBps: r.quantizedBytes / 1e9 / r.seconds,
    })),
  }));
} finally {
  if (!values.keep) await Deno.remove(root, { recursive: true });
}
