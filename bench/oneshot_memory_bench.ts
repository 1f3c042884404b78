/**
 * Peak host memory of a calibrated oneshot run: a synthetic Llama with about
 * 1.3 GB of f32 weights (24 layers, hidden 1024, intermediate 2816, vocab
 * 32000, tied) is written to a temporary folder, then compressed with W4A16
 * (int4 group-128, round-to-nearest) plus static FP8 input activations in a
 * child process that reports its peak resident set size (VmHWM). The run
 * must stay under half the model's size: only one decoder layer's weights
 * are resident at a time.
 *
 * Calibration data is a few JSON Lines records cut from the calibration
 * text: with plain text, the calibration loader tokenizes the whole file,
 * whose cost (about 170 MB for 400 KB with the JS tokenizer) has nothing to
 * do with the model's size.
 *
 * ```sh
 * deno run -A bench/oneshot_memory_bench.ts [--samples 4] [--seq-len 128] [--layers 24]
 * ```
 *
 * Prints a table and one JSON line; exits 1 when the bound is broken.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { writeSyntheticModel } from "../src/model/synthetic_model.ts";
import { oneshot } from "../src/oneshot.ts";
import { runBenchChild } from "./_child_run.ts";

const SHARED = decodeURIComponent(new URL("../../shared/", import.meta.url).pathname);
const RECIPE = `quant_stage:
  quant_modifiers:
    QuantizationModifier:
      ignore: [lm_head]
      config_groups:
        group_0:
          weights: {num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 128}
          input_activations: {num_bits: 8, type: float, strategy: tensor, dynamic: false, symmetric: true}
          targets: [Linear]
`;

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
    dataset: { type: "string" },
    samples: { type: "string", default: "4" },
    "seq-len": { type: "string", default: "128" },
    layers: { type: "string", default: "24" },
  },
});

if (values.child) {
  // The measured process: only the oneshot run, nothing of the model generation.
  const t0 = performance.now();
  const r = await oneshot({
    model: values.model!,
    recipe: RECIPE,
    dataset: values.dataset!,
    numCalibrationSamples: Number(values.samples),
    maxSeqLength: Number(values["seq-len"]),
    outputDir: values.out!,
    onWarning: () => {},
  });
  console.log(JSON.stringify({
    peakRssBytes: peakRssBytes(),
    seconds: (performance.now() - t0) / 1000,
    outputBytes: r.totalSize,
    pipeline: r.pipeline,
  }));
  Deno.exit(0);
}

const layers = Number(values.layers);
const dir = await Deno.makeTempDir({ prefix: "llmc-memory-bench-" });
try {
  const t0 = performance.now();
  await Deno.mkdir(`${dir}/model`);
  await writeSyntheticModel({
    modelType: "llama",
    hidden: 1024,
    layers,
    heads: 16,
    kvHeads: 16,
    intermediate: 2816,
    vocab: 32000,
    tied: true,
    seed: 7,
  }, `${dir}/model`);
  // The calibration text is tokenized with stories260K's tokenizer (ids < 512 < vocab).
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${SHARED}models/stories260K/${f}`, `${dir}/model/${f}`);
  }
  // Records of at least 1000 characters (> 128 tokens), so every sample has the same length.
  const records: string[] = [];
  let current = "";
  for (const p of (await Deno.readTextFile(`${SHARED}data/tinystories_calib.txt`)).split("\n\n")) {
    current = current === "" ? p : `${current}\n\n${p}`;
    if (current.length >= 1000) {
      records.push(JSON.stringify({ text: current }));
      current = "";
    }
    if (records.length === Number(values.samples)) break;
  }
  await Deno.writeTextFile(`${dir}/calib.jsonl`, records.join("\n") + "\n");
  let modelBytes = 0;
  for (const e of Deno.readDirSync(`${dir}/model`)) {
    if (e.name.endsWith(".safetensors")) modelBytes += Deno.statSync(`${dir}/model/${e.name}`).size;
  }
  const generateSeconds = (performance.now() - t0) / 1000;

  const run = await runBenchChild<
    { seconds: number; peakRssBytes: number; outputBytes: number; pipeline: string }
  >(import.meta.url, [
    "--model",
    `${dir}/model`,
    "--out",
    `${dir}/out`,
    "--dataset",
    `${dir}/calib.jsonl`,
    "--samples",
    values.samples,
    "--seq-len",
    values["seq-len"],
  ]);
  const limit = modelBytes / 2;
  const ok = run.peakRssBytes < limit;
  const mb = (n: number) => `${(n / 1e6).toFixed(0)} MB`;
  console.log(`\noneshot peak memory, W4A16 RTN + static FP8 inputs (${run.pipeline} pipeline)`);
  console.log(`| synthetic Llama | f32 weights | peak RSS | limit (½ model) | ratio | run | ok |`);
  console.log(`|---|---:|---:|---:|---:|---:|---|`);
  console.log(
    `| ${layers}×(1024, 2816), vocab 32000, ${values.samples}×${values["seq-len"]} samples ` +
      `| ${mb(modelBytes)} | ${mb(run.peakRssBytes)} | ${mb(limit)} ` +
      `| ${(run.peakRssBytes / modelBytes).toFixed(3)} | ${run.seconds.toFixed(1)} s | ${
        ok ? "yes" : "NO"
      } |`,
  );
  console.log(JSON.stringify({
    bench: "oneshot_memory",
    layers,
    hidden: 1024,
    intermediate: 2816,
    vocab: 32000,
    samples: Number(values.samples),
    seqLen: Number(values["seq-len"]),
    modelBytes,
    outputBytes: run.outputBytes,
    peakRssBytes: run.peakRssBytes,
    limitBytes: limit,
    ratio: run.peakRssBytes / modelBytes,
    runSeconds: run.seconds,
    generateSeconds,
    ok,
  }));
  if (!ok) Deno.exitCode = 1;
} finally {
  await Deno.remove(dir, { recursive: true });
}
