/**
 * AWQ against GPTQ on a synthetic Llama of about 13M parameters (2 layers,
 * hidden 768, intermediate 2048, 12 heads without GQA so every AWQ mapping
 * applies, vocab 512, tied): each recipe (W4A16 asymmetric channel-wise)
 * runs as a whole oneshot in its own child process, which reports its wall
 * time and peak resident set size (VmHWM). The cached activations are
 * bounded by `--max-activation-memory` (default 64 MiB here) and spill to
 * disk beyond it.
 *
 * ```sh
 * deno run -A bench/awq_oneshot_bench.ts [--samples 8] [--seq-len 128] [--max-activation-mib 64]
 * ```
 *
 * Prints a table and one JSON line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { writeSyntheticModel } from "../src/model/synthetic_model.ts";
import { oneshot } from "../src/oneshot.ts";
import { runBenchChild } from "./_child_run.ts";

const SHARED = decodeURIComponent(new URL("../../shared/", import.meta.url).pathname);
const GROUPS = `      config_groups:
        group_0:
          weights: {num_bits: 4, type: int, symmetric: false, strategy: channel}
          targets: [Linear]
`;
const RECIPES: Record<string, string> = {
  awq: `quant_stage:\n  quant_modifiers:\n    AWQModifier:\n      ignore: [lm_head]\n${GROUPS}`,
  gptq: `quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      ignore: [lm_head]\n${GROUPS}`,
};
const SPEC = {
  modelType: "llama" as const,
  hidden: 768,
  layers: 2,
  heads: 12,
  kvHeads: 12,
  intermediate: 2048,
  vocab: 512,
  tied: true,
  seed: 11,
};

function peakRssBytes(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    child: { type: "string" },
    model: { type: "string" },
    out: { type: "string" },
    dataset: { type: "string" },
    samples: { type: "string", default: "8" },
    "seq-len": { type: "string", default: "128" },
    "max-activation-mib": { type: "string", default: "64" },
  },
});

if (values.child !== undefined) {
  const t0 = performance.now();
  await oneshot({
    model: values.model!,
    recipe: RECIPES[values.child],
    dataset: values.dataset!,
    numCalibrationSamples: Number(values.samples),
    maxSeqLength: Number(values["seq-len"]),
    maxActivationBytesInMemory: Number(values["max-activation-mib"]) * 2 ** 20,
    outputDir: values.out!,
    onWarning: () => {},
  });
  console.log(JSON.stringify({
    peakRssBytes: peakRssBytes(),
    seconds: (performance.now() - t0) / 1000,
  }));
  Deno.exit(0);
}

const dir = await Deno.makeTempDir({ prefix: "llmc-awq-bench-" });
try {
  await Deno.mkdir(`${dir}/model`);
  await writeSyntheticModel(SPEC, `${dir}/model`);
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${SHARED}models/stories260K/${f}`, `${dir}/model/${f}`);
  }
  // Records long enough that every sample has the same length (see oneshot_memory_bench.ts).
  const records: string[] = [];
  let current = "";
  for (const p of (await Deno.readTextFile(`${SHARED}data/tinystories_calib.txt`)).split("\n\n")) {
    current = current === "" ? p : `${current}\n\n${p}`;
    if (current.length >= 8 * Number(values["seq-len"])) {
      records.push(JSON.stringify({ text: current }));
      current = "";
    }
    if (records.length === Number(values.samples)) break;
  }
  await Deno.writeTextFile(`${dir}/calib.jsonl`, records.join("\n") + "\n");
  const params = SPEC.vocab * SPEC.hidden +
    SPEC.layers * (4 * SPEC.hidden * SPEC.hidden + 3 * SPEC.hidden * SPEC.intermediate);
  const results: Record<string, { seconds: number; peakRssBytes: number }> = {};
  for (const name of ["gptq", "awq"]) {
    results[name] = await runBenchChild(import.meta.url, [
      name,
      "--model",
      `${dir}/model`,
      "--out",
      `${dir}/out-${name}`,
      "--dataset",
      `${dir}/calib.jsonl`,
      "--samples",
      values.samples,
      "--seq-len",
      values["seq-len"],
      "--max-activation-mib",
      values["max-activation-mib"],
    ]);
  }
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  console.log(
    `\nW4A16 asym channel oneshot on a synthetic Llama, ${(params / 1e6).toFixed(1)}M params ` +
      `(${SPEC.layers} × ${SPEC.hidden}/${SPEC.intermediate}), ${values.samples} × ` +
      `${values["seq-len"]} samples, activations in memory ≤ ${values["max-activation-mib"]} MiB`,
  );
  console.log(`| modifier | wall | peak RSS |`);
  console.log(`|---|---:|---:|`);
  for (const [name, r] of Object.entries(results)) {
    console.log(`| ${name} | ${r.seconds.toFixed(1)} s | ${mib(r.peakRssBytes)} |`);
  }
  console.log(JSON.stringify({
    bench: "awq_oneshot",
    params,
    samples: Number(values.samples),
    seqLen: Number(values["seq-len"]),
    maxActivationMiB: Number(values["max-activation-mib"]),
    gptq: results.gptq,
    awq: results.awq,
  }));
} finally {
  await Deno.remove(dir, { recursive: true });
}
