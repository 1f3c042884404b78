/**
 * `llmc ppl`: perplexity of a model on a text file, with llmc's evaluation
 * convention (shared/golden/README.md): the whole file tokenized without
 * special tokens, consecutive windows of L−1 tokens with BOS in front, the
 * first N windows, every token after BOS predicted.
 *
 * @module
 */

import type { CliCommand } from "./command.ts";
import { choiceFlag, parseCommandLine, positiveInt, requireFlag, UsageError } from "./flags.ts";
import { createEngine, ENGINE_CHOICES } from "../engine/choose.ts";
import { loadEvaluationWindows } from "../data/evaluation_windows.ts";
import { perplexity } from "../data/perplexity.ts";
import { loadTokenizer } from "../io/tokenizer.ts";
import { DecoderModel } from "../model/decoder_model.ts";
import { resolveModelDir } from "../hub/resolve_model.ts";
import { CompressedCheckpoint } from "../compress/compressed_checkpoint.ts";
import { inputSimulationOf } from "./_input_simulation.ts";

const USAGE = `usage: llmc ppl --model DIR --dataset FILE [--max-seq-length 256] [--windows 40]
                [--simulate-inputs] [--json]

  --model DIR|ID        a Hugging Face model folder (config.json, safetensors, tokenizer.json) or a
                        Hub id org/name[@revision] (HF cache, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE);
                        compressed-tensors checkpoints are decompressed on the fly
  --tokenizer DIR       where tokenizer.json is, when the model folder has none (default: --model)
  --dataset FILE        a UTF-8 text file
  --max-seq-length L    ids per window, BOS included (default 256)
  --windows N           evaluate the first N windows (default 40)
  --simulate-inputs     quantize every Linear input as the checkpoint's scheme says, as vLLM does
                        (dynamic per-token, or static per-tensor with the stored input_scale)
  --engine NAME         auto | webgpu | cpu (auto: LLMC_ENGINE if set, else WebGPU on a hardware adapter, else the CPU engine)
  --json                print one JSON object on stdout instead of text`;

/**
 * The `ppl` command. Exit codes: 0 done, 1 bad model or dataset, 2 bad flags.
 *
 * @example
 * ```ts ignore
 * import { command } from "./ppl.ts";
 * await command.run(["--model", "models/stories260K", "--dataset", "eval.txt", "--json"]);
 * ```
 */
export const command: CliCommand = {
  name: "ppl",
  summary: "perplexity of a model on a text file (BOS + L-1 token windows)",
  async run(argv: string[]): Promise<number> {
    const line = parseCommandLine(argv, {
      command: "ppl",
      usage: USAGE,
      options: {
        model: { type: "string" },
        dataset: { type: "string" },
        tokenizer: { type: "string" },
        "max-seq-length": { type: "string", default: "256" },
        windows: { type: "string", default: "40" },
        json: { type: "boolean", default: false },
        "simulate-inputs": { type: "boolean", default: false },
        engine: { type: "string", default: "auto" },
      },
    }, (values) => {
      const model = requireFlag("model", values.model);
      const dataset = requireFlag("dataset", values.dataset);
      const seqLen = positiveInt("max-seq-length", values["max-seq-length"]);
      const windows = positiveInt("windows", values.windows);
      if (seqLen < 2) throw new UsageError("--max-seq-length must be at least 2");
      return {
        model,
        dataset,
        tokenizer: values.tokenizer ?? model,
        seqLen,
        windows,
        json: values.json,
        simulateInputs: values["simulate-inputs"],
        engine: choiceFlag("engine", values.engine, ENGINE_CHOICES),
      };
    });
    if ("exit" in line) return line.exit;
    const args = line.args;

    const start = performance.now();
    const modelDir = await resolveModelDir(args.model);
    const tokenizer = await loadTokenizer(
      args.tokenizer === args.model ? modelDir : await resolveModelDir(args.tokenizer),
    );
    const windows = await loadEvaluationWindows({
      path: args.dataset,
      tokenizer,
      seqLen: args.seqLen,
      windows: args.windows,
    });
    // Compressed checkpoints (llmc's or llm-compressor's) are decompressed on the fly.
    const source = await CompressedCheckpoint.open(modelDir);
    const chosen = await createEngine({ engine: args.engine, headDims: [source.config.headDim] });
    if (!args.json) console.error(`engine: ${chosen.reason}`);
    const model = await DecoderModel.load(source, chosen.engine);
    try {
      const transform = args.simulateInputs ? await inputSimulationOf(source) : null;
      if (args.simulateInputs && transform === null) {
        console.error(`${args.model}: its scheme quantizes no Linear input; nothing to simulate`);
      }
      const result = await perplexity(model, windows, {
        ...(transform === null ? {} : { transformLinearInput: transform }),
      });
      const seconds = (performance.now() - start) / 1000;
      if (args.json) {
        console.log(JSON.stringify({
          model: args.model,
          dataset: args.dataset,
          ppl: result.ppl,
          tokens: result.tokens,
          nllSum: result.nllSum,
          windows: windows.length,
          maxSeqLength: args.seqLen,
          simulatedInputs: transform !== null,
          seconds: Number(seconds.toFixed(3)),
          engine: chosen.engine.kind,
          engineReason: chosen.reason,
        }));
      } else {
        console.log(
          `perplexity ${result.ppl.toFixed(6)} over ${result.tokens} predicted tokens ` +
            `(${windows.length} windows of ${args.seqLen}) in ${seconds.toFixed(1)} s`,
        );
      }
      return 0;
    } finally {
      model.close();
      source.close();
    }
  },
};
