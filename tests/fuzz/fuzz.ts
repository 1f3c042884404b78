/**
 * The standalone fuzzer, for runs bigger than the test suite's:
 *
 * ```sh
 * deno task fuzz --cases 10000 [--seed 1] [--target recipe] [--save] [--trace FILE]
 * ```
 *
 * Prints one line per target (cases, successes, project errors, failures,
 * the largest RSS growth after a case and the slowest case) and the first
 * failures; `--save` writes each failing input to `tests/fuzz/corpus/<target>/`
 * so the test suite replays it from then on. Exits 1 when any case failed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { CORPUS_DIR, fuzzContext, fuzzTarget, TARGETS } from "./_fuzz.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    cases: { type: "string", default: "10000" },
    seed: { type: "string", default: "1" },
    target: { type: "string", multiple: true },
    save: { type: "boolean", default: false },
    trace: { type: "string" },
  },
});
const cases = Number(values.cases);
const seed = Number(values.seed);
if (!Number.isSafeInteger(cases) || cases < 1 || !Number.isSafeInteger(seed)) {
  console.error("--cases must be a positive integer and --seed an integer");
  Deno.exit(2);
}
const chosen = values.target?.length
  ? TARGETS.filter((t) => values.target!.includes(t.name))
  : TARGETS;
if (chosen.length === 0) {
  console.error(`no such target; known: ${TARGETS.map((t) => t.name).join(", ")}`);
  Deno.exit(2);
}

const ctx = await fuzzContext();
let failed = 0;
try {
  for (const target of chosen) {
    const t0 = performance.now();
    // --trace FILE: each input is written there before it runs; after a hang it holds the culprit.
    const trace = values.trace;
    const r = await fuzzTarget(
      target,
      cases,
      seed,
      ctx,
      trace ? (i, input) => Deno.writeTextFileSync(trace, `${i}\n${input}`) : undefined,
    );
    const s = (performance.now() - t0) / 1000;
    failed += r.failures.length;
    console.log(
      `${r.target.padEnd(20)} ${r.cases} cases: ${r.ok} ok, ${r.projectErrors} project errors, ` +
        `${r.failures.length} failures; max RSS growth ${(r.maxRssGrowth / 1e6).toFixed(0)} MB, ` +
        `slowest case ${r.maxCaseMs.toFixed(0)} ms, ${s.toFixed(1)} s`,
    );
    for (const [i, f] of r.failures.slice(0, 5).entries()) {
      console.log(`  ${i + 1}. ${f.problem}\n     input: ${JSON.stringify(f.input.slice(0, 200))}`);
    }
    if (values.save) {
      await Deno.mkdir(`${CORPUS_DIR}${target.name}`, { recursive: true });
      for (const [i, f] of r.failures.entries()) {
        await Deno.writeTextFile(
          `${CORPUS_DIR}${target.name}/seed${seed}-${i}.${target.ext}`,
          f.input,
        );
      }
    }
  }
} finally {
  await Deno.remove(ctx.dir, { recursive: true });
}
Deno.exit(failed > 0 ? 1 : 0);
