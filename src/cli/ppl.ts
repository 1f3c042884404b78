/**
 * `llmc ppl`: perplexity of a model on a text file, with llmc's evaluation
 * convention (shared/golden/README.md): the whole file tokenized without
 * special tokens, consecutive windows of L−1 tokens with BOS in front, the
 * first N windows, every token after BOS predicted.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { CliCommand } from "./command.ts";
import { loadEvaluationWindows } from "../data/evaluation_windows.ts";
import { perplexity } from "../data/perplexity.ts";
import { loadTokenizer } from "../io/tokenizer.ts";
import { DecoderModel } from "../model/decoder_model.ts";
import { CompressedCheckpoint } from "../compress/compressed_checkpoint.ts";

const USAGE =
  `usage: llmc ppl --model DIR --dataset FILE [--max-seq-length 256] [--windows 40] [--json]

  --model DIR           a Hugging Face model folder (config.json, safetensors, tokenizer.json);
                        compressed-tensors checkpoints are decompressed on the fly
  --tokenizer DIR       where tokenizer.json is, when the model folder has none (default: --model)
  --dataset FILE        a UTF-8 text file
  --max-seq-length L    ids per window, BOS included (default 256)
  --windows N           evaluate the first N windows (default 40)
  --json                print one JSON object on stdout instead of text`;

function positiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--${flag} must be a positive integer, got '${value}'`);
  }
  return n;
}

class UsageError extends Error {}

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
    let args;
    try {
      const { values } = parseArgs({
        args: argv,
        options: {
          model: { type: "string" },
          dataset: { type: "string" },
          tokenizer: { type: "string" },
          "max-seq-length": { type: "string", default: "256" },
          windows: { type: "string", default: "40" },
          json: { type: "boolean", default: false },
          help: { type: "boolean", short: "h", default: false },
        },
        strict: true,
        allowPositionals: false,
      });
      if (values.help) {
        console.log(USAGE);
        return 0;
      }
      if (!values.model) throw new UsageError("--model is required");
      if (!values.dataset) throw new UsageError("--dataset is required");
      args = {
        model: values.model,
        dataset: values.dataset,
        tokenizer: values.tokenizer ?? values.model,
        seqLen: positiveInt("max-seq-length", values["max-seq-length"]),
        windows: positiveInt("windows", values.windows),
        json: values.json,
      };
      if (args.seqLen < 2) throw new UsageError("--max-seq-length must be at least 2");
    } catch (e) {
      if (!(e instanceof UsageError) && !(e instanceof TypeError)) throw e;
      console.error(`llmc ppl: ${e.message}\n\n${USAGE}`);
      return 2;
    }

    const start = performance.now();
    const tokenizer = await loadTokenizer(args.tokenizer);
    const windows = await loadEvaluationWindows({
      path: args.dataset,
      tokenizer,
      seqLen: args.seqLen,
      windows: args.windows,
    });
    // Compressed checkpoints (llmc's or llm-compressor's) are decompressed on the fly.
    const source = await CompressedCheckpoint.open(args.model);
    const model = await DecoderModel.load(source);
    try {
      const result = await perplexity(model, windows);
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
          seconds: Number(seconds.toFixed(3)),
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
