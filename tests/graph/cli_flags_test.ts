/**
 * `llmc oneshot`'s calibration flags: bad values are usage errors (exit 2,
 * nothing written); a recipe that needs data without `--dataset` fails
 * clearly (exit 1, nothing written).
 */

import assert from "node:assert/strict";
import { command } from "../../src/cli/oneshot.ts";
import { CALIB, STORIES, withTempDir } from "./_helpers.ts";

async function run(argv: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const { error, warn, log } = console;
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  console.warn = (...a: unknown[]) => err.push(a.join(" "));
  console.log = () => {};
  try {
    let code: number;
    try {
      code = await command.run(argv);
    } catch (e) {
      err.push(String(e));
      code = 1;
    }
    return { code, err: err.join("\n") };
  } finally {
    Object.assign(console, { error, warn, log });
  }
}

Deno.test("calibration flags are validated before anything is written", async () => {
  await withTempDir(async (dir) => {
    const base = [
      "--model",
      STORIES,
      "--scheme",
      "FP8",
      "--output-dir",
      `${dir}/x`,
      "--dataset",
      CALIB,
    ];
    for (
      const extra of [
        ["--num-calibration-samples", "0"],
        ["--max-seq-length", "ten"],
        ["--tokens-per-forward", "-4"],
        ["--max-activation-memory", "lots"],
        ["--max-expert-memory", "0"],
        ["--progress", "loud"],
      ]
    ) {
      const r = await run([...base, ...extra]);
      assert.equal(r.code, 2, extra.join(" "));
      assert.match(r.err, /usage: llmc oneshot/);
      // The message names the flag ("-4" is refused by parseArgs itself as ambiguous).
      const first = r.err.split("\n")[0];
      assert.ok(first.startsWith("llmc oneshot: ") && first.includes(extra[0]), r.err);
    }
    const noData = await run(["--model", STORIES, "--scheme", "FP8", "--output-dir", `${dir}/x`]);
    assert.equal(noData.code, 1);
    assert.match(noData.err, /calibration data/);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});
