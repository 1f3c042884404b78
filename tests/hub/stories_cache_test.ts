/**
 * `--model karpathy/stories260K` served offline from a Hugging Face cache
 * laid out as huggingface_hub writes it (blobs + relative snapshot symlinks
 * + refs/main), built in a temporary folder from ../shared: every auxiliary
 * file reaches the output, and the output generates text. The snapshot
 * folder itself works as a model folder for model-free-ptq.
 */

import { assert, assertEquals } from "../sink/_assert.ts";
import { SHARED_DIR, tempDirRunner } from "../_shared.ts";
import { command as oneshotCommand } from "../../src/cli/oneshot.ts";
import { command as generateCommand } from "../../src/cli/generate.ts";
import { command as modelFreeCommand } from "../../src/cli/model_free_ptq.ts";
import { command as pplCommand } from "../../src/cli/ppl.ts";
import { sha256Hex } from "./_mock_hub.ts";

const withTempDir = tempDirRunner("llmc-hub-stories-test-");
const STORIES = `${SHARED_DIR}models/stories260K`;
const COMMIT = "fedcba9876543210fedcba9876543210fedcba98";

/** Auxiliary files stories260K lacks, added to the snapshot to see them carried over. */
const EXTRA: Record<string, string> = {
  "chat_template.jinja": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
  "special_tokens_map.json": '{"bos_token": "<s>", "eos_token": "</s>"}',
  "preprocessor_config.json": '{"processor_class": "none"}',
  "processor_config.json": '{"processor_class": "none"}',
};

/** Builds `<cache>/models--karpathy--stories260K` and returns the snapshot folder. */
async function buildCache(cache: string): Promise<string> {
  const storage = `${cache}/models--karpathy--stories260K`;
  const snapshot = `${storage}/snapshots/${COMMIT}`;
  await Deno.mkdir(`${storage}/blobs`, { recursive: true });
  await Deno.mkdir(`${storage}/refs`, { recursive: true });
  await Deno.mkdir(snapshot, { recursive: true });
  await Deno.writeTextFile(`${storage}/refs/main`, COMMIT);
  const files: Record<string, Uint8Array> = {};
  for (const e of Deno.readDirSync(STORIES)) {
    files[e.name] = await Deno.readFile(`${STORIES}/${e.name}`);
  }
  for (const [name, text] of Object.entries(EXTRA)) files[name] = new TextEncoder().encode(text);
  for (const [name, bytes] of Object.entries(files)) {
    const etag = sha256Hex(bytes);
    await Deno.writeFile(`${storage}/blobs/${etag}`, bytes);
    await Deno.symlink(`../../blobs/${etag}`, `${snapshot}/${name}`);
  }
  return snapshot;
}

async function run(
  cmd: { run(argv: string[]): Promise<number> },
  argv: string[],
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error, warn } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  console.warn = (...a: unknown[]) => err.push(a.join(" "));
  try {
    return { code: await cmd.run(argv), out: out.join("\n"), err: err.join("\n") };
  } finally {
    Object.assign(console, { log, error, warn });
  }
}

async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const old = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(old)) {
      v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    }
  }
}

const AUX = [
  "tokenizer.json",
  "tokenizer_config.json",
  "generation_config.json",
  ...Object.keys(EXTRA),
];

async function assertAuxCopied(snapshot: string, out: string): Promise<void> {
  for (const name of AUX) {
    const st = await Deno.lstat(`${out}/${name}`);
    assert(st.isFile, `${name} is a regular file in the output`);
    assertEquals(await Deno.readFile(`${out}/${name}`), await Deno.readFile(`${snapshot}/${name}`));
  }
}

Deno.test("--model karpathy/stories260K works offline from the cache and writes the tokenizer files", async () => {
  await withTempDir(async (tmp) => {
    const snapshot = await buildCache(`${tmp}/hub`);
    const out = `${tmp}/w8a16`;
    const env = {
      HF_HUB_CACHE: `${tmp}/hub`,
      HF_HUB_OFFLINE: "1",
      // Unroutable: a request would fail the test rather than reach a real hub.
      HF_ENDPOINT: "http://127.0.0.1:9",
    };
    const r = await withEnv(env, () =>
      run(oneshotCommand, [
        "--model",
        "karpathy/stories260K",
        "--scheme",
        "W8A16",
        "--ignore",
        "lm_head",
        "--output-dir",
        out,
        "--progress",
        "none",
      ]));
    assertEquals(r.code, 0, r.err);
    await assertAuxCopied(snapshot, out);
    // The input cache is untouched: still links.
    assert((await Deno.lstat(`${snapshot}/tokenizer.json`)).isSymlink);

    const g = await withEnv(
      env,
      () =>
        run(generateCommand, [
          "--model",
          out,
          "--prompt",
          "Once upon a time",
          "--max-new-tokens",
          "4",
        ]),
    );
    assertEquals(g.code, 0, g.err);
    assert(g.out.startsWith("Once upon a time"), g.out);

    // ppl resolves the id at its commit hash through the same cache.
    const p = await withEnv(env, () =>
      run(pplCommand, [
        "--model",
        `karpathy/stories260K@${COMMIT}`,
        "--dataset",
        `${SHARED_DIR}data/tinystories_eval.txt`,
        "--max-seq-length",
        "32",
        "--windows",
        "2",
        "--json",
      ]));
    assertEquals(p.code, 0, p.err);
    assertEquals(JSON.parse(p.out).tokens, 62);

    // The snapshot folder itself (symlinked *.safetensors) is a model folder for model-free-ptq.
    const mf = await withEnv(env, () =>
      run(modelFreeCommand, [
        "--model",
        snapshot,
        "--scheme",
        "FP8_DYNAMIC",
        "--ignore",
        "model.embed_tokens",
        "lm_head",
        "--output-dir",
        `${tmp}/fp8-mf`,
        "--quiet",
      ]));
    assertEquals(mf.code, 0, mf.err);
    await assertAuxCopied(snapshot, `${tmp}/fp8-mf`);
    assert((await Deno.lstat(`${tmp}/fp8-mf/model.safetensors`)).isFile);
    const cfg = JSON.parse(await Deno.readTextFile(`${tmp}/fp8-mf/config.json`));
    assertEquals(cfg.quantization_config.format, "float-quantized");
  });
});

Deno.test("calibrating karpathy/stories260K on chat rows renders them with the snapshot's chat_template.jinja", async () => {
  await withTempDir(async (tmp) => {
    await buildCache(`${tmp}/hub`);
    const env = {
      HF_HUB_CACHE: `${tmp}/hub`,
      HF_HUB_OFFLINE: "1",
      HF_ENDPOINT: "http://127.0.0.1:9",
    };
    await Deno.mkdir(`${tmp}/chat/data`, { recursive: true });
    const rows = Array.from({ length: 6 }, (_, i) => ({
      id: i,
      messages: [
        { role: "user", content: `Tell me story ${i}.` },
        { role: "assistant", content: "Once upon a time, there was a little girl named Lily." },
      ],
    }));
    await Deno.writeTextFile(
      `${tmp}/chat/data/train.jsonl`,
      rows.map((r) => JSON.stringify(r)).join("\n"),
    );
    await Deno.writeTextFile(`${tmp}/chat/data/test.jsonl`, '{"messages": "not a chat"}\n');
    const argv = (model: string, out: string) => [
      "--model",
      model,
      "--recipe",
      "recipes/w4a16_gptq_channel.yaml",
      "--dataset",
      `${tmp}/chat`,
      "--splits",
      "train[:4]",
      "--text-column",
      "messages",
      "--shuffle-calibration-samples",
      "--seed",
      "3",
      "--num-calibration-samples",
      "4",
      "--max-seq-length",
      "32",
      "--output-dir",
      out,
      "--progress",
      "none",
    ];
    const r = await withEnv(
      env,
      () => run(oneshotCommand, argv("karpathy/stories260K", `${tmp}/gptq`)),
    );
    assertEquals(r.code, 0, r.err);
    assert((await Deno.lstat(`${tmp}/gptq/model.safetensors`)).isFile);
    // The shared folder has no chat template: the same rows are refused, naming the row.
    let message = "";
    try {
      await run(oneshotCommand, argv(STORIES, `${tmp}/gptq-no-template`));
    } catch (e) {
      message = (e as Error).message;
    }
    assert(message.includes("train.jsonl:"), message);
    assert(message.includes("the tokenizer has no chat template"), message);
  });
});
