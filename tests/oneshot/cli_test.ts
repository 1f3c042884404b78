/**
 * The `llmc oneshot` and `llmc model-free-ptq` commands: flags, exit codes,
 * and the checkpoints they write.
 */

import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { exists, SHARED_DIR } from "../_shared.ts";
import { STORIES, withTempDir } from "./_helpers.ts";
import { command as oneshotCommand } from "../../src/cli/oneshot.ts";
import {
  byteSizeFlag,
  choiceFlag,
  parseByteSize,
  parseCommandLine,
  spreadListFlags,
  UsageError,
} from "../../src/cli/flags.ts";
import { command as modelFreeCommand } from "../../src/cli/model_free_ptq.ts";

/** Runs a command with console output captured. */
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

Deno.test("list flags take several values after one flag", () => {
  assertEquals(
    spreadListFlags([
      "--ignore",
      "lm_head",
      "re:.*down_proj$",
      "--targets",
      "Linear",
      "--overwrite",
    ], [
      "ignore",
      "targets",
    ]),
    ["--ignore", "lm_head", "--ignore", "re:.*down_proj$", "--targets", "Linear", "--overwrite"],
  );
  assertEquals(parseByteSize("500MB"), 500e6);
  assertEquals(parseByteSize("2GiB"), 2 ** 31);
  assertEquals(parseByteSize("4096"), 4096);
  assertThrows(() => parseByteSize("lots"), Error, "not a size");
  assertEquals(parseByteSize("8PB".replace("PB", "000TB")), 8e15);
  assertThrows(
    () => parseByteSize("99999999999999999999999TB"),
    Error,
    "is more than the largest size llmc handles, 9007199254740991 bytes",
  );
});

Deno.test("shared flag helpers name the flag and say what was expected", () => {
  assertEquals(byteSizeFlag("max-shard-size", "1KiB"), 1024);
  assertEquals(byteSizeFlag("max-shard-size", undefined), undefined);
  assertThrows(
    () => byteSizeFlag("max-shard-size", "big"),
    UsageError,
    "--max-shard-size: 'big' is not a size",
  );
  assertEquals(choiceFlag("progress", "json", ["auto", "json"]), "json");
  assertThrows(
    () => choiceFlag("pipeline", "fast", ["datafree", "basic"]),
    UsageError,
    "--pipeline must be one of datafree, basic, got 'fast'",
  );
  // parseCommandLine spreads every multiple string flag; others are left alone.
  const line = parseCommandLine(["--ignore", "a", "b", "--name", "n"], {
    command: "t",
    usage: "usage: t",
    options: { ignore: { type: "string", multiple: true }, name: { type: "string" } },
  }, (values) => values);
  assert(!("exit" in line));
  assertEquals(line.args.ignore, ["a", "b"]);
  assertEquals(line.args.name, "n");
});

Deno.test("llmc oneshot writes a checkpoint from a scheme or a recipe", async () => {
  await withTempDir(async (dir) => {
    const a = await run(oneshotCommand, [
      "--model",
      STORIES,
      "--scheme",
      "NVFP4A16",
      "--ignore",
      "lm_head",
      "re:.*down_proj$",
      "--output-dir",
      `${dir}/a`,
    ]);
    assertEquals(a.code, 0, a.err);
    assert(a.out.includes("wrote") && a.err.includes("layer 5/5"), a.out + a.err);
    const b = await run(oneshotCommand, [
      "--model",
      STORIES,
      "--recipe",
      `${SHARED_DIR}reference/g1b_nvfp4a16_skipdown/input_recipe.yaml`,
      "--output-dir",
      `${dir}/b`,
      "--quiet",
    ]);
    assertEquals(b.code, 0, b.err);
    const fa = await Deno.readFile(`${dir}/a/model.safetensors`);
    const fb = await Deno.readFile(
      `${SHARED_DIR}reference/g1b_nvfp4a16_skipdown/model.safetensors`,
    );
    assert(
      fa.length === fb.length && fa.every((x, i) => x === fb[i]),
      "same bytes as llm-compressor",
    );
    assert(await exists(`${dir}/b/model.safetensors`));
  });
});

Deno.test("llmc oneshot rejects bad flags with exit code 2 and writes nothing", async () => {
  await withTempDir(async (dir) => {
    for (
      const argv of [
        ["--model", STORIES, "--output-dir", `${dir}/x`],
        ["--model", STORIES, "--scheme", "W8A16", "--recipe", "r.yaml", "--output-dir", `${dir}/x`],
        ["--model", STORIES, "--scheme", "W8A16", "--output-dir", `${dir}/x`, "--pipeline", "fast"],
        ["--model", STORIES, "--scheme", "W8A16", "--output-dir", `${dir}/x`, "--bogus"],
        [
          "--model",
          STORIES,
          "--scheme",
          "W8A16",
          "--output-dir",
          `${dir}/x`,
          "--max-shard-size",
          "big",
        ],
      ]
    ) {
      const r = await run(oneshotCommand, argv);
      assertEquals(r.code, 2, argv.join(" "));
      assert(r.err.includes("usage: llmc oneshot"));
      const flag = argv.at(-2)?.startsWith("--") ? argv.at(-2) : undefined;
      if (flag === "--pipeline" || flag === "--max-shard-size") {
        assert(r.err.startsWith(`llmc oneshot: ${flag}`), r.err);
      }
    }
    assertEquals([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("llmc model-free-ptq writes a checkpoint and rejects bad flags", async () => {
  await withTempDir(async (dir) => {
    const r = await run(modelFreeCommand, [
      "--model",
      STORIES,
      "--scheme",
      "FP8_DYNAMIC",
      "--ignore",
      "re:.*embed_tokens$",
      "lm_head",
      "--output-dir",
      `${dir}/mf`,
    ]);
    assertEquals(r.code, 0, r.err);
    assert(r.out.includes("35 weights quantized"), r.out);
    const bad = await run(modelFreeCommand, ["--model", STORIES, "--output-dir", `${dir}/y`]);
    assertEquals(bad.code, 2);
    assert(!await exists(`${dir}/y`));
  });
});
