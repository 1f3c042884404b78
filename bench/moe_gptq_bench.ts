/**
 * Whole-run time and peak host memory of GPTQ W4A16 on a synthetic
 * mixture-of-experts model next to the dense model of the same active size:
 * a qwen3_moe with `--experts` experts (top-2, expert intermediate
 * `--expert-intermediate`, default 768; hidden 768) and a llama whose MLP is
 * as wide as the two active experts, same attention, layers and vocabulary. Each run is a
 * child process that reports its wall time, CPU time (user + system, the
 * fairer figure on a shared machine) and peak resident set size (VmHWM); on
 * a software adapter (llvmpipe) GPU buffers live in that host memory too.
 * All experts are calibrated on every token (moe_calibrate_all_experts).
 *
 * ```sh
 * deno run -A bench/moe_gptq_bench.ts [--experts 8] [--expert-intermediate 768] [--layers 2] [--samples 4] [--seq-len 128] [--no-dense] [--max-expert-memory 32MiB]
 * ```
 *
 * `--max-expert-memory` processes each layer's experts in groups whose
 * float32 weights fit in it (oneshot's `maxExpertBytes`; default 1 GiB, so
 * these models' layers run whole).
 *
 * Prints a table and one JSON line per model.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type SyntheticSpec, writeSyntheticModel } from "../src/model/synthetic_model.ts";
import { oneshot } from "../src/oneshot.ts";
import { parseByteSize } from "../src/cli/flags.ts";
import type { EngineChoice } from "../src/engine/choose.ts";
import { runBenchChild } from "./_child_run.ts";

const SHARED = decodeURIComponent(new URL("../../shared/", import.meta.url).pathname);
const RECIPE = `quant_stage:
  quant_modifiers:
    GPTQModifier:
      targets: [Linear]
      scheme: W4A16
      ignore: [lm_head, "re:.*mlp.gate$"]
`;

/** CPU seconds (user + system) this process used: the wall time depends on what else runs. */
function cpuSeconds(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function peakRssBytes(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    child: { type: "boolean", default: false },
    model: { type: "string" },
    out: { type: "string" },
    experts: { type: "string", default: "8" },
    "expert-intermediate": { type: "string", default: "768" },
    layers: { type: "string", default: "2" },
    samples: { type: "string", default: "4" },
    "seq-len": { type: "string", default: "128" },
    "no-dense": { type: "boolean", default: false },
    "max-expert-memory": { type: "string" },
    engine: { type: "string", default: "auto" },
  },
});

if (values.child) {
  const t0 = performance.now();
  let engineUsed = "";
  await oneshot({
    model: values.model!,
    recipe: RECIPE,
    dataset: `${SHARED}data/tinystories_calib.txt`,
    numCalibrationSamples: Number(values.samples),
    maxSeqLength: Number(values["seq-len"]),
    outputDir: values.out!,
    maxExpertBytes: values["max-expert-memory"] === undefined
      ? undefined
      : parseByteSize(values["max-expert-memory"]),
    engine: values.engine as EngineChoice,
    onEvent: (e) => {
      if (e.type === "engine") engineUsed = e.engine;
    },
    onWarning: () => {},
  });
  console.log(JSON.stringify({
    peakRssBytes: peakRssBytes(),
    seconds: (performance.now() - t0) / 1000,
    cpuSeconds: cpuSeconds(),
    engine: engineUsed,
  }));
  Deno.exit(0);
}

const layers = Number(values.layers);
const experts = Number(values.experts);
const expertI = Number(values["expert-intermediate"]);
const common = {
  hidden: 768,
  layers,
  heads: 12,
  kvHeads: 4,
  vocab: 512,
  tied: false,
  seed: 3,
} as const;
const models: [string, SyntheticSpec][] = [
  [
    `qwen3_moe ${experts} experts top-2 (expert ${expertI})`,
    {
      ...common,
      modelType: "qwen3_moe",
      intermediate: 2 * expertI,
      moe: { experts, topK: 2, expertIntermediate: expertI },
    },
  ],
];
if (!values["no-dense"]) {
  models.push([`dense llama, same active size (MLP ${2 * expertI})`, {
    ...common,
    modelType: "llama",
    intermediate: 2 * expertI,
  }]);
}

const rows: string[] = [];
for (const [label, spec] of models) {
  const dir = await Deno.makeTempDir({ prefix: "llmc-moe-bench-" });
  try {
    await Deno.mkdir(`${dir}/model`);
    await writeSyntheticModel(spec, `${dir}/model`);
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
      await Deno.copyFile(`${SHARED}models/stories260K/${f}`, `${dir}/model/${f}`);
    }
    let modelBytes = 0;
    for (const e of Deno.readDirSync(`${dir}/model`)) {
      if (e.name.endsWith(".safetensors")) {
        modelBytes += Deno.statSync(`${dir}/model/${e.name}`).size;
      }
    }
    const run = await runBenchChild<
      { seconds: number; cpuSeconds: number; peakRssBytes: number; engine: string }
    >(
      import.meta.url,
      [
        "--model",
        `${dir}/model`,
        "--out",
        `${dir}/out`,
        "--samples",
        values.samples,
        "--seq-len",
        values["seq-len"],
        "--engine",
        values.engine,
        ...(values["max-expert-memory"] === undefined
          ? []
          : ["--max-expert-memory", values["max-expert-memory"]]),
      ],
    );
    const mb = (n: number) => `${(n / 1e6).toFixed(0)} MB`;
    rows.push(
      `| ${label} | ${run.engine} | ${mb(modelBytes)} | ${run.seconds.toFixed(1)} s | ${
        run.cpuSeconds.toFixed(1)
      } s | ${mb(run.peakRssBytes)} |`,
    );
    console.log(JSON.stringify({
      bench: "moe_gptq",
      model: label,
      layers,
      samples: Number(values.samples),
      seqLen: Number(values["seq-len"]),
      modelBytes,
      runSeconds: run.seconds,
      cpuSeconds: run.cpuSeconds,
      peakRssBytes: run.peakRssBytes,
      engine: run.engine,
      maxExpertMemory: values["max-expert-memory"] ?? null,
    }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
console.log(
  `\nGPTQ W4A16 oneshot, ${layers} layers, hidden 768, ${values.samples}×${
    values["seq-len"]
  } calibration tokens${
    values["max-expert-memory"] === undefined
      ? ""
      : `, experts in groups within ${values["max-expert-memory"]}`
  }`,
);
console.log(`| model | engine | f32 weights | whole run (wall) | CPU time | peak RSS |`);
console.log(`|---|---|---:|---:|---:|---:|`);
for (const r of rows) console.log(r);
