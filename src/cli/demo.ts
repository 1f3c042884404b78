/**
 * `llmc demo`: the README's main job. Compresses an embedded default end to
 * end and reports what it did to quality:
 *
 * - with `../shared` beside the repository: stories260K, calibrated on
 *   tinystories_calib.txt and evaluated on tinystories_eval.txt (the
 *   project's perplexity convention);
 * - without it (or with `--synthetic`): a seeded synthetic Llama, evaluated
 *   by its mean NLL on seeded token windows before and after.
 *
 * @module
 */

import type { CliCommand } from "./command.ts";
import { choiceFlag, parseCommandLine } from "./flags.ts";
import { createEngine, ENGINE_CHOICES } from "../engine/choose.ts";
import type { Engine } from "../engine/engine.ts";
import { CompressedCheckpoint } from "../compress/compressed_checkpoint.ts";
import { loadEvaluationWindows } from "../data/evaluation_windows.ts";
import { perplexity } from "../data/perplexity.ts";
import { loadTokenizer } from "../io/tokenizer.ts";
import { DecoderModel } from "../model/decoder_model.ts";
import { seededRandom } from "../model/seeded_random.ts";
import { writeSyntheticModel } from "../model/synthetic_model.ts";
import { oneshot } from "../oneshot.ts";

const SHARED = new URL("../../../shared/", import.meta.url).pathname;

/** W4A16, int4 symmetric per channel: group 128 does not divide stories260K's 64 columns. */
const DEMO_RECIPE = `
quant_stage:
  quant_modifiers:
    GPTQModifier:
      ignore: ["lm_head"]
      config_groups:
        group_0:
          weights: {num_bits: 4, type: int, symmetric: true, strategy: channel}
          targets: ["Linear"]
`;

const RTN_RECIPE = DEMO_RECIPE.replace("GPTQModifier", "QuantizationModifier");

const USAGE = `usage: llmc demo [--output-dir DIR] [--synthetic] [--rtn]

Compresses stories260K from ../shared (or a seeded synthetic Llama when ../shared
is absent or --synthetic is given) to W4A16 (int4, per channel) with GPTQ
calibrated on tinystories_calib.txt, then compares the perplexity before and after.

  --output-dir DIR   where the checkpoint goes (default out/demo; replaced if present)
  --synthetic        use the synthetic model even when ../shared is present
  --rtn              round-to-nearest instead of GPTQ (data-free)
  --engine NAME      auto | webgpu | cpu (auto: LLMC_ENGINE if set, else WebGPU on a hardware adapter, else the CPU engine)`;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Opens a checkpoint (compressed or not), runs `evaluate` on it, and releases both. */
async function withCheckpointModel<T>(
  dir: string,
  engine: Engine,
  evaluate: (model: DecoderModel) => Promise<T>,
): Promise<T> {
  const ckpt = await CompressedCheckpoint.open(dir);
  try {
    const model = await DecoderModel.load(ckpt, engine);
    try {
      return await evaluate(model);
    } finally {
      model.close();
    }
  } finally {
    ckpt.close();
  }
}

async function meanNll(model: DecoderModel, windows: Int32Array[]): Promise<number> {
  let sum = 0;
  let n = 0;
  for (const w of windows) {
    const nll = await model.nll(w);
    for (const v of nll) sum += v;
    n += nll.length;
  }
  return sum / n;
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".safetensors")) {
      total += (await Deno.stat(`${dir}/${e.name}`)).size;
    }
  }
  return total;
}

/**
 * The `demo` command. Exit codes: 0 done, 1 a failed step, 2 bad flags.
 *
 * @example
 * ```ts ignore
 * import { command } from "./demo.ts";
 * await command.run(["--output-dir", "out/demo"]);
 * ```
 */
export const command: CliCommand = {
  name: "demo",
  summary: "compress the embedded default (stories260K or a synthetic Llama) and evaluate it",
  async run(argv: string[]): Promise<number> {
    const line = parseCommandLine(argv, {
      command: "demo",
      usage: USAGE,
      options: {
        "output-dir": { type: "string", default: "out/demo" },
        synthetic: { type: "boolean", default: false },
        rtn: { type: "boolean", default: false },
        engine: { type: "string", default: "auto" },
      },
    }, (values) => ({ ...values, engine: choiceFlag("engine", values.engine, ENGINE_CHOICES) }));
    if ("exit" in line) return line.exit;
    const values = line.args;
    const out = values["output-dir"];
    const chosen = await createEngine({ engine: values.engine });
    const engine = chosen.engine;
    console.log(`engine: ${chosen.reason}`);
    const useShared = !values.synthetic && await exists(`${SHARED}models/stories260K/config.json`);
    const recipe = values.rtn ? RTN_RECIPE : DEMO_RECIPE;
    const started = performance.now();

    if (useShared) {
      const modelDir = `${SHARED}models/stories260K`;
      console.log(`model: ${modelDir} (from ../shared)`);
      const tokenizer = await loadTokenizer(modelDir);
      const windows = await loadEvaluationWindows({
        path: `${SHARED}data/tinystories_eval.txt`,
        tokenizer,
        seqLen: 256,
        windows: 40,
      });
      const before = await withCheckpointModel(modelDir, engine, (m) => perplexity(m, windows));
      console.log(`perplexity before: ${before.ppl.toFixed(4)} (${before.tokens} tokens)`);
      const t0 = performance.now();
      const result = await oneshot({
        model: modelDir,
        recipe,
        dataset: `${SHARED}data/tinystories_calib.txt`,
        numCalibrationSamples: 64,
        maxSeqLength: 256,
        outputDir: out,
        overwrite: true,
        engine: engine.kind,
        onWarning: (m) => console.warn(`warning: ${m}`),
      });
      const seconds = (performance.now() - t0) / 1000;
      const after = await withCheckpointModel(out, engine, (m) => perplexity(m, windows));
      console.log(
        `compressed with ${recipe === RTN_RECIPE ? "RTN" : "GPTQ"} W4A16 (int4, channel) in ` +
          `${seconds.toFixed(1)} s (${result.pipeline} pipeline) -> ${out}`,
      );
      console.log(`checkpoint tensors: ${(await folderBytes(out) / 1024).toFixed(0)} KiB`);
      console.log(`perplexity after:  ${after.ppl.toFixed(4)} (${after.tokens} tokens)`);
    } else {
      console.log("model: seeded synthetic Llama (../shared not found or --synthetic)");
      const synth = await writeSyntheticModel({
        modelType: "llama",
        hidden: 256,
        layers: 4,
        heads: 8,
        kvHeads: 2,
        intermediate: 688,
        vocab: 1000,
        tied: false,
        seed: 7,
      });
      try {
        const random = seededRandom(11);
        const windows = Array.from({ length: 4 }, () => {
          const w = new Int32Array(128);
          for (let i = 0; i < w.length; i++) w[i] = Math.floor(random() * 1000);
          return w;
        });
        const before = await withCheckpointModel(synth.dir, engine, (m) => meanNll(m, windows));
        // No tokenizer or text for a synthetic model: quantize data-free.
        const result = await oneshot({
          model: synth.dir,
          recipe: RTN_RECIPE,
          outputDir: out,
          overwrite: true,
        });
        const after = await withCheckpointModel(out, engine, (m) => meanNll(m, windows));
        console.log(
          `compressed with RTN W4A16 (int4, channel), ${result.pipeline} pipeline -> ${out}`,
        );
        console.log(
          `mean NLL on seeded token windows: ${before.toFixed(4)} -> ${after.toFixed(4)}`,
        );
      } finally {
        await synth.remove();
      }
    }
    console.log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  },
};
