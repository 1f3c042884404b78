/**
 * `llmc ppl` and `llmc generate` end to end on stories260K: the perplexity
 * reference value of shared/golden/README.md, greedy text, and flag errors.
 */

import { command as ppl } from "../../src/cli/ppl.ts";
import { command as generateCommand } from "../../src/cli/generate.ts";
import { assert, assertEquals } from "./_assert.ts";

const SHARED = new URL("../../../shared/", import.meta.url).pathname;
const MODEL = `${SHARED}models/stories260K`;
const EVAL = `${SHARED}data/tinystories_eval.txt`;

/** Runs a command with console.log/error captured. */
async function capture(run: () => Promise<number>) {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await run();
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

for (const engine of ["webgpu", "cpu"]) {
  Deno.test(`llmc ppl --json --engine ${engine}: stories260K on the eval file, L=256, 40 windows = 7.740782 (0.1%)`, async () => {
    const r = await capture(() =>
      ppl.run(["--model", MODEL, "--dataset", EVAL, "--json", "--engine", engine])
    );
    assertEquals(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assertEquals(result.engine, engine);
    assertEquals(result.tokens, 10200);
    assertEquals(result.windows, 40);
    assertEquals(result.model, MODEL);
    assert(typeof result.seconds === "number");
    assert(Math.abs(result.ppl / 7.740782 - 1) < 1e-3, `ppl ${result.ppl}`);
  });
}

Deno.test("llmc ppl: text output and flag errors", async () => {
  const r = await capture(() =>
    ppl.run(["--model", MODEL, "--dataset", EVAL, "--max-seq-length", "64", "--windows", "2"])
  );
  assertEquals(r.code, 0, r.stderr);
  assert(
    /^perplexity \d+\.\d{6} over 126 predicted tokens \(2 windows of 64\)/.test(r.stdout),
    r.stdout,
  );
  for (
    const [args, message] of [
      [["--dataset", EVAL], "--model is required"],
      [
        ["--model", MODEL, "--dataset", EVAL, "--windows", "0"],
        "--windows must be a positive integer",
      ],
      [["--model", MODEL, "--dataset", EVAL, "--bogus"], "bogus"],
      [["--model", MODEL, "--dataset", EVAL, "--engine", "metal"], "--engine"],
    ] as const
  ) {
    const e = await capture(() => ppl.run([...args]));
    assertEquals(e.code, 2);
    assert(e.stderr.includes(message) && e.stderr.includes("usage: llmc ppl"), e.stderr);
  }
});

Deno.test("llmc generate: greedy continuation, seeded sampling is reproducible", async () => {
  const greedy = await capture(() =>
    generateCommand.run([
      "--model",
      MODEL,
      "--prompt",
      "Once upon a time",
      "--max-new-tokens",
      "12",
    ])
  );
  assertEquals(greedy.code, 0, greedy.stderr);
  assert(
    greedy.stdout.startsWith("Once upon a time, there was a little girl named Lily"),
    greedy.stdout,
  );
  const args = [
    "--model",
    MODEL,
    "--prompt",
    "Lily",
    "--max-new-tokens",
    "8",
    "--temperature",
    "1",
  ];
  const a = await capture(() => generateCommand.run([...args, "--top-p", "0.9", "--seed", "5"]));
  const b = await capture(() => generateCommand.run([...args, "--top-p", "0.9", "--seed", "5"]));
  assertEquals(a.code, 0, a.stderr);
  assertEquals(a.stdout, b.stdout);
  const bad = await capture(() => generateCommand.run([...args, "--top-p", "1.5"]));
  assertEquals(bad.code, 2);
  assert(bad.stderr.includes("--top-p"), bad.stderr);
});
