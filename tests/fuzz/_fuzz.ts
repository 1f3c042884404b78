/**
 * The fuzz harness: seeded mutations of valid inputs for each parser llmc
 * exposes to files a user hands it, and the rule every case must keep:
 *
 * - it succeeds, or throws an `LlmcError` (a project error) whose message
 *   names the input (its file name);
 * - never any other exception (TypeError, RangeError, ReferenceError, …);
 * - the process's RSS stays under 4 × the input's size + 200 MB above what
 *   it was before the first case.
 *
 * Used by `fuzz_test.ts` (a few thousand cases per parser, plus the corpus of
 * cases that once failed) and by `fuzz.ts` (`deno task fuzz --cases 10000`).
 *
 * @module
 */

import { LlmcError } from "../../src/errors.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { parseSafetensorsHeader, readHeaderLength } from "../../src/io/safetensors_header.ts";
import { loadTokenizer } from "../../src/io/tokenizer.ts";
import type { TextTokenizer } from "../../src/io/tokenizer.ts";
import { writeSafetensors } from "../../src/io/safetensors_write.ts";
import { loadCalibrationSamples } from "../../src/data/calibration_samples.ts";
import { checkModelTensors } from "../../src/model/expected_tensors.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { loadRecipe } from "../../src/recipe/load.ts";
import { parseRecipe } from "../../src/recipe/parse.ts";
import { recipeToYaml } from "../../src/recipe/serialize.ts";
import { checkpointConfigJson } from "../../src/sink/config_json.ts";
import { SHARED_DIR } from "../_shared.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const STORIES = `${SHARED_DIR}models/stories260K`;

/** A random source. */
export type Rng = () => number;

const int = (r: Rng, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

/** Fragments that stress parsers: nesting, aliases, huge numbers, odd Unicode. */
const INTERESTING = [
  "[".repeat(5000),
  "{".repeat(300),
  '{"a":'.repeat(2000),
  "]".repeat(50),
  "&a ",
  "*a",
  "*nope",
  "&x [*x]",
  "<<: *a",
  "!!python/object:os.system",
  "1e400",
  "-0",
  "NaN",
  "18446744073709551617",
  "9007199254740993",
  '"\\ud800"',
  "\u0000",
  "\uFEFF",
  "\u2028",
  "null",
  "true",
  "[]",
  "{}",
  '""',
  ":",
  ",",
  "- ",
  "\n  ",
  "\t",
  "'",
  '"',
  "\\",
  "#",
  "---\n",
  "...\n",
  "? ",
  "|\n",
  ">-\n",
  "%YAML 1.1\n",
];

/**
 * One mutation of `text`: byte-level flips, deletions, duplications,
 * insertions of interesting fragments, or a splice of two places.
 *
 * @param r the random source
 * @param text the input to mutate
 * @returns the mutated text
 */
export function mutateText(r: Rng, text: string): string {
  let s = text;
  for (let k = int(r, 1, 3); k > 0; k--) {
    const at = int(r, 0, s.length);
    switch (int(r, 0, 6)) {
      case 0: { // flip one character
        const code = s.charCodeAt(at) ^ (1 << int(r, 0, 6));
        s = s.slice(0, at) + String.fromCharCode(code) + s.slice(at + 1);
        break;
      }
      case 1: // delete a run
        s = s.slice(0, at) + s.slice(at + int(r, 1, 40));
        break;
      case 2: { // duplicate a run (repeated keys, anchors used twice, …)
        const len = int(r, 1, 80);
        s = s.slice(0, at) + s.slice(at, at + len).repeat(int(r, 2, 20)) + s.slice(at);
        break;
      }
      case 3: // insert an interesting fragment
        s = s.slice(0, at) + pick(r, INTERESTING) + s.slice(at);
        break;
      case 4: { // splice: move a run elsewhere
        const from = int(r, 0, s.length);
        const run = s.slice(from, from + int(r, 1, 60));
        s = s.slice(0, at) + run + s.slice(at);
        break;
      }
      case 5: // truncate
        s = s.slice(0, at);
        break;
      default: // a random printable character
        s = s.slice(0, at) + String.fromCharCode(int(r, 32, 126)) + s.slice(at);
    }
  }
  return s;
}

/** One parser under fuzz. */
export interface FuzzTarget {
  /** Its name (and the corpus sub-folder). */
  readonly name: string;
  /** The file extension of its inputs (for the corpus and the file the case is written to). */
  readonly ext: string;
  /** Valid inputs to mutate. */
  seeds(): Promise<string[]>;
  /** Extra generators of hostile inputs (nesting bombs, alias bombs), beside the mutations. */
  readonly hostile?: ReadonlyArray<(r: Rng) => string>;
  /**
   * Feeds one input to the parser. `file` is the path the input was written
   * to (or the name it goes by); a project error must name it.
   */
  run(input: string, file: string, ctx: FuzzContext): Promise<void>;
  /** Whether the case needs the input written to `file` first (default true). */
  readonly needsFile?: boolean;
}

/** Shared state of a fuzz run. */
export interface FuzzContext {
  /** A scratch folder. */
  readonly dir: string;
  /** The stories260K tokenizer (for the dataset target). */
  tokenizer: TextTokenizer | null;
}

/** What a fuzz run found. */
export interface FuzzReport {
  target: string;
  cases: number;
  ok: number;
  projectErrors: number;
  /** Cases that broke the rule: the input (truncated) and what happened. */
  failures: Array<{ input: string; problem: string }>;
  /** The largest RSS growth seen after a case, bytes. */
  maxRssGrowth: number;
  /** The slowest case, ms. */
  maxCaseMs: number;
}

/**
 * Checks one case's outcome.
 *
 * @param e what the case threw (undefined for success)
 * @param file the name a project error must mention
 * @returns null when fine, else the problem
 */
export function judge(e: unknown, file: string): string | null {
  if (e === undefined) return null;
  if (!(e instanceof LlmcError)) {
    const name = (e as Error)?.constructor?.name ?? typeof e;
    return `uncaught ${name}: ${String((e as Error)?.message ?? e).slice(0, 300)}`;
  }
  const base = file.slice(file.lastIndexOf("/") + 1);
  if (!e.message.includes(base)) {
    return `${e.name} does not name the input '${base}': ${e.message.slice(0, 300)}`;
  }
  return null;
}

/**
 * Runs one input through a target and judges it, including the memory budget.
 *
 * @param target the parser
 * @param input the input text
 * @param ctx the run's context
 * @param baseRss the RSS before the run
 * @returns the problem (null when fine), whether it succeeded, RSS growth and time
 */
export async function runCase(
  target: FuzzTarget,
  input: string,
  ctx: FuzzContext,
  baseRss: number,
): Promise<{ problem: string | null; ok: boolean; rssGrowth: number; ms: number }> {
  const file = `${ctx.dir}/case.${target.ext}`;
  if (target.needsFile !== false) await Deno.writeTextFile(file, input);
  const t0 = performance.now();
  let thrown: unknown = undefined;
  try {
    await target.run(input, file, ctx);
  } catch (e) {
    thrown = e ?? new Error("threw a nullish value");
  }
  const ms = performance.now() - t0;
  let problem = judge(thrown, file);
  const rssGrowth = Deno.memoryUsage().rss - baseRss;
  const budget = 4 * enc.encode(input).length + 200e6;
  if (problem === null && rssGrowth > budget) {
    problem = `RSS grew ${(rssGrowth / 1e6).toFixed(0)} MB, over the budget of ${
      (budget / 1e6).toFixed(0)
    } MB`;
  }
  return { problem, ok: thrown === undefined, rssGrowth, ms };
}

/**
 * Fuzzes one target: `cases` seeded cases (mutations and hostile generators).
 *
 * @param target the parser
 * @param cases how many
 * @param seed the seed
 * @param ctx the context
 * @param onCase called with each input before it runs (e.g. to save it, so a hang can be found)
 * @returns the report
 */
export async function fuzzTarget(
  target: FuzzTarget,
  cases: number,
  seed: number,
  ctx: FuzzContext,
  onCase?: (i: number, input: string) => void,
): Promise<FuzzReport> {
  const r = seededRandom(seed);
  const seeds = await target.seeds();
  const report: FuzzReport = {
    target: target.name,
    cases: 0,
    ok: 0,
    projectErrors: 0,
    failures: [],
    maxRssGrowth: 0,
    maxCaseMs: 0,
  };
  const baseRss = Deno.memoryUsage().rss;
  for (let i = 0; i < cases; i++) {
    const hostile = target.hostile ?? [];
    const input = hostile.length > 0 && r() < 0.1
      ? pick(r, hostile)(r)
      : mutateText(r, pick(r, seeds));
    onCase?.(i, input);
    const c = await runCase(target, input, ctx, baseRss);
    report.cases++;
    if (c.ok) report.ok++;
    else if (c.problem === null) report.projectErrors++;
    if (c.problem !== null) {
      report.failures.push({ input: input.slice(0, 2000), problem: c.problem });
    }
    report.maxRssGrowth = Math.max(report.maxRssGrowth, c.rssGrowth);
    report.maxCaseMs = Math.max(report.maxCaseMs, c.ms);
  }
  return report;
}

// ---------------------------------------------------------------- targets

function nested(r: Rng, open: string, close: string, inner = "1"): string {
  const n = int(r, 50, 20_000);
  return open.repeat(n) + inner + close.repeat(n);
}

/**
 * A safetensors case as text: the first line is the 8-byte length field
 * (`auto` for the header's true length, or a decimal number), then the JSON
 * header, then a last line with the data section's length.
 */
function safetensorsText(header: string, dataLength: number, lengthField = "auto"): string {
  return `${lengthField}\n${header}\n${dataLength}`;
}

/** Splits a safetensors case back into its bytes (see {@link safetensorsText}). */
function safetensorsBytes(input: string): { prefix: Uint8Array; header: Uint8Array; size: number } {
  const first = input.indexOf("\n");
  const last = input.lastIndexOf("\n");
  const field = first < 0 ? "auto" : input.slice(0, first);
  const header = enc.encode(
    first < 0 ? input : input.slice(first + 1, last > first ? last : undefined),
  );
  const dataLength = last > first ? Number(input.slice(last + 1)) : 0;
  const prefix = new Uint8Array(8);
  const n = /^\d{1,20}$/.test(field) ? BigInt(field) : BigInt(header.length);
  new DataView(prefix.buffer).setBigUint64(0, n & ((1n << 64n) - 1n), true);
  const size = 8 + header.length +
    (Number.isSafeInteger(dataLength) && dataLength > 0 ? Math.min(dataLength, 2 ** 40) : 0);
  return { prefix, header, size };
}

const SAFETENSORS: FuzzTarget = {
  name: "safetensors-header",
  ext: "st.txt",
  needsFile: false,
  async seeds() {
    const bytes = await Deno.readFile(`${STORIES}/model.safetensors`);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = dec.decode(bytes.subarray(8, 8 + n));
    const dataLength = bytes.length - 8 - n;
    return [
      safetensorsText(header, dataLength),
      safetensorsText(header, dataLength, String(n)),
      safetensorsText(
        '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}',
        16,
      ),
      safetensorsText(
        '{"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"U8","shape":[],"data_offsets":[6,7]}}',
        7,
      ),
    ];
  },
  hostile: [
    (r) => safetensorsText(`{"__metadata__":{"a":${nested(r, "[", "]")}}}`, 0),
    (r) =>
      safetensorsText(
        `{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":${nested(r, '{"a":', "}")}}}`,
        1,
      ),
    (r) =>
      safetensorsText(
        `{"__metadata__":{${
          Array.from({ length: int(r, 1, 20_000) }, (_, i) => `"k${i}":"v"`).join(",")
        }}}`,
        0,
      ),
  ],
  run(input, file) {
    const { prefix, header, size } = safetensorsBytes(input);
    const len = readHeaderLength(prefix, size, file);
    parseSafetensorsHeader(header.subarray(0, len), size, file);
    return Promise.resolve();
  },
};

const CONFIG: FuzzTarget = {
  name: "config.json",
  ext: "json",
  async seeds() {
    const stories = await Deno.readTextFile(`${STORIES}/config.json`);
    const qwen = JSON.stringify({
      ...JSON.parse(stories),
      model_type: "qwen3",
      rope_scaling: { rope_type: "yarn", factor: 4.0, original_max_position_embeddings: 128 },
      quantization_config: { config_groups: { group_0: { weights: { num_bits: 4 } } } },
    });
    return [stories, qwen];
  },
  hostile: [
    (r) => `{"model_type":"llama","junk":${nested(r, "[", "]")}}`,
    (r) => `{"a":${nested(r, '{"b":', "}")}}`,
  ],
  async run(input, file, ctx) {
    // The folder HfModel opens: this config.json and a one-tensor weights file.
    const dir = `${ctx.dir}/model`;
    await Deno.writeTextFile(`${dir}/config.json`, input);
    let model: HfModel;
    try {
      model = await HfModel.open(dir);
    } catch (e) {
      // The case's own name is config.json: say so to the judge.
      if (e instanceof LlmcError && e.message.includes(`${dir}/config.json`)) {
        throw new LlmcError(`${file}: ${e.message}`);
      }
      throw e;
    }
    try {
      checkModelTensors(model, model.config, file, () => {});
    } catch (e) {
      if (!(e instanceof LlmcError)) throw e; // tensors missing: expected, not the parser's fault
    } finally {
      model.close();
    }
    // The writer of the output's config.json must take whatever the reader took.
    checkpointConfigJson(input, { quant_method: "compressed-tensors" }, { file });
  },
};

const TOKENIZER: FuzzTarget = {
  name: "tokenizer.json",
  ext: "json",
  async seeds() {
    return [await Deno.readTextFile(`${STORIES}/tokenizer.json`)];
  },
  hostile: [(r) => `{"model":${nested(r, "[", "]")}}`],
  async run(input, file, ctx) {
    const dir = `${ctx.dir}/tok`;
    await Deno.writeTextFile(`${dir}/tokenizer.json`, input);
    try {
      const tok = await loadTokenizer(dir);
      const ids = tok.encode("Once upon a time, \u00e9\u4e2d\ud83d\ude00 1e400");
      tok.decode(ids);
    } catch (e) {
      if (e instanceof LlmcError && e.message.includes(`${dir}/tokenizer.json`)) {
        throw new LlmcError(`${file}: ${e.message}`);
      }
      throw e;
    }
  },
};

function laughs(r: Rng): string {
  const levels = int(r, 2, 12);
  let text = 'l0: &l0 ["lol"]\n';
  for (let i = 1; i <= levels; i++) {
    text += `l${i}: &l${i} [${Array(int(r, 2, 10)).fill(`*l${i - 1}`).join(", ")}]\n`;
  }
  return text;
}

const RECIPE_SEEDS = [
  `quant_stage:
  quant_modifiers:
    GPTQModifier:
      targets: [Linear]
      scheme: W4A16
      ignore: [lm_head]
      dampening_frac: 0.01
`,
  `x: &ign ["lm_head", "re:.*down_proj"]
default_stage:
  default_modifiers:
    QuantizationModifier:
      ignore: *ign
      config_groups:
        group_0: &g
          weights: {num_bits: 8, type: float, strategy: tensor, dynamic: false, symmetric: true}
          input_activations: {num_bits: 8, type: int, strategy: tensor, dynamic: false, symmetric: false}
          targets: ["Linear"]
      kv_cache_scheme: {num_bits: 8, type: float, strategy: tensor, dynamic: false, symmetric: true}
sparsity_stage:
  sparsity_modifiers:
    SparseGPTModifier: {sparsity: 0.5, mask_structure: "2:4", ignore: *ign}
`,
  `{"quant_stage": {"quant_modifiers": {"QuantizationModifier": {"targets": ["Linear"], "scheme": "FP8_DYNAMIC", "ignore": ["lm_head"]}}}}`,
];

const RECIPE_YAML: FuzzTarget = {
  name: "recipe",
  ext: "yaml",
  needsFile: false,
  seeds: () => Promise.resolve(RECIPE_SEEDS),
  hostile: [
    laughs,
    (r) => RECIPE_SEEDS[0] + `extra: ${nested(r, "[", "]")}\n`,
    (r) =>
      Array.from({ length: int(r, 10, 600) }, (_, i) => " ".repeat(i) + "k:").join("\n") + " 1\n",
    () => RECIPE_SEEDS[1] + "more: *nope\n",
  ],
  run(input, file) {
    const recipe = parseRecipe(input, { file, onWarning: () => {} });
    recipeToYaml(recipe);
    return Promise.resolve();
  },
};

const RECIPE_JSON_FILE: FuzzTarget = {
  name: "recipe.json",
  ext: "json",
  seeds: () => Promise.resolve([RECIPE_SEEDS[2]]),
  hostile: [(r) => `{"quant_stage": ${nested(r, "[", "]")}}`],
  async run(_input, file) {
    const recipe = await loadRecipe(file, { onWarning: () => {} });
    recipeToYaml(recipe);
  },
};

const DATASET: FuzzTarget = {
  name: "dataset.jsonl",
  ext: "jsonl",
  seeds() {
    const lines = [
      '{"text": "Once upon a time there was a little girl."}',
      '{"text": "She liked to play in the park with her dog.", "id": 2}',
      '{"text": "The end.", "meta": {"source": "x"}}',
      '{"text": "\\u00e9\\u4e2d\\ud83d\\ude00 a b c"}',
    ];
    return Promise.resolve([lines.join("\n"), lines.slice(0, 2).join("\n") + "\n\n"]);
  },
  hostile: [(r) => `{"text": "a", "x": ${nested(r, "[", "]")}}`],
  async run(_input, file, ctx) {
    ctx.tokenizer ??= await loadTokenizer(STORIES);
    await loadCalibrationSamples({
      path: file,
      tokenizer: ctx.tokenizer,
      numSamples: 2,
      maxSeqLength: 16,
    });
  },
};

const DATASET_TEXT: FuzzTarget = {
  ...DATASET,
  name: "dataset.txt",
  ext: "txt",
  async seeds() {
    return [(await Deno.readTextFile(`${SHARED_DIR}data/tinystories_calib.txt`)).slice(0, 400)];
  },
  hostile: [],
};

/** Every fuzz target, in the order the suite runs them. */
export const TARGETS: readonly FuzzTarget[] = [
  SAFETENSORS,
  CONFIG,
  TOKENIZER,
  RECIPE_YAML,
  RECIPE_JSON_FILE,
  DATASET,
  DATASET_TEXT,
];

/**
 * Makes the scratch folder a run needs: a model folder with a one-tensor
 * weights file (for config.json cases) and a tokenizer folder.
 *
 * @returns the context; remove `ctx.dir` afterwards
 */
export async function fuzzContext(): Promise<FuzzContext> {
  const dir = await Deno.makeTempDir({ prefix: "llmc-fuzz-" });
  await Deno.mkdir(`${dir}/model`);
  await writeSafetensors(`${dir}/model/model.safetensors`, [
    { name: "model.norm.weight", dtype: "F32", shape: [1], data: new Uint8Array(4) },
  ]);
  await Deno.mkdir(`${dir}/tok`);
  return { dir, tokenizer: null };
}

/** The corpus folder: `corpus/<target>/<case>.<ext>`, inputs that once failed. */
export const CORPUS_DIR = decodeURIComponent(new URL("./corpus/", import.meta.url).pathname);

/**
 * Replays the corpus of one target.
 *
 * @param target the parser
 * @param ctx the context
 * @returns the problems found, by corpus file
 */
export async function replayCorpus(
  target: FuzzTarget,
  ctx: FuzzContext,
): Promise<{ files: number; failures: Array<{ file: string; problem: string }> }> {
  const dir = `${CORPUS_DIR}${target.name}`;
  const failures: Array<{ file: string; problem: string }> = [];
  let files = 0;
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const baseRss = Deno.memoryUsage().rss;
  for (const e of entries) {
    if (!e.isFile) continue;
    files++;
    const input = await Deno.readTextFile(`${dir}/${e.name}`);
    const c = await runCase(target, input, ctx, baseRss);
    if (c.problem !== null) failures.push({ file: e.name, problem: c.problem });
  }
  return { files, failures };
}
