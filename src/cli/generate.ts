/**
 * `llmc generate`: continue a prompt with a model, greedily by default.
 *
 * @module
 */

import type { CliCommand } from "./command.ts";
import { choiceFlag, numberFlag, parseCommandLine, requireFlag } from "./flags.ts";
import { createEngine, ENGINE_CHOICES } from "../engine/choose.ts";
import { loadTokenizer } from "../io/tokenizer.ts";
import { DecoderModel } from "../model/decoder_model.ts";
import { resolveModelDir } from "../hub/resolve_model.ts";
import { CompressedCheckpoint } from "../compress/compressed_checkpoint.ts";
import { generate } from "../model/generate.ts";

const USAGE =
  `usage: llmc generate --model DIR --prompt TEXT --max-new-tokens N [--temperature T --top-p P --seed S] [--ignore-eos]

  --model DIR|ID        a Hugging Face model folder (config.json, safetensors, tokenizer.json),
                        or a Hub id org/name[@revision] resolved through the HF cache
  --prompt TEXT         the text to continue (BOS is added as the tokenizer does)
  --max-new-tokens N    how many tokens to generate at most
  --temperature T       sample at temperature T (default 0: greedy)
  --top-p P             nucleus sampling: keep the most likely tokens up to probability P (default 1)
  --seed S              the sampler's seed (default 0)
  --ignore-eos          keep generating after EOS
  --engine NAME         auto | webgpu | cpu (auto: LLMC_ENGINE if set, else WebGPU on a hardware adapter, else the CPU engine)`;

/**
 * The `generate` command: prints the prompt and its continuation on stdout,
 * timing on stderr. Exit codes: 0 done, 1 bad model, 2 bad flags.
 *
 * @example
 * ```ts ignore
 * import { command } from "./generate.ts";
 * await command.run(["--model", "models/stories260K", "--prompt", "Once", "--max-new-tokens", "20"]);
 * ```
 */
export const command: CliCommand = {
  name: "generate",
  summary: "continue a prompt with a model (greedy, or temperature / top-p sampling)",
  async run(argv: string[]): Promise<number> {
    const line = parseCommandLine(argv, {
      command: "generate",
      usage: USAGE,
      options: {
        model: { type: "string" },
        prompt: { type: "string" },
        "max-new-tokens": { type: "string" },
        temperature: { type: "string" },
        "top-p": { type: "string" },
        seed: { type: "string" },
        "ignore-eos": { type: "boolean", default: false },
        engine: { type: "string", default: "auto" },
      },
    }, (values) => {
      const model = requireFlag("model", values.model);
      const prompt = requireFlag("prompt", values.prompt, { allowEmpty: true });
      const maxNewTokens = requireFlag("max-new-tokens", values["max-new-tokens"], {
        allowEmpty: true, // "" is an invalid number, not a missing flag
      });
      return {
        model,
        prompt,
        maxNewTokens: numberFlag(
          "max-new-tokens",
          maxNewTokens,
          0,
          (n) => Number.isSafeInteger(n) && n >= 0,
        ),
        temperature: numberFlag("temperature", values.temperature, 0, (n) => n >= 0),
        topP: numberFlag("top-p", values["top-p"], 1, (n) => n > 0 && n <= 1),
        seed: numberFlag("seed", values.seed, 0, Number.isSafeInteger),
        ignoreEos: values["ignore-eos"],
        engine: choiceFlag("engine", values.engine, ENGINE_CHOICES),
      };
    });
    if ("exit" in line) return line.exit;
    const args = line.args;

    const modelDir = await resolveModelDir(args.model);
    const tokenizer = await loadTokenizer(modelDir);
    const prompt = tokenizer.encode(args.prompt, { addSpecialTokens: true });
    if (prompt.length === 0) {
      console.error("llmc generate: the prompt encodes to no tokens and the tokenizer adds no BOS");
      return 2;
    }
    // Compressed checkpoints (llmc's or llm-compressor's) are decompressed on the fly.
    const source = await CompressedCheckpoint.open(modelDir);
    const chosen = await createEngine({ engine: args.engine, headDims: [source.config.headDim] });
    console.error(`engine: ${chosen.reason}`);
    const model = await DecoderModel.load(source, chosen.engine);
    try {
      const start = performance.now();
      const eos = [
        ...model.config.eosTokenIds,
        ...(tokenizer.eosId === null ? [] : [tokenizer.eosId]),
      ];
      const ids = await generate(model, prompt, {
        maxNewTokens: args.maxNewTokens,
        temperature: args.temperature,
        topP: args.topP,
        seed: args.seed,
        stopIds: args.ignoreEos ? [] : eos,
      });
      const seconds = (performance.now() - start) / 1000;
      console.log(tokenizer.decode(ids, { skipSpecialTokens: true }));
      const generated = ids.length - prompt.length;
      console.error(
        `${generated} tokens in ${seconds.toFixed(2)} s (${
          (generated / seconds).toFixed(1)
        } tokens/s)`,
      );
      return 0;
    } finally {
      model.close();
      source.close();
    }
  },
};
